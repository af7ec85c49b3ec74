package shell

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Backend runs one SQL statement and returns its whole result. The shell
// has two: the processor's SQL endpoint (Postgres wire) and a DuckDB file
// opened read-only. Both render cells the same way, so output does not
// depend on the path taken.
type Backend interface {
	Exec(ctx context.Context, sql string, args ...any) (*Result, error)
	// Describe says what the shell is talking to, for the user.
	Describe() string
	Close() error
}

// Result is a statement's result set, already rendered to text.
type Result struct {
	Columns []Column
	Rows    [][]Cell
}

// Column is a result column; Kind drives alignment (table) and quoting (json).
type Column struct {
	Name string
	Kind Kind
	// Double marks FLOAT and DOUBLE columns, which table mode shows to
	// DoubleDigits significant digits (the other modes print them whole).
	Double bool
}

// Kind is how a column's values behave in output.
type Kind int

const (
	KindText Kind = iota
	KindNumber
	KindBool
)

// Cell is one value as text; Null marks SQL NULL.
type Cell struct {
	Text string
	Null bool
}

// PG is the Postgres-wire backend (the processor's endpoint).
type PG struct {
	conn *pgx.Conn
	cfg  *pgx.ConnConfig
	addr string
}

// DialPG connects to a gtsm SQL endpoint (or any Postgres server).
func DialPG(ctx context.Context, addr, password string, timeout time.Duration) (*PG, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("SQL endpoint address %q: %w", addr, err)
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=gtsm dbname=gtsm sslmode=disable", host, port))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	cfg.ConnectTimeout = timeout
	// The shell sends one statement at a time with its arguments inlined by
	// pgx: one round trip per statement and text results, which the shell
	// prints as the server rendered them.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	// An interrupted statement (Ctrl-C) is stopped on the server with a
	// Postgres cancel request, and the connection stays usable.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to SQL endpoint %s: %w", addr, err)
	}
	return &PG{conn: c, cfg: cfg, addr: addr}, nil
}

func (p *PG) Describe() string {
	return "the processor's SQL endpoint " + p.addr + " (read-only; COPY ... TO files needs --db with the processor stopped)"
}

func (p *PG) Close() error { return p.conn.Close(context.Background()) }

func (p *PG) Exec(ctx context.Context, q string, args ...any) (*Result, error) {
	if p.conn.IsClosed() {
		// pgx drops the connection when a statement is interrupted (Ctrl-C):
		// the next statement gets a fresh one.
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return nil, fmt.Errorf("reconnect to SQL endpoint %s: %w", p.addr, err)
		}
		p.conn = c
	}
	rows, err := p.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, pgErr(err)
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	res := &Result{Columns: make([]Column, len(fds))}
	for i, fd := range fds {
		res.Columns[i] = Column{Name: fd.Name, Kind: kindForOID(fd.DataTypeOID), Double: fd.DataTypeOID == pgtype.Float4OID || fd.DataTypeOID == pgtype.Float8OID}
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]Cell, len(raw))
		for i, b := range raw {
			if b == nil {
				row[i] = Cell{Null: true}
				continue
			}
			row[i] = Cell{Text: pgText(fds[i].DataTypeOID, string(b))}
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, pgErr(err)
	}
	return res, nil
}

// pgErr shows a server error the way DuckDB wrote it (plus the endpoint's hint).
func pgErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Hint != "" {
			msg += "\nHint: " + pe.Hint
		}
		return errors.New(msg)
	}
	return err
}

func kindForOID(oid uint32) Kind {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID:
		return KindNumber
	case pgtype.BoolOID:
		return KindBool
	}
	return KindText
}

// pgText maps Postgres text renderings back to DuckDB's (t -> true, floats
// in the shortest plain form) so both backends print the same.
func pgText(oid uint32, s string) string {
	switch oid {
	case pgtype.BoolOID:
		if s == "t" {
			return "true"
		}
		if s == "f" {
			return "false"
		}
	case pgtype.Float8OID, pgtype.Float4OID:
		bits := 64
		if oid == pgtype.Float4OID {
			bits = 32
		}
		if f, err := strconv.ParseFloat(s, bits); err == nil {
			if bits == 32 {
				return pgwire.Text(float32(f))
			}
			return pgwire.Text(f)
		}
	}
	return s
}

// Local is a DuckDB file opened read-only (no processor running).
type Local struct {
	db   *sql.DB
	conn *sql.Conn
	path string
}

// OpenLocal opens path read-only; it fails when another process (a running
// processor) holds the file, naming that process. The DuckDB instance is
// locked down (gtsmsql.Lockdown): no file, URL, ATTACH or extension outside
// the database except under allowDirs, where COPY ... TO may write (the
// export path), and no configuration change.
func OpenLocal(ctx context.Context, path string, allowDirs ...string) (*Local, error) {
	if _, err := os.Stat(path); err != nil {
		// A missing file is named here, before DuckDB's vaguer message.
		return nil, fmt.Errorf("open DuckDB %s: %w", path, err)
	}
	db, err := gtsmsql.Open(ctx, path, true)
	if err != nil {
		return nil, err
	}
	if err := (gtsmsql.Lockdown{AllowDirs: allowDirs}).Apply(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open DuckDB %s: %w", path, err)
	}
	// One connection for the whole session, so SET and temp objects persist
	// between statements as in any SQL shell.
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open DuckDB %s: %w", path, err)
	}
	return &Local{db: db, conn: conn, path: path}, nil
}

func (l *Local) Describe() string {
	return "DuckDB file " + l.path + " (read-only)"
}

func (l *Local) Close() error {
	cerr := l.conn.Close()
	if err := l.db.Close(); err != nil {
		return err
	}
	return cerr
}

func (l *Local) Exec(ctx context.Context, q string, args ...any) (*Result, error) {
	rows, err := l.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: make([]Column, len(types))}
	for i, t := range types {
		res.Columns[i] = Column{Name: t.Name(), Kind: kindForDuckDB(t.DatabaseTypeName()), Double: t.DatabaseTypeName() == "FLOAT" || t.DatabaseTypeName() == "DOUBLE"}
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]Cell, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = Cell{Null: true}
				continue
			}
			row[i] = Cell{Text: duckText(types[i].DatabaseTypeName(), v)}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

func kindForDuckDB(t string) Kind {
	switch {
	case t == "BOOLEAN":
		return KindBool
	case strings.HasPrefix(t, "DECIMAL"), strings.HasSuffix(t, "INT") && !strings.Contains(t, "["),
		t == "TINYINT", t == "SMALLINT", t == "INTEGER", t == "BIGINT", t == "HUGEINT", t == "UTINYINT",
		t == "USMALLINT", t == "UINTEGER", t == "UBIGINT", t == "UHUGEINT", t == "FLOAT", t == "DOUBLE":
		return KindNumber
	}
	return KindText
}

// duckText renders like the endpoint does (pgwire.Text), with DATE and TIME
// shortened the way Postgres prints them.
func duckText(typeName string, v any) string {
	if t, ok := v.(time.Time); ok {
		switch typeName {
		case "DATE":
			return t.UTC().Format("2006-01-02")
		case "TIME":
			return t.UTC().Format("15:04:05.999999")
		}
	}
	return pgwire.Text(v)
}

// ServedDatabase asks the endpoint which DuckDB file it serves (SHOW
// gtsm_database, a gtsm endpoint's own answer).
func (p *PG) ServedDatabase(ctx context.Context) (string, error) {
	var path string
	if err := p.conn.QueryRow(ctx, "SHOW gtsm_database").Scan(&path); err != nil {
		return "", fmt.Errorf("ask the SQL endpoint %s which database it serves: %w", p.addr, pgErr(err))
	}
	return path, nil
}

// Options says where `gtsm sql` looks for data.
type Options struct {
	Addr, Password string
	// DBPath is the DuckDB file; DBExplicit says the user named it (--db or
	// GTSM_DB) rather than taking the default.
	DBPath     string
	DBExplicit bool
	// AllowDirs are passed to OpenLocal.
	AllowDirs []string
}

// Open picks the backend the way `gtsm sql` does.
//
// With an explicit DuckDB file, the answers must come from that file: it is
// opened read-only; if a process holds it (a running processor), the SQL
// endpoint at Addr is used only if it proves it serves that very file
// (SHOW gtsm_database), otherwise Open fails naming both files.
//
// Without one, the SQL endpoint at Addr is used when something listens
// there (a running processor), otherwise the default file, read-only. An
// endpoint that listens but refuses us (wrong password) is an error, not a
// reason to try the file, which that processor holds anyway.
func Open(ctx context.Context, o Options) (Backend, error) {
	if o.DBExplicit && o.DBPath != "" {
		return openExplicit(ctx, o)
	}
	if o.Addr != "" {
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		if c, err := d.DialContext(ctx, "tcp", o.Addr); err == nil {
			c.Close()
			return DialPG(ctx, o.Addr, o.Password, 5*time.Second)
		}
	}
	if o.DBPath == "" {
		return nil, fmt.Errorf("no SQL endpoint answers at %s and no --db file was given", o.Addr)
	}
	l, err := OpenLocal(ctx, o.DBPath, o.AllowDirs...)
	if err != nil {
		if errors.Is(err, gtsmsql.ErrLocked) {
			return nil, fmt.Errorf("no SQL endpoint answers at %s, and %w: if a processor holds the file, point --addr (or GTSM_SQL_ADDR) at its SQL endpoint", o.Addr, err)
		}
		return nil, fmt.Errorf("no SQL endpoint answers at %s (is a processor running?), and the file fallback failed: %w", o.Addr, err)
	}
	return l, nil
}

func openExplicit(ctx context.Context, o Options) (Backend, error) {
	l, err := OpenLocal(ctx, o.DBPath, o.AllowDirs...)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, gtsmsql.ErrLocked) || o.Addr == "" {
		return nil, err
	}
	pg, perr := DialPG(ctx, o.Addr, o.Password, 5*time.Second)
	if perr != nil {
		return nil, fmt.Errorf("%w; and the SQL endpoint at %s (which would have to serve it) failed: %v", err, o.Addr, perr)
	}
	served, serr := pg.ServedDatabase(ctx)
	if serr != nil {
		pg.Close()
		return nil, fmt.Errorf("%w; the listener at %s cannot say which database it serves (not a gtsm endpoint?): %v", err, o.Addr, serr)
	}
	if !sameFile(served, o.DBPath) {
		pg.Close()
		return nil, fmt.Errorf("--db %s is held by another process, and the SQL endpoint at %s serves %s, not that file: point --addr (or GTSM_SQL_ADDR) at the processor that holds %s",
			o.DBPath, o.Addr, served, o.DBPath)
	}
	return pg, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
