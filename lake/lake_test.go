package lake

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// sites of the end-to-end tests: TSM5 and B004 have station metadata
// (Level-2 with corrections), the others none.
var sites = []string{"TSM5", "B004", "B009", "B010", "B011", "B012"}

// TestQueryServiceMatchesSingleFile runs the real processor over a
// 4-partition topic with 6 sites (Level-2 metadata for two, a poison
// message, late data that changes days already published), publishes every
// partition from the processor's single DuckDB file while it works and once
// at the end, and checks that the query service over the lake returns, over
// the Postgres wire, exactly what the single file returns for every named
// query (all sites and one site) and for every published table and view.
func TestQueryServiceMatchesSingleFile(t *testing.T) {
	testutil.Long(t)
	ctx := context.Background()
	st := startStack(t, 4)
	stations := st.publishMeta(t)
	refOf := func(site string) [4]int64 {
		if s := stations[site]; s != nil {
			return s.Reference
		}
		return [4]int64{50_000_000, 51_000_000, 52_000_000, 49_000_000}
	}
	hole := func(i int64) bool { return i >= 1000 && i < 1300 || i >= 5000 && i < 5050 }
	for _, s := range sites {
		st.publish(t, siteData(s, refOf(s), 0, 7200, hole))
	}
	st.publishPoison(t, "B009")

	dir := t.TempDir()
	path := filepath.Join(dir, "single.duckdb")
	pub, err := New(filepath.Join(dir, "lake"), Logger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	run := startProc(t, st, path)
	db := <-run.db
	publishAll := func() error {
		for p := int32(0); p < st.parts; p++ {
			if err := pub.Publish(ctx, db, p); err != nil {
				return err
			}
		}
		return nil
	}
	// Publish while the processor commits, as a partition owner would.
	startLoop := func() (stop func()) {
		quit := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			for {
				select {
				case <-quit:
					errc <- nil
					return
				case <-time.After(100 * time.Millisecond):
				}
				if err := publishAll(); err != nil {
					errc <- err
					return
				}
			}
		}()
		return func() {
			close(quit)
			if err := <-errc; err != nil {
				t.Fatalf("publish while processing: %v", err)
			}
		}
	}
	stop := startLoop()
	run.waitCaughtUp(t)
	stop()
	if err := publishAll(); err != nil { // the drained state, surely published
		t.Fatal(err)
	}
	// Late data: the holes of three sites (2024-03-01 23:16, a day already
	// published) and new data after.
	stop = startLoop()
	for _, s := range sites[:3] {
		st.publish(t, siteData(s, refOf(s), 1000, 300, nil))
		st.publish(t, siteData(s, refOf(s), 7200, 600, nil))
	}
	run.waitCaughtUp(t)
	stop()
	if err := publishAll(); err != nil {
		t.Fatal(err)
	}
	// Every partition's offset is in the tables' properties, and the
	// partitions of the late sites were committed in several snapshots
	// (the late rows came after one), each carrying its offsets.
	offsets := sqlLines(t, db, `SELECT kafka_partition, next_offset FROM kafka_offsets`)
	lateParts := sqlLines(t, db, `SELECT DISTINCT kafka_partition FROM site_state WHERE site IN ('TSM5', 'B004', 'B009')`)
	run.stop(t)
	if len(offsets) < 3 {
		t.Fatalf("sites landed on %d partitions, want >= 3: %v", len(offsets), offsets)
	}
	m := readMeta(t, pub.Dir(), "gtsm_etl")
	for _, o := range offsets {
		part, next, _ := strings.Cut(o, "|")
		if got := m.Properties[offsetKey(testTopic, mustInt32(t, part))]; got != next {
			t.Errorf("gtsm_etl property for partition %s: %q, want next_offset %s", part, got, next)
		}
	}
	for _, lp := range lateParts {
		var n int
		for _, sn := range m.Snapshots {
			if sn.Summary["gtsm.kafka-partition"] == lp && sn.Summary["gtsm.kafka-offset-to"] != "" {
				n++
			}
		}
		if n < 2 {
			t.Errorf("partition %s (a late site's) is in %d gtsm_etl snapshots, want several", lp, n)
		}
	}

	fdb, err := gtsmsql.Open(ctx, path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	q, err := OpenQuery(ctx, pub.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	file := serve(t, fdb)
	lk := serve(t, q.DB(), q.Dir())

	for _, c := range []struct {
		what string
		q    string
		min  int
	}{
		{"level2 rows", `SELECT * FROM level2_gauge_data WHERE microstrain IS NOT NULL`, 100},
		{"dead letters", `SELECT * FROM dead_letters`, 1},
		{"late rows", `SELECT * FROM gtsm_etl WHERE late`, 1},
	} {
		if n := len(pgLines(t, file, c.q)); n < c.min {
			t.Fatalf("%s: the single file has %d, want >= %d: the test does not exercise it", c.what, n, c.min)
		}
	}
	for _, nq := range gtsmsql.Queries() {
		argSets := [][]any{nil}
		if len(nq.Params) == 1 {
			argSets = [][]any{{nil}, {"TSM5"}, {"B010"}}
		}
		for _, args := range argSets {
			want := pgLines(t, file, nq.SQL, args...)
			if len(want) == 0 && (len(args) == 0 || args[0] != "B010") { // B010 has no metadata: no Level-2
				t.Errorf("named query %s %v: no rows in the single file: the comparison proves nothing", nq.Name, args)
			}
			diff(t, "named query "+nq.Name, pgLines(t, lk, nq.SQL, args...), want)
		}
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.name)
	}
	names = append(names, "strain", "level2_gauge", "level2_regional", "kafka_progress")
	for _, n := range names {
		want := pgLines(t, file, "SELECT * FROM "+n)
		diff(t, "table "+n, pgLines(t, lk, "SELECT * FROM "+n), want)
	}
	// The trend macro sums floats, in row order, which differs between a
	// file and Parquet files: compare it to 6 significant digits (they differ in the 9th).
	trend := `SELECT site, gauge, n, first_time, last_time, printf('%.6g', slope_per_year), printf('%.6g', value_at_2000) FROM level2_trend_linear()`
	diff(t, "level2_trend_linear()", pgLines(t, lk, trend), pgLines(t, file, trend))
	// What any Iceberg engine reads (the independent reader) is the file's
	// rows too; no data file path holds a site name.
	checkIndependent(t, pub.Dir(), []*sql.DB{fdb}, "single file")
	for _, tb := range tables {
		for _, f := range independentFiles(t, pub.Dir(), tb.name) {
			for _, site := range sites {
				if strings.Contains(f, site) {
					t.Errorf("data file path %s holds the site name %s", f, site)
				}
			}
		}
	}
	var files, bytes int64
	filepath.WalkDir(pub.Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				files++
				bytes += fi.Size()
			}
		}
		return nil
	})
	fi, _ := os.Stat(path)
	var etl int64
	fdb.QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&etl)
	t.Logf("lake: %d files, %d bytes for %d gtsm_etl rows (the single DuckDB file: %d bytes)", files, bytes, etl, fi.Size())
}
