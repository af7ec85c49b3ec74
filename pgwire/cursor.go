package pgwire

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
	"github.com/jeroenrinzema/psql-wire/pkg/buffer"
	"github.com/jeroenrinzema/psql-wire/pkg/types"
)

// Transactions and cursors, as Postgres clients use them.
//
// BEGIN, COMMIT, ROLLBACK and savepoints are accepted and run nothing: every
// statement still reads its own snapshot in its own read-only transaction.
// But the session remembers that the client opened a transaction and says so
// in ReadyForQuery ('T'): psql-wire drops a session's portals whenever it
// reports idle, so pgjdbc's fetchSize with autocommit off lost its portal
// after the first batch ("portal C_5 does not exist"), and psycopg2 needs
// the transaction for its named cursors.
//
// DECLARE name CURSOR FOR query / FETCH n FROM name / CLOSE name stream the
// query through one DuckDB result, kept open between FETCHes (one chunk in
// memory at a time). A cursor without WITH HOLD needs a transaction and ends
// with it, as in Postgres.

// clientState is one session's transaction flag and cursors. It lives in
// the session's portal cache (psql-wire makes one per session) and is
// touched only by the session's goroutine.
type clientState struct {
	inTx    bool
	cursors map[string]*cursor
	// readyIdle is set when ReadyForQuery reports idle: psql-wire then
	// closes the session's portals, which must not close WITH HOLD cursors;
	// a close without it is the session's end.
	readyIdle bool
}

func clientOf(ctx context.Context) *clientState {
	if se, ok := wire.GetSession(ctx); ok {
		if p, ok := se.Portals.(*portals); ok {
			return p.cs
		}
	}
	return &clientState{cursors: map[string]*cursor{}} // not a session: nothing to keep
}

// txStatus is psql-wire's TxStatus hook (called as each ReadyForQuery is
// written): the cancel bookkeeping learns the session is idle, and the
// client learns whether it is inside BEGIN.
func (s *Server) txStatus(ctx context.Context) types.ServerStatus {
	s.sessions.idle(ctx)
	cs := clientOf(ctx)
	if cs.inTx {
		return types.ServerTransactionBlock
	}
	cs.readyIdle = true
	return types.ServerIdle
}

// endTx ends the client's transaction: cursors without WITH HOLD close.
func (cs *clientState) endTx() {
	cs.inTx = false
	for name, c := range cs.cursors {
		if !c.hold {
			c.close()
			delete(cs.cursors, name)
		}
	}
}

// limitedKey marks the context of a portal whose first Execute carried a
// row limit: its result is streamed (see execute).
type limitedKey struct{}

// portals is psql-wire's portal cache of one session, telling each
// portal's statement whether the client fetches it in batches, and holding
// the session's clientState.
type portals struct {
	wire.PortalCache
	cs *clientState
}

func (p *portals) Execute(ctx context.Context, name string, limit wire.Limit, r *buffer.Reader, w *buffer.Writer) error {
	return p.PortalCache.Execute(context.WithValue(ctx, limitedKey{}, limit != wire.NoLimit), name, limit, r, w)
}

// Close is called when ReadyForQuery reports idle and when the session
// ends: then the session's cursors close too.
func (p *portals) Close() {
	p.PortalCache.Close()
	if p.cs.readyIdle {
		p.cs.readyIdle = false
		return
	}
	for name, c := range p.cs.cursors {
		c.close()
		delete(p.cs.cursors, name)
	}
}

func newPortals() wire.PortalCache {
	return &portals{PortalCache: wire.DefaultPortalCacheFn(), cs: &clientState{cursors: map[string]*cursor{}}}
}

// txStatement answers BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE, or returns
// nil for other statements.
func (s *Server) txStatement(text string) *wire.PreparedStatement {
	f := strings.Fields(strings.ToUpper(strings.TrimRight(strings.TrimSpace(stripLeadingComments(text)), "; \t\n")))
	if len(f) == 0 {
		return nil
	}
	var change func(*clientState)
	tag := f[0]
	switch f[0] {
	case "BEGIN", "START":
		tag = "BEGIN"
		change = func(cs *clientState) { cs.inTx = true }
	case "COMMIT", "END":
		tag = "COMMIT"
		change = (*clientState).endTx
	case "ABORT":
		tag = "ROLLBACK"
		change = (*clientState).endTx
	case "ROLLBACK":
		if len(f) > 1 && f[1] == "TO" {
			break // ROLLBACK TO SAVEPOINT: the transaction goes on
		}
		change = (*clientState).endTx
	case "SAVEPOINT", "RELEASE":
	default:
		return nil
	}
	s.logf("transaction statement (no-op; every statement reads its own snapshot): %s", text)
	return wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		if change != nil {
			change(clientOf(ctx))
		}
		return w.Complete(tag)
	})
}

// maxCursors is the most cursors one session may have open: each holds a
// DuckDB connection and its read transaction.
const maxCursors = 16

// cursor is a declared cursor: its statement, and once DECLARE ran, its
// stream and the rows of the current chunk not fetched yet.
type cursor struct {
	name   string
	hold   bool
	d      described
	text   string
	st     *stream
	ctx    context.Context
	cancel context.CancelCauseFunc
	buf    [][]any
}

func (c *cursor) close() {
	if c.st != nil {
		c.st.close()
		c.st = nil
	}
	if c.cancel != nil {
		c.cancel(nil)
	}
}

var (
	declareRE = regexp.MustCompile(`(?is)^\s*DECLARE\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s+((?:(?:BINARY|INSENSITIVE|ASENSITIVE|SCROLL|NO\s+SCROLL)\s+)*)CURSOR\s+(?:(WITH|WITHOUT)\s+HOLD\s+)?FOR\s+(.*)$`)
	fetchRE   = regexp.MustCompile(`(?is)^\s*(FETCH|MOVE)\s+(?:(NEXT|FORWARD\s+ALL|FORWARD\s+\d+|FORWARD|ALL|\d+)\s+)?(?:(?:FROM|IN)\s+)?("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s*;?\s*$`)
	closeRE   = regexp.MustCompile(`(?is)^\s*CLOSE\s+(ALL|"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s*;?\s*$`)
)

// cursorName is the name as Postgres folds it: quoted kept, else lower case.
func cursorName(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return strings.ToLower(s)
}

// cursorStatement prepares DECLARE, FETCH/MOVE and CLOSE, or returns nil, nil
// for other statements.
func (s *Server) cursorStatement(ctx context.Context, text string, clientOIDs []uint32) (*wire.PreparedStatement, error) {
	body := stripLeadingComments(text)
	switch firstWord(body) {
	case "DECLARE":
		return s.declare(ctx, body, clientOIDs)
	case "FETCH", "MOVE":
		return s.fetch(ctx, body)
	case "CLOSE":
		m := closeRE.FindStringSubmatch(body)
		if m == nil {
			return nil, pgError(fmt.Errorf("cannot read this CLOSE statement"), codeSyntax, "CLOSE name or CLOSE ALL")
		}
		return s.newStatement(body, func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
			cs := clientOf(ctx)
			if strings.EqualFold(m[1], "ALL") {
				for name, c := range cs.cursors {
					c.close()
					delete(cs.cursors, name)
				}
				return w.Complete("CLOSE CURSOR")
			}
			name := cursorName(m[1])
			c, ok := cs.cursors[name]
			if !ok {
				return pgError(fmt.Errorf("cursor %q does not exist", name), codes.InvalidCursorName, "")
			}
			c.close()
			delete(cs.cursors, name)
			return w.Complete("CLOSE CURSOR")
		}), nil
	}
	return nil, nil
}

func (s *Server) declare(ctx context.Context, body string, clientOIDs []uint32) (*wire.PreparedStatement, error) {
	m := declareRE.FindStringSubmatch(body)
	if m == nil {
		return nil, pgError(fmt.Errorf("cannot read this DECLARE statement"), codeSyntax, "DECLARE name [NO SCROLL] CURSOR [WITH HOLD] FOR query")
	}
	name, hold, query := cursorName(m[1]), strings.EqualFold(m[3], "WITH"), strings.TrimRight(strings.TrimSpace(m[4]), ";")
	if strings.Contains(strings.ToUpper(m[2]), "BINARY") {
		return nil, pgError(fmt.Errorf("binary cursors are not supported"), codes.FeatureNotSupported, "declare the cursor without BINARY")
	}
	text, d, err := s.query(ctx, query, clientOIDs)
	if err != nil {
		return nil, err
	}
	// Registered now, so a FETCH parsed in the same query string (before
	// this DECLARE runs) knows the columns.
	cs := clientOf(ctx)
	c := &cursor{name: name, hold: hold, d: d, text: text}
	return s.newStatement(body, func(ctx context.Context, w wire.DataWriter, ps []wire.Parameter) error {
		if !hold && !cs.inTx {
			return pgError(fmt.Errorf("DECLARE CURSOR can only be used in transaction blocks"), codes.NoActiveSQLTransaction, "run BEGIN first, or declare the cursor WITH HOLD")
		}
		if old, ok := cs.cursors[name]; ok && old.st != nil {
			return pgError(fmt.Errorf("cursor %q already exists", name), codes.DuplicateCursor, "")
		}
		open := 0
		for _, c := range cs.cursors {
			if c.st != nil {
				open++
			}
		}
		if open >= maxCursors {
			return pgError(fmt.Errorf("%d cursors are open in this session, the most the endpoint allows", open), codeLimit, "CLOSE cursors no longer needed")
		}
		args, err := bindArgs(ps, d.params)
		if err != nil {
			return err
		}
		c.ctx, c.cancel = context.WithCancelCause(s.stopping)
		st, err := s.streams.openStream(c.ctx, text, d.kind, args)
		if err != nil {
			c.cancel(nil)
			return s.stmtError(c.ctx, err, "")
		}
		c.st = st
		cs.cursors[name] = c
		return w.Complete("DECLARE CURSOR")
	}, wire.WithParameters(d.params)), registerDeclared(cs, c)
}

// registerDeclared makes a declared cursor's columns known to FETCHes
// parsed before the DECLARE runs.
func registerDeclared(cs *clientState, c *cursor) error {
	if old, ok := cs.cursors[c.name]; !ok || old.st == nil {
		cs.cursors[c.name] = c
	}
	return nil
}

func (s *Server) fetch(ctx context.Context, body string) (*wire.PreparedStatement, error) {
	m := fetchRE.FindStringSubmatch(body)
	if m == nil {
		return nil, pgError(fmt.Errorf("cannot read this %s statement: only forward fetches are supported", firstWord(body)), codes.FeatureNotSupported,
			"FETCH [NEXT | FORWARD [n | ALL] | n | ALL] [FROM] name")
	}
	move := strings.EqualFold(m[1], "MOVE")
	count := -1 // all
	switch dir := strings.ToUpper(strings.Join(strings.Fields(m[2]), " ")); {
	case dir == "" || dir == "NEXT" || dir == "FORWARD":
		count = 1
	case dir == "ALL" || dir == "FORWARD ALL":
	default:
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(dir, "FORWARD")))
		if err != nil || n < 0 {
			return nil, pgError(fmt.Errorf("bad row count in %q", body), codeSyntax, "")
		}
		count = n
	}
	name := cursorName(m[3])
	c, ok := clientOf(ctx).cursors[name]
	if !ok {
		return nil, pgError(fmt.Errorf("cursor %q does not exist", name), codes.InvalidCursorName, "")
	}
	var opts []wire.PreparedOptionFn
	if !move {
		opts = append(opts, wire.WithColumns(c.d.columns))
	}
	return s.newStatement(body, func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		c, ok := clientOf(ctx).cursors[name]
		if !ok || c.st == nil {
			return pgError(fmt.Errorf("cursor %q does not exist", name), codes.InvalidCursorName, "")
		}
		n, err := s.fetchRows(ctx, c, count, move, w)
		if err != nil {
			return err
		}
		if move {
			return w.Complete(fmt.Sprintf("MOVE %d", n))
		}
		return w.Complete(fmt.Sprintf("FETCH %d", n))
	}, opts...), nil
}

// fetchRows sends (or skips, for MOVE) up to count rows of the cursor
// (count < 0: all). Each wait for DuckDB is bounded by Config.QueryTimeout
// and can be canceled by the client.
func (s *Server) fetchRows(ctx context.Context, c *cursor, count int, move bool, w wire.DataWriter) (int, error) {
	unregister := s.sessions.running(c.ctx, c.cancel)
	defer unregister()
	timer := time.AfterFunc(s.cfg.QueryTimeout, func() { c.cancel(context.DeadlineExceeded) })
	timer.Stop()
	n := 0
	for count < 0 || n < count {
		if len(c.buf) == 0 {
			timer.Reset(s.cfg.QueryTimeout)
			rows, err := c.st.next(c.ctx)
			timer.Stop()
			if err != nil {
				return n, s.stmtError(c.ctx, err, "")
			}
			if rows == nil {
				break
			}
			c.buf = rows
		}
		k := len(c.buf)
		if count >= 0 {
			k = min(k, count-n)
		}
		if !move {
			if err := toWireRows(c.d.columns, c.buf[:k], n); err != nil {
				return n, err
			}
			if err := wire.WriteRows(w, c.buf[:k]); err != nil {
				return n, err
			}
		}
		c.buf = c.buf[k:]
		n += k
	}
	return n, nil
}

// streamCtx bounds one streamed or plain statement.
type streamCtx struct {
	ctx     context.Context
	cancel  func()
	timer   *time.Timer // streamed: restarted for each wait for DuckDB
	timeout time.Duration
}

// fetch reads the next chunk, under the inactivity timer when streamed.
func (sc *streamCtx) fetch(st *stream) ([][]any, error) {
	if sc.timer != nil {
		sc.timer.Reset(sc.timeout)
		defer sc.timer.Stop()
	}
	return st.next(sc.ctx)
}

// plainContext bounds the whole statement by Config.QueryTimeout.
func (s *Server) plainContext(ctx context.Context) *streamCtx {
	c, cancel := s.statementContext(ctx)
	return &streamCtx{ctx: c, cancel: cancel}
}

// streamContext bounds each wait for DuckDB by Config.QueryTimeout but not
// the time the client takes between batches (it may fetch for hours; the
// connection's idle timeout still ends an abandoned one).
func (s *Server) streamContext(ctx context.Context) *streamCtx {
	ctx, cancelCause := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.stopping, func() { cancelCause(errShutdown) })
	unregister := s.sessions.running(ctx, cancelCause)
	timer := time.AfterFunc(s.cfg.QueryTimeout, func() { cancelCause(context.DeadlineExceeded) })
	return &streamCtx{ctx: ctx, timer: timer, timeout: s.cfg.QueryTimeout, cancel: func() {
		timer.Stop()
		unregister()
		stop()
		cancelCause(nil)
	}}
}
