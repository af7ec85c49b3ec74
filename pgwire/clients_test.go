package pgwire_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
)

// needClient skips a test whose client is not installed, naming the Debian
// package; under CI=true (which installs them) it fails instead.
func needClient(t *testing.T, ok bool, pkg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("client missing: apt-get install %s", pkg)
	}
	t.Skipf("client missing: apt-get install %s", pkg)
}

// python3 returns Debian's python3 when it has the modules, for the tests
// that run Python clients.
func python3(t *testing.T, pkg string, modules ...string) string {
	t.Helper()
	py := "/usr/bin/python3"
	err := exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).Run()
	needClient(t, err == nil, pkg)
	return py
}

func runPython(t *testing.T, py, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}

var versionRE = regexp.MustCompile(`^PostgreSQL 15\.0 \(gtsm DuckDB v\d+\.\d+\.\d+, read-only\) on \S+, 64-bit$`)

// TestVersionLikePostgres: version(), server_version(_num) and
// current_setting answer as the Postgres 15 the startup parameters
// announce, in every protocol mode.
func TestVersionLikePostgres(t *testing.T) {
	e := start(t, pgwire.Config{})
	ctx := context.Background()
	for _, m := range modes {
		c := connect(t, e, m.mode)
		param := c.PgConn().ParameterStatus("server_version")
		if !strings.HasPrefix(param, "15.0 ") {
			t.Errorf("%s: server_version parameter %q", m.name, param)
		}
		var v string
		if err := c.QueryRow(ctx, `SELECT version()`).Scan(&v); err != nil || !versionRE.MatchString(v) {
			t.Errorf("%s: version() = %q, %v; want %v", m.name, v, err, versionRE)
		}
		for _, q := range []struct{ sql, want string }{
			{`SELECT pg_catalog.version() = version()`, "true"},
			{`SELECT current_setting('server_version_num')`, "150000"},
			{`SELECT pg_catalog.current_setting('server_version_num')::int >= 90600`, "true"},
			{`SELECT current_setting('server_version')`, param},
			{`SHOW server_version_num`, "150000"},
			{`SHOW server_version`, param},
			{`SHOW TRANSACTION ISOLATION LEVEL`, "serializable"},
			{`SELECT current_setting('max_index_keys')`, "32"},
			{`SELECT quote_ident('gtsm_etl') || ' ' || quote_ident('a b') || ' ' || quote_ident('Q"x')`, `gtsm_etl "a b" "Q""x"`},
			{`SELECT count(*) FROM t WHERE s = ANY('{one,three}')`, "1"},
			{`SELECT count(*) FROM t WHERE s = ANY(ARRAY['one', 'two'])`, "2"},
			{`SELECT count(*) FROM t WHERE s = ANY('{}')`, "0"},
		} {
			var got any
			if err := c.QueryRow(ctx, q.sql).Scan(&got); err != nil || fmt.Sprint(got) != q.want {
				t.Errorf("%s: %s = %v, %v; want %q", m.name, q.sql, got, err, q.want)
			}
		}
	}
}

// TestPandasThroughSQLAlchemy: the path pandas recommends, read_sql with a
// SQLAlchemy engine (which parses version()), and its streamed variant
// (stream_results: a psycopg2 server-side cursor, DECLARE/FETCH) over a
// result larger than the row cap.
func TestPandasThroughSQLAlchemy(t *testing.T) {
	py := python3(t, "python3-pandas python3-sqlalchemy python3-psycopg2", "pandas", "sqlalchemy", "psycopg2")
	e := start(t, pgwire.Config{RowCap: 1000})
	url := fmt.Sprintf("postgresql+psycopg2://tester@%s/gtsm", e.addr)
	out := runPython(t, py, `
import sys, pandas, sqlalchemy
eng = sqlalchemy.create_engine(sys.argv[1])
df = pandas.read_sql("SELECT i, s, d FROM t ORDER BY i", eng)
print(eng.dialect.server_version_info)
print(df.to_csv(index=False), end="")
with eng.connect().execution_options(stream_results=True, max_row_buffer=500) as conn:
    n = total = chunks = 0
    for chunk in pandas.read_sql(sqlalchemy.text("SELECT range AS k FROM range(5000)"), conn, chunksize=700):
        chunks += 1
        n += len(chunk)
        total += int(chunk.k.sum())
print(n, total, chunks)
`, url)
	want := "(15, 0)\ni,s,d\n1,one,1.5\n2,two,-0.25\n5000 12497500 8\n"
	if out != want {
		t.Errorf("pandas printed\n%s\nwant\n%s", out, want)
	}
}

// copyTable has values COPY must quote or escape.
const copyTable = `CREATE TABLE c AS SELECT * FROM (VALUES
	(1, 'plain', 1.5, TIMESTAMPTZ '2021-07-01 00:00:01.25+00'),
	(2, 'comma, "quote"', NULL, NULL),
	(3, E'new\nline\ttab\\back', -0.25, TIMESTAMPTZ '2021-07-01 00:00:02+00'),
	(4, '', 0, NULL),
	(5, NULL, 2, NULL)) AS v(k, s, x, ts)`

// TestCopyToStdout: psql's \copy (query) TO 'file' in CSV and text, with
// the values Postgres quotes and escapes, past the row cap; a COPY that
// names a server file is refused and writes nothing.
func TestCopyToStdout(t *testing.T) {
	e := start(t, pgwire.Config{RowCap: 3}, copyTable)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, cmd, want string
	}{
		{"csv header", `\copy (SELECT * FROM c ORDER BY k) to '%s' with csv header`,
			"k,s,x,ts\n1,plain,1.50,2021-07-01 00:00:01.25+00\n2,\"comma, \"\"quote\"\"\",,\n3,\"new\nline\ttab\\back\",-0.25,2021-07-01 00:00:02+00\n4,\"\",0.00,\n5,,2.00,\n"},
		{"text", `\copy (SELECT k, s FROM c ORDER BY k) to '%s'`,
			"1\tplain\n2\tcomma, \"quote\"\n3\tnew\\nline\\ttab\\\\back\n4\t\n5\t\\N\n"},
		{"options list", `\copy (SELECT k, s FROM c WHERE k < 3 ORDER BY k) to '%s' (FORMAT csv, DELIMITER ';', NULL 'NA', FORCE_QUOTE (k), HEADER true)`,
			"k;s\n\"1\";plain\n\"2\";\"comma, \"\"quote\"\"\"\n"},
		{"table", `\copy c (k) to '%s' csv`, "1\n2\n3\n4\n5\n"},
		{"beyond the row cap", `\copy (SELECT range AS r FROM range(10)) to '%s' csv`, "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		out, err := psql(t, e, nil, "-c", fmt.Sprintf(tc.cmd, f))
		if err != nil {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
			continue
		}
		got, _ := os.ReadFile(f)
		if string(got) != tc.want {
			t.Errorf("%s: file\n%q\nwant\n%q", tc.name, got, tc.want)
		}
		if !strings.HasPrefix(out, "COPY ") {
			t.Errorf("%s: psql printed %q, want COPY n", tc.name, out)
		}
	}
	victim := filepath.Join(dir, "server-side.csv")
	for _, q := range []string{
		`COPY c TO '` + victim + `'`,
		`COPY (SELECT 1) TO '` + victim + `' (FORMAT csv)`,
		`COPY c TO PROGRAM 'touch ` + victim + `'`,
		`COPY c FROM STDIN`,
		`COPY (SELECT 1) TO STDOUT (FORMAT binary)`,
		`COPY (SELECT 1) TO STDOUT (FORMAT csv, DELIMITER 'ab')`,
		`COPY (DELETE FROM c) TO STDOUT`,
	} {
		out, _ := psql(t, e, nil, "-c", q)
		if !strings.Contains(out, "ERROR:") {
			t.Errorf("%s: not refused:\n%s", q, out)
		}
	}
	if _, err := os.Stat(victim); err == nil {
		t.Errorf("a refused COPY created %s", victim)
	}
	var n int
	if err := e.db.QueryRow(`SELECT count(*) FROM c`).Scan(&n); err != nil || n != 5 {
		t.Errorf("table c has %d rows (%v) after the refused statements, want 5", n, err)
	}
	// A plain query past the cap fails naming the flag.
	out, _ := psql(t, e, nil, "-c", "SELECT * FROM range(10)")
	if !strings.Contains(out, "--sql-row-cap") || !strings.Contains(out, "COPY") {
		t.Errorf("row cap error does not name the flag and the way out:\n%s", out)
	}
}

// TestCursors: DECLARE/FETCH/MOVE/CLOSE inside BEGIN, past the row cap;
// Postgres' rules: a cursor without HOLD needs a transaction and ends with
// it, one WITH HOLD lives on.
func TestCursors(t *testing.T) {
	e := start(t, pgwire.Config{RowCap: 100})
	ctx := context.Background()
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	exec := func(q string) error { _, err := c.Exec(ctx, q); return err }
	fetch := func(q string) (n int, first, last int64, err error) {
		rows, err := c.Query(ctx, q)
		if err != nil {
			return 0, 0, 0, err
		}
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return n, first, last, err
			}
			if n == 0 {
				first = v
			}
			last = v
			n++
		}
		return n, first, last, rows.Err()
	}
	if err := exec(`DECLARE x CURSOR FOR SELECT 1`); pgCode(err) != "25P01" {
		t.Errorf("DECLARE outside a transaction: %v, want 25P01", err)
	}
	for _, q := range []string{`BEGIN`, `DECLARE "Big" NO SCROLL CURSOR WITHOUT HOLD FOR SELECT range AS r FROM range(5000) ORDER BY r`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if tx := c.PgConn().TxStatus(); tx != 'T' {
		t.Errorf("transaction status inside BEGIN %q, want T", tx)
	}
	for _, step := range []struct {
		q           string
		n           int
		first, last int64
	}{
		{`FETCH 2000 FROM "Big"`, 2000, 0, 1999},
		{`FETCH FORWARD 1 IN "Big"`, 1, 2000, 2000},
		{`FETCH NEXT FROM "Big"`, 1, 2001, 2001},
		{`MOVE 999 FROM "Big"`, 0, 0, 0},
		{`FETCH ALL FROM "Big"`, 1999, 3001, 4999},
		{`FETCH 10 FROM "Big"`, 0, 0, 0},
	} {
		n, first, last, err := fetch(step.q)
		if err != nil || n != step.n || first != step.first || last != step.last {
			t.Errorf("%s: %d rows %d..%d, %v; want %d rows %d..%d", step.q, n, first, last, err, step.n, step.first, step.last)
		}
	}
	if err := exec(`CLOSE "Big"`); err != nil {
		t.Errorf("CLOSE: %v", err)
	}
	if _, _, _, err := fetch(`FETCH 1 FROM "Big"`); pgCode(err) != "34000" {
		t.Errorf("FETCH after CLOSE: %v, want 34000", err)
	}
	for _, q := range []string{`DECLARE a CURSOR FOR SELECT range FROM range(10)`, `DECLARE h CURSOR WITH HOLD FOR SELECT range FROM range(10)`, `SAVEPOINT s`, `ROLLBACK TO SAVEPOINT s`, `RELEASE s`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if tx := c.PgConn().TxStatus(); tx != 'T' {
		t.Errorf("transaction status after ROLLBACK TO SAVEPOINT %q, want T", tx)
	}
	if err := exec(`COMMIT`); err != nil {
		t.Fatal(err)
	}
	if tx := c.PgConn().TxStatus(); tx != 'I' {
		t.Errorf("transaction status after COMMIT %q, want I", tx)
	}
	if _, _, _, err := fetch(`FETCH 1 FROM a`); pgCode(err) != "34000" {
		t.Errorf("cursor without HOLD after COMMIT: %v, want 34000", err)
	}
	if n, first, last, err := fetch(`FETCH ALL FROM h`); err != nil || n != 10 || first != 0 || last != 9 {
		t.Errorf("WITH HOLD cursor after COMMIT: %d rows %d..%d, %v", n, first, last, err)
	}
	// A DECLARE and FETCH in one query string.
	res, err := c.PgConn().Exec(ctx, `BEGIN; DECLARE one CURSOR FOR SELECT range FROM range(3); FETCH 5 FROM one`).ReadAll()
	if err != nil || len(res) != 3 || len(res[2].Rows) != 3 || string(res[2].Rows[2][0]) != "2" || res[2].CommandTag.String() != "FETCH 3" {
		t.Errorf("DECLARE; FETCH in one message: %v, %v", res, err)
	}
	if err := exec(`ROLLBACK`); err != nil {
		t.Error(err)
	}
	// Open cursors are limited per session (each holds a DuckDB connection).
	if err := exec(`BEGIN`); err != nil {
		t.Fatal(err)
	}
	var limitErr error
	for i := 0; i < 20 && limitErr == nil; i++ {
		limitErr = exec(fmt.Sprintf(`DECLARE c%d CURSOR FOR SELECT 1`, i))
	}
	if pgCode(limitErr) != "54000" {
		t.Errorf("20 open cursors: %v, want 54000 at the limit", limitErr)
	}
	if err := exec(`ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`BEGIN; DECLARE again CURSOR FOR SELECT 1; CLOSE again; COMMIT`); err != nil {
		t.Errorf("a cursor after the others were closed by ROLLBACK: %v", err)
	}
	if err := exec(`SELECT count(*) FROM range(200)`); err != nil {
		t.Errorf("a plain query after the cursors: %v", err)
	}
	if _, _, _, err := fetch(`SELECT range FROM range(200)`); pgCode(err) != "54000" {
		t.Errorf("plain query past the row cap: %v, want 54000", err)
	}
}

// startupRaw opens a protocol-level session (for Execute's row limit,
// which pgx does not expose).
func startupRaw(t *testing.T, e *endpoint) *pgproto3.Frontend {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "tester", "database": "gtsm"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	readyFor(t, fe)
	return fe
}

// readyFor reads messages up to ReadyForQuery; it returns the DataRows seen,
// whether the portal was suspended, and the transaction status.
func readyFor(t *testing.T, fe *pgproto3.Frontend) (rows int, suspended bool, status byte) {
	t.Helper()
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			rows++
		case *pgproto3.PortalSuspended:
			suspended = true
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s (%s)", m.Message, m.Code)
		case *pgproto3.ReadyForQuery:
			return rows, suspended, m.TxStatus
		}
	}
}

// TestExecuteRowLimit: what pgjdbc does with setFetchSize and autocommit
// off: BEGIN, then Execute with a row limit, Sync, Execute again... The
// portal must survive the Syncs inside the transaction, stream past the row
// cap, and end with all rows once.
func TestExecuteRowLimit(t *testing.T) {
	e := start(t, pgwire.Config{RowCap: 100})
	fe := startupRaw(t, e)
	fe.Send(&pgproto3.Query{String: "BEGIN"})
	fe.Flush()
	if _, _, st := readyFor(t, fe); st != 'T' {
		t.Fatalf("status after BEGIN %q, want T", st)
	}
	fe.Send(&pgproto3.Parse{Name: "S_1", Query: "SELECT range AS r FROM range(2500)"})
	fe.Send(&pgproto3.Bind{PreparedStatement: "S_1", DestinationPortal: "C_5"})
	fe.Send(&pgproto3.Describe{ObjectType: 'P', Name: "C_5"})
	fe.Send(&pgproto3.Execute{Portal: "C_5", MaxRows: 1000})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	total, batches := 0, 0
	for {
		n, suspended, st := readyFor(t, fe)
		total += n
		batches++
		if st != 'T' {
			t.Fatalf("status after batch %d: %q, want T", batches, st)
		}
		if !suspended {
			break
		}
		if n != 1000 {
			t.Errorf("batch %d has %d rows, want 1000", batches, n)
		}
		fe.Send(&pgproto3.Execute{Portal: "C_5", MaxRows: 1000})
		fe.Send(&pgproto3.Sync{})
		fe.Flush()
	}
	if total != 2500 || batches != 3 {
		t.Errorf("%d rows in %d batches, want 2500 in 3", total, batches)
	}
	fe.Send(&pgproto3.Query{String: "COMMIT"})
	fe.Flush()
	if _, _, st := readyFor(t, fe); st != 'I' {
		t.Errorf("status after COMMIT %q, want I", st)
	}
	// Unlimited Execute of the same statement: the row cap holds.
	fe.Send(&pgproto3.Bind{PreparedStatement: "S_1"})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	var code string
	for code == "" {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			code = er.Code
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if code != "54000" {
		t.Errorf("unlimited Execute past the row cap: code %q, want 54000", code)
	}
}

// TestStreamingMemoryBounded: 2,000,000 rows of ~120 bytes (240 MB as
// text) through COPY TO STDOUT and through a cursor, with the server's RSS
// sampled: it must stay within a bound far below the result's size, and
// every row must arrive once (count and sum checked).
func TestStreamingMemoryBounded(t *testing.T) {
	testutil.Long(t)
	const rows = 2_000_000
	const rssBound = 120 << 20
	e := start(t, pgwire.Config{}, fmt.Sprintf(`CREATE TABLE big AS SELECT range AS i, range * 0.5 AS d, repeat(chr(65 + (range %% 26)::INT), 100) AS s FROM range(%d)`, rows))
	ctx := context.Background()
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	base := rssBytes(t)
	rss := sampleRSS(t, 10*time.Millisecond)
	// COPY: count lines and sum the first column as they stream by.
	cw := &copyCounter{}
	tag, err := c.PgConn().CopyTo(ctx, cw, `COPY (SELECT i, d, s FROM big) TO STDOUT`)
	if err != nil || tag.String() != fmt.Sprintf("COPY %d", rows) || cw.lines != rows || cw.sum != int64(rows)*(rows-1)/2 {
		t.Errorf("COPY: tag %q, %d lines, sum %d, %v; want %d lines", tag, cw.lines, cw.sum, err, rows)
	}
	copyPeak := rss.Peak()
	// A cursor, 10,000 rows per FETCH.
	if _, err := c.Exec(ctx, `BEGIN; DECLARE big CURSOR FOR SELECT i, s FROM big`); err != nil {
		t.Fatal(err)
	}
	n, sum := 0, int64(0)
	for {
		rs, err := c.Query(ctx, `FETCH 10000 FROM big`)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for rs.Next() {
			var i int64
			var s string
			if err := rs.Scan(&i, &s); err != nil {
				t.Fatal(err)
			}
			sum += i
			got++
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		n += got
		if got == 0 {
			break
		}
	}
	if n != rows || sum != int64(rows)*(rows-1)/2 {
		t.Errorf("cursor: %d rows, sum %d; want %d rows", n, sum, rows)
	}
	peak := rss.Stop()
	t.Logf("RSS %d MB at start; peak %d MB during COPY, %d MB overall (+%d MB); result ~%d MB as text",
		base>>20, copyPeak>>20, peak>>20, (peak-base)>>20, cw.bytes>>20)
	if grow := peak - base; grow > rssBound {
		t.Errorf("RSS grew by %d MB streaming %d rows, bound %d MB", grow>>20, rows, rssBound>>20)
	}
}

type copyCounter struct {
	lines int
	sum   int64
	bytes int64
	part  []byte
}

func (w *copyCounter) Write(b []byte) (int, error) {
	w.bytes += int64(len(b))
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		line := w.part[:i]
		tab := bytes.IndexByte(line, '\t')
		var v int64
		fmt.Sscan(string(line[:tab]), &v)
		w.sum += v
		w.lines++
		w.part = w.part[i+1:]
	}
	if len(w.part) == 0 {
		w.part = nil
	}
	return len(b), nil
}

var _ io.Writer = (*copyCounter)(nil)

// TestStreamedTypes: the types the stream leaves to DuckDB's VARCHAR cast
// (unsigned 128-bit, big numbers, intervals, lists, structs, uuids, enums,
// times) arrive as the endpoint announces them, in every protocol mode and
// through COPY.
func TestStreamedTypes(t *testing.T) {
	e := start(t, pgwire.Config{})
	const q = `SELECT 340282366920938463463374607431768211455::UHUGEINT AS u, 123456789012345678901234567890::BIGNUM AS b,
		INTERVAL '1 day 2 hours' AS iv, ['a', 'b'] AS l, {'k': 1} AS st, '00000000-0000-0000-0000-000000000001'::UUID AS id,
		TIME '12:34:56.5' AS tm, 'x'::ENUM('x', 'y') AS en, 1.5::FLOAT AS f4, 7::UTINYINT AS ut, 2::UBIGINT AS ub`
	want := "340282366920938463463374607431768211455|123456789012345678901234567890|1 day 02:00:00|[a, b]|{'k': 1}|00000000-0000-0000-0000-000000000001|12:34:56.5|x|1.5|7|2"
	for _, m := range modes {
		c := connect(t, e, m.mode)
		rows, err := c.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		for rows.Next() {
			var cells []string
			for _, v := range rows.RawValues() {
				cells = append(cells, string(v))
			}
			if got := strings.Join(cells, "|"); m.mode == pgx.QueryExecModeSimpleProtocol && got != want {
				t.Errorf("%s: %s\nwant %s", m.name, got, want)
			}
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: %v", m.name, err)
		}
	}
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	var b strings.Builder
	if _, err := c.PgConn().CopyTo(context.Background(), &b, "COPY ("+q+") TO STDOUT (DELIMITER '|')"); err != nil || b.String() != want+"\n" {
		t.Errorf("COPY: %q, %v\nwant %q", b.String(), err, want)
	}
}
