package shell_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/shell"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// demoFile writes a migrated DuckDB file with a little processor output and
// returns its path (closed, so a read-only open can take it).
func demoFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "demo.duckdb")
	db := openRW(t, path)
	defer db.Close()
	return path
}

func openRW(t *testing.T, path string) *sql.DB {
	t.Helper()
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`DELETE FROM site_state`,
		`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at) VALUES
		 ('B009', 'Hour', '2021-07-01', '2021-07-01 23:59:59', 86400, 3, 1, 0, 0, 0, 1, now()),
		 ('A001', 'Day', '2021-07-01', '2021-07-01 23:50:00', 144, 0, 0, 0, 0, 0, 1, now())`,
		`CREATE OR REPLACE TABLE kinds (i BIGINT, d DOUBLE, s VARCHAR, b BOOLEAN, dec DECIMAL(9,2), day DATE, ts TIMESTAMP)`,
		`INSERT INTO kinds VALUES (1, 0.5, 'a,b', true, -1.5, '2021-07-01', '2021-07-01 12:00:00.5'),
		                         (22, 48116355, 'say "hi"', false, 10, NULL, '2021-07-02 00:00:00')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

// backends returns the same data behind both backends: the file opened
// read-only, and an endpoint serving a read-write handle of a copy.
func backends(t *testing.T) map[string]shell.Backend {
	t.Helper()
	ctx := context.Background()
	local, err := shell.OpenLocal(ctx, demoFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })

	db := openRW(t, filepath.Join(t.TempDir(), "served.duckdb"))
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	pg, err := shell.Open(ctx, shell.Options{Addr: srv.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Close()
		cancel()
		<-done
		db.Close()
	})
	return map[string]shell.Backend{"file": local, "endpoint": pg}
}

func runScript(t *testing.T, b shell.Backend, script string) (out, errOut string, sh *shell.Shell) {
	t.Helper()
	var o, e bytes.Buffer
	sh = shell.New(b, &o, &e)
	if err := sh.Run(context.Background(), strings.NewReader(script)); err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), sh
}

func TestScriptOutputIsTheSameOverBothBackends(t *testing.T) {
	script := `SELECT i, d, s, b, dec, day, ts
  FROM kinds
  ORDER BY i;
.mode csv
SELECT i, s, day FROM kinds ORDER BY i;
.mode json
SELECT i, d, s, b, dec, day FROM kinds ORDER BY i;
.mode line
SELECT i, s FROM kinds ORDER BY i;
.mode table
.q latest B009
.q late_duplicates
SELECT 1 AS x; SELECT 'two' AS y;
`
	want := `i  | d        | s        | b     | dec   | day        | ts
---+----------+----------+-------+-------+------------+----------------------
 1 |      0.5 | a,b      | true  | -1.50 | 2021-07-01 | 2021-07-01 12:00:00.5
22 | 48116355 | say "hi" | false | 10.00 | NULL       | 2021-07-02 00:00:00
(2 rows)
i,s,day
1,"a,b",2021-07-01
22,"say ""hi""",
[{"i":1,"d":0.5,"s":"a,b","b":true,"dec":-1.50,"day":"2021-07-01"},
{"i":22,"d":48116355,"s":"say \"hi\"","b":false,"dec":10.00,"day":null}]
i = 1
s = a,b

i = 22
s = say "hi"
site | session | last_time           | records
-----+---------+---------------------+--------
B009 | Hour    | 2021-07-01 23:59:59 |   86400
(1 row)
site | session | records | duplicates | late
-----+---------+---------+------------+-----
A001 | Day     |     144 |          0 |    0
B009 | Hour    |   86400 |          3 |    1
(2 rows)
x
-
1
(1 row)
y
---
two
(1 row)
`
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			out, errOut, sh := runScript(t, b, script)
			if out != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
			}
			if errOut != "" || sh.Errors() != 0 {
				t.Errorf("stderr %q, %d errors", errOut, sh.Errors())
			}
		})
	}
}

func TestDotCommands(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.sql")
	if err := os.WriteFile(inc, []byte(".mode csv\nSELECT 'from file' AS src\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, script string
		out          string // exact stdout, or a regexp when it starts with "re:"
		errOut       string // substring of stderr ("" = none)
		errors       int
	}{
		// Tables and views, sorted, one per line (the DDL may grow: check ours in order).
		{"tables", ".tables\n", "re:(?s)^([a-z0-9_]+\n)*gaps\n([a-z0-9_]+\n)*gtsm_etl\n([a-z0-9_]+\n)*kinds\n([a-z0-9_]+\n)*site_state\n([a-z0-9_]+\n)*strain\n([a-z0-9_]+\n)*windows\n$", "", 0},
		{"schema one", ".schema kinds\n", "CREATE TABLE kinds(i BIGINT, d DOUBLE, s VARCHAR, b BOOLEAN, \"dec\" DECIMAL(9,2), \"day\" DATE, ts TIMESTAMP);\n", "", 0},
		{"schema all", ".schema\n", "re:(?s)^CREATE TABLE dead_letters.*CREATE VIEW strain AS .*CREATE TABLE windows", "", 0},
		{"schema missing", ".schema nope\n", "", `no table or view named "nope"`, 1},
		{"timer", ".timer on\nSELECT 1 AS a;\n.timer off\nSELECT 2 AS a;\n", `re:^a\n-\n1\n\(1 row\)\nRun Time: \d+\.\d{3} s\na\n-\n2\n\(1 row\)\n$`, "", 0},
		{"read", ".read " + inc + "\nSELECT 'after' AS x;\n", "src\nfrom file\nx\nafter\n", "", 0},
		{"read missing", ".read " + filepath.Join(dir, "nope.sql") + "\n", "", "no such file", 1},
		{"q list", ".q\n", "re:(?s)^daily \\[site\\] +Per site.*\ngaps \\[site\\].*\nhourly \\[site\\].*\nlate_duplicates \\[site\\].*\nlatest \\[site\\].*\nseed +Every stored record.*\n$", "", 0},
		{"q unknown", ".q nope\n", "", `no query named "nope"; valid names: daily, gaps, hourly`, 1},
		{"q too many args", ".q latest B009 extra\n", "", "usage: latest [site]", 1},
		{"q hourly empty", ".q hourly B009\n", "site | session | channel | window_start | window_end | n | n_null | min | max | mean | first | last\n-----+---------+---------+--------------+------------+---+--------+-----+-----+------+-------+-----\n(0 rows)\n", "", 0},
		{"mode bad", ".mode xml\n.mode\n", "", "unknown mode \"xml\"", 2},
		{"timer bad", ".timer maybe\n", "", "usage: .timer on|off", 1},
		{"unknown dot", ".frobnicate\n", "", "unknown command .frobnicate (try .help)", 1},
		{"help", ".help\n", "re:(?s)\\.tables.*\\.schema.*\\.mode.*\\.timer.*\\.read.*\\.q NAME.*\\.quit.*COPY", "", 0},
		{"error then continue", "SELEC 1;\nSELECT * FROM nope;\nSELECT 3 AS ok;\n", "ok\n--\n 3\n(1 row)\n", "syntax error", 2},
		{"quit stops", "SELECT 1 AS a;\n.quit\nSELECT 2 AS b;\n", "a\n-\n1\n(1 row)\n", "", 0},
		{"last statement without semicolon", "SELECT 5 AS five", "five\n----\n   5\n(1 row)\n", "", 0},
		{"semicolon in string and comment", "SELECT ';' AS s -- ; not here\n;\n", "s\n-\n;\n(1 row)\n", "", 0},
	}
	for name, b := range backends(t) {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				out, errOut, sh := runScript(t, b, tc.script)
				if re, ok := strings.CutPrefix(tc.out, "re:"); ok {
					if !regexp.MustCompile(re).MatchString(out) {
						t.Errorf("stdout:\n%s\ndoes not match %s", out, re)
					}
				} else if out != tc.out {
					t.Errorf("stdout:\n%q\nwant:\n%q", out, tc.out)
				}
				if tc.errOut == "" && errOut != "" || !strings.Contains(errOut, tc.errOut) {
					t.Errorf("stderr %q, want it to contain %q", errOut, tc.errOut)
				}
				if sh.Errors() != tc.errors {
					t.Errorf("errors = %d, want %d", sh.Errors(), tc.errors)
				}
			})
		}
	}
}

func TestExportAndWrites(t *testing.T) {
	bs := backends(t)
	dir := t.TempDir()
	// The file backend exports with COPY ... TO into an allowed directory
	// (the database stays read-only).
	exporter, err := shell.OpenLocal(context.Background(), demoFile(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer exporter.Close()
	pq := filepath.Join(dir, "latest.parquet")
	out, errOut, _ := runScript(t, exporter, "COPY (SELECT site, records FROM site_state ORDER BY site) TO '"+pq+"' (FORMAT parquet);\nSELECT * FROM '"+pq+"';\n")
	if want := "Count\n-----\n    2\n(1 row)\nsite | records\n-----+--------\nA001 |     144\nB009 |   86400\n(2 rows)\n"; out != want || errOut != "" {
		t.Errorf("export: stdout\n%s\nstderr %s", out, errOut)
	}
	_, errOut, _ = runScript(t, bs["file"], "INSERT INTO kinds (i) VALUES (3);\n")
	if !strings.Contains(errOut, "read-only") {
		t.Errorf("file backend write: stderr %q, want a read-only error", errOut)
	}
	// The endpoint refuses both and says what to do instead.
	_, errOut, _ = runScript(t, bs["endpoint"], "COPY kinds TO '"+filepath.Join(dir, "x.csv")+"';\nINSERT INTO kinds (i) VALUES (3);\n")
	for _, want := range []string{"is refused: only COPY ... TO STDOUT, which sends the data to the client, is served\nHint: export with `gtsm sql --db FILE", "INSERT statements are refused"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("endpoint writes: stderr %q lacks %q", errOut, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.csv")); !os.IsNotExist(err) {
		t.Errorf("COPY through the endpoint wrote a file (stat err %v)", err)
	}
}

// TestLocalShellWritesNothing: `gtsm sql --db FILE` is read-only for every
// file, not only FILE: ATTACH ... (READ_WRITE) then INSERT (the reported
// bypass), COPY outside an allowed directory, reading /etc, and switching
// the protection back on all fail, and no file appears.
func TestLocalShellWritesNothing(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.duckdb")
	for _, allow := range [][]string{nil, {t.TempDir()}} {
		local, err := shell.OpenLocal(context.Background(), demoFile(t), allow...)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"ATTACH '" + other + "' AS w (READ_WRITE)",
			"INSERT INTO w.main.x VALUES (1)",
			"CREATE TABLE w.main.x AS SELECT 1",
			"COPY (SELECT 1) TO '" + filepath.Join(dir, "x.csv") + "'",
			"SELECT * FROM read_csv('/etc/passwd')",
			"SET enable_external_access = true",
			"SET lock_configuration = false",
			"INSTALL httpfs",
			"SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')",
		} {
			if _, err := local.Exec(context.Background(), q); err == nil {
				t.Errorf("allow %v: %s: no error", allow, q)
			}
		}
		local.Close()
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files appeared: %v", entries)
	}
}

// TestInterruptedStatement: a statement interrupted by its context (Ctrl-C
// in Interactive) fails, and the next statement works on either backend.
func TestInterruptedStatement(t *testing.T) {
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) {
			var o, e bytes.Buffer
			sh := shell.New(b, &o, &e)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				time.Sleep(300 * time.Millisecond)
				cancel()
			}()
			sh.Line(ctx, "SELECT sum(a.range * b.range) AS s FROM range(1000000) a, range(1000000) b;")
			if sh.Errors() != 1 || o.Len() != 0 {
				t.Fatalf("interrupted statement: errors %d, stdout %q, stderr %q", sh.Errors(), o.String(), e.String())
			}
			sh.Line(context.Background(), "SELECT 42 AS answer;")
			if want := "answer\n------\n    42\n(1 row)\n"; o.String() != want {
				t.Errorf("after the interrupt: stdout %q, want %q; stderr %q", o.String(), want, e.String())
			}
		})
	}
}
