package pgwire

import (
	"context"
	"crypto/subtle"
	"database/sql/driver"
	"encoding/binary"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/pkg/types"
)

// refuseConn answers a connection beyond Config.MaxConns the way Postgres
// does (FATAL 53300 too_many_connections) and closes it.
func refuseConn(c net.Conn, maxConns int) {
	RefuseConn(c, "53300", "sorry, too many clients already (the SQL endpoint serves at most "+itoa(maxConns)+" connections)")
}

// RefuseConn answers a client with a FATAL ErrorResponse of the given
// SQLSTATE and message, before any startup (libpq and pgx report it), and
// closes the connection.
func RefuseConn(c net.Conn, code, msg string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	var body []byte
	for _, f := range [][2]string{{"S", "FATAL"}, {"V", "FATAL"}, {"C", code}, {"M", msg}} {
		body = append(body, f[0][0])
		body = append(body, f[1]...)
		body = append(body, 0)
	}
	body = append(body, 0)
	frame := make([]byte, 5, 5+len(body))
	frame[0] = 'E'
	binary.BigEndian.PutUint32(frame[1:], uint32(4+len(body)))
	c.Write(append(frame, body...))
	// Let the client read the error before the close resets the socket.
	c.Read(make([]byte, 1024))
}

// IsLoopback tells whether host:port is a loopback address, where the
// endpoint may serve without a password.
func IsLoopback(addr string) bool { return isLoopback(addr) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// Password failures slow the next attempt from the same host: after the
// n-th failure in a row, the next attempt waits authBaseDelay·2^(n-1), at
// most authMaxDelay, and attempts from one host are checked one at a time
// (so parallel guesses queue). A success resets the host.
const (
	authBaseDelay = 250 * time.Millisecond
	authMaxDelay  = 5 * time.Second
	authMaxHosts  = 4096
)

type authHost struct {
	mu       sync.Mutex
	failures int
	until    time.Time
}

type authThrottle struct {
	mu       sync.Mutex
	hosts    map[string]*authHost
	stopping context.Context
}

func newAuthThrottle(stopping context.Context) *authThrottle {
	return &authThrottle{hosts: map[string]*authHost{}, stopping: stopping}
}

func (a *authThrottle) host(h string) *authHost {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.hosts[h]; e != nil {
		return e
	}
	if len(a.hosts) >= authMaxHosts {
		now := time.Now()
		for k, e := range a.hosts {
			if e.mu.TryLock() {
				if e.until.Before(now) {
					delete(a.hosts, k)
				}
				e.mu.Unlock()
			}
		}
	}
	e := &authHost{}
	a.hosts[h] = e
	return e
}

// check is psql-wire's password validator: constant-time comparison,
// throttled per host, every failure logged as an authentication failure.
func (a *authThrottle) check(want string, log *slog.Logger) func(ctx context.Context, database, user, password string) (context.Context, bool, error) {
	wantB := []byte(want)
	return func(ctx context.Context, database, user, password string) (context.Context, bool, error) {
		remote := ""
		if addr := wire.RemoteAddress(ctx); addr != nil {
			remote = addr.String()
		}
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		h := a.host(host)
		h.mu.Lock()
		defer h.mu.Unlock()
		if wait := time.Until(h.until); wait > 0 {
			select {
			case <-time.After(wait):
			case <-a.stopping.Done():
				return ctx, false, errShutdown
			}
		}
		if subtle.ConstantTimeCompare([]byte(password), wantB) == 1 {
			h.failures, h.until = 0, time.Time{}
			return ctx, true, nil
		}
		h.failures++
		d := min(authBaseDelay<<min(h.failures-1, 10), authMaxDelay)
		h.until = time.Now().Add(d)
		log.Warn("SQL endpoint: authentication failed (wrong password)", "remote", remote, "user", user,
			"database", database, "failures_in_a_row", h.failures, "next_attempt_delayed", d)
		return ctx, false, nil
	}
}

// authLogFilter sits between psql-wire and the configured logger: psql-wire
// reports a refused password and an idle connection closed by its deadline
// as "an unexpected error"; the first is already logged by check as an
// authentication failure, the second is routine.
type authLogFilter struct{ next slog.Handler }

func (f authLogFilter) Enabled(ctx context.Context, l slog.Level) bool { return f.next.Enabled(ctx, l) }
func (f authLogFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return authLogFilter{f.next.WithAttrs(as)}
}
func (f authLogFilter) WithGroup(name string) slog.Handler {
	return authLogFilter{f.next.WithGroup(name)}
}

func (f authLogFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && strings.Contains(r.Message, "unexpected error") {
		var errText string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				errText = a.Value.String()
			}
			return true
		})
		switch {
		case strings.Contains(errText, "invalid username/password"):
			return nil
		case strings.Contains(errText, "i/o timeout"):
			r2 := slog.NewRecord(r.Time, slog.LevelInfo, "SQL endpoint: idle connection closed", r.PC)
			r2.AddAttrs(slog.String("err", errText))
			return f.next.Handle(ctx, r2)
		case strings.Contains(errText, errShutdown.Error()):
			return nil
		}
	}
	if !strings.HasPrefix(r.Message, "SQL endpoint") {
		// psql-wire's own lines ("serving incoming connections", "closing
		// server") do not say which server: a process may run several.
		r2 := slog.NewRecord(r.Time, r.Level, "SQL endpoint: "+r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
		r = r2
	}
	return f.next.Handle(ctx, r)
}

// Connection slots. Config.MaxConns bounds the connections served at once;
// a connection holds a slot from accept. One that has not finished startup
// and authentication holds it at most Config.StartupTimeout (its reads are
// bounded by that instant, however it trickles bytes), and when every slot
// is taken a new connection closes the oldest one still in startup rather
// than being refused: a client that only opens sockets (no startup message,
// or no password) cannot keep the clients that authenticate out, since a
// real client's startup takes milliseconds and an attacker would have to
// open MaxConns sockets within it. Only when every slot holds an
// authenticated session is a connection refused (SQLSTATE 53300), as in
// Postgres.

// admit registers an accepted connection. It returns (nil, true) when the
// server is closed, (nil, false) when c was refused (being answered in the
// background).
func (s *Server) admit(c net.Conn) (*trackedConn, bool) {
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return nil, true
	}
	var evict *trackedConn
	if len(s.conns) >= s.cfg.MaxConns {
		for o := range s.conns {
			t := o.(*trackedConn)
			if !t.started.Load() && (evict == nil || t.startBy.Before(evict.startBy)) {
				evict = t
			}
		}
		if evict == nil {
			s.mu.Unlock()
			s.cfg.Logger.Warn("SQL endpoint: too many connections; refusing one", "remote", c.RemoteAddr().String(), "max", s.cfg.MaxConns)
			go refuseConn(c, s.cfg.MaxConns)
			return nil, false
		}
	}
	tc := &trackedConn{Conn: c, s: s, startBy: now.Add(s.cfg.StartupTimeout)}
	s.conns[tc] = struct{}{}
	s.byAddr[c.RemoteAddr().String()] = tc
	s.mu.Unlock()
	if evict != nil {
		s.cfg.Logger.Warn("SQL endpoint: every connection slot taken; closing the oldest connection still in startup",
			"closed", evict.RemoteAddr().String(), "in_startup_for", now.Sub(evict.startBy.Add(-s.cfg.StartupTimeout)).Round(time.Millisecond),
			"max", s.cfg.MaxConns)
		evict.Close()
	}
	return tc, true
}

// readyForQuery is psql-wire's TxStatus hook, called whenever the session
// writes ReadyForQuery: the first one ends the connection's startup; the
// status itself is txStatus's (cursor.go).
func (s *Server) readyForQuery(ctx context.Context) types.ServerStatus {
	if addr := wire.RemoteAddress(ctx); addr != nil {
		s.mu.Lock()
		tc := s.byAddr[addr.String()]
		s.mu.Unlock()
		if tc != nil {
			tc.started.Store(true)
		}
	}
	return s.txStatus(ctx)
}

// watchdog notices a DuckDB call that keeps running after its statement was
// interrupted. DuckDB's interrupt is a flag its operators check between
// vectors; a single scalar call (levenshtein of two 60,000-character
// strings: 26 s measured with a 3 s timeout) or a constant folded while
// planning does not look at it, so the call, and the client's statement,
// outlive Config.QueryTimeout by as long as the function runs. Nothing in
// the process can stop that thread; Config.OnStuck (the query process:
// exit, and its supervisor starts a fresh one) is called once such a call
// has ignored its interrupt for Config.StuckGrace.
type watchdog struct {
	grace   time.Duration
	onStuck func(time.Duration)
	log     *slog.Logger
	fired   atomic.Bool
}

// watch covers one DuckDB call made with ctx; call the result when it
// returns.
func (w *watchdog) watch(ctx context.Context) func() {
	start := time.Now()
	var (
		mu    sync.Mutex
		done  bool
		timer *time.Timer
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		timer = time.AfterFunc(w.grace, func() {
			mu.Lock()
			finished := done
			mu.Unlock()
			if finished || !w.fired.CompareAndSwap(false, true) {
				return
			}
			running := time.Since(start).Round(time.Millisecond)
			w.log.Error("SQL endpoint: a DuckDB call ignored its interrupt (DuckDB does not check it inside some functions)",
				"running_for", running, "grace", w.grace, "cause", context.Cause(ctx))
			if w.onStuck != nil {
				w.onStuck(running)
			}
		})
	})
	return func() {
		stop()
		mu.Lock()
		done = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
	}
}

// watchedConnector hands out DuckDB connections whose statement calls the
// watchdog covers. The connections embed the driver's own, so everything
// else (named value checks, transactions, Raw's *duckdb.Stmt) is DuckDB's.
type watchedConnector struct {
	*duckdb.Connector
	w *watchdog
}

func (c watchedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	conn, ok := dc.(*duckdb.Conn)
	if !ok {
		return dc, nil
	}
	return &watchedConn{Conn: conn, w: c.w}, nil
}

type watchedConn struct {
	*duckdb.Conn
	w *watchdog
}

func (c *watchedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	defer c.w.watch(ctx)()
	return c.Conn.ExecContext(ctx, query, args)
}

func (c *watchedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	defer c.w.watch(ctx)()
	return c.Conn.QueryContext(ctx, query, args)
}

func (c *watchedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	defer c.w.watch(ctx)()
	return c.Conn.PrepareContext(ctx, query)
}
