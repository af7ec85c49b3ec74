package pgwire

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"

	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/pkg/types"
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
//
// A cancel request stops the statement the session is running. From the
// moment the client's message is read until the statement starts, and
// between the statements of one message (the describe and the execution of
// a simple query, two statements of one query string), nothing is
// registered; a cancel request that arrives then is kept as pending and
// stops the next statement before the session is idle again, instead of
// being lost (the statement then ran until the timeout: pgx waited out its
// DeadlineDelay). Once the session writes ReadyForQuery it is idle and, as
// in Postgres, a cancel request for an idle session is dropped, so it cannot
// stop a later query.
type session struct {
	pid, secret int32
	mu          sync.Mutex
	cancel      context.CancelCauseFunc // the running statement's, or nil
	busy        bool                    // a client message is being processed
	pending     bool                    // a cancel request came while busy with no statement registered
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
	se.requestCancel()
	return nil
}

func (ss *sessions) at(addr net.Addr) *session {
	if addr == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.byAddr[addr.String()]
}

// received is called for every read from the client at addr (psql-wire
// reads only between statements): the client sent a query, or
// Bind/Execute/Sync, so a statement is on its way even if psql-wire has not
// started it yet.
func (ss *sessions) received(addr net.Addr) {
	if se := ss.at(addr); se != nil {
		se.received()
	}
}

// idle is psql-wire's TxStatus hook, called as each ReadyForQuery is
// written. Every statement runs in its own transaction, so the status is
// always idle.
func (ss *sessions) idle(ctx context.Context) types.ServerStatus {
	if se := ss.at(wire.RemoteAddress(ctx)); se != nil {
		se.idle()
	}
	return types.ServerIdle
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

// running registers cancel as the running statement of ctx's session; the
// returned func unregisters it.
func (ss *sessions) running(ctx context.Context, cancel context.CancelCauseFunc) func() {
	se := ss.at(wire.RemoteAddress(ctx))
	if se == nil {
		return func() {}
	}
	return se.running(cancel)
}

func (se *session) requestCancel() {
	se.mu.Lock()
	defer se.mu.Unlock()
	switch {
	case se.cancel != nil:
		se.cancel(errClientCancel)
	case se.busy:
		se.pending = true
	}
}

func (se *session) received() {
	se.mu.Lock()
	defer se.mu.Unlock()
	se.busy = true
}

// idle: the session waits for the client; a pending cancel request is
// dropped.
func (se *session) idle() {
	se.mu.Lock()
	defer se.mu.Unlock()
	se.busy, se.pending = false, false
}

// running registers a statement; a cancel request that came since the
// client's message was read cancels it at once.
func (se *session) running(cancel context.CancelCauseFunc) func() {
	se.mu.Lock()
	se.cancel = cancel
	se.busy = true
	if se.pending {
		se.pending = false
		cancel(errClientCancel)
	}
	se.mu.Unlock()
	return func() {
		se.mu.Lock()
		se.cancel = nil
		se.mu.Unlock()
	}
}
