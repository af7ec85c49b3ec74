package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func sqlCmd(t *testing.T, stdin string, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code := run(context.Background(), env, append([]string{"sql"}, args...))
	return code, out.String(), errb.String()
}

// sqlDemoDB creates a migrated DuckDB file with two site_state rows.
func sqlDemoDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gtsm.duckdb")
	db, err := gtsmsql.Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at) VALUES
		('B009', 'Hour', '2021-07-01', '2021-07-01 23:59:59', 86400, 3, 1, 0, 0, 0, 1, now()),
		('A001', 'Day', '2021-07-01', '2021-07-01 23:50:00', 144, 0, 0, 0, 0, 0, 1, now())`); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSQLCommandFile(t *testing.T) {
	path := sqlDemoDB(t)
	noEndpoint := "127.0.0.1:1" // nothing listens on port 1
	want := "site,records\nB009,86400\n"
	for name, tc := range map[string]struct {
		stdin string
		vars  map[string]string
		args  []string
	}{
		"-c":           {"", nil, []string{"--db", path, "--addr", noEndpoint, "--mode", "csv", "-c", "SELECT site, records FROM site_state WHERE site = 'B009'"}},
		"stdin":        {".mode csv\nSELECT site, records\nFROM site_state WHERE site = 'B009';\n", nil, []string{"--db", path, "--addr", noEndpoint}},
		"env defaults": {"", map[string]string{"GTSM_DB": path, "GTSM_SQL_ADDR": noEndpoint}, []string{"--mode", "csv", "-c", "SELECT site, records FROM site_state WHERE site = 'B009'"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := sqlCmd(t, tc.stdin, tc.vars, tc.args...)
			if code != 0 || out != want {
				t.Errorf("exit %d, stdout %q (want %q), stderr %q", code, out, want, errOut)
			}
			if errOut != "gtsm sql: using DuckDB file "+path+" (read-only)\n" {
				t.Errorf("stderr %q: want the one line saying which backend", errOut)
			}
		})
	}
	// A failing statement: the rest still runs, the exit status says so.
	code, out, errOut := sqlCmd(t, "", nil, "--db", path, "--addr", noEndpoint, "-c", "SELEC 1; SELECT count(*) AS n FROM site_state;")
	if code != 1 || out != "n\n-\n2\n(1 row)\n" || !strings.Contains(errOut, "syntax error") || !strings.Contains(errOut, "1 statement(s) or command(s) failed") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := sqlCmd(t, "", nil, "--db", filepath.Join(t.TempDir(), "none.duckdb"), "--addr", noEndpoint, "-c", "SELECT 1"); code != 1 || !strings.Contains(errOut, "no SQL endpoint answers at 127.0.0.1:1") {
		t.Errorf("no endpoint, no file: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := sqlCmd(t, "", nil, "--mode", "xml"); code != 2 || !strings.Contains(errOut, `unknown mode "xml"`) {
		t.Errorf("bad mode: exit %d, stderr %q", code, errOut)
	}
}

func TestSQLCommandEndpoint(t *testing.T) {
	path := sqlDemoDB(t)
	db, err := gtsmsql.Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Password: "pw", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	addr := srv.Addr().String()

	// The processor holds the file, so --db cannot be opened: the shell
	// must take the endpoint.
	code, out, errOut := sqlCmd(t, "", map[string]string{"GTSM_SQL_PASSWORD": "pw"}, "--db", path, "--addr", addr, "--mode", "json", "-c", ".q latest")
	if want := `[{"site":"A001","session":"Day","last_time":"2021-07-01 23:50:00","records":144},` + "\n" + `{"site":"B009","session":"Hour","last_time":"2021-07-01 23:59:59","records":86400}]` + "\n"; code != 0 || out != want {
		t.Errorf("exit %d, stdout %q, want %q; stderr %q", code, out, want, errOut)
	}
	if !strings.HasPrefix(errOut, "gtsm sql: using the processor's SQL endpoint "+addr) {
		t.Errorf("stderr %q: want it to say the endpoint is used", errOut)
	}
	code, _, errOut = sqlCmd(t, "", map[string]string{"GTSM_SQL_PASSWORD": "wrong"}, "--addr", addr, "-c", "SELECT 1")
	if code != 1 || !strings.Contains(errOut, "invalid username/password") {
		t.Errorf("wrong password: exit %d, stderr %q", code, errOut)
	}
}
