package pgwire

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"

	wire "github.com/jeroenrinzema/psql-wire"
)

// Query cancellation, the Postgres way: each session gets a (process id,
// secret) pair in BackendKeyData; a client that wants to stop a running
// statement (psql on Ctrl-C, pgx with a cancel-request context handler)
// opens a second connection and sends them in a CancelRequest. Without
// this, an abandoned statement would keep running until the timeout.

var (
	errClientCancel = errors.New("canceling statement due to user request")
	errShutdown     = errors.New("the SQL endpoint is shutting down")
)

// session is one client connection's cancel key and running statement.
type session struct {
	pid, secret int32
	mu          sync.Mutex
	cancel      context.CancelCauseFunc // the running statement's, or nil
}

type sessions struct {
	mu     sync.Mutex
	next   int32
	byPID  map[int32]*session
	byAddr map[string]*session // psql-wire identifies a connection by its remote address
}

func newSessions() *sessions {
	return &sessions{byPID: map[int32]*session{}, byAddr: map[string]*session{}}
}

// keyData is psql-wire's BackendKeyDataFunc: it registers the session.
func (ss *sessions) keyData(ctx context.Context) (int32, int32) {
	var b [4]byte
	rand.Read(b[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.next++
	se := &session{pid: ss.next, secret: int32(binary.LittleEndian.Uint32(b[:]))}
	ss.byPID[se.pid] = se
	if addr := wire.RemoteAddress(ctx); addr != nil {
		ss.byAddr[addr.String()] = se
	}
	return se.pid, se.secret
}

// cancelRequest is psql-wire's CancelRequestFn.
func (ss *sessions) cancelRequest(_ context.Context, pid, secret int32) error {
	ss.mu.Lock()
	se := ss.byPID[pid]
	ss.mu.Unlock()
	if se == nil || se.secret != secret {
		return nil // as Postgres: no answer, no hint whether the key exists
	}
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.cancel != nil {
		se.cancel(errClientCancel)
	}
	return nil
}

func (ss *sessions) forget(addr net.Addr) {
	if addr == nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if se := ss.byAddr[addr.String()]; se != nil {
		delete(ss.byAddr, addr.String())
		delete(ss.byPID, se.pid)
	}
}

// running registers cancel as the session's running statement; the returned
// func unregisters it.
func (ss *sessions) running(ctx context.Context, cancel context.CancelCauseFunc) func() {
	addr := wire.RemoteAddress(ctx)
	if addr == nil {
		return func() {}
	}
	ss.mu.Lock()
	se := ss.byAddr[addr.String()]
	ss.mu.Unlock()
	if se == nil {
		return func() {}
	}
	se.mu.Lock()
	se.cancel = cancel
	se.mu.Unlock()
	return func() {
		se.mu.Lock()
		se.cancel = nil
		se.mu.Unlock()
	}
}
