package pgwire

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/mapping"
	"github.com/jackc/pgx/v5/pgtype"
	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

var splitStatements = gtsmsql.Split

// described is what DuckDB says about one statement before it runs.
type described struct {
	kind     duckdb.StmtType
	columns  wire.Columns
	timeOnly []bool // TIME columns: sent as text, without a date
	params   []uint32
}

// prepare checks one statement, describes it, and returns the psql-wire
// statement that executes it.
func (s *Server) prepare(ctx context.Context, text string, clientOIDs []uint32) (*wire.PreparedStatement, error) {
	// Our splitter decided this is one statement; DuckDB's parser must agree,
	// because preparing a multi-statement string makes the driver EXECUTE all
	// but the last statement (which could be a COMMIT ending our read-only
	// transaction).
	// Clients send SET application_name / extra_float_digits / SESSION
	// CHARACTERISTICS and BEGIN on their own. In DuckDB, SET changes the
	// instance the processor shares (threads, memory_limit), and Postgres'
	// variants do not even parse, so every SET/RESET is acknowledged and not
	// run; every statement gets its own read-only snapshot whatever BEGIN says.
	noop := func(tag string) *wire.PreparedStatement {
		s.logf("ignoring %s statement: %s", tag, text)
		return wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
			return w.Complete(tag)
		})
	}
	switch w := firstWord(text); w {
	case "SET", "RESET":
		return noop(w), nil
	case "PRAGMA":
		if strings.Contains(text, "=") {
			return noop(w), nil // PRAGMA name=value is a SET
		}
	case "COPY":
		return s.copyStatement(ctx, text, clientOIDs)
	}
	if st := s.txStatement(text); st != nil {
		return st, nil
	}
	if st, err := s.cursorStatement(ctx, text, clientOIDs); st != nil || err != nil {
		return st, err
	}
	if st := s.show(pgRewrite(text)); st != nil {
		return st, nil
	}
	text, d, err := s.query(ctx, text, clientOIDs)
	if err != nil {
		return nil, err
	}
	return s.newStatement(text, func(ctx context.Context, w wire.DataWriter, ps []wire.Parameter) error {
		return s.execute(ctx, w, text, d, ps)
	}, wire.WithColumns(d.columns), wire.WithParameters(d.params)), nil
}

// query checks a query (rewritten for DuckDB, one statement, through the
// guard) and describes it; it returns the text DuckDB is to run.
func (s *Server) query(ctx context.Context, text string, clientOIDs []uint32) (string, described, error) {
	text = pgRewrite(text)
	if commentDepth(text) > maxCommentDepth {
		// DuckDB's parser takes time quadratic in comment nesting (10 KB of
		// "/*" parse for seconds), which would stall every client.
		return "", described{}, pgError(fmt.Errorf("comments nested more than %d deep", maxCommentDepth), codeLimit, "")
	}
	if err := s.parser.single(text); err != nil {
		return "", described{}, err
	}
	// Before DuckDB prepares anything (preparing EXPORT DATABASE creates its
	// directory): only queries, EXPLAIN of queries, no state-changing calls.
	if err := guard(text); err != nil {
		return "", described{}, err
	}
	d, err := s.describe(ctx, text)
	if err != nil {
		return "", described{}, err
	}
	switch d.kind {
	case duckdb.STATEMENT_TYPE_SELECT:
	case duckdb.STATEMENT_TYPE_EXPLAIN:
		// EXPLAIN ANALYZE runs its statement: DuckDB must agree that what
		// the guard took for the explained statement is a query.
		inner, _ := explainInner(text)
		id, err := s.describe(ctx, inner)
		if err != nil || id.kind != duckdb.STATEMENT_TYPE_SELECT {
			return "", described{}, pgError(fmt.Errorf("read-only SQL endpoint: only queries may be explained"), codeReadOnly, "")
		}
	default:
		return "", described{}, refused(text)
	}
	for i, oid := range clientOIDs {
		if oid != 0 && i < len(d.params) {
			d.params[i] = oid
		}
	}
	return text, d, nil
}

// refused explains which statement kinds the endpoint will not run and what
// to do instead.
func refused(text string) error {
	word := firstWord(text)
	hint := "the SQL endpoint only runs queries (SELECT, FROM, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN)"
	switch word {
	case "COPY", "EXPORT":
		hint = "export with `gtsm sql --db FILE -c \"COPY (...) TO 'out.parquet' (FORMAT parquet)\"` while the processor is stopped, or `psql -A -F, -c \"SELECT ...\" > out.csv`"
	case "PRAGMA":
		hint = "for PRAGMA table_info('t') use DESCRIBE t or SELECT * FROM pragma_table_info('t')"
	case "CALL":
		hint = "use SELECT * FROM function(...)"
	}
	return pgError(fmt.Errorf("read-only SQL endpoint: %s statements are refused", word), codeReadOnly, hint)
}

// describe prepares the statement on a pooled connection to learn its kind,
// result columns and parameter types, without running it.
func (s *Server) describe(ctx context.Context, text string) (d described, err error) {
	ctx, cancel := s.statementContext(ctx)
	defer cancel()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return d, s.stmtError(ctx, fmt.Errorf("get a DuckDB connection: %w", err), codeInternal)
	}
	defer conn.Close()
	ambiguous := false
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T is not DuckDB's", dc)
		}
		ds, err := c.PrepareContext(ctx, text)
		if err != nil {
			return err
		}
		defer ds.Close()
		st, ok := ds.(*duckdb.Stmt)
		if !ok {
			return fmt.Errorf("driver statement %T is not DuckDB's", ds)
		}
		if d.kind, err = st.StatementType(); err != nil {
			return err
		}
		n, err := st.ColumnCount()
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			name, err := st.ColumnName(i)
			if err != nil {
				return err
			}
			t, err := st.ColumnType(i)
			if err != nil {
				return err
			}
			if t == duckdb.TYPE_INVALID {
				ambiguous = true
			}
			d.columns = append(d.columns, wire.Column{Name: name, Oid: oidForType(t), Width: -1})
			d.timeOnly = append(d.timeOnly, t == duckdb.TYPE_TIME)
		}
		for i := 1; i <= st.NumInput(); i++ {
			t, err := st.ParamType(i)
			if err != nil {
				return err
			}
			oid := oidForType(t)
			if t == duckdb.TYPE_INVALID || t == duckdb.TYPE_ANY {
				oid = 0 // unknown: the client decides, the text form is cast by DuckDB
			}
			d.params = append(d.params, oid)
		}
		return nil
	})
	if err == nil {
		// DuckDB's prepare does not look at the context: a cancel request
		// that came while it ran must still end the statement here, or it
		// would be lost and the statement would run to completion.
		err = ctx.Err()
	}
	if err != nil {
		return d, s.stmtError(ctx, err, "")
	}
	if ambiguous && len(d.params) > 0 && d.kind == duckdb.STATEMENT_TYPE_SELECT {
		// DuckDB cannot type the result of e.g. `WHERE b = $1 OR $1 IS NULL`
		// until values are bound; running it with NULLs and no rows shows
		// the columns the real execution will have.
		if d.columns, d.timeOnly, err = s.describeByRunning(ctx, conn, text, len(d.params)); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (s *Server) describeByRunning(ctx context.Context, conn *sql.Conn, text string, nparams int) (wire.Columns, []bool, error) {
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return nil, nil, s.stmtError(ctx, err, "")
	}
	defer s.rollback(conn)
	rows, err := conn.QueryContext(ctx, "SELECT * FROM ("+text+"\n) AS describe_me LIMIT 0", make([]any, nparams)...)
	if err != nil {
		return nil, nil, s.stmtError(ctx, err, "")
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, nil, pgError(err, "", "")
	}
	cols := make(wire.Columns, len(types))
	timeOnly := make([]bool, len(types))
	for i, t := range types {
		cols[i] = wire.Column{Name: t.Name(), Oid: oidForTypeName(t.DatabaseTypeName()), Width: -1}
		timeOnly[i] = t.DatabaseTypeName() == "TIME"
	}
	return cols, timeOnly, nil
}

// execute runs a described statement in a read-only transaction and streams
// its rows to the client, one DuckDB chunk at a time. A plain statement is
// bounded by Config.RowCap and Config.QueryTimeout; a portal the client
// executes with a row limit (pgx, JDBC's fetchSize) is streamed: no row cap,
// and the timeout bounds each wait for DuckDB, not the client's pauses.
func (s *Server) execute(ctx context.Context, w wire.DataWriter, text string, d described, ps []wire.Parameter) error {
	args, err := bindArgs(ps, d.params)
	if err != nil {
		return err
	}
	limited, _ := ctx.Value(limitedKey{}).(bool)
	var sc *streamCtx
	if limited {
		sc = s.streamContext(ctx)
	} else {
		sc = s.plainContext(ctx)
	}
	defer sc.cancel()
	st, err := s.streams.openStream(sc.ctx, text, d.kind, args)
	if err != nil {
		return s.stmtError(sc.ctx, err, "")
	}
	defer st.close()
	n := 0
	for {
		rows, err := sc.fetch(st)
		if err != nil {
			return s.stmtError(sc.ctx, err, "")
		}
		if rows == nil {
			break
		}
		if !limited && n+len(rows) > s.cfg.RowCap {
			return rowCapError(s.cfg.RowCap)
		}
		if err := toWireRows(d.columns, rows, n); err != nil {
			return err
		}
		if err := wire.WriteRows(w, rows); err != nil {
			return err
		}
		n += len(rows)
	}
	return w.Complete(fmt.Sprintf("SELECT %d", n))
}

func rowCapError(rowCap int) error {
	return pgError(fmt.Errorf("result has more than %d rows (the SQL endpoint's row cap, --sql-row-cap)", rowCap), codeLimit,
		"add a LIMIT or a WHERE clause, raise --sql-row-cap, or stream the result: COPY (query) TO STDOUT (psql's \\copy), a cursor (DECLARE/FETCH), or a fetch size")
}

// toWireRows converts rows read from DuckDB in place to what psql-wire
// encodes for the columns' oids; first is the number of rows before them.
func toWireRows(columns wire.Columns, rows [][]any, first int) error {
	for r, row := range rows {
		for i, v := range row {
			var err error
			if row[i], err = toWire(columns[i].Oid, v); err != nil {
				return pgError(fmt.Errorf("row %d column %q: %w", first+r+1, columns[i].Name, err), codeInternal, "")
			}
		}
	}
	return nil
}

// stmtError is the client's error for a failed step of a statement: when
// the statement's context ended (timeout, cancel request, shutdown), the
// reason, as SQLSTATE 57014, whichever DuckDB or driver call noticed it
// (before, a cancel request that came during the describe or the BEGIN
// reached psql as "context canceled"); else err with code (DuckDB's own
// code when empty).
func (s *Server) stmtError(ctx context.Context, err error, code codes.Code) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, context.DeadlineExceeded):
		return pgError(fmt.Errorf("statement interrupted after the endpoint's timeout of %v: %w", s.cfg.QueryTimeout, err), codeCanceled, "")
	case cause != nil:
		return pgError(cause, codeCanceled, "")
	}
	return pgError(err, code, "")
}

// rollbackUnstick is how long rollback waits for its first ROLLBACK before
// it interrupts the connection.
const rollbackUnstick = 200 * time.Millisecond

// rollback ends a statement's read-only transaction on conn, and discards
// conn when that fails.
//
// It must also undo what duckdb-go v2.10506 can leave behind when a
// statement's context ends at the wrong moment: its QueryContext creates
// DuckDB's pending result (which schedules the query's tasks on DuckDB's
// worker threads and clears the connection's interrupt flag) and then
// returns on the ended context without executing or destroying the query.
// If the context's interrupt reached DuckDB just before that flag was
// cleared, the workers go on running the query with nothing telling them to
// stop, and the next call on the connection waits in its prepare
// (ClientContext::InitialCleanup → Executor::CancelTasks) for them to
// finish: a plain ROLLBACK blocked for minutes behind a canceled cross join,
// the client never got its answer, and Close could not interrupt it
// (TestRollbackAfterLostInterrupt reproduces that state).
//
// QueryContext prepares under duckdb-go's interrupter, which re-asserts the
// interrupt every 500 ms while the call is in flight, so a ROLLBACK sent
// that way and canceled after a short wait stops those tasks; the ROLLBACK
// is then sent again on the cleaned connection.
func (s *Server) rollback(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackUnstick)
	rows, err := conn.QueryContext(ctx, "ROLLBACK")
	if err == nil {
		err = rows.Close()
	}
	cancel()
	if err == nil {
		return
	}
	if _, err2 := conn.ExecContext(context.Background(), "ROLLBACK"); err2 != nil {
		s.cfg.Logger.Warn("SQL endpoint: ROLLBACK failed; discarding the DuckDB connection", "err", err, "retry_err", err2)
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// bindArgs decodes the client's parameter values. Text-format values are
// passed to DuckDB as strings (it casts them to the parameter's type, as
// Postgres does); binary ones are decoded with the parameter's type.
func bindArgs(ps []wire.Parameter, oids []uint32) ([]any, error) {
	if len(ps) != len(oids) {
		return nil, pgError(fmt.Errorf("statement has %d parameters, %d values were bound", len(oids), len(ps)), codeProtocol, "")
	}
	args := make([]any, len(ps))
	for i, p := range ps {
		switch {
		case p.Value() == nil:
			args[i] = nil
		case p.Format() == wire.TextFormat || oids[i] == 0:
			args[i] = string(p.Value())
		default:
			v, err := p.Scan(oids[i])
			if err != nil {
				return nil, pgError(fmt.Errorf("parameter $%d: %w", i+1, err), codeBadParam, "")
			}
			if num, ok := v.(pgtype.Numeric); ok {
				f, _ := num.Float64Value()
				v = f.Float64
			}
			args[i] = v
		}
	}
	return args, nil
}

// parser is a private in-memory DuckDB used only to count the statements in
// a string with DuckDB's own parser (no catalog, no data).
type parser struct {
	mu   sync.Mutex
	db   mapping.Database
	conn mapping.Connection
}

func newParser() (*parser, error) {
	p := &parser{}
	if mapping.Open("", &p.db) == mapping.StateError {
		return nil, errors.New("open the in-memory DuckDB used for parsing")
	}
	if mapping.Connect(p.db, &p.conn) == mapping.StateError {
		mapping.Close(&p.db)
		return nil, errors.New("connect to the in-memory DuckDB used for parsing")
	}
	return p, nil
}

// single returns a syntax error (with DuckDB's message) or an error when the
// text holds more than one statement.
func (p *parser) single(text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st mapping.ExtractedStatements
	n := mapping.ExtractStatements(p.conn, text, &st)
	msg := mapping.ExtractStatementsError(st)
	mapping.DestroyExtracted(&st)
	switch {
	case n == 0 && msg != "":
		return pgError(errors.New(msg), codeSyntax, "")
	case n != 1:
		return pgError(fmt.Errorf("could not split the query into single statements (DuckDB sees %d in %q)", n, text), codeSyntax,
			"send one statement at a time")
	}
	return nil
}

func (p *parser) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	mapping.Disconnect(&p.conn)
	mapping.Close(&p.db)
}

func stripLeadingComments(s string) string {
	for {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return ""
			}
			s = s[i+2:]
		default:
			return s
		}
	}
}

const maxCommentDepth = 32

// commentDepth is the deepest nesting of /* */ comments in s, counted
// without regard to string literals (so "/*" inside strings counts too: a
// conservative bound).
func commentDepth(s string) int {
	depth, deepest := 0, 0
	for i := 0; i+1 < len(s); i++ {
		switch {
		case s[i] == '/' && s[i+1] == '*':
			depth++
			deepest = max(deepest, depth)
			i++
		case s[i] == '*' && s[i+1] == '/' && depth > 0:
			depth--
			i++
		}
	}
	return deepest
}
