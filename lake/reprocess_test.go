package lake

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestLevel2ReprocessRepublished: a station's Level-2 rows in the lake were
// computed without metadata; its metadata is then loaded, the processor
// reprocesses the station (rewriting its Level-2 rows in place), and the
// next publish writes those spans again, so the lake's Level-2 equals the
// file's, every row with the metadata version.
func TestLevel2ReprocessRepublished(t *testing.T) {
	ctx := context.Background()
	st := startStack(t, 2)
	ref := [4]int64{50858593, 53668101, 53904388, 49946112} // TSM5's references (metadata/testdata)
	st.publish(t, siteData("TSM5", ref, 0, 7200, nil))
	dir := t.TempDir()
	run := startProc(t, st, filepath.Join(dir, "single.duckdb"))
	defer run.stop(t)
	db := <-run.db
	run.waitCaughtUp(t)
	pub, err := New(filepath.Join(dir, "lake"), Logger(quietLogger()), Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	publishAll := func() {
		t.Helper()
		for part := int32(0); part < st.parts; part++ {
			if err := pub.Publish(ctx, db, part); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishAll()
	q, err := OpenQuery(ctx, pub.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { q.Close() }()
	count := func(what string) (n, versioned int) {
		t.Helper()
		if err := q.DB().QueryRow(`SELECT count(*), count(metadata_version) FROM level2_gauge_data WHERE site = 'TSM5'`).Scan(&n, &versioned); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return n, versioned
	}
	if n, v := count("before"); n < 4*20 || v != 0 {
		t.Fatalf("lake before the metadata: %d TSM5 rows, %d with a version", n, v)
	}
	st.publishMeta(t)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var done bool
		err := db.QueryRow(`SELECT finished_at IS NOT NULL FROM level2_reprocess WHERE site = 'TSM5'`).Scan(&done)
		if err == nil && done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TSM5 not reprocessed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	publishAll()
	// A fresh reader: the regional table had no file in the lake before
	// (a station without metadata has no regional strains).
	q.Close()
	if q, err = OpenQuery(ctx, pub.Dir()); err != nil {
		t.Fatal(err)
	}
	n, v := count("after")
	if v != n || n < 4*20 {
		t.Errorf("lake after the reprocess: %d TSM5 rows, %d with a version", n, v)
	}
	for _, tb := range []string{"level2_gauge_data", "level2_regional_data"} {
		diff(t, tb+" (lake vs file after the reprocess)", sqlLines(t, q.DB(), "SELECT * FROM "+tb), sqlLines(t, db, "SELECT * FROM "+tb))
	}
}
