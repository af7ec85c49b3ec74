package lake

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestMaintain: after many small publishes (several files per site-day)
// and a publish that crashed after writing its files (orphans):
// maintenance with a retention of an hour compacts every span into one
// file and keeps every file an older snapshot lists, so a query still
// bound to the pre-compaction views reads the same rows; the orphans stay
// (younger than the retention). Maintenance with retention 0 then deletes
// the replaced files and the orphans. The lake equals the owner's file
// throughout, through the query service and the independent reader.
func TestMaintain(t *testing.T) {
	testutil.Long(t)
	ctx := context.Background()
	o := newFakeOwner(t)
	dir := filepath.Join(t.TempDir(), "lake")
	pub, err := New(dir, Logger(quietLogger()), MaintainEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		o.commit("A", 0, 4, day1+int64(100*i), day2+int64(100*i))
		o.commit("B", 1, 3, day1+int64(100*i))
		for p := int32(0); p < 2; p++ {
			if err := pub.Publish(ctx, o.db, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A publish that wrote its files and died before committing.
	o.commit("A", 0, 2, day2+900)
	crashing, err := New(dir, Logger(quietLogger()), MaintainEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	crashing.crash = func(s string) error {
		if s == "copied" {
			return errCrash
		}
		return nil
	}
	if err := crashing.Publish(ctx, o.db, 0); !errors.Is(err, errCrash) {
		t.Fatalf("crashing publish: %v", err)
	}
	orphans := dataFiles(t, dir, "gtsm_etl")
	live := map[string]bool{}
	for _, f := range independentFiles(t, dir, "gtsm_etl") {
		live[f] = true
	}
	for f := range orphans {
		if live[f] {
			delete(orphans, f)
		}
	}
	if len(orphans) == 0 {
		t.Fatal("the crashed publish left no orphan file")
	}
	if err := pub.Publish(ctx, o.db, 0); err != nil { // the rows the crash did not commit
		t.Fatal(err)
	}
	before := len(independentFiles(t, dir, "gtsm_etl"))
	old, err := OpenQuery(ctx, dir) // views on the pre-compaction snapshots
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	want := sqlLines(t, old.DB(), `SELECT * FROM gtsm_etl`)

	rep, err := Maintain(ctx, dir, Logger(quietLogger()), Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("maintenance (retention 1h): %+v; gtsm_etl files %d -> %d", rep, before, len(independentFiles(t, dir, "gtsm_etl")))
	if rep.FilesPerSpan != 1 || rep.Compacted == 0 {
		t.Errorf("after maintenance: at most %d files per span, %d spans compacted; want 1 and some", rep.FilesPerSpan, rep.Compacted)
	}
	if n := len(independentFiles(t, dir, "gtsm_etl")); n != 3 { // A: 2 days, B: 1 day
		t.Errorf("gtsm_etl has %d live files after compaction, want 3 (one per site-day)", n)
	}
	diff(t, "a query on the pre-compaction snapshot", sqlLines(t, old.DB(), `SELECT * FROM gtsm_etl`), want)
	for f := range orphans {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("orphan %s younger than the retention was deleted: %v", f, err)
		}
	}
	checkLake(t, dir, o.db, "after compaction")
	checkIndependent(t, dir, []*sql.DB{o.db}, "after compaction")

	rep, err = Maintain(ctx, dir, Logger(quietLogger()), Retention(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("maintenance (retention 0): %+v", rep)
	for f := range orphans {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("orphan %s: %v, want deleted", f, err)
		}
	}
	if got, live := len(dataFiles(t, dir, "gtsm_etl")), len(independentFiles(t, dir, "gtsm_etl")); got != live {
		t.Errorf("gtsm_etl directory holds %d data files, the snapshot lists %d", got, live)
	}
	checkLake(t, dir, o.db, "after expiry")
	checkIndependent(t, dir, []*sql.DB{o.db}, "after expiry")
}

// dataFiles are the Parquet files under the table's directory.
func dataFiles(t testing.TB, dir, tbl string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(filepath.Join(dir, tbl, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".parquet" {
			out[p] = true
		}
		return nil
	})
	return out
}

// TestExpiryKeepsRecentlyReplaced: a snapshot older than the retention
// that was current until a moment ago (a query may have planned on it) is
// not expired, and its file stays; once it has been replaced for longer
// than the retention, it goes.
func TestExpiryKeepsRecentlyReplaced(t *testing.T) {
	ctx := context.Background()
	o := newFakeOwner(t)
	dir := filepath.Join(t.TempDir(), "lake")
	pub, err := New(dir, Logger(quietLogger()), MaintainEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	o.commit("A", 0, 3, day1+100)
	if err := pub.Publish(ctx, o.db, 0); err != nil {
		t.Fatal(err)
	}
	first := independentFiles(t, dir, "windows")
	if len(first) != 1 {
		t.Fatalf("windows files %v, want 1", first)
	}
	const retention = 1500 * time.Millisecond
	time.Sleep(2 * retention) // the first snapshot is now older than the retention
	o.commit("A", 0, 3, day1+200)
	if err := pub.Publish(ctx, o.db, 0); err != nil { // replaces A's day-1 windows file
		t.Fatal(err)
	}
	// Maintenance a moment after the replacing commit (the clock frozen at
	// its snapshot's time: a loaded machine must not make "a moment" long).
	var replaced int64
	for _, sn := range readMeta(t, dir, "windows").Snapshots {
		replaced = max(replaced, sn.TimestampMs)
	}
	frozen := func(c *config) { c.now = func() time.Time { return time.UnixMilli(replaced + 1) } }
	if _, err := Maintain(ctx, dir, Logger(quietLogger()), Retention(retention), frozen); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first[0]); err != nil {
		t.Errorf("the file replaced a moment ago (its snapshot older than the retention) was deleted: %v", err)
	}
	time.Sleep(2 * retention)
	rep, err := Maintain(ctx, dir, Logger(quietLogger()), Retention(retention))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first[0]); !os.IsNotExist(err) {
		t.Errorf("the file replaced longer than the retention ago: %v, want deleted (%+v)", err, rep)
	}
	checkLake(t, dir, o.db, "after expiry")
}
