// Package pgwire serves a DuckDB database over the Postgres wire protocol,
// read-only, so psql, pgx, Grafana or DBeaver can query the processor's
// DuckDB file while the processor keeps writing it. (DuckDB lets one process
// open a file, even read-only, so the writer must serve the readers.)
//
// Nothing a client sends may change a file, a setting or state. Three locks
// (docs/sql.md): DuckDB's own (gtsmsql.Lockdown at Listen: no external
// access except Config.AllowDirs, no extension autoinstall/autoload,
// configuration locked; instance-wide, so the processor's SETs must come
// first); the endpoint's own connections on the same DuckDB instance; and a
// statement guard (guard.go) run before anything is prepared, which lets
// only queries and EXPLAIN of queries through and refuses state-changing
// functions, after which DuckDB's statement type must agree.
//
// Every statement runs on one of the endpoint's connections, in its own
// `BEGIN TRANSACTION READ ONLY` transaction: it sees a snapshot of committed
// data (a batch the processor commits in one transaction is seen whole or
// not at all). Results stream from DuckDB one chunk at a time (stream.go),
// so memory is bounded whatever their size. A plain query is interrupted
// after Config.QueryTimeout and refused with SQLSTATE 54000 past
// Config.RowCap rows rather than silently cut; COPY (query) TO STDOUT
// (copy.go), cursors and portals the client fetches with a row limit
// (cursor.go) stream without the cap, the timeout bounding each wait for
// DuckDB. SET (and PRAGMA name=value) is acknowledged and not run;
// BEGIN/COMMIT/ROLLBACK and savepoints are acknowledged and tracked for the
// client (ReadyForQuery says 'T' inside BEGIN) but every statement still
// reads its own snapshot. Clients see a Postgres 15 catalog (compat.go,
// catalog.go): schema public, Postgres type oids, no internal tables.
// Connections are limited (Config.MaxConns), idle ones closed
// (Config.IdleTimeout), wrong passwords slowed down per host and logged as
// authentication failures; failed statements are logged at info.
//
// Wiring (cmd/gtsm/serve.go does this for `gtsm process`): once the DuckDB
// file is open and migrated (processor.Config.OnDB),
//
//	srv, err := pgwire.Listen(db, pgwire.Config{Addr: sqlAddr, Password: password, Logger: logger})
//	if err != nil {
//		return err // e.g. the port is taken: fail before processing anything
//	}
//	go func() { errc <- srv.Serve(ctx) }() // nil once ctx is done
//	...
//	srv.Close() // before the database is closed
//
// Close stops accepting, interrupts running statements, closes client
// connections and waits for them: after it returns the server no longer
// uses the *sql.DB. Config.RowCap and Config.QueryTimeout have defaults
// (100,000 rows, 30 s) a command may expose as flags.
package pgwire

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	wire "github.com/jeroenrinzema/psql-wire"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Config configures the endpoint. The zero value serves 127.0.0.1:5433.
type Config struct {
	// Addr is host:port to listen on (default 127.0.0.1:5433; port 0 picks one).
	Addr string
	// RowCap is the most rows one plain query may return (default 100000);
	// COPY TO STDOUT, cursors and fetches with a row limit stream past it.
	RowCap int
	// QueryTimeout interrupts a statement that runs longer (default 30s).
	QueryTimeout time.Duration
	// Password, when set, is required from every client (any user name).
	// It is mandatory when Addr is not a loopback address: the endpoint
	// serves the whole database (and AllowDirs).
	// Note: Postgres cleartext password auth; use it on trusted networks.
	Password string
	// Logger receives connection and error logs (default slog.Default()).
	Logger *slog.Logger
	// AllowDirs are directories statements may read files from (DuckDB's
	// allowed_directories); none by default: no file outside the database.
	AllowDirs []string
	// MemoryLimit, when set, is DuckDB's memory_limit ("2GB"). DuckDB has
	// it per instance only, so it bounds the processor too.
	MemoryLimit string
	// MaxConns is the most client connections served at once (default 64);
	// more are answered with SQLSTATE 53300 and closed.
	MaxConns int
	// IdleTimeout closes a connection that sends nothing for this long
	// (default 10m).
	IdleTimeout time.Duration
	// StartupTimeout is how long a connection may take from accept to the
	// end of its startup and authentication (default 10s; see limits.go).
	StartupTimeout time.Duration
	// Listener, when set, is served instead of listening on Addr (a query
	// process serving a socket its supervisor bound and keeps open).
	Listener net.Listener
	// OnStuck, when set, is called once for a DuckDB call that has not
	// returned StuckGrace (default 3s) after its statement was interrupted
	// (timeout, cancel request or Close): DuckDB checks interrupts between
	// vectors, not inside every function, and only the end of the process
	// stops such a call. The query process exits there so its supervisor
	// restarts it; nil only logs.
	OnStuck    func(running time.Duration)
	StuckGrace time.Duration
}

const (
	DefaultAddr         = "127.0.0.1:5433"
	DefaultRowCap       = 100000
	DefaultQueryTimeout = 30 * time.Second
	DefaultMaxConns     = 64
	DefaultIdleTimeout  = 10 * time.Minute
	// DefaultStartupTimeout bounds startup + authentication. Postgres'
	// authentication_timeout is 1 min, sized for Kerberos/LDAP round trips;
	// here a client sends one startup message and at most one cleartext
	// password (psql, pgx, Grafana finish in milliseconds on loopback and
	// well under a second across a WAN), and the password throttle delays
	// a host's attempt by at most authMaxDelay (5s): 10s covers both with
	// room, and a silent socket holds a slot 6x less long than Postgres'.
	DefaultStartupTimeout = 10 * time.Second
	DefaultStuckGrace     = 3 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.RowCap <= 0 {
		c.RowCap = DefaultRowCap
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.StartupTimeout <= 0 {
		c.StartupTimeout = DefaultStartupTimeout
	}
	if c.StuckGrace <= 0 {
		c.StuckGrace = DefaultStuckGrace
	}
	return c
}

// Server is a listening endpoint; see Listen.
type Server struct {
	cfg    Config
	db     *sql.DB // the endpoint's own connections (see Listen)
	path   string  // the DuckDB file served, absolute
	ln     net.Listener
	wire   *wire.Server
	parser *parser

	// stopping is canceled by Close: running statements are interrupted.
	stopping context.Context
	stop     context.CancelFunc
	mu       sync.Mutex
	conns    map[net.Conn]struct{} // open client connections, closed by Close
	byAddr   map[string]*trackedConn
	closed   bool

	sessions *sessions
	auth     *authThrottle
	streams  *streamer // native connections for streamed results (stream.go)

	closeOnce sync.Once
	closeErr  error
}

// Serve listens on cfg.Addr and serves db until ctx is done.
func Serve(ctx context.Context, db *sql.DB, cfg Config) error {
	s, err := Listen(db, cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Listen binds the address (so a taken port fails here, before anything else
// starts) and prepares the server; call Serve to accept clients.
func Listen(db *sql.DB, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Listener != nil {
		cfg.Addr = cfg.Listener.Addr().String()
	}
	if cfg.Password == "" && !isLoopback(cfg.Addr) {
		return nil, fmt.Errorf("SQL endpoint %s is not a loopback address: set a password (it can read files of this machine), or bind 127.0.0.1", cfg.Addr)
	}
	ctx := context.Background()
	path, err := gtsmsql.DatabasePath(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("SQL endpoint: %w", err)
	}
	if path == "" {
		return nil, errors.New("SQL endpoint: serves a DuckDB file, not an in-memory database")
	}
	// DuckDB's protections first: they hold whatever a statement looks like.
	if err := (gtsmsql.Lockdown{AllowDirs: cfg.AllowDirs, MemoryLimit: cfg.MemoryLimit}).Apply(ctx, db); err != nil {
		return nil, fmt.Errorf("SQL endpoint: %w", err)
	}
	// The endpoint's own connections, on the same DuckDB instance (the
	// driver's instance cache hands out the open database for the same
	// path), so they never mix with the processor's pooled connections and
	// each gets the endpoint's per-connection setup.
	// The DSN must repeat the instance's access mode, or the cache refuses.
	dsn := path
	var mode string
	if err := db.QueryRowContext(ctx, `SELECT current_setting('access_mode')::VARCHAR`).Scan(&mode); err != nil {
		return nil, fmt.Errorf("SQL endpoint: read DuckDB access_mode: %w", err)
	}
	if strings.EqualFold(mode, "read_only") {
		dsn += "?access_mode=read_only"
	}
	connector, err := duckdb.NewConnector(dsn, initConn)
	if err != nil {
		return nil, fmt.Errorf("SQL endpoint: connect to DuckDB %s: %w", path, err)
	}
	w := &watchdog{grace: cfg.StuckGrace, onStuck: cfg.OnStuck, log: cfg.Logger}
	own := sql.OpenDB(watchedConnector{connector, w})
	own.SetMaxOpenConns(cfg.MaxConns)
	own.SetMaxIdleConns(4)
	p, err := newParser()
	if err != nil {
		own.Close()
		return nil, err
	}
	streams, err := newStreamer(path, strings.EqualFold(mode, "read_only"))
	if err != nil {
		p.close()
		own.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, db: own, path: path, parser: p, conns: map[net.Conn]struct{}{}, byAddr: map[string]*trackedConn{},
		sessions: newSessions(), streams: streams}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.auth = newAuthThrottle(s.stopping)
	opts := []wire.OptionFn{
		wire.Logger(slog.New(authLogFilter{cfg.Logger.Handler()})),
		wire.Version(serverVersion),
		wire.BackendKeyData(s.sessions.keyData),
		wire.CancelRequest(s.sessions.cancelRequest),
		wire.TxStatus(s.readyForQuery),
		wire.Portals(newPortals),
		wire.ExtendTypes(pgTextTypes),
		wire.GlobalParameters(wire.Parameters{"DateStyle": "ISO, MDY", "TimeZone": "UTC", "integer_datetimes": "on",
			// DuckDB strings are standard: a backslash is an ordinary character.
			"standard_conforming_strings": "on"}),
	}
	if cfg.Password != "" {
		opts = append(opts, wire.SessionAuthStrategy(wire.ClearTextPassword(s.auth.check(cfg.Password, cfg.Logger))))
	}
	s.wire, err = wire.NewServer(s.parse, opts...)
	if err != nil {
		p.close()
		streams.close()
		own.Close()
		return nil, fmt.Errorf("SQL endpoint: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
	}
	if err != nil {
		p.close()
		own.Close()
		streams.close()
		return nil, fmt.Errorf("SQL endpoint: listen on %s: %w", cfg.Addr, err)
	}
	s.ln = &trackingListener{Listener: ln, s: s}
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts clients until ctx is done or Close is called; then it closes
// the listener and client connections and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	err := s.wire.Serve(s.ln)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("SQL endpoint %s: %w", s.cfg.Addr, err)
	}
	return nil
}

// Close stops accepting, interrupts running statements, closes client
// connections and waits for their goroutines: once it returns, the server
// no longer touches the *sql.DB, which may then be closed.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.closeErr = s.wire.Close()
		s.mu.Lock()
		s.closed = true
		open := make([]net.Conn, 0, len(s.conns))
		for c := range s.conns {
			open = append(open, c)
		}
		s.mu.Unlock()
		for _, c := range open {
			c.Close()
		}
		s.wire.Wait()
		s.parser.close()
		s.streams.close()
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("SQL endpoint: close its DuckDB connections: %w", err)
		}
	})
	return s.closeErr
}

// trackingListener remembers accepted connections so Close can end them
// (psql-wire's own Close only stops the listener).
type trackingListener struct {
	net.Listener
	s *Server
}

// Accept retries temporary failures (EMFILE when file descriptors run out:
// the clients holding them will close) instead of ending the server, and
// turns away connections beyond Config.MaxConns.
func (l *trackingListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.s.stopping.Err() != nil {
				return nil, net.ErrClosed
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.s.cfg.Logger.Warn("SQL endpoint: accept failed; retrying", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.s.stopping.Done():
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		tc, ok := l.s.admit(c)
		if !ok {
			continue
		}
		if tc == nil {
			return nil, net.ErrClosed
		}
		return tc, nil
	}
}

type trackedConn struct {
	net.Conn
	s      *Server
	once   sync.Once
	writes int // Write calls so far (only the handshake's are rewritten)
	// startBy is when startup and authentication must be done; started is
	// set at the first ReadyForQuery (limits.go).
	startBy time.Time
	started atomic.Bool
}

// psql-wire v0.20 overwrites the server_version parameter with "150000",
// which libpq reads as version 15000.0 (psycopg2 reports 1500000000): the
// handshake's ParameterStatus message is rewritten to ours.
var (
	wireVersionMsg = paramStatus("server_version", "150000")
	ourVersionMsg  = paramStatus("server_version", serverVersion)
)

func paramStatus(k, v string) []byte {
	body := k + "\x00" + v + "\x00"
	b := []byte{'S', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if c.writes < 16 {
		c.writes++
		if i := bytes.Index(b, wireVersionMsg); i >= 0 {
			fixed := append(append(append([]byte{}, b[:i]...), ourVersionMsg...), b[i+len(wireVersionMsg):]...)
			if _, err := c.Conn.Write(fixed); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	return c.Conn.Write(b)
}

// Read waits at most Config.IdleTimeout for the client: psql-wire reads
// only between statements, so this bounds idle time, not statements. What
// it reads marks the session busy for cancel requests (cancel.go).
func (c *trackedConn) Read(b []byte) (int, error) {
	deadline := time.Now().Add(c.s.cfg.IdleTimeout)
	if !c.started.Load() && c.startBy.Before(deadline) {
		deadline = c.startBy
	}
	c.Conn.SetReadDeadline(deadline)
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.s.sessions.received(c.RemoteAddr())
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		if c.s.byAddr[c.RemoteAddr().String()] == c {
			delete(c.s.byAddr, c.RemoteAddr().String())
		}
		c.s.mu.Unlock()
		c.s.sessions.forget(c.RemoteAddr())
	})
	return c.Conn.Close()
}

// statementContext bounds a statement by the timeout, by Close, and by the
// client's cancel requests; context.Cause tells which ended it.
func (s *Server) statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancelCause := context.WithCancelCause(ctx)
	ctx, cancelTimeout := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	stop := context.AfterFunc(s.stopping, func() { cancelCause(errShutdown) })
	unregister := s.sessions.running(ctx, cancelCause)
	return ctx, func() {
		unregister()
		stop()
		cancelTimeout()
		cancelCause(nil)
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parse is psql-wire's ParseFn: it splits the query text into statements and
// describes each (columns and parameter types are needed before execution,
// for RowDescription and for the extended protocol's Describe).
func (s *Server) parse(ctx context.Context, q wire.Query) (_ wire.PreparedStatements, err error) {
	// A bug in the statement handling must fail the statement, not the
	// process (psql-wire does not recover a panic in parse).
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("SQL endpoint: statement handling panicked", "panic", r)
			err = pgError(fmt.Errorf("internal error handling the statement: %v", r), codeInternal, "")
		}
	}()
	texts, rest := splitStatements(q.Query)
	if rest != "" {
		texts = append(texts, rest)
	}
	if len(texts) == 0 {
		return wire.Prepared(wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
			return w.Empty()
		})), nil
	}
	if !q.SimpleQuery && len(texts) > 1 {
		return nil, pgError(errors.New("cannot insert multiple commands into a prepared statement"), codeSyntax, "")
	}
	var out wire.PreparedStatements
	for _, text := range texts {
		st, err := s.prepare(ctx, text, q.ParameterOIDs)
		if err != nil {
			s.logStmtError(text, err)
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) logf(format string, args ...any) {
	s.cfg.Logger.Debug(fmt.Sprintf(format, args...))
}

// discard is a logger for tests and tools that want silence.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Quiet returns a logger that drops everything (for Config.Logger).
func Quiet() *slog.Logger { return discard }

// firstWord is the statement's command tag for no-op statements (SET, BEGIN).
func firstWord(text string) string {
	f := strings.Fields(strings.TrimSpace(stripLeadingComments(text)))
	if len(f) == 0 {
		return ""
	}
	return strings.ToUpper(f[0])
}
