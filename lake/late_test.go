package lake

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// spanRounds lists the distinct rounds (p<P>_r<R>) of the files in a span
// directory of the lake.
func spanRounds(t testing.TB, dir, span string) []string {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(dir, span, "p*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range ms {
		b := filepath.Base(m)
		seen[b[:strings.Index(b, "_o")]] = true
	}
	var out []string
	for r := range seen {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// TestLateDataRepublished: late records for a UTC day already in the lake
// (the real processor recomputes that day's windows, gaps and Level-2
// rows) make the next publish write those spans again under a newer round,
// and only those; the replaced file stays on disk for the retention and
// the view counts it not at all; a publisher with no retention deletes it.
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
	win9, win10 := "windows/site=B009/date=2024-03-01", "windows/site=B010/date=2024-03-01"
	gaps9 := "gaps/site=B009/date=2024-03-01"
	before9, before10 := spanRounds(t, pub.Dir(), win9), spanRounds(t, pub.Dir(), win10)
	if len(before9) != 1 || len(before10) != 1 {
		t.Fatalf("after the first publish: rounds %v and %v, want one each", before9, before10)
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
	after9, after10 := spanRounds(t, pub.Dir(), win9), spanRounds(t, pub.Dir(), win10)
	if len(after9) != 2 || after9[0] != before9[0] {
		t.Errorf("B009's changed day: rounds %v, want %s and a newer one", after9, before9[0])
	}
	if strings.Join(after10, " ") != strings.Join(before10, " ") {
		t.Errorf("B010's unchanged day was republished: rounds %v, before %v", after10, before10)
	}
	if g := spanRounds(t, pub.Dir(), gaps9); len(g) != 2 {
		t.Errorf("B009's filled gap: rounds %v, want the old file and its tombstone", g)
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

	// Retention 0: the replaced files go at the next publish.
	gc, err := New(pub.Dir(), Logger(quietLogger()), Retention(0))
	if err != nil {
		t.Fatal(err)
	}
	publishAll(gc)
	if r := spanRounds(t, pub.Dir(), win9); len(r) != 1 || r[0] != after9[1] {
		t.Errorf("after collecting: B009's rounds %v, want only %s", r, after9[1])
	}
	check("after collecting")
}
