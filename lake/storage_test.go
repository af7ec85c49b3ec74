package lake

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestStorageSiteDay measures the lake's bytes for one site-day of 20-sps
// strain (1,728,000 gtsm_etl rows: four gauge channels of tide-like
// counts with noise, as a Min bottle carries) published in 24 hourly
// rounds and then compacted, beside the owner's DuckDB file; the docs
// give it per site-year. It asserts one data file per site-day after
// maintenance and that no row is lost.
func TestStorageSiteDay(t *testing.T) {
	testutil.Long(t)
	ctx := context.Background()
	o := newFakeOwner(t)
	dir := filepath.Join(t.TempDir(), "lake")
	pub, err := New(dir, Logger(quietLogger()), MaintainEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	const perHour = 20 * 3600
	for h := int64(0); h < 24; h++ {
		if _, err := o.db.Exec(`INSERT INTO gtsm_etl (key_site, site, "time", session, bs1_t0, bs2_t0, bs3_t0, bs4_t0, kafka_partition, kafka_offset, late)
			SELECT 'B009', 'B009', ($1 * 1000 + i * 50), 'Min',
				CAST(50000000 + 200 * sin(i / 17890.0) + (i * 7) % 11 AS INTEGER),
				CAST(51000000 + 200 * sin(i / 17890.0 + 1) + (i * 13) % 11 AS INTEGER),
				CAST(52000000 + 200 * sin(i / 17890.0 + 2) + (i * 17) % 11 AS INTEGER),
				CAST(49000000 + 200 * sin(i / 17890.0 + 3) + (i * 19) % 11 AS INTEGER),
				0, i, false
			FROM range($2, $3) r(i)`, day1, h*perHour, (h+1)*perHour); err != nil {
			t.Fatal(err)
		}
		if _, err := o.db.Exec(`INSERT OR REPLACE INTO kafka_offsets VALUES ('gtsm_etl', 0, ?)`, (h+1)*perHour); err != nil {
			t.Fatal(err)
		}
		if _, err := o.db.Exec(`INSERT OR REPLACE INTO site_state VALUES ('B009', 'Min', NULL, NULL, ?, 0, 0, 0, 0, 0, ?, TIMESTAMP '2024-01-01')`, (h+1)*perHour, (h+1)*perHour-1); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, o.db, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Maintain(ctx, dir, Logger(quietLogger()), Retention(0)); err != nil {
		t.Fatal(err)
	}
	files := independentFiles(t, dir, "gtsm_etl")
	if len(files) != 1 {
		t.Errorf("one site-day has %d data files after maintenance, want 1", len(files))
	}
	var data int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		data += st.Size()
	}
	var all int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				all += fi.Size()
			}
		}
		return nil
	})
	if _, err := o.db.Exec(`CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	var duck int64
	if err := o.db.QueryRow(`SELECT sum(total_blocks * block_size) FROM pragma_database_size()`).Scan(&duck); err != nil {
		t.Logf("database size: %v", err)
	}
	q, err := OpenQuery(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var n int64
	if err := q.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&n); err != nil || n != 24*perHour {
		t.Fatalf("lake rows %d, %v; want %d", n, err, 24*perHour)
	}
	t.Logf("one 20-sps site-day (%d rows): lake data %.2f MB in %d file, lake directory %.2f MB (catalog and metadata included), owner DuckDB %.1f MB; per site-year: lake %.2f GB, DuckDB %.1f GB",
		n, float64(data)/1e6, len(files), float64(all)/1e6, float64(duck)/1e6, float64(data)*365/1e9, float64(duck)*365/1e9)
}
