package record

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/earthscope/gtsm-stream/bottle"
)

// readReal parses the real bottle files whose names start with prefix and
// satisfy keep (nil keeps all), in name order, with Info set from the name.
func readReal(t testing.TB, prefix string, keep func(name string) bool) []*bottle.File {
	t.Helper()
	dir := testutil.RealBottleDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, prefix) && n != "README.md" && (keep == nil || keep(n)) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var files []*bottle.File
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		f, err := bottle.Parse(n, data)
		if err != nil {
			t.Fatal(err)
		}
		if f.Info, err = bottle.ParseName(n); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no real files %s* in %s", prefix, dir)
	}
	return files
}

// memFile builds an in-memory bottle file named name (Info from the name).
func memFile(t testing.TB, name string, startMs, intervalMs int64, ints []int32, floats []float32) *bottle.File {
	t.Helper()
	info, err := bottle.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	h := bottle.Header{HeaderSize: 40, Start: float64(startMs) / 1000, Interval: float32(intervalMs) / 1000, Missing: 999999}
	f := &bottle.File{Name: name, Info: info, Ints: ints, Floats: floats}
	if floats != nil {
		h.DataType = bottle.Float32
		h.NumPts = int32(len(floats))
	} else {
		h.DataType = bottle.Int32
		h.NumPts = int32(len(ints))
	}
	f.Header = h
	return f
}

// sampleValue is sample i of an in-memory file as the record carries it.
func sampleValue(f *bottle.File, i int) (int32, error) {
	if f.Header.DataType != bottle.Float32 {
		return f.Ints[i], nil
	}
	v, ok := ScaleFloat(f.Floats[i])
	if !ok {
		return 0, fmt.Errorf("%s: sample %d: float %v does not fit", f.Name, i, f.Floats[i])
	}
	return v, nil
}
