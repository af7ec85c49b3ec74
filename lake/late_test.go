package lake

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// spanFiles lists the current data files of one span (partition) of a
// lake table: vals are its partition values as text (a day as days since
// 1970-01-01).
func spanFiles(t testing.TB, dir, tbl string, vals ...string) []string {
	t.Helper()
	ctx := context.Background()
	cat, err := openCatalog(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.close()
	tb, err := cat.load(ctx, tbl)
	if err != nil {
		t.Fatal(err)
	}
	dfs, err := liveFiles(ctx, tb)
	if err != nil {
		t.Fatal(err)
	}
	var want []sql.NullString
	for _, v := range vals {
		want = append(want, sql.NullString{String: v, Valid: true})
	}
	var out []string
	for _, df := range dfs {
		pv, err := partitionVals(tb.Spec(), df.Partition())
		if err != nil {
			t.Fatal(err)
		}
		if partitionKey(pv) == partitionKey(want) {
			out = append(out, df.FilePath())
		}
	}
	sort.Strings(out)
	return out
}

const mar1 = "19783" // 2024-03-01 in days since 1970-01-01

// TestLateDataRepublished: late records for a UTC day already in the lake
// (the real processor recomputes that day's windows, gaps and Level-2
// rows) make the next publish replace those spans' data files, and only
// those, in one Iceberg commit; the filled gap's span is removed; the
// replaced file stays on disk for the retention (older snapshots list
// it), and maintenance with no retention deletes it.
func TestLateDataRepublished(t *testing.T) {
	ctx := context.Background()
	st := startStack(t, 2)
	ref := [4]int64{50_000_000, 51_000_000, 52_000_000, 49_000_000}
	hole := func(i int64) bool { return i >= 1000 && i < 1300 }
	for _, s := range []string{"B009", "B010"} {
		st.publish(t, siteData(s, ref, 0, 1800, hole)) // 23:00-23:30 of 2024-03-01
	}
	dir := t.TempDir()
	run := startProc(t, st, filepath.Join(dir, "single.duckdb"))
	defer run.stop(t)
	db := <-run.db
	run.waitCaughtUp(t)
	pub, err := New(filepath.Join(dir, "lake"), Logger(quietLogger()), Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	publishAll := func(p *Publisher) {
		t.Helper()
		for part := int32(0); part < st.parts; part++ {
			if err := p.Publish(ctx, db, part); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishAll(pub)
	before9, before10 := spanFiles(t, pub.Dir(), "windows", "B009", mar1), spanFiles(t, pub.Dir(), "windows", "B010", mar1)
	if len(before9) != 1 || len(before10) != 1 {
		t.Fatalf("after the first publish: files %v and %v, want one each", before9, before10)
	}
	if g := spanFiles(t, pub.Dir(), "gaps", "B009", mar1); len(g) != 1 {
		t.Fatalf("B009's gap: files %v, want one", g)
	}
	q, err := OpenQuery(ctx, pub.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n1d := func() int64 {
		var n int64
		if err := q.DB().QueryRow(`SELECT n FROM windows WHERE site = 'B009' AND width = '1d' AND session = 'Hour' AND channel = 'ls1_t0'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := n1d(); n != 1500 {
		t.Fatalf("B009's 1d window in the lake: n = %d, want 1500", n)
	}

	st.publish(t, siteData("B009", ref, 1000, 300, nil)) // the hole, late
	run.waitCaughtUp(t)
	publishAll(pub)
	after9, after10 := spanFiles(t, pub.Dir(), "windows", "B009", mar1), spanFiles(t, pub.Dir(), "windows", "B010", mar1)
	if len(after9) != 1 || after9[0] == before9[0] {
		t.Errorf("B009's changed day: files %v, want one other than %v", after9, before9)
	}
	if strings.Join(after10, " ") != strings.Join(before10, " ") {
		t.Errorf("B010's unchanged day was republished: files %v, before %v", after10, before10)
	}
	if g := spanFiles(t, pub.Dir(), "gaps", "B009", mar1); len(g) != 0 {
		t.Errorf("B009's filled gap: files %v, want none", g)
	}
	if err := q.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := n1d(); n != 1800 {
		t.Errorf("B009's 1d window after the late data: n = %d, want 1800", n)
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []string{
			`SELECT count(*) - count(DISTINCT (site, session, width, window_start, channel)) FROM windows`,
			`SELECT count(*) - count(DISTINCT (site, "time", gauge)) FROM level2_gauge_data`,
			`SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset)) FROM gtsm_etl`,
		} {
			var dup int
			if err := q.DB().QueryRow(c).Scan(&dup); err != nil || dup != 0 {
				t.Errorf("%s: %s = %d, %v", when, c, dup, err)
			}
		}
		for _, tb := range []string{"gtsm_etl", "windows", "gaps", "site_state", "level2_gauge_data", "kafka_offsets"} {
			diff(t, when+": "+tb, sqlLines(t, q.DB(), "SELECT * FROM "+tb), sqlLines(t, db, "SELECT * FROM "+tb))
		}
	}
	check("late data republished")
	var late int
	// The hole's 300 Hour records are late (its Day record, 23:20, is not:
	// the Day stream had reached only 23:10).
	if err := q.DB().QueryRow(`SELECT count(*) FROM gtsm_etl WHERE late`).Scan(&late); err != nil || late != 300 {
		t.Errorf("late rows in the lake: %d, %v; want 300", late, err)
	}

	// The replaced file is still on disk (older snapshots list it) until
	// maintenance with retention 0 expires them.
	old := localFile(t, before9[0])
	if _, err := os.Stat(old); err != nil {
		t.Errorf("the replaced file %s is gone before the retention: %v", old, err)
	}
	if _, err := Maintain(ctx, pub.Dir(), Logger(quietLogger()), Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("maintenance with a retention of an hour removed the replaced file %s: %v", old, err)
	}
	rep, err := Maintain(ctx, pub.Dir(), Logger(quietLogger()), Retention(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("maintenance with retention 0: %+v", rep)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("after maintenance with retention 0: the replaced file %s: %v, want it deleted", old, err)
	}
	if err := q.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	check("after maintenance")
}
