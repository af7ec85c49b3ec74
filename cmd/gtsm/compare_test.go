package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/compare/gatewaytest"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func compareCmd(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code := run(context.Background(), env, append([]string{"compare"}, args...))
	return code, out.String(), errb.String()
}

const latestRows = `('B009', 'Hour', TIMESTAMP '2021-07-01 23:59:59', 86400), ('B009', 'Min', TIMESTAMP '2021-07-01 00:00:59.950', 1200)`

// compareFixture: a processor DuckDB file with site_state rows, and a fake
// gateway whose Flink "latest" answers from another DuckDB's table.
func compareFixture(t *testing.T) (path string, flinkDB *sql.DB, gw *gatewaytest.Server) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "gtsm.duckdb")
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at)
		SELECT site, session, last_time, last_time, records, 0, 0, 0, 0, 0, 0, now() FROM (VALUES ` + latestRows + `) v(site, session, last_time, records)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	flinkDB, err = sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flinkDB.Close() })
	flinkDB.SetMaxOpenConns(1) // one in-memory database
	if _, err := flinkDB.Exec(`CREATE TABLE flink_latest AS SELECT * FROM (VALUES ` + latestRows + `) v(site, session, last_time, records)`); err != nil {
		t.Fatal(err)
	}
	gw = gatewaytest.New(flinkDB, func(stmt string) (string, error) {
		switch {
		case strings.Contains(stmt, "CREATE TABLE IF NOT EXISTS gtsm_etl"), strings.Contains(stmt, "CREATE TEMPORARY VIEW"):
			return "", nil
		case strings.Contains(stmt, "AS last_time"):
			return "SELECT site, session, last_time, records FROM flink_latest", nil
		}
		return "", fmt.Errorf("untranslated: %.40s", stmt)
	}, gatewaytest.Options{PageSize: 1, NotReady: 1, Changelog: true})
	t.Cleanup(gw.Close)
	return path, flinkDB, gw
}

func TestCompareCommand(t *testing.T) {
	path, flinkDB, gw := compareFixture(t)

	code, out, errOut := compareCmd(t, nil, "--gateway", gw.URL, "--db", path, "latest")
	if code != 0 || !strings.Contains(out, "latest: same (2 rows)\n") || !strings.Contains(out, "all 1 queries agree") {
		t.Fatalf("agreeing run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if len(gw.Closed) != 1 {
		t.Errorf("gateway sessions closed: %d, want 1", len(gw.Closed))
	}

	// Through the processor's SQL endpoint (pgwire, pgx on our side), the
	// gateway from the environment.
	db, err := gtsmsql.Open(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx)
	code, out, errOut = compareCmd(t, map[string]string{"FLINK_SQL_GATEWAY": gw.URL, "GTSM_SQL_ADDR": srv.Addr().String()}, "latest")
	cancel()
	srv.Close()
	db.Close()
	if code != 0 || !strings.Contains(out, "latest: same (2 rows)") {
		t.Fatalf("endpoint run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}

	// Flink now says something else: exit 1 and the row side by side.
	if _, err := flinkDB.Exec(`UPDATE flink_latest SET records = 86399 WHERE session = 'Hour'`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = compareCmd(t, nil, "--gateway", gw.URL, "--db", path, "latest")
	if code != 1 {
		t.Errorf("differing run: exit %d, want 1", code)
	}
	for _, s := range []string{
		"latest: DIFFERENT: 1 rows changed, 0 only in flink, 0 only in duckdb, 1 equal",
		"! site=B009 session=Hour last_time=2021-07-01 23:59:59.000",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "records") || !strings.Contains(out, "86399") || !strings.Contains(out, "86400") || !strings.Contains(out, "<>") {
		t.Errorf("changed column not shown:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 1 queries differ between Flink and DuckDB") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestCompareCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"--help"}, 0, "Examples:"},
		{[]string{"--precision", "40"}, 2, "--precision 40"},
		{[]string{"--api", "v9"}, 2, `--api "v9"`},
		{[]string{"--set", "novalue"}, 2, `--set "novalue"`},
		{[]string{"nosuchquery"}, 2, "hourly"},
		{[]string{"--gateway", "localhost:8088", "latest"}, 2, "want http://host:port"},
		// Nothing listens on port 1: a clear error naming the endpoint.
		{[]string{"--gateway", "http://127.0.0.1:1", "--pg", "postgres://x@127.0.0.1:1/gtsm?sslmode=disable", "latest"}, 1, "is gtsm process running"},
	} {
		code, _, errOut := compareCmd(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("compare %v: exit %d (want %d), stderr %q lacks %q", tc.args, code, tc.code, errOut, tc.want)
		}
	}
}

func TestCompareCommandFlinkError(t *testing.T) {
	path, _, gw := compareFixture(t)
	// "gaps" is not translated by this fake gateway: the error comes back as
	// Flink's REST error, the command says which query and side, and the
	// next query still runs.
	code, out, errOut := compareCmd(t, nil, "--gateway", gw.URL, "--db", path, "gaps", "latest")
	if code != 1 || !strings.Contains(errOut, "1 of 2 queries failed: gaps on flink") || !strings.Contains(errOut, "untranslated") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "gaps: ERROR: gaps on flink: flink sql gateway: GET") || !strings.Contains(out, "latest: same (2 rows)") {
		t.Errorf("stdout %q", out)
	}
	if len(gw.Closed) != 1 {
		t.Errorf("session not closed after the error: %d", len(gw.Closed))
	}
}
