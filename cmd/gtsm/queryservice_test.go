package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/lake"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// gtsm query-service serves what the owners published: `gtsm sql` against
// it sees the rows of both partitions under the single-file table names,
// named queries run, and the endpoint keeps the lockdown (no file outside
// the lake). Without --lake it is a usage error.
func TestQueryService(t *testing.T) {
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
	for _, s := range []string{
		`INSERT INTO gtsm_etl (key_site, site, "time", session, kafka_partition, kafka_offset, late) VALUES
			('B009', 'B009', 1709334000000, 'Hour', 0, 0, false), ('B009', 'B009', 1709334001000, 'Hour', 0, 1, false),
			('B010', 'B010', 1709334000000, 'Hour', 1, 0, false)`,
		`INSERT INTO site_state VALUES ('B009', 'Hour', '2024-03-01 23:00:00', '2024-03-01 23:00:01', 2, 0, 0, 0, 0, 0, 1, '2024-03-02'),
			('B010', 'Hour', '2024-03-01 23:00:00', '2024-03-01 23:00:00', 1, 0, 0, 0, 0, 1, 0, '2024-03-02')`,
		`INSERT INTO kafka_offsets VALUES ('gtsm_etl', 0, 2), ('gtsm_etl', 1, 1)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := lake.New(filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if err := pub.Publish(ctx, db, p); err != nil {
			t.Fatal(err)
		}
	}
	qs, err := startQueryService(ctx, queryServiceConfig{lake: pub.Dir(), addr: "127.0.0.1:0", rowCap: 100,
		timeout: 10 * time.Second, refresh: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer qs.stop()
	addr := qs.srv.Addr().String()
	for _, c := range []struct {
		name, sql, want string
		exit            int
	}{
		{"both partitions", `SELECT key_site, count(*) AS n FROM gtsm_etl GROUP BY ALL ORDER BY 1`, "key_site,n\nB009,2\nB010,1\n", 0},
		{"named query", `.q latest`, "B009,Hour,2024-03-01 23:00:01,2\nB010,Hour,2024-03-01 23:00:00,1\n", 0},
		{"kafka_progress view", `SELECT kafka_partition, next_offset FROM kafka_progress`, "kafka_partition,next_offset\n0,2\n1,1\n", 0},
		{"lockdown", `SELECT * FROM read_csv('/etc/passwd')`, "Permission Error", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
			code := run(ctx, env, []string{"sql", "--addr", addr, "--mode", "csv", "-c", c.sql})
			if code != c.exit {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.exit, errb.String())
			}
			if c.exit != 0 && !strings.Contains(errb.String(), c.want) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", errb.String(), c.want)
			}
			if c.exit == 0 && !strings.Contains(out.String(), c.want) {
				t.Errorf("got:\n%s\nwant it to contain:\n%s", out.String(), c.want)
			}
		})
	}
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := run(ctx, env, []string{"query-service"}); code != 2 || !strings.Contains(errb.String(), "--lake DIR is required") {
		t.Errorf("no --lake: exit %d, stderr %q; want 2 and the flag named", code, errb.String())
	}
}
