package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/lake"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestProcessStateDir runs `gtsm process --state-dir` to the end of a
// 2-partition topic: one DuckDB file per partition holding every record
// once, the SQL endpoint off (asked for, it would see only this member's
// partitions) and monitoring on.
func TestProcessStateDir(t *testing.T) {
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vars := map[string]string{"BOOTSTRAP_SERVERS": st.BootstrapServers, "SCHEMA_REGISTRY_URL": st.RegistryURL}
	if code, _, errs := runCmd(t, vars, "produce", "--quiet", testutil.Testdata(t, "hour"), testutil.Testdata(t, "day")); code != 0 {
		t.Fatalf("produce: %d %s", code, errs)
	}
	dir, lakeDir := filepath.Join(t.TempDir(), "state"), filepath.Join(t.TempDir(), "lake")
	code, _, errs := runCmd(t, vars, "process", "--state-dir", dir, "--lake", lakeDir, "--exit-at-end", "--flush-interval", "50ms",
		"--sql-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json", "--progress-interval", "0")
	if code != 0 {
		t.Fatalf("process --state-dir: exit %d\n%s", code, errs)
	}
	var running map[string]any
	for _, l := range strings.Split(errs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "processor running" {
			running = m
		}
	}
	if running == nil || running["sql"] != "" || running["http"] == "" || running["state_dir"] != dir {
		t.Errorf("processor running line %v: want sql off, http on, state_dir %s", running, dir)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "gtsm_etl-p*.duckdb"))
	var rows, parts int64
	for _, f := range files {
		db, err := gtsmsql.Open(context.Background(), f, true)
		if err != nil {
			t.Fatal(err)
		}
		var n, p int64
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM gtsm_etl), (SELECT count(*) FROM kafka_offsets)`).Scan(&n, &p); err != nil {
			t.Fatal(err)
		}
		db.Close()
		rows, parts = rows+n, parts+p
	}
	if rows != 3600+144 || parts != int64(len(files)) || len(files) == 0 {
		t.Errorf("%d partition files with %d rows and %d kafka_offsets rows; want 3744 rows, one offsets row per file", len(files), rows, parts)
	}
	// --lake: the partitions were published (at the latest once before
	// their files closed), and the lake's query database sees every row.
	q, err := lake.OpenQuery(context.Background(), lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var n int64
	if err := q.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&n); err != nil || n != rows {
		t.Errorf("lake gtsm_etl: %d rows, %v; want %d", n, err, rows)
	}
}
