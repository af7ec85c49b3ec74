package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/lake"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestLakeMaintain: three publishes of one site-day leave three gtsm_etl
// data files; `gtsm lake maintain` compacts them into one, and reports
// it; without --lake it is a usage error.
func TestLakeMaintain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := gtsmsql.Open(ctx, filepath.Join(dir, "owner.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	pub, err := lake.New(filepath.Join(dir, "lake"), lake.MaintainEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for _, s := range []string{
			`INSERT INTO gtsm_etl (key_site, site, "time", session, kafka_partition, kafka_offset, late)
				VALUES ('B009', 'B009', 1709334000000 + ? * 1000, 'Hour', 0, ?, false)`,
			`INSERT OR REPLACE INTO kafka_offsets VALUES ('gtsm_etl', 0, ? + 1 + 0 * ?)`,
			`INSERT OR REPLACE INTO site_state VALUES ('B009', 'Hour', NULL, NULL, ? + 1, 0, 0, 0, 0, 0, ?, '2024-03-02')`,
		} {
			if _, err := db.Exec(s, i, i); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if err := pub.Publish(ctx, db, 0); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCmd(t, nil, "lake", "maintain", "--lake", pub.Dir(), "--retention", "0s")
	if code != 0 || !strings.Contains(out, "compacted 1 spans (3 files replaced)") || !strings.Contains(out, "at most 1 data files per span") {
		t.Errorf("lake maintain: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	q, err := lake.OpenQuery(ctx, pub.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var n int
	if err := q.DB().QueryRow(`SELECT count(DISTINCT kafka_offset) FROM gtsm_etl`).Scan(&n); err != nil || n != 3 {
		t.Errorf("after maintenance: %d offsets, %v; want 3", n, err)
	}
	if code, _, errs := runCmd(t, nil, "lake", "maintain"); code != 2 || !strings.Contains(errs, "--lake DIR is required") {
		t.Errorf("lake maintain without --lake: exit %d, %s", code, errs)
	}
}
