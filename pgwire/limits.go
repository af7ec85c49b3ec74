package pgwire

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	wire "github.com/jeroenrinzema/psql-wire"
)

// refuseConn answers a connection beyond Config.MaxConns the way Postgres
// does (FATAL 53300 too_many_connections) and closes it.
func refuseConn(c net.Conn, maxConns int) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	msg := "sorry, too many clients already (the SQL endpoint serves at most " + itoa(maxConns) + " connections)"
	var body []byte
	for _, f := range [][2]string{{"S", "FATAL"}, {"V", "FATAL"}, {"C", "53300"}, {"M", msg}} {
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
