package pgwire

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// lostInterruptCtx makes duckdb-go lose an interrupt the way a cancel
// request can under load, deterministically: Done is closed from the start,
// so the driver's interrupter goroutine interrupts DuckDB at once (and
// then only every 500 ms), while Err reports the cancellation only to the
// check that follows the creation of DuckDB's pending result
// ((*Stmt).executeBound). Creating the pending result clears DuckDB's
// interrupt flag and schedules the query's tasks; the driver then returns
// context.Canceled without executing the query, and the workers run on.
type lostInterruptCtx struct {
	context.Context
	done chan struct{}
}

func (c lostInterruptCtx) Done() <-chan struct{} { return c.done }

func (c lostInterruptCtx) Err() error {
	pc := make([]uintptr, 1)
	runtime.Callers(2, pc)
	f, _ := runtime.CallersFrames(pc).Next()
	switch {
	case strings.HasSuffix(f.Function, ".executeBound"):
		return context.Canceled
	case strings.HasSuffix(f.Function, ".prepareStmts"):
		// Let the interrupter goroutine send its first interrupt before
		// DuckDB clears the flag.
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// TestRollbackAfterLostInterrupt: whatever state a canceled statement left
// on its DuckDB connection, the endpoint's ROLLBACK returns at once, the
// connection is usable, and no transaction is left open. With a plain
// ExecContext("ROLLBACK") (the code before), the "interrupt lost" case
// blocked in DuckDB's prepare until the canceled cross join would have
// finished (it was still blocked after 60 s).
func TestRollbackAfterLostInterrupt(t *testing.T) {
	const crossJoin = `SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b`
	cases := []struct {
		name string
		// statement runs on the connection inside BEGIN TRANSACTION READ ONLY
		// and returns the error it ended with, which must match want.
		statement func(conn *sql.Conn) error
		want      string
	}{
		{"interrupt lost, cross join left running", func(conn *sql.Conn) error {
			done := make(chan struct{})
			close(done)
			return conn.Raw(func(dc any) error {
				_, err := dc.(driver.QueryerContext).QueryContext(lostInterruptCtx{context.Background(), done}, crossJoin, nil)
				return err
			})
		}, context.Canceled.Error()},
		{"interrupted normally", func(conn *sql.Conn) error {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			rows, err := conn.QueryContext(ctx, crossJoin)
			if err == nil {
				rows.Close()
			}
			return err
		}, "context deadline exceeded"},
		{"finished", func(conn *sql.Conn) error {
			var n int
			return conn.QueryRowContext(context.Background(), `SELECT 6 * 7`).Scan(&n)
		}, ""},
		{"failed (transaction invalidated)", func(conn *sql.Conn) error {
			_, err := conn.ExecContext(context.Background(), `SELECT 1 / 0::INTEGER, error('boom')`)
			return err
		}, "boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			connector, err := duckdb.NewConnector("", nil)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(connector)
			defer db.Close()
			ctx := context.Background()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
				t.Fatal(err)
			}
			err = tc.statement(conn)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("statement ended with %v, want %q (if the driver changed, this case no longer sets up its state)", err, tc.want)
			}
			s := &Server{cfg: Config{Logger: Quiet()}}
			returned := make(chan time.Duration, 1)
			start := time.Now()
			go func() {
				s.rollback(conn)
				returned <- time.Since(start)
			}()
			select {
			case d := <-returned:
				if d > 10*time.Second {
					t.Errorf("rollback took %v", d)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("rollback still blocked after 60 s")
			}
			var n int
			if err := conn.QueryRowContext(ctx, `SELECT 42`).Scan(&n); err != nil || n != 42 {
				t.Fatalf("connection after rollback: %d, %v", n, err)
			}
			// No transaction left open: a new one can begin.
			if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
				t.Fatalf("BEGIN after rollback: %v", err)
			}
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(); err != nil && !errors.Is(err, sql.ErrConnDone) {
				t.Fatal(err)
			}
		})
	}
}
