package bottle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWalkSymlinks: Walk follows symbolic links like find -L. A link given
// as input that points to a directory is walked (it used to be read as a
// file with a non-bottle name: 0 files, no error); links inside directories
// to files and to directories are followed; a link back to a directory
// being walked is reported once and not entered; a dangling link is named.
func TestWalkSymlinks(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	hour := filepath.Join(data, "hour")
	if err := os.MkdirAll(hour, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"B0092118200CH0", "B0092118200CH1"} {
		if err := os.WriteFile(filepath.Join(hour, name), int32File(t, 1625097600, 1, 10, 7), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) string {
		p := filepath.Join(root, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hourlink := link(hour, "hourlink")
	// inside a directory: a link to a directory, a link to a file, a loop
	// back to an ancestor, and a dangling link
	mixed := filepath.Join(root, "mixed")
	if err := os.Mkdir(mixed, 0o755); err != nil {
		t.Fatal(err)
	}
	link(hour, "mixed/a_dirlink")
	link(filepath.Join(hour, "B0092118200CH0"), "mixed/B0092118201CH0")
	link(mixed, "mixed/loop")
	link(filepath.Join(root, "nowhere"), "mixed/B0092118202CH0")
	// a link to the link: two hops
	twice := link(hourlink, "twice")

	for _, c := range []struct {
		name   string
		input  string
		files  []string // File.Name of every file, in order
		errors []string // substrings of the errors, in order
	}{
		{"link to a directory", hourlink, []string{"hourlink/B0092118200CH0", "hourlink/B0092118200CH1"}, nil},
		{"link to a link to a directory", twice, []string{"twice/B0092118200CH0", "twice/B0092118200CH1"}, nil},
		{"links inside a directory", mixed,
			[]string{"mixed/B0092118201CH0", "mixed/a_dirlink/B0092118200CH0", "mixed/a_dirlink/B0092118200CH1"},
			[]string{"mixed/B0092118202CH0: dangling symbolic link to " + filepath.Join(root, "nowhere"),
				"mixed/loop: symbolic link loop: leads back to " + mixed}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var files, errs []string
			err := Walk([]string{c.input}, func(f *File, err error) error {
				if err != nil {
					errs = append(errs, err.Error())
					return nil
				}
				files = append(files, strings.TrimPrefix(f.Name, root+"/"))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(files, "\n") != strings.Join(c.files, "\n") {
				t.Errorf("files:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(c.files, "\n"))
			}
			if len(errs) != len(c.errors) {
				t.Fatalf("errors %q, want %d", errs, len(c.errors))
			}
			for i, e := range c.errors {
				if !strings.Contains(errs[i], e) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], e)
				}
			}
		})
	}
}

// TestReadHeaderSamples: a file read with ReadHeader (or walked with
// LazyOver) keeps its samples on disk; Samples gives exactly the samples
// Parse gives, in chunks, for every type and byte order; ReadHeader refuses
// the same damaged files as ReadFile, with the same messages; a file that
// changes between ReadHeader and Samples is an error, not a mix.
func TestReadHeaderSamples(t *testing.T) {
	dir := t.TempDir()
	n := 2*SampleChunk + 123
	for _, c := range []struct {
		typ DataType
		big bool
	}{{Int32, false}, {Int32, true}, {Int16, false}, {Int16, true}, {Float32, false}, {Float32, true}} {
		f := &File{Header: Header{Start: 1625097600, Interval: 1, DataType: c.typ, BigEndian: c.big, Missing: 999999}}
		if c.typ == Float32 {
			f.Floats = make([]float32, n)
			for i := range f.Floats {
				f.Floats[i] = float32(i) / 3
			}
		} else {
			f.Ints = make([]int32, n)
			for i := range f.Ints {
				f.Ints[i] = int32(i%30000 - 15000)
			}
		}
		b, err := Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "B0092118200CH0")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lazy, err := ReadHeader(path)
		if err != nil {
			t.Fatal(err)
		}
		if !lazy.OnDisk() || lazy.Ints != nil || lazy.Floats != nil || lazy.Len() != n || lazy.Header != want.Header || lazy.Info != want.Info {
			t.Fatalf("%v big=%v: ReadHeader gave %+v", c.typ, c.big, lazy.Header)
		}
		s, err := lazy.Samples()
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			first, ints, floats, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if first != got || len(ints)+len(floats) > SampleChunk {
				t.Fatalf("chunk at %d of %d samples, want at %d, at most %d", first, len(ints)+len(floats), got, SampleChunk)
			}
			for i, v := range ints {
				if v != want.Ints[first+i] {
					t.Fatalf("%v big=%v: sample %d = %d, want %d", c.typ, c.big, first+i, v, want.Ints[first+i])
				}
			}
			for i, v := range floats {
				if v != want.Floats[first+i] {
					t.Fatalf("%v big=%v: sample %d = %v, want %v", c.typ, c.big, first+i, v, want.Floats[first+i])
				}
			}
			got += len(ints) + len(floats)
		}
		if got != n {
			t.Fatalf("%v big=%v: %d samples, want %d", c.typ, c.big, got, n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// Changed after the header was read.
		if err := os.WriteFile(path, b[:len(b)-4], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := lazy.Samples(); err == nil || !strings.Contains(err.Error(), "changed while being read") {
			t.Fatalf("changed file: %v", err)
		}
		// Damaged files: the same error from both readers.
		for _, bad := range [][]byte{b[:len(b)-4], append(b[:len(b):len(b)], 0, 0, 0, 0), b[:20], {}} {
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err1 := ReadFile(path)
			_, err2 := ReadHeader(path)
			if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
				t.Fatalf("%d bytes: ReadFile says %v, ReadHeader %v", len(bad), err1, err2)
			}
		}
	}
	// Walk with LazyOver: files above the size stay on disk, smaller ones
	// and archive members are read whole.
	small := filepath.Join(dir, "B0092118201CH0")
	if err := os.WriteFile(small, int32File(t, 1625101200, 1, 10, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	bigPath := filepath.Join(dir, "B0092118202CH0")
	if err := os.WriteFile(bigPath, int32File(t, 1625104800, 1, 3000, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "B0092118200CH0"))
	onDisk := map[string]bool{}
	err := WalkWith([]string{dir}, WalkOptions{LazyOver: 1000}, func(f *File, err error) error {
		if err != nil {
			return err
		}
		onDisk[filepath.Base(f.Name)] = f.OnDisk()
		return nil
	})
	if err != nil || len(onDisk) != 2 || onDisk["B0092118201CH0"] || !onDisk["B0092118202CH0"] {
		t.Fatalf("LazyOver 1000: on disk %v, err %v", onDisk, err)
	}
}

// TestWalkSpillOver: with SpillOver, an archive member larger than it is
// copied to an unlinked temporary file instead of memory: it arrives OnDisk,
// its samples read back equal to the member's, nothing is left in the
// temporary directory, and a truncated or damaged spilled member gives the
// same errors as one read into memory.
func TestWalkSpillOver(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	big := int32File(t, 1625097600, 1, 3000, 5)
	small := int32File(t, 1625101200, 1, 10, 9)
	arch := filepath.Join(dir, "a.tar")
	if err := os.WriteFile(arch, tarOf(t, entry{name: "B0092118200CH0", body: big}, entry{name: "B0092118201CH0", body: small},
		entry{name: "B0092118202CH0", body: big[:len(big)-8]}), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	var errs []string
	err := WalkWith([]string{arch}, WalkOptions{SpillOver: 1000}, func(f *File, err error) error {
		if err != nil {
			errs = append(errs, err.Error())
			return nil
		}
		got = append(got, fmt.Sprintf("%s ondisk=%v n=%d", filepath.Base(f.Name), f.OnDisk(), f.Len()))
		s, err := f.Samples()
		if err != nil {
			return err
		}
		defer s.Close()
		want := int32(5)
		if !f.OnDisk() {
			want = 9
		}
		for {
			first, ints, _, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			for i, v := range ints {
				if v != want+int32(first+i) {
					return fmt.Errorf("%s: sample %d = %d, want %d", f.Name, first+i, v, want+int32(first+i))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.tar!B0092118200CH0 ondisk=true n=3000", "a.tar!B0092118201CH0 ondisk=false n=10"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walked:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "a.tar!B0092118202CH0: truncated body") {
		t.Errorf("errors %q, want the truncated member named", errs)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
