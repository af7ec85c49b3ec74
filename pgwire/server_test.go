package pgwire_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// endpoint is a DuckDB file with a typed table, served on a free port.
type endpoint struct {
	db   *sql.DB
	addr string
	dir  string
}

func start(t *testing.T, cfg pgwire.Config, setup ...string) *endpoint {
	t.Helper()
	return startDB(t, cfg, nil, setup...)
}

// startDB is start with prepare run on the database first (e.g. the
// processor's migrations).
func startDB(t *testing.T, cfg pgwire.Config, prepare func(*sql.DB) error, setup ...string) *endpoint {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := gtsmsql.Open(ctx, filepath.Join(dir, "e.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		if err := prepare(db); err != nil {
			t.Fatal(err)
		}
	}
	stmts := append([]string{
		`CREATE TABLE t (i BIGINT, n INTEGER, d DOUBLE, s VARCHAR, ts TIMESTAMP, b BOOLEAN, dec DECIMAL(18,3), day DATE, h HUGEINT, l INTEGER[])`,
		`INSERT INTO t VALUES
		 (1, 10, 1.5, 'one', '2021-07-01 00:00:01.25', true, 12.345, '2021-07-01', 170141183460469231731687303715884105727, [1, 2]),
		 (2, NULL, -0.25, 'two', '2021-07-01 00:00:02', false, -0.5, '2021-07-02', -3, NULL)`,
	}, setup...)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = pgwire.Quiet()
	}
	srv, err := pgwire.Listen(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		db.Close()
	})
	return &endpoint{db: db, addr: srv.Addr().String(), dir: dir}
}

func (e *endpoint) url(extra string) string {
	return fmt.Sprintf("postgres://tester@%s/gtsm?sslmode=disable%s", e.addr, extra)
}

func connect(t *testing.T, e *endpoint, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(e.url(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

var modes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"simple", pgx.QueryExecModeSimpleProtocol},
	{"extended", pgx.QueryExecModeCacheStatement},
	{"describe", pgx.QueryExecModeDescribeExec},
}

func TestTypesOverPgx(t *testing.T) {
	e := start(t, pgwire.Config{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := connect(t, e, m.mode)
			rows, err := c.Query(context.Background(), `SELECT i, n, d, s, ts, b, dec, day, h, l FROM t ORDER BY i`)
			if err != nil {
				t.Fatal(err)
			}
			var oids []uint32
			for _, f := range rows.FieldDescriptions() {
				oids = append(oids, f.DataTypeOID)
			}
			wantOIDs := []uint32{pgtype.Int8OID, pgtype.Int4OID, pgtype.Float8OID, pgtype.TextOID, pgtype.TimestampOID,
				pgtype.BoolOID, pgtype.NumericOID, pgtype.DateOID, pgtype.NumericOID, pgtype.TextOID}
			if !reflect.DeepEqual(oids, wantOIDs) {
				t.Errorf("oids = %v, want %v", oids, wantOIDs)
			}
			var got []string
			for rows.Next() {
				var (
					i   int64
					n   *int32
					d   float64
					s   string
					ts  time.Time
					b   bool
					dec pgtype.Numeric
					day time.Time
					h   pgtype.Numeric
					l   *string
				)
				if err := rows.Scan(&i, &n, &d, &s, &ts, &b, &dec, &day, &h, &l); err != nil {
					t.Fatal(err)
				}
				decF, _ := dec.Float64Value()
				hv := new(big.Int).Set(h.Int)
				for k := int32(0); k < h.Exp; k++ {
					hv.Mul(hv, big.NewInt(10))
				}
				got = append(got, fmt.Sprintf("%d %v %v %s %s %v %v %s %s %v", i, deref(n), d, s, ts.Format("2006-01-02 15:04:05.000"), b,
					decF.Float64, day.Format("2006-01-02"), hv, deref(l)))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			want := []string{
				"1 10 1.5 one 2021-07-01 00:00:01.250 true 12.345 2021-07-01 170141183460469231731687303715884105727 [1, 2]",
				"2 <nil> -0.25 two 2021-07-01 00:00:02.000 false -0.5 2021-07-02 -3 <nil>",
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestParameters(t *testing.T) {
	e := start(t, pgwire.Config{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := connect(t, e, m.mode)
			ctx := context.Background()
			var s string
			if err := c.QueryRow(ctx, `SELECT s FROM t WHERE i = $1`, 2).Scan(&s); err != nil || s != "two" {
				t.Errorf("i = $1 (2): %q, %v", s, err)
			}
			if err := c.QueryRow(ctx, `SELECT s FROM t WHERE d < $1 AND s LIKE $2`, 0.0, "t%").Scan(&s); err != nil || s != "two" {
				t.Errorf("two params: %q, %v", s, err)
			}
			// $1 used twice with no type DuckDB can infer before binding.
			for arg, want := range map[any]int{"one": 1, nil: 2} {
				var n int
				if err := c.QueryRow(ctx, `SELECT count(*) FROM (SELECT * FROM t WHERE s = $1 OR $1 IS NULL)`, arg).Scan(&n); err != nil || n != want {
					t.Errorf("s = $1 OR $1 IS NULL with %v: %d, %v; want %d", arg, n, err, want)
				}
			}
			var ts time.Time
			if err := c.QueryRow(ctx, `SELECT ts FROM t WHERE ts > $1 ORDER BY ts LIMIT 1`, time.Date(2021, 7, 1, 0, 0, 1, 500e6, time.UTC)).Scan(&ts); err != nil ||
				!ts.Equal(time.Date(2021, 7, 1, 0, 0, 2, 0, time.UTC)) {
				t.Errorf("timestamp param: %v, %v", ts, err)
			}
		})
	}
}

func TestNamedQueriesOverPgx(t *testing.T) {
	e := start(t, pgwire.Config{})
	ctx := context.Background()
	if err := gtsmsql.Migrate(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at) VALUES
		('B009', 'Hour', '2021-07-01', '2021-07-01 23:59:59', 86400, 3, 1, 0, 0, 0, 1, now()),
		('A001', 'Day', '2021-07-01', '2021-07-01 23:50:00', 144, 0, 0, 0, 0, 0, 1, now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		c := connect(t, e, m.mode)
		q, _ := gtsmsql.QueryByName("latest")
		for _, arg := range []any{nil, "B009"} {
			rows, err := c.Query(ctx, q.SQL, arg)
			if err != nil {
				t.Fatalf("%s latest(%v): %v", m.name, arg, err)
			}
			var got []string
			for rows.Next() {
				var site, session string
				var last time.Time
				var n int64
				if err := rows.Scan(&site, &session, &last, &n); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s %s %s %d", site, session, last.Format(time.DateTime), n))
			}
			want := []string{"A001 Day 2021-07-01 23:50:00 144", "B009 Hour 2021-07-01 23:59:59 86400"}
			if arg != nil {
				want = want[1:]
			}
			if !reflect.DeepEqual(got, want) || rows.Err() != nil {
				t.Errorf("%s latest(%v) = %v (%v), want %v", m.name, arg, got, rows.Err(), want)
			}
		}
	}
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestWritesRefusedAndSessionSurvives(t *testing.T) {
	e := start(t, pgwire.Config{})
	ctx := context.Background()
	out := filepath.Join(e.dir, "out.csv")
	attach := filepath.Join(e.dir, "other.duckdb")
	tests := []struct {
		sql  string
		code string
	}{
		{`INSERT INTO t (i) VALUES (99)`, "25006"},
		{`INSERT INTO t (i) VALUES (99) RETURNING i`, "25006"},
		{`UPDATE t SET s = 'x'`, "25006"},
		{`DELETE FROM t`, "25006"},
		{`CREATE TABLE u (a INTEGER)`, "25006"},
		{`CREATE TEMP TABLE u (a INTEGER)`, "25006"},
		{`DROP TABLE t`, "25006"},
		{`COPY t TO '` + out + `'`, "25006"},
		{`COPY (SELECT 1) TO '` + out + `' (FORMAT csv)`, "25006"},
		{`ATTACH '` + attach + `' AS other`, "25006"},
		{`CHECKPOINT`, "25006"},
		{`COMMIT; INSERT INTO t (i) VALUES (99)`, "25006"},
		{`SELEC 1`, "42601"},
		{"SELECT 1 " + strings.Repeat("/*", 5000), "54000"}, // DuckDB's parser would take seconds
		{`SELECT * FROM nope`, "42P01"},
		{`SELECT nope FROM t`, "42703"},
		{`SELECT 1/0::INTEGER, 'x'::INTEGER`, "22P02"},
	}
	for _, m := range modes {
		c := connect(t, e, m.mode)
		for _, tc := range tests {
			if m.mode != pgx.QueryExecModeSimpleProtocol && strings.Contains(tc.sql, "; ") {
				continue // the extended protocol takes one statement
			}
			_, err := c.Exec(ctx, tc.sql)
			if err == nil {
				t.Errorf("%s: %s: no error", m.name, tc.sql)
			} else if tc.code != "" && pgCode(err) != tc.code {
				t.Errorf("%s: %s: code %q (%v), want %s", m.name, tc.sql, pgCode(err), err, tc.code)
			}
			// The session is still usable after every error.
			var n int
			if err := c.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%s: after %s: count = %d, %v; want 2", m.name, tc.sql, n, err)
			}
		}
		// SET is acknowledged and not applied to the shared instance.
		for _, s := range []string{"SET threads = 1", "PRAGMA threads=1", "SET application_name = 'x'", "SET extra_float_digits = 3", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"} {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Errorf("%s: %s: %v", m.name, s, err)
			}
		}
		for _, s := range []string{"BEGIN", "COMMIT", "ROLLBACK"} {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Errorf("%s: %s: %v", m.name, s, err)
			}
		}
	}
	var threads string
	if err := e.db.QueryRow(`SELECT current_setting('threads')::VARCHAR`).Scan(&threads); err != nil || threads == "1" {
		t.Errorf("threads = %q (%v): SET through the endpoint reached DuckDB", threads, err)
	}
	for _, f := range []string{out, attach} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s exists (err %v): a write went through", f, err)
		}
	}
	var n int
	if err := e.db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows in t = %d, %v; want 2", n, err)
	}
}

func TestRowCapAndTimeout(t *testing.T) {
	e := start(t, pgwire.Config{RowCap: 10, QueryTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	for _, m := range modes {
		c := connect(t, e, m.mode)
		rows, _ := c.Query(ctx, `SELECT * FROM range(10)`)
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Err() != nil || n != 10 {
			t.Errorf("%s: 10 rows under a cap of 10: got %d, %v", m.name, n, rows.Err())
		}
		rows, _ = c.Query(ctx, `SELECT * FROM range(11)`)
		for rows.Next() {
		}
		if err := rows.Err(); pgCode(err) != "54000" || !strings.Contains(err.Error(), "more than 10 rows") {
			t.Errorf("%s: 11 rows: err = %v, want 54000 row cap", m.name, err)
		}
		// A cross join of 10^10 rows cannot finish within the timeout.
		var sum int64
		err := c.QueryRow(ctx, `SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b`).Scan(&sum)
		if pgCode(err) != "57014" {
			t.Errorf("%s: long query: err = %v, want 57014 (timeout)", m.name, err)
		}
		if err := c.QueryRow(ctx, `SELECT 41 + 1`).Scan(&sum); err != nil || sum != 42 {
			t.Errorf("%s: after timeout: %d, %v", m.name, sum, err)
		}
	}
}

func TestPassword(t *testing.T) {
	if _, err := pgwire.Listen(nil, pgwire.Config{Addr: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("non-loopback bind without password: err = %v", err)
	}
	e := start(t, pgwire.Config{Password: "s3cret"})
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, e.url("&password=wrong")); err == nil {
		c.Close(ctx)
		t.Error("wrong password accepted")
	} else if pgCode(err) != "28P01" {
		t.Errorf("wrong password: %v, want 28P01", err)
	}
	c, err := pgx.Connect(ctx, e.url("&password=s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Errorf("count = %d, %v", n, err)
	}
}

// psql runs Debian's psql against the endpoint: unaligned, tuples only.
func psql(t *testing.T, e *endpoint, env []string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed (apt-get install -y postgresql-client)")
	}
	host, port, _ := strings.Cut(e.addr, ":")
	cmd := exec.Command(bin, append([]string{"-X", "-h", host, "-p", port, "-U", "x", "-d", "gtsm", "-A", "-t", "-v", "ON_ERROR_STOP=0"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"PGCONNECT_TIMEOUT=10"}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPsql(t *testing.T) {
	e := start(t, pgwire.Config{})
	out, err := psql(t, e, nil, "-c", "SELECT i, s, ts, dec, day FROM t ORDER BY i")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if want := "1|one|2021-07-01 00:00:01.25|12.345|2021-07-01\n2|two|2021-07-01 00:00:02|-0.500|2021-07-02\n"; out != want {
		t.Errorf("psql output\n%q\nwant\n%q", out, want)
	}
	// A refused write, a syntax error, and a query in one psql session: the
	// errors are reported and the session goes on.
	script := "INSERT INTO t (i) VALUES (3);\nSELEC 1;\nCOPY t TO '" + filepath.Join(e.dir, "x.csv") + "';\nSELECT count(*) FROM t;\n"
	out, _ = psql(t, e, nil, "-c", "SELECT 1", "-f", writeFile(t, script))
	for _, want := range []string{"ERROR:  read-only SQL endpoint: INSERT statements are refused", "ERROR:  Parser Error: syntax error", "ERROR:  read-only SQL endpoint: COPY TO '", "\n2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("psql script output lacks %q:\n%s", want, out)
		}
	}
	// Two statements in one -c (the simple protocol): both results.
	out, err = psql(t, e, nil, "-c", "SELECT 1; SELECT 'two'")
	if err != nil || out != "1\ntwo\n" {
		t.Errorf("two statements: %q, %v", out, err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sql")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPsqlPassword(t *testing.T) {
	e := start(t, pgwire.Config{Password: "pw"})
	if out, err := psql(t, e, []string{"PGPASSWORD=pw"}, "-c", "SELECT 7"); err != nil || out != "7\n" {
		t.Errorf("right password: %q, %v", out, err)
	}
	if out, err := psql(t, e, []string{"PGPASSWORD=no"}, "-w", "-c", "SELECT 7"); err == nil || !strings.Contains(out, "invalid username/password") {
		t.Errorf("wrong password: %q, %v", out, err)
	}
}

// TestReadersSeeOnlyCommittedBatches: a writer commits batches of batchSize
// rows, each in one transaction (Appender + Flush + COMMIT, as the processor
// does); readers over pgx and psql must only ever see whole batches.
func TestReadersSeeOnlyCommittedBatches(t *testing.T) {
	const batchSize = 5000
	e := start(t, pgwire.Config{}, `CREATE TABLE w (batch INTEGER, k INTEGER)`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var committed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; ctx.Err() == nil && b < 400; b++ {
			if err := writeBatch(e.db, b, batchSize); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			committed.Add(1)
		}
	}()
	check := func(who string, counts map[int]int) {
		for b, n := range counts {
			if n != batchSize {
				t.Errorf("%s saw batch %d with %d rows, want %d (a half-committed batch)", who, b, n, batchSize)
			}
		}
	}
	c := connect(t, e, pgx.QueryExecModeCacheStatement)
	seen := 0
	for i := 0; i < 30; i++ {
		rows, err := c.Query(ctx, `SELECT batch, count(*) FROM w GROUP BY batch`)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[int]int{}
		for rows.Next() {
			var b, n int
			if err := rows.Scan(&b, &n); err != nil {
				t.Fatal(err)
			}
			counts[b] = n
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		check("pgx", counts)
		seen = max(seen, len(counts))
		if i%10 == 0 {
			out, err := psql(t, e, nil, "-F", " ", "-c", "SELECT batch, count(*) FROM w GROUP BY batch")
			if err != nil {
				t.Fatalf("psql: %v %s", err, out)
			}
			pc := map[int]int{}
			for _, line := range strings.Fields(strings.ReplaceAll(out, " ", ":")) {
				var b, n int
				fmt.Sscanf(line, "%d:%d", &b, &n)
				pc[b] = n
			}
			check("psql", pc)
		}
	}
	cancel()
	wg.Wait()
	if committed.Load() < 2 || seen == 0 {
		t.Errorf("writer committed %d batches, readers saw at most %d: the test did not overlap reads and writes", committed.Load(), seen)
	}
}

func writeBatch(db *sql.DB, batch, n int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	// Row by row inside one transaction: slow enough that readers run
	// while a batch is half written.
	stmt, err := tx.Prepare(`INSERT INTO w SELECT ?, range FROM range(?)`)
	if err != nil {
		tx.Rollback()
		return err
	}
	for i := 0; i < n; i += 500 {
		if _, err := stmt.Exec(batch, 500); err != nil {
			tx.Rollback()
			return err
		}
	}
	stmt.Close()
	return tx.Commit()
}

// TestShutdownWithBusyClients: stopping the endpoint interrupts a running
// statement and closes idle client connections, so the owner can close the
// database right after Serve returns.
func TestShutdownWithBusyClients(t *testing.T) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "s.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", QueryTimeout: time.Hour, Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	url := fmt.Sprintf("postgres://x@%s/gtsm?sslmode=disable", srv.Addr())
	idle, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	busy, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	queryErr := make(chan error, 1)
	go func() {
		var n int64
		queryErr <- busy.QueryRow(ctx, `SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b`).Scan(&n)
	}()
	time.Sleep(200 * time.Millisecond) // let the statement start
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return with a statement running and a client connected")
	}
	if err := <-queryErr; err == nil {
		t.Error("the running statement finished normally; want it interrupted")
	}
	if err := idle.Ping(ctx); err == nil {
		t.Error("idle client still connected after shutdown")
	}
	var n int
	if err := db.QueryRow(`SELECT 42`).Scan(&n); err != nil || n != 42 {
		t.Errorf("database after shutdown: %d, %v", n, err)
	}
}

// cancelingConn connects with pgx in mode, set to send a cancel request
// when a query's context ends (pgx's default closes the connection).
func cancelingConn(t *testing.T, e *endpoint, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(e.url(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Minute}
	}
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// queryCanceledAfter runs sql on c with a context that ends after d: the
// server must answer 57014 "canceling statement due to user request", and
// the session must go on (the cancel request not lingering to stop the next
// statement).
func queryCanceledAfter(t *testing.T, c *pgx.Conn, d time.Duration, sql string) {
	t.Helper()
	ctx := context.Background()
	qctx, cancel := context.WithTimeout(ctx, d)
	var n int64
	err := c.QueryRow(qctx, sql).Scan(&n)
	cancel()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" || pe.Message != "canceling statement due to user request" {
		t.Fatalf("statement canceled after %v: n = %d, err = %v; want the server's 57014 'canceling statement due to user request'", d, n, err)
	}
	if err := c.QueryRow(ctx, `SELECT 6 * 7`).Scan(&n); err != nil || n != 42 {
		t.Errorf("after cancel: %d, %v", n, err)
	}
}

// TestCancelRequest: a client's cancel request (pgx on context cancel, psql
// on Ctrl-C) stops the running statement on the server; the session goes on.
func TestCancelRequest(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	e := start(t, pgwire.Config{QueryTimeout: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	const long = `SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b`
	// pgx: the simple protocol, and the extended one with the statement
	// prepared beforehand, so the query is one round trip in flight when the
	// context ends (were the prepare inside the deadline, a slow prepare
	// under load would let pgx give up before it sends the execution).
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := cancelingConn(t, e, mode)
			sql := long
			if mode != pgx.QueryExecModeSimpleProtocol {
				if _, err := c.Prepare(ctx, "long", long); err != nil {
					t.Fatal(err)
				}
				sql = "long"
			}
			queryCanceledAfter(t, c, 300*time.Millisecond, sql)
		})
	}

	// psql sends a cancel request on SIGINT (Ctrl-C).
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	host, port, _ := strings.Cut(e.addr, ":")
	cmd := exec.Command(bin, "-X", "-h", host, "-p", port, "-U", "x", "-d", "gtsm", "-c", long+" -- from psql")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Ctrl-C once psql has sent the statement (the server logs it), and
	// again every half second in case the first one came between parse and
	// execution (psql sends a cancel request per Ctrl-C).
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "from psql") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-werr:
			break wait
		case <-tick.C:
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("psql did not stop after Ctrl-C; output %q", out.String())
			}
		}
	}
	if !strings.Contains(out.String(), "canceling statement due to user request") {
		t.Errorf("psql output %q: want the statement canceled on the server", out.String())
	}
}
