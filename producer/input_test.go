package producer

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
)

// TestProduceSymlinkInput: `gtsm produce hourlink`, hourlink a symbolic link
// to a directory of bottle files, used to walk the link as a file with a
// non-bottle name, ignore it, and exit 0 with 0 records. It must publish
// the directory's files, as must a link to a directory inside a directory;
// a link loop is a bad input (non-zero exit), not an endless walk.
func TestProduceSymlinkInput(t *testing.T) {
	root := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	hour := filepath.Join(root, "hour")
	if err := os.Mkdir(hour, 0o755); err != nil {
		t.Fatal(err)
	}
	writeStrain(t, hour, "B009", bottle.Hour, t0, 2)
	hourlink := filepath.Join(root, "hourlink")
	if err := os.Symlink(hour, hourlink); err != nil {
		t.Fatal(err)
	}
	outer := filepath.Join(root, "outer")
	if err := os.Mkdir(outer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(hour, filepath.Join(outer, "inner")); err != nil {
		t.Fatal(err)
	}
	looped := filepath.Join(root, "looped")
	if err := os.MkdirAll(filepath.Join(looped, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeStrain(t, filepath.Join(looped, "d"), "B010", bottle.Hour, t0, 1)
	if err := os.Symlink(looped, filepath.Join(looped, "d", "up")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		input   string
		records int64
		failed  string // "" or what the one bad input's error says
	}{
		{"link to a directory", hourlink, 2 * 3600, ""},
		{"link inside a directory", outer, 2 * 3600, ""},
		{"link loop", looped, 3600, "symbolic link loop"},
	} {
		t.Run(c.name, func(t *testing.T) {
			paths, err := Expand([]string{c.input})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := Run(context.Background(), paths, Options{DryRun: io.Discard})
			if sum.Records != c.records {
				t.Fatalf("%d records, want %d (err %v)", sum.Records, c.records, err)
			}
			if c.failed == "" {
				if err != nil || len(sum.Failed) != 0 || len(sum.Ignored) != 0 {
					t.Fatalf("err %v, failed %v, ignored %v", err, sum.Failed, sum.Ignored)
				}
				return
			}
			if err == nil || len(sum.Failed) != 1 || !strings.Contains(sum.Failed[0].Error(), c.failed) {
				t.Fatalf("err %v, failed %v; want one bad input saying %q", err, sum.Failed, c.failed)
			}
		})
	}
}

// TestProduceImplausibleTimes: a bottle file whose times are implausible
// (issue 12: a header start of 1e12 s or an interval of 1e7 s gives times
// beyond DuckDB's TIMESTAMP range; 1970 or 2100 make gap reports count
// billions of samples) is a bad input: reported with its name and first bad
// sample, nothing of it published, non-zero exit, while the good file next
// to it is published. Times within a day of the period the name gives, in
// 1990..now+1 day, are fine.
func TestProduceImplausibleTimes(t *testing.T) {
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	future := time.Now().UTC().Add(72 * time.Hour).Truncate(24 * time.Hour)
	for _, c := range []struct {
		name     string
		file     string // bottle name of the crafted file
		start    float64
		interval float32
		n        int
		bad      string // "" (plausible) or "sample K of N"
	}{
		{"header start 1e12 s", strainName("B001", bottle.Hour, t0, 0), 1e12, 1, 3600, "sample 0 of 3600 is at 33658-09-27 01:46:40"},
		{"interval 1e7 s", strainName("B001", bottle.Day, t0, 0), float64(t0.Unix()), 1e7, 144, "sample 1 of 144 is at 2021-10-24 17:46:40"},
		{"1970", strainName("B001", bottle.Day, t0, 0), 0, 600, 144, "sample 0 of 144 is at 1970-01-01 00:00:00"},
		{"2100 in a 2021 file", strainName("B001", bottle.Day, t0, 0), 4102444800, 600, 144, "sample 0 of 144 is at 2100-01-01 00:00:00"},
		{"named and dated 2 days ahead", strainName("B001", bottle.Day, future, 0), float64(future.Unix()), 600, 144, "sample 0 of 144"},
		{"runs 5 h past the next day", strainName("B001", bottle.Hour, t0, 0), float64(t0.Unix()), 1, 30 * 3600, "sample 90001 of 108000 is at 2021-07-02 01:00:01"},
		{"a day off its name", strainName("B001", bottle.Hour, t0, 0), float64(t0.Add(-25 * time.Hour).Unix()), 1, 3600, "sample 0 of 3600 is at 2021-06-29 23:00:00"},
		{"half an hour early: plausible", strainName("B001", bottle.Hour, t0, 0), float64(t0.Add(-30 * time.Minute).Unix()), 1, 3600, ""},
		{"runs into the next day: plausible", strainName("B001", bottle.Hour, t0, 0), float64(t0.Unix()), 1, 25 * 3600, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStrain(t, dir, "B002", bottle.Hour, t0, 1) // good: 3600 records
			v := make([]int32, c.n)
			for i := range v {
				v[i] = int32(48_000_000 + i)
			}
			b, err := bottle.Encode(&bottle.File{Header: bottle.Header{Start: c.start, Interval: c.interval,
				DataType: bottle.Int32, Missing: 999999}, Ints: v})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, c.file)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			sum, err := Run(context.Background(), []string{dir}, Options{DryRun: io.Discard})
			if c.bad == "" {
				if err != nil || sum.Records != 3600+int64(c.n) {
					t.Fatalf("plausible file: err %v, %d records, want %d", err, sum.Records, 3600+c.n)
				}
				return
			}
			if err == nil || len(sum.Failed) != 1 {
				t.Fatalf("err %v, failed %v: want one bad input", err, sum.Failed)
			}
			msg := sum.Failed[0].Error()
			for _, want := range []string{path + ": implausible time", c.bad, "not published"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if sum.Records != 3600 {
				t.Errorf("%d records published, want only the good file's 3600", sum.Records)
			}
			var w strings.Builder
			sum.Write(&w)
			if !strings.Contains(w.String(), path) {
				t.Errorf("summary does not name %s:\n%s", path, w.String())
			}
		})
	}
}

// TestProduceConflictMidGroup: groups are merged and sent in chunks of
// chunkRecords, so a conflict (two files giving one channel two values at
// one instant) found after the first chunk comes after records of the group
// were published. The error says how many; the other groups are published
// whole and the run fails.
func TestProduceConflictMidGroup(t *testing.T) {
	root := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := writeStrain(t, a, "B009", bottle.Hour, t0, 1)
	writeStrain(t, root, "B010", bottle.Hour, t0, 1) // another stream: published whole
	// b/ holds a copy of CH0 that disagrees at sample 2000.
	f, err := bottle.ReadFile(good[0])
	if err != nil {
		t.Fatal(err)
	}
	f.Ints[2000]++
	enc, err := bottle.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(b, filepath.Base(good[0]))
	if err := os.WriteFile(bad, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), []string{root}, Options{DryRun: io.Discard})
	if err == nil || len(sum.Failed) != 1 {
		t.Fatalf("err %v, failed %v: want one bad group", err, sum.Failed)
	}
	msg := sum.Failed[0].Error()
	for _, want := range []string{bad + ": sample 2000 (2021-07-01 00:33:20) gives ls1_t0", "the first 1024 records of this group"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if sum.Records != 3600+1024 {
		t.Errorf("%d records published, want 3600 (B010) + 1024 (B009 before the conflict)", sum.Records)
	}
}
