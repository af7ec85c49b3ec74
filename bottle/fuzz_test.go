package bottle

import (
	"bytes"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// fuzzSeeds returns real bottle files when ../shared/real-bottle is present
// (a handful per set keeps the seed corpus small) and the project fixtures.
func fuzzSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{}
	root := testutil.RepoRoot(t)
	for _, pattern := range []string{
		filepath.Join(root, "..", "shared", "real-bottle", "B*"),
		filepath.Join(root, "testdata", "*", "B*"),
	} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			base := filepath.Base(p)
			// one Min minute is enough; every Day channel is different
			if strings.HasSuffix(base, "_20") && !strings.Contains(base, "0000CH") {
				continue
			}
			if b, err := os.ReadFile(p); err == nil {
				seeds[base] = b
			}
		}
	}
	return seeds
}

func FuzzParse(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(rawFile(nil, 8))
	f.Add(rawFile(func(b []byte) { b[0], b[1] = 0x01, 0x5D }, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		h := file.Header
		if file.Len() != int(h.NumPts) || int64(len(data)) != int64(h.HeaderSize)+h.BodySize() {
			t.Fatalf("Len %d for %+v from %d bytes", file.Len(), h, len(data))
		}
		if h.IntervalMs() <= 0 {
			t.Fatalf("interval %d ms accepted", h.IntervalMs())
		}
		// Whatever parses must survive a write and read back unchanged.
		b, err := Encode(file)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(b[:40], data[:40]) || !bytes.Equal(b[h.HeaderSize:], data[h.HeaderSize:]) {
			t.Fatalf("re-encoded bytes differ")
		}
		back, err := Parse("again", b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if back.Header != h || back.Len() != file.Len() {
			t.Fatalf("header %+v, want %+v", back.Header, h)
		}
		for i := 0; i < file.Len(); i++ {
			if h.DataType == Float32 {
				if math.Float32bits(back.Floats[i]) != math.Float32bits(file.Floats[i]) {
					t.Fatalf("float %d differs", i)
				}
			} else if back.Ints[i] != file.Ints[i] {
				t.Fatalf("int %d differs", i)
			}
		}
	})
}

// FuzzWalk feeds arbitrary bytes to the archive reader, as a plain tar and as
// a gzipped tar. It must never panic and every callback must carry either a
// classified file from the archive or an error naming the archive.
func FuzzWalk(f *testing.F) {
	seeds := fuzzSeeds(f)
	var members []entry
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		if b := seeds[name]; len(members) < 3 && len(b) < 1000 {
			members = append(members, entry{name: name, body: b})
		}
	}
	inner := tarOf(f, members...)
	f.Add(inner, false)
	f.Add(gzipOf(f, inner), true)
	f.Add(tarOf(f, entry{name: "B0012200100_20.tar", body: tarOf(f, entry{name: "B001220010000_20.tgz", body: gzipOf(f, inner)})}), false)
	f.Add(tarOf(f, entry{name: "d/", dir: true}, entry{name: "README", body: []byte("junk")}), false)
	f.Add(gzipOf(f, inner)[:40], true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, gz bool) {
		name, kind := "fuzz.tar", plainTar
		if gz {
			name, kind = "fuzz.tgz", gzipTar
		}
		w := &walker{maxMember: 1 << 20, fn: func(file *File, err error) error {
			switch {
			case err != nil:
				if file != nil || !strings.HasPrefix(err.Error(), name) {
					t.Fatalf("error %q with file %v", err, file)
				}
			case file == nil || file.Info.Site == "" || !strings.HasPrefix(file.Name, name+"!"):
				t.Fatalf("bad file %+v", file)
			}
			return nil
		}}
		if err := w.archive(name, kind, bytes.NewReader(data)); err != nil {
			t.Fatalf("archive returned %v though fn never stops", err)
		}
	})
}
