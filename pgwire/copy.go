package pgwire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
)

// COPY (query) TO STDOUT, what psql's \copy (query) TO 'file' sends and
// psycopg2's copy_expert, pgjdbc's CopyManager and pgx's CopyTo use: the
// result streams to the client in Postgres' text or CSV format, one DuckDB
// chunk in memory at a time and without the row cap. Only TO STDOUT: a COPY
// that names a file or program, or copies FROM, would touch the server's
// disk and is refused.

// copyOptions are the output format options of COPY, as Postgres has them.
type copyOptions struct {
	csv        bool
	header     bool
	delim      byte
	null       string
	quote      byte
	escape     byte
	forceAll   bool
	forceQuote map[string]bool
}

// copyStatement prepares COPY (query) TO STDOUT or COPY table [(cols)] TO
// STDOUT.
func (s *Server) copyStatement(ctx context.Context, text string, clientOIDs []uint32) (*wire.PreparedStatement, error) {
	query, rest, err := splitCopy(strings.TrimRight(strings.TrimSpace(stripLeadingComments(text)), ";"))
	if err != nil {
		return nil, err
	}
	opts, err := parseCopyOptions(rest)
	if err != nil {
		return nil, err
	}
	qtext, d, err := s.query(ctx, query, clientOIDs)
	if err != nil {
		return nil, err
	}
	for c := range opts.forceQuote {
		found := false
		for _, col := range d.columns {
			found = found || col.Name == c
		}
		if !found {
			return nil, pgError(fmt.Errorf("FORCE_QUOTE column %q is not in the result", c), codes.UndefinedColumn, "")
		}
	}
	return s.newStatement(text, func(ctx context.Context, w wire.DataWriter, ps []wire.Parameter) error {
		args, err := bindArgs(ps, d.params)
		if err != nil {
			return err
		}
		n, err := s.copyOut(ctx, qtext, d, args, opts)
		if err != nil {
			return err
		}
		return w.Complete(fmt.Sprintf("COPY %d", n))
	}, wire.WithParameters(d.params)), nil
}

func copyRefused(what string) error {
	return pgError(fmt.Errorf("read-only SQL endpoint: COPY %s is refused: only COPY ... TO STDOUT, which sends the data to the client, is served", what), codeReadOnly,
		"export with `gtsm sql --db FILE -c \"COPY (...) TO 'out.parquet' (FORMAT parquet)\"` while the processor is stopped, or stream to your side: psql's \\copy (SELECT ...) TO 'file.csv' WITH CSV HEADER")
}

// splitCopy returns the query a COPY reads and the text after TO STDOUT.
func splitCopy(text string) (query, rest string, err error) {
	s := strings.TrimSpace(text[len("COPY"):])
	if strings.HasPrefix(s, "(") {
		end := matchParen(s)
		if end < 0 {
			return "", "", pgError(errors.New("COPY: unbalanced parentheses around the query"), codeSyntax, "")
		}
		query, s = s[1:end], strings.TrimSpace(s[end+1:])
	} else {
		// COPY table [(col, ...)] TO STDOUT
		i := 0
		for i < len(s) && (isWordByte(s[i]) || s[i] == '.' || s[i] == '"') {
			i++
		}
		table := s[:i]
		if table == "" {
			return "", "", pgError(errors.New("COPY: expected a table name or a parenthesised query"), codeSyntax, "")
		}
		s = strings.TrimSpace(s[i:])
		cols := "*"
		if strings.HasPrefix(s, "(") {
			end := matchParen(s)
			if end < 0 {
				return "", "", pgError(errors.New("COPY: unbalanced column list"), codeSyntax, "")
			}
			cols, s = s[1:end], strings.TrimSpace(s[end+1:])
		}
		query = "SELECT " + cols + " FROM " + table
	}
	f := strings.Fields(s)
	if len(f) < 2 || !strings.EqualFold(f[0], "TO") {
		if len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			return "", "", copyRefused("FROM")
		}
		return "", "", pgError(errors.New("COPY: expected TO STDOUT"), codeSyntax, "")
	}
	if !strings.EqualFold(f[1], "STDOUT") {
		return "", "", copyRefused("TO " + f[1])
	}
	i := strings.Index(strings.ToUpper(s), "STDOUT")
	return query, s[i+len("STDOUT"):], nil
}

// copyTokens splits COPY options into words, quoted strings (kept with their
// quotes), parentheses and commas.
func copyTokens(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',' || c == '*':
			toks = append(toks, string(c))
			i++
		case c == '\'' || c == '"' || (c == 'E' || c == 'e') && i+1 < len(s) && s[i+1] == '\'':
			start := i
			if c != '\'' && c != '"' {
				i++
			}
			q := s[i]
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\\' && start != i {
					j++
					continue
				}
				if s[j] == q {
					if j+1 < len(s) && s[j+1] == q {
						j++
						continue
					}
					break
				}
			}
			if j >= len(s) {
				return nil, pgError(errors.New("COPY: unterminated quoted string in the options"), codeSyntax, "")
			}
			toks = append(toks, s[start:j+1])
			i = j + 1
		default:
			j := i
			for j < len(s) && (isWordByte(s[j]) || s[j] == '-') {
				j++
			}
			if j == i {
				return nil, pgError(fmt.Errorf("COPY: unexpected %q in the options", string(c)), codeSyntax, "")
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

// unquote returns a quoted option value ('x', E'\t', "x") as its text.
func unquote(tok string) (string, bool) {
	switch {
	case len(tok) >= 3 && (tok[0] == 'E' || tok[0] == 'e') && tok[1] == '\'':
		r := strings.NewReplacer(`\t`, "\t", `\n`, "\n", `\r`, "\r", `\\`, `\`, `\'`, `'`, `''`, `'`)
		return r.Replace(tok[2 : len(tok)-1]), true
	case len(tok) >= 2 && tok[0] == '\'':
		return strings.ReplaceAll(tok[1:len(tok)-1], `''`, `'`), true
	case len(tok) >= 2 && tok[0] == '"':
		return strings.ReplaceAll(tok[1:len(tok)-1], `""`, `"`), true
	}
	return tok, false
}

// parseCopyOptions reads COPY's options, in both Postgres syntaxes: the
// parenthesised list (FORMAT csv, HEADER, DELIMITER ';', NULL ”, QUOTE,
// ESCAPE, FORCE_QUOTE, ENCODING) and the older words psql users type after
// \copy (WITH CSV HEADER DELIMITER AS ';' NULL AS ” FORCE QUOTE *).
func parseCopyOptions(s string) (copyOptions, error) {
	o := copyOptions{delim: '\t', null: `\N`}
	toks, err := copyTokens(s)
	if err != nil {
		return o, err
	}
	if len(toks) > 0 && strings.EqualFold(toks[0], "WITH") {
		toks = toks[1:]
	}
	var delim, null, quote, escape *string
	bad := func(format string, a ...any) (copyOptions, error) {
		return o, pgError(fmt.Errorf("COPY: "+format, a...), codeSyntax, "options: (FORMAT csv|text, HEADER, DELIMITER 'c', NULL 's', QUOTE 'c', ESCAPE 'c', FORCE_QUOTE (col, ...) | *)")
	}
	// value takes an option's value (an optional AS, then a quoted string).
	value := func(i *int, name string) (*string, error) {
		if *i < len(toks) && strings.EqualFold(toks[*i], "AS") {
			*i++
		}
		if *i >= len(toks) {
			_, err := bad("%s needs a value", name)
			return nil, err
		}
		v, _ := unquote(toks[*i])
		*i++
		return &v, nil
	}
	forceList := func(i *int) error {
		if *i < len(toks) && toks[*i] == "*" {
			o.forceAll = true
			*i++
			return nil
		}
		paren := *i < len(toks) && toks[*i] == "("
		if paren {
			*i++
		}
		o.forceQuote = map[string]bool{}
		for *i < len(toks) {
			t := toks[*i]
			if t == ")" && paren {
				*i++
				return nil
			}
			if t != "," {
				name, quoted := unquote(t)
				if !quoted {
					name = strings.ToLower(name)
				}
				o.forceQuote[name] = true
			}
			*i++
			if !paren && (*i >= len(toks) || toks[*i] != ",") {
				return nil
			}
		}
		if paren {
			_, err := bad("unclosed FORCE_QUOTE column list")
			return err
		}
		return nil
	}
	boolean := func(i *int) bool {
		if *i < len(toks) {
			switch strings.ToLower(toks[*i]) {
			case "true", "on", "1":
				*i++
				return true
			case "false", "off", "0":
				*i++
				return false
			}
		}
		return true
	}
	if len(toks) > 0 && toks[0] == "(" {
		if toks[len(toks)-1] != ")" {
			return bad("unclosed option list")
		}
		toks = toks[1 : len(toks)-1]
	}
	// One loop reads both syntaxes: the older words (CSV, BINARY, FORCE
	// QUOTE) and the list's (FORMAT x, FORCE_QUOTE) name the same options.
	format := func(f string) error {
		switch strings.ToLower(f) {
		case "csv":
			o.csv = true
		case "text":
		case "binary":
			return pgError(errors.New("COPY: binary format is not supported"), codes.FeatureNotSupported, "use CSV or text")
		default:
			_, err := bad("unknown FORMAT %q", f)
			return err
		}
		return nil
	}
	for i := 0; i < len(toks); {
		name := strings.ToUpper(toks[i])
		i++
		var err error
		switch name {
		case ",":
		case "FORMAT":
			var f *string
			if f, err = value(&i, name); err == nil {
				err = format(*f)
			}
		case "CSV", "BINARY":
			err = format(name)
		case "HEADER":
			o.header = boolean(&i)
		case "DELIMITER":
			delim, err = value(&i, name)
		case "NULL":
			null, err = value(&i, name)
		case "QUOTE":
			quote, err = value(&i, name)
		case "ESCAPE":
			escape, err = value(&i, name)
		case "ENCODING":
			var enc *string
			if enc, err = value(&i, name); err == nil {
				if e := strings.ToUpper(strings.ReplaceAll(*enc, "-", "")); e != "UTF8" && e != "SQL_ASCII" {
					err = pgError(fmt.Errorf("COPY: encoding %q is not supported", *enc), codes.FeatureNotSupported, "the endpoint sends UTF8")
				}
			}
		case "FORCE_QUOTE":
			err = forceList(&i)
		case "FORCE":
			if i < len(toks) && strings.EqualFold(toks[i], "QUOTE") {
				i++
				err = forceList(&i)
				break
			}
			_, err = bad("FORCE NOT NULL applies to COPY FROM only")
		default:
			_, err = bad("unknown option %q", toks[i-1])
		}
		if err != nil {
			return o, err
		}
	}
	if o.csv {
		o.delim, o.null, o.quote = ',', "", '"'
	}
	one := func(p *string, name string, dst *byte) error {
		if p == nil {
			return nil
		}
		if len(*p) != 1 {
			_, err := bad("%s must be a single one-byte character", name)
			return err
		}
		*dst = (*p)[0]
		return nil
	}
	if err := one(delim, "DELIMITER", &o.delim); err != nil {
		return o, err
	}
	if null != nil {
		o.null = *null
	}
	if !o.csv && (quote != nil || escape != nil || o.forceAll || o.forceQuote != nil) {
		return bad("QUOTE, ESCAPE and FORCE_QUOTE are available only in CSV mode")
	}
	if err := one(quote, "QUOTE", &o.quote); err != nil {
		return o, err
	}
	o.escape = o.quote
	if err := one(escape, "ESCAPE", &o.escape); err != nil {
		return o, err
	}
	if o.delim == '\n' || o.delim == '\r' || (!o.csv && o.delim == '\\') || (o.csv && o.delim == o.quote) {
		return bad("DELIMITER %q cannot be used", string(o.delim))
	}
	return o, nil
}

// field appends one value in the COPY format.
func (o *copyOptions) field(b []byte, v string, force bool) []byte {
	if !o.csv {
		for i := 0; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				if c == o.delim {
					b = append(b, '\\')
				}
				b = append(b, c)
			}
		}
		return b
	}
	need := force || v == o.null || strings.IndexByte(v, o.delim) >= 0 || strings.IndexByte(v, o.quote) >= 0 ||
		strings.ContainsAny(v, "\r\n") || (v != "" && v == `\.`)
	if !need {
		return append(b, v...)
	}
	b = append(b, o.quote)
	for i := 0; i < len(v); i++ {
		if v[i] == o.quote || v[i] == o.escape {
			b = append(b, o.escape)
		}
		b = append(b, v[i])
	}
	return append(b, o.quote)
}

// copyOut streams the query's result to the client as COPY data and
// returns the number of rows.
func (s *Server) copyOut(ctx context.Context, text string, d described, args []any, o copyOptions) (int, error) {
	conn := s.connOf(wire.RemoteAddress(ctx))
	if conn == nil {
		return 0, pgError(errors.New("COPY TO STDOUT: the client connection is not known"), codeInternal, "")
	}
	sc := s.streamContext(ctx)
	defer sc.cancel()
	st, err := s.streams.openStream(sc.ctx, text, d.kind, args)
	if err != nil {
		return 0, s.stmtError(sc.ctx, err, "")
	}
	defer st.close()
	tm := wire.TypeMap(ctx)
	if tm == nil {
		tm = pgtype.NewMap()
	}
	force := make([]bool, len(d.columns))
	for i, c := range d.columns {
		force[i] = o.forceAll || o.forceQuote[c.Name]
	}
	// Writes go straight to the connection, between psql-wire's messages
	// (the statement has no RowDescription; psql-wire writes CommandComplete
	// after the data, once this returns). A client that stops reading is
	// dropped after the idle timeout.
	bw := bufio.NewWriterSize(deadlineWriter{conn, s.cfg.IdleTimeout}, 64<<10)
	defer conn.SetWriteDeadline(time.Time{})
	head := []byte{'H', 0, 0, 0, 0, 0}
	head = binary.BigEndian.AppendUint16(head, uint16(len(d.columns)))
	for range d.columns {
		head = append(head, 0, 0)
	}
	binary.BigEndian.PutUint32(head[1:], uint32(len(head)-1))
	bw.Write(head)
	line := make([]byte, 0, 256)
	send := func() error {
		line = append(line, '\n')
		var h [5]byte
		h[0] = 'd'
		binary.BigEndian.PutUint32(h[1:], uint32(len(line)+4))
		bw.Write(h[:])
		_, err := bw.Write(line)
		return err
	}
	if o.header {
		line = line[:0]
		for i, c := range d.columns {
			if i > 0 {
				line = append(line, o.delim)
			}
			line = o.field(line, c.Name, false)
		}
		if err := send(); err != nil {
			return 0, err
		}
	}
	var cell []byte
	n := 0
	for {
		rows, err := sc.fetch(st)
		if err != nil {
			return n, s.stmtError(sc.ctx, err, "")
		}
		if rows == nil {
			break
		}
		if err := toWireRows(d.columns, rows, n); err != nil {
			return n, err
		}
		for _, row := range rows {
			line = line[:0]
			for i, v := range row {
				if i > 0 {
					line = append(line, o.delim)
				}
				if v == nil {
					line = append(line, o.null...)
					continue
				}
				if cell, err = tm.Encode(d.columns[i].Oid, pgtype.TextFormatCode, v, cell[:0]); err != nil {
					return n, pgError(fmt.Errorf("row %d column %q: %w", n+1, d.columns[i].Name, err), codeInternal, "")
				}
				line = o.field(line, string(cell), force[i])
			}
			if err := send(); err != nil {
				return n, fmt.Errorf("COPY TO STDOUT: write to the client: %w", err)
			}
			n++
		}
	}
	bw.Write([]byte{'c', 0, 0, 0, 4})
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("COPY TO STDOUT: write to the client: %w", err)
	}
	return n, nil
}

// deadlineWriter writes to a connection, each write bounded by timeout.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (d deadlineWriter) Write(b []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.c.Write(b)
}

// connOf finds the client connection with the remote address addr.
func (s *Server) connOf(addr net.Addr) net.Conn {
	if addr == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.RemoteAddr().String() == addr.String() {
			return c
		}
	}
	return nil
}
