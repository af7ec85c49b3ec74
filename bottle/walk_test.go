package bottle

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// visit is what one Walk callback saw.
type visit struct {
	name  string // File.Name, or "" for an error
	first int32  // first sample
	n     int
	err   error
}

func walkAll(t *testing.T, paths ...string) []visit {
	t.Helper()
	var got []visit
	err := Walk(paths, func(f *File, err error) error {
		if err != nil {
			got = append(got, visit{err: err})
			return nil
		}
		if f.Info.Site == "" {
			t.Errorf("%s: Info not set", f.Name)
		}
		got = append(got, visit{name: f.Name, first: f.Ints[0], n: f.Len()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWalkNestedArchives builds an EarthScope-shaped Min day archive (a tar of
// hourly _20.tar of per-minute .tgz of four CH files), a Day .tgz and plain
// files, and checks every file arrives once, in order, with the right name.
func TestWalkNestedArchives(t *testing.T) {
	dir := t.TempDir()
	const day = 1640995200.0 // 2022-01-01
	var hours []entry
	for h := 0; h < 2; h++ {
		var minutes []entry
		for m := 0; m < 3; m++ {
			var chans []entry
			for c := 0; c < 4; c++ {
				start := day + float64(h*3600+m*60)
				chans = append(chans, entry{name: fmt.Sprintf("B00122001%02d%02dCH%d_20", h, m, c),
					body: int32File(t, start, 0.05, 1200, int32(1000*h+100*m+c))})
			}
			minutes = append(minutes, entry{name: fmt.Sprintf("B00122001%02d%02d_20.tgz", h, m), body: gzipOf(t, tarOf(t, chans...))})
		}
		hours = append(hours, entry{name: fmt.Sprintf("B00122001%02d_20.tar", h), body: tarOf(t, minutes...)})
	}
	writeFile(t, filepath.Join(dir, "b", "B001.2022001_20.tar"), tarOf(t, hours...))
	writeFile(t, filepath.Join(dir, "a", "B001.2022001Day.tgz"), gzipOf(t, tarOf(t,
		entry{name: "./B001.2022001Day/", dir: true},
		entry{name: "./B001.2022001Day/B00122001CH0", body: int32File(t, day, 600, 144, 7)},
		entry{name: "./B001.2022001Day/B00122001CH1", body: int32File(t, day, 600, 144, 8)},
	)))
	writeFile(t, filepath.Join(dir, "c", "B0012200100CH2"), int32File(t, day, 1, 3600, 9))

	got := walkAll(t, dir)
	var want []visit
	a := filepath.Join(dir, "a", "B001.2022001Day.tgz")
	want = append(want, visit{name: a + "!B001.2022001Day/B00122001CH0", first: 7, n: 144},
		visit{name: a + "!B001.2022001Day/B00122001CH1", first: 8, n: 144})
	b := filepath.Join(dir, "b", "B001.2022001_20.tar")
	for h := 0; h < 2; h++ {
		for m := 0; m < 3; m++ {
			for c := 0; c < 4; c++ {
				want = append(want, visit{
					name:  fmt.Sprintf("%s!B00122001%02d_20.tar!B00122001%02d%02d_20.tgz!B00122001%02d%02dCH%d_20", b, h, h, m, h, m, c),
					first: int32(1000*h + 100*m + c), n: 1200})
			}
		}
	}
	want = append(want, visit{name: filepath.Join(dir, "c", "B0012200100CH2"), first: 9, n: 3600})
	if len(got) != len(want) {
		t.Fatalf("got %d visits, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("visit %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestWalkJunk checks that junk members are reported with their archive path
// and the walk continues past them, and that fn's error stops the walk.
func TestWalkJunk(t *testing.T) {
	dir := t.TempDir()
	good := int32File(t, 0, 1, 10, 5)
	corruptGz := gzipOf(t, tarOf(t, entry{name: "B0012200100CH0", body: good}))
	corruptGz[len(corruptGz)-6] ^= 0xFF // damage the CRC in the trailer
	truncGz := gzipOf(t, tarOf(t, entry{name: "B0012200100CH0", body: good}))
	truncGz = truncGz[:len(truncGz)/2]
	outer := tarOf(t,
		entry{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
		entry{name: "B0012200100CH0", body: good},
		entry{name: "README.txt", body: []byte("hello")},
		entry{name: "x.tgz", body: []byte("not gzip at all")},
		entry{name: "crc.tgz", body: corruptGz},
		entry{name: "trunc.tgz", body: truncGz},
		entry{name: "B0012200100CH1", body: good[:30]},
		entry{name: "B0012200100CH3", typ: tar.TypeSymlink},
		entry{name: "B0012200100CH2", body: good},
	)
	writeFile(t, filepath.Join(dir, "j.tar"), outer)
	// A truncated outer tar: the walk reports it and goes on to the next path.
	writeFile(t, filepath.Join(dir, "k.tar"), outer[:2*512+1536+100])
	writeFile(t, filepath.Join(dir, "notes.md"), []byte("x"))
	writeFile(t, filepath.Join(dir, "l.tar"), nil)

	got := walkAll(t, dir, filepath.Join(dir, "missing"))
	j := filepath.Join(dir, "j.tar")
	k := filepath.Join(dir, "k.tar")
	want := []struct {
		name string // for files
		err  []string
	}{
		{name: j + "!B0012200100CH0"},
		{err: []string{j + "!README.txt", "bottle file name"}},
		{err: []string{j + "!x.tgz", "not a gzip stream"}},
		// A gzip trailer is checked only at the end of the stream, after its
		// members were delivered: the error follows them.
		{name: j + "!crc.tgz!B0012200100CH0"},
		{err: []string{j + "!crc.tgz", "checksum"}},
		{err: []string{j + "!trunc.tgz", "unexpected EOF"}},
		{err: []string{j + "!B0012200100CH1", "header truncated"}},
		{err: []string{j + "!B0012200100CH3", "not a regular file (tar type '2')"}},
		{name: j + "!B0012200100CH2"},
		{name: k + "!B0012200100CH0"},
		{err: []string{k + "!README.txt", "bottle file name"}},
		{err: []string{k, "truncated tar", "after 3 members"}},
		{err: []string{filepath.Join(dir, "l.tar"), "empty archive"}},
		{err: []string{filepath.Join(dir, "notes.md"), "bottle file name"}},
		{err: []string{filepath.Join(dir, "missing"), "no such file"}},
	}
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("%s %v", g.name, g.err)
		}
		t.Fatalf("got %d visits, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if w.name != "" {
			if g.err != nil || g.name != w.name {
				t.Errorf("visit %d: got %+v, want file %s", i, g, w.name)
			}
			continue
		}
		if g.err == nil {
			t.Errorf("visit %d: got file %s, want error %q", i, g.name, w.err)
			continue
		}
		for _, s := range w.err {
			if !strings.Contains(g.err.Error(), s) {
				t.Errorf("visit %d: error %q lacks %q", i, g.err, s)
			}
		}
	}
	if !errors.Is(got[1].err, ErrBadName) {
		t.Errorf("junk name error %v does not match ErrBadName", got[1].err)
	}

	// fn's error stops the walk and comes back unchanged.
	sentinel := errors.New("enough")
	calls := 0
	err := Walk([]string{dir}, func(f *File, err error) error {
		calls++
		if calls == 2 {
			return sentinel
		}
		return nil
	})
	if err != sentinel || calls != 2 {
		t.Errorf("Walk returned %v after %d calls, want the callback's error after 2", err, calls)
	}
}

// TestWalkMemberLimit: a member larger than the limit is refused before any
// of it is read, and the walk goes on with the next member.
func TestWalkMemberLimit(t *testing.T) {
	big := int32File(t, 0, 1, 100, 1) // 440 bytes
	small := int32File(t, 0, 1, 10, 2)
	data := tarOf(t, entry{name: "B0012200100CH0", body: big}, entry{name: "B0012200100CH1", body: small})
	var got []string
	w := &walker{maxMember: 200, fn: func(f *File, err error) error {
		if err != nil {
			got = append(got, err.Error())
		} else {
			got = append(got, f.Name)
		}
		return nil
	}}
	if err := w.archive("a.tar", plainTar, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	want := []string{"a.tar!B0012200100CH0: member of 440 bytes is beyond the 200-byte limit for one bottle file", "a.tar!B0012200100CH1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
