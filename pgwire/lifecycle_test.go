package pgwire_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
)

// TestSilentSocketsDoNotLockOut: an attacker holding more sockets than
// there are slots, without ever sending a startup message (or trickling one
// byte at a time), neither keeps a real client out nor holds a slot past
// StartupTimeout; sessions that did authenticate are never closed for a
// newcomer, so with every slot held by one a connection is still refused
// with 53300.
func TestSilentSocketsDoNotLockOut(t *testing.T) {
	const slots = 8
	e := start(t, pgwire.Config{MaxConns: slots, StartupTimeout: 2 * time.Second})
	ctx := context.Background()
	var silent []net.Conn
	for range 3 * slots {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// A trickler: one byte of a startup message every 300 ms.
	trickle, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer trickle.Close()
	go func() {
		for _, b := range []byte{0, 0, 0, 40, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0} {
			if _, err := trickle.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("a real client behind %d silent sockets: %v", 3*slots, err)
	}
	// The silent sockets still open are closed by the server once their
	// startup time is up (EOF, not the test's own deadline), the trickler
	// too, although it keeps sending.
	t0 := time.Now()
	for i, s := range append(silent, trickle) {
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil || !isClosed(err) {
			t.Errorf("socket %d: read %v, want EOF or reset (closed by the server)", i, err)
		}
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("silent sockets closed %v after the client connected; StartupTimeout is 2s", d)
	}
	// Authenticated sessions keep their slots: fill them, and the next
	// connection is refused.
	for range slots - 1 {
		connect(t, e, pgx.QueryExecModeSimpleProtocol)
	}
	if extra, err := pgx.Connect(ctx, e.url("")); err == nil {
		extra.Close(ctx)
		t.Fatalf("a connection beyond %d authenticated sessions was served", slots)
	} else if pgCode(err) != "53300" {
		t.Errorf("beyond %d authenticated sessions: %v, want 53300", slots, err)
	}
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("the first session after the attack: %v", err)
	}
}

// isClosed: the peer closed (EOF or a reset), not our read deadline.
func isClosed(err error) bool {
	var ne net.Error
	return err == io.EOF || !(errors.As(err, &ne) && ne.Timeout())
}

// TestStuckStatementWatchdog: a DuckDB call that ignores its interrupt
// (levenshtein of two long strings is one scalar call: DuckDB checks the
// interrupt between vectors only) runs on past QueryTimeout; OnStuck is
// called once StuckGrace has passed after the interrupt, while the call
// still runs. An interruptible statement that overruns ends at its
// timeout and never calls OnStuck (at load 55 on 2 cores one took 420 ms
// to stop: hence a grace of 1 s here, 3 s by default).
func TestStuckStatementWatchdog(t *testing.T) {
	testutil.Long(t)
	var stuck atomic.Int64 // ns since the statement started, at the call
	var began atomic.Int64
	e := start(t, pgwire.Config{QueryTimeout: 200 * time.Millisecond, StuckGrace: time.Second,
		OnStuck: func(time.Duration) { stuck.Store(time.Now().UnixNano() - began.Load()) }})
	ctx := context.Background()
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)

	began.Store(time.Now().UnixNano())
	if _, err := c.Exec(ctx, `SELECT count(*) FROM range(100000000000)`); err == nil {
		t.Fatal("10^11 rows counted within a 200 ms timeout")
	}
	time.Sleep(time.Second)
	if n := stuck.Load(); n != 0 {
		t.Fatalf("an interruptible statement was reported stuck after %v", time.Duration(n))
	}

	began.Store(time.Now().UnixNano())
	_, err := c.Exec(ctx, `SELECT levenshtein(repeat('a', 25000), repeat('b', 25000))`)
	took := time.Since(time.Unix(0, began.Load()))
	n := time.Duration(stuck.Load())
	t.Logf("levenshtein: %v after %v; reported stuck after %v", err, took.Round(time.Millisecond), n.Round(time.Millisecond))
	if n == 0 {
		t.Fatalf("a statement that ran %v with a 200 ms timeout was never reported stuck", took)
	}
	if n < 1200*time.Millisecond || n > took {
		t.Errorf("reported stuck %v after start; want after timeout + grace (1.2 s) and before it returned (%v)", n, took)
	}
}
