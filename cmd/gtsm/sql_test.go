package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/earthscope/gtsm-stream/internal/testutil"

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
	if code, _, errOut := sqlCmd(t, "", nil, "--db", filepath.Join(t.TempDir(), "none.duckdb"), "--addr", noEndpoint, "-c", "SELECT 1"); code != 1 || !strings.Contains(errOut, "none.duckdb: no such file") {
		t.Errorf("no endpoint, no file: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := sqlCmd(t, "", map[string]string{"HOME": t.TempDir()}, "--addr", noEndpoint, "-c", "SELECT 1"); code != 1 || !strings.Contains(errOut, "no SQL endpoint answers at 127.0.0.1:1") {
		t.Errorf("no endpoint, no default file: exit %d, stderr %q", code, errOut)
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

// serveFile opens path read-write in this process (as a processor does) and
// serves it on a free port; it returns the address.
func serveFile(t *testing.T, path string) string {
	t.Helper()
	db, err := gtsmsql.Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
	return srv.Addr().String()
}

// TestSQLExplicitDBAnswersFromThatFile (issue 12 item 6): with another
// database's endpoint on --addr, an explicit --db must answer from its own
// file, or refuse; the endpoint is used only when it serves that file.
func TestSQLExplicitDBAnswersFromThatFile(t *testing.T) {
	served := sqlDemoDB(t) // two site_state rows
	addr := serveFile(t, served)
	mine := filepath.Join(t.TempDir(), "mine.duckdb")
	db, err := gtsmsql.Open(context.Background(), mine, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE site_state AS SELECT 'Z999' AS site FROM range(5)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	q := "SELECT count(*) AS n FROM site_state"
	// mine.duckdb is free: it answers, not the endpoint of the other file.
	code, out, errOut := sqlCmd(t, "", nil, "--db", mine, "--addr", addr, "--mode", "csv", "-c", q)
	if code != 0 || out != "n\n5\n" || !strings.Contains(errOut, "DuckDB file "+mine) {
		t.Errorf("free --db with another endpoint listening: exit %d, stdout %q (want 5 rows), stderr %q", code, out, errOut)
	}
	// Same through GTSM_DB.
	code, out, _ = sqlCmd(t, "", map[string]string{"GTSM_DB": mine, "GTSM_SQL_ADDR": addr}, "--mode", "csv", "-c", q)
	if code != 0 || out != "n\n5\n" {
		t.Errorf("GTSM_DB with another endpoint listening: exit %d, stdout %q", code, out)
	}
	// mine.duckdb held (read-write, like a processor without an endpoint),
	// the endpoint serving the other file: refused, naming both.
	held, err := gtsmsql.Open(context.Background(), mine, false)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = sqlCmd(t, "", nil, "--db", mine, "--addr", addr, "--mode", "csv", "-c", q)
	if code != 1 || out != "" || !strings.Contains(errOut, "serves "+served+", not that file") {
		t.Errorf("held --db, endpoint of another file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	held.Close()
	// The endpoint that serves the named file is used.
	code, out, errOut = sqlCmd(t, "", nil, "--db", served, "--addr", addr, "--mode", "csv", "-c", q)
	if code != 0 || out != "n\n2\n" || !strings.Contains(errOut, "SQL endpoint "+addr) {
		t.Errorf("--db served by the endpoint: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// No --db: the endpoint answers, as before.
	code, out, _ = sqlCmd(t, "", map[string]string{"HOME": t.TempDir()}, "--addr", addr, "--mode", "csv", "-c", q)
	if code != 0 || out != "n\n2\n" {
		t.Errorf("no --db: exit %d, stdout %q", code, out)
	}
}

// TestSQLQuitWordsAndQuiet: \q, exit and quit end a script like .quit;
// --quiet drops the notice of which backend answers.
func TestSQLQuitWordsAndQuiet(t *testing.T) {
	path := sqlDemoDB(t)
	for _, word := range []string{`\q`, "exit", "quit", "exit;", ".quit"} {
		code, out, errOut := sqlCmd(t, "SELECT 1 AS a;\n"+word+"\nSELECT 2 AS a;\n", nil, "--db", path, "--quiet", "--mode", "csv")
		if code != 0 || out != "a\n1\n" || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q (want only the first result), stderr %q (want nothing with --quiet)", word, code, out, errOut)
		}
	}
	if code, _, errOut := sqlCmd(t, "SELECT 1;", nil, "--db", path, "-q"); code != 0 || errOut != "" {
		t.Errorf("-q: exit %d, stderr %q", code, errOut)
	}
	// Scripts keep exit status 1 after a failed statement.
	if code, _, _ := sqlCmd(t, "SELEC 1;\nSELECT 1;\n", nil, "--db", path, "-q"); code != 1 {
		t.Errorf("script with a failed statement: exit %d, want 1", code)
	}
}

// TestSQLInteractiveExitStatus: a person's session on a terminal exits 0
// after a failed statement (as psql and duckdb do); the test binary re-runs
// itself as `gtsm sql` with a pseudo-terminal as stdin and stdout.
func TestSQLInteractiveExitStatus(t *testing.T) {
	if args := os.Getenv("GTSM_SQL_CHILD"); args != "" {
		env := &environ{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
		os.Exit(run(context.Background(), env, strings.Split(args, "\x1f")))
	}
	path := sqlDemoDB(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLInteractiveExitStatus$")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GTSM_SQL_CHILD="+strings.Join([]string{"sql", "--db", path, "-q"}, "\x1f"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var screen testutil.SyncBuffer
	go io.Copy(&screen, ptmx)
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(screen.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("terminal never showed %q:\n%s", want, screen.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("gtsm> ")
	io.WriteString(ptmx, "SELEC 1;\r")
	wait("syntax error")
	io.WriteString(ptmx, "SELECT 40 + 2 AS answer;\r")
	wait("42")
	io.WriteString(ptmx, "\\q\r")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interactive session after a failed statement: %v, want exit 0\n%s", err, screen.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("\\q did not end the session:\n%s", screen.String())
	}
}
