package bottle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

// int32File makes an int32 bottle file whose sample i is base+i.
func int32File(t testing.TB, start float64, interval float32, n int, base int32) []byte {
	t.Helper()
	f := &File{Header: Header{HeaderSize: 40, Start: start, Interval: interval, DataType: Int32, Missing: 999999}}
	f.Ints = make([]int32, n)
	for i := range f.Ints {
		f.Ints[i] = base + int32(i)
	}
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entry is one tar member; a nil body with dir=true makes a directory entry.
type entry struct {
	name string
	body []byte
	dir  bool
	typ  byte // other tar types: TypeSymlink, TypeXGlobalHeader
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		switch e.typ {
		case tar.TypeSymlink:
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, "elsewhere"
		case tar.TypeXGlobalHeader:
			h = &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: e.name, PAXRecords: map[string]string{"comment": "made by git archive"}}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
