// Package shell is gtsm's SQL shell: statements ending in ';' (over as many
// lines as needed), dot commands (.tables, .schema, .mode, .timer, .read,
// .q, .help, .quit), results in table/csv/json/line form. It runs over a
// Backend: the processor's SQL endpoint or a DuckDB file opened read-only.
//
// The same engine serves scripts (-c, -f, a pipe: no prompts, clean output)
// and people at a terminal (Interactive: line editing and history).
package shell

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Mode is an output format.
type Mode string

const (
	ModeTable Mode = "table"
	ModeCSV   Mode = "csv"
	ModeJSON  Mode = "json"
	ModeLine  Mode = "line"
)

// ParseMode validates a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeTable, ModeCSV, ModeJSON, ModeLine:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: want table, csv, json or line", s)
}

// Shell holds a session's state. Results go to Out; errors, timings' absence
// and notices go to Err, so Out stays clean data for pipes.
type Shell struct {
	Backend Backend
	Out     io.Writer
	Err     io.Writer
	Mode    Mode
	Timer   bool

	buf    strings.Builder // the statement being typed
	errors int             // statements or commands that failed
	quit   bool
	depth  int // .read nesting, to stop a file that reads itself
}

// New returns a shell in table mode.
func New(b Backend, out, errOut io.Writer) *Shell {
	return &Shell{Backend: b, Out: out, Err: errOut, Mode: ModeTable}
}

// Errors is the number of failed statements and commands so far (scripts
// use it for their exit status).
func (s *Shell) Errors() int { return s.errors }

// Quit reports whether .quit was given.
func (s *Shell) Quit() bool { return s.quit }

// Pending reports whether a statement has been started but not finished
// with ';' (the prompt shows it).
func (s *Shell) Pending() bool { return strings.TrimSpace(s.buf.String()) != "" }

// Run feeds every line of r to the shell, then runs a final statement left
// without ';' (as scripts and -c expect). It stops early at .quit.
func (s *Shell) Run(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() && !s.quit {
		s.Line(ctx, sc.Text())
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	s.Flush(ctx)
	return nil
}

// Flush runs what is left in the buffer even without a ';'.
func (s *Shell) Flush(ctx context.Context) {
	if rest := strings.TrimSpace(s.buf.String()); rest != "" && !s.quit {
		s.buf.Reset()
		s.runSQL(ctx, rest)
	}
}

// Line takes one input line: a dot command (at the start of a statement) or
// SQL text; complete statements run as soon as their ';' arrives.
func (s *Shell) Line(ctx context.Context, line string) {
	if !s.Pending() {
		// psql's \q, and exit / quit as psql and duckdb take them.
		switch strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), ";")) {
		case `\q`, "exit", "quit", "EXIT", "QUIT":
			s.quit = true
			return
		}
	}
	if !s.Pending() && strings.HasPrefix(strings.TrimSpace(line), ".") {
		s.dot(ctx, strings.TrimSpace(line))
		return
	}
	s.buf.WriteString(line)
	s.buf.WriteByte('\n')
	stmts, rest := gtsmsql.Split(s.buf.String())
	if len(stmts) == 0 {
		return
	}
	s.buf.Reset()
	if rest != "" {
		s.buf.WriteString(rest)
		s.buf.WriteByte('\n')
	}
	for _, st := range stmts {
		s.runSQL(ctx, st)
	}
}

// ClearPending drops a half-typed statement (Ctrl-C at the prompt).
func (s *Shell) ClearPending() { s.buf.Reset() }

func (s *Shell) fail(format string, args ...any) {
	s.errors++
	fmt.Fprintf(s.Err, "Error: "+format+"\n", args...)
}

func (s *Shell) runSQL(ctx context.Context, q string, args ...any) {
	start := time.Now()
	res, err := s.Backend.Exec(ctx, q, args...)
	if err != nil {
		s.fail("%v", err)
		return
	}
	if err := Render(s.Out, s.Mode, res); err != nil {
		s.fail("write output: %v", err)
		return
	}
	if s.Timer {
		fmt.Fprintf(s.Out, "Run Time: %.3f s\n", time.Since(start).Seconds())
	}
}

const help = `Statements end with ';' and may span lines. Dot commands (at the start of a line):
  .tables              list tables and views
  .schema [TABLE]      show CREATE statements (all, or one table/view)
  .mode MODE           output as table, csv, json or line
  .timer on|off        print each statement's run time
  .read FILE           run the statements and commands in FILE
  .q                   list the named demo queries
  .q NAME [ARGS]       run a named query, e.g. .q hourly B009 (no argument = all sites)
  .help                this text
  .quit                leave (so do \q, exit, quit and Ctrl-D)
Export: COPY (SELECT ...) TO 'out.parquet' (FORMAT parquet); works when the shell opened the
DuckDB file itself (gtsm sql --db FILE, processor stopped). The processor's endpoint is
read-only and refuses COPY; there, use csv mode and redirect: gtsm sql --mode csv -c "..." > out.csv`

func (s *Shell) dot(ctx context.Context, line string) {
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	switch cmd {
	case ".quit", ".exit":
		s.quit = true
	case ".help":
		fmt.Fprintln(s.Out, help)
	case ".tables":
		s.listTables(ctx)
	case ".schema":
		if len(args) > 1 {
			s.fail("usage: .schema [TABLE]")
			return
		}
		s.schema(ctx, args)
	case ".mode":
		if len(args) != 1 {
			s.fail("usage: .mode table|csv|json|line (now %s)", s.Mode)
			return
		}
		m, err := ParseMode(args[0])
		if err != nil {
			s.fail("%v", err)
			return
		}
		s.Mode = m
	case ".timer":
		if len(args) != 1 || args[0] != "on" && args[0] != "off" {
			s.fail("usage: .timer on|off")
			return
		}
		s.Timer = args[0] == "on"
	case ".read":
		if len(args) != 1 {
			s.fail("usage: .read FILE")
			return
		}
		s.read(ctx, args[0])
	case ".q":
		s.named(ctx, args)
	default:
		s.fail("unknown command %s (try .help)", cmd)
	}
}

func (s *Shell) listTables(ctx context.Context) {
	// The SQL endpoint shows DuckDB's main schema as Postgres' public.
	res, err := s.Backend.Exec(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema IN ('main', 'public') AND table_catalog = current_database() ORDER BY table_name`)
	if err != nil {
		s.fail("%v", err)
		return
	}
	for _, r := range res.Rows {
		fmt.Fprintln(s.Out, r[0].Text)
	}
}

func (s *Shell) schema(ctx context.Context, args []string) {
	q := `SELECT sql FROM (
		SELECT table_name AS name, sql FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()
		UNION ALL
		SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()
	) WHERE $1::VARCHAR IS NULL OR name = $1::VARCHAR ORDER BY name`
	var arg any
	if len(args) == 1 {
		arg = args[0]
	}
	res, err := s.Backend.Exec(ctx, q, arg)
	if err != nil {
		s.fail("%v", err)
		return
	}
	if len(res.Rows) == 0 && arg != nil {
		s.fail("no table or view named %q", args[0])
		return
	}
	for _, r := range res.Rows {
		fmt.Fprintln(s.Out, strings.TrimSuffix(strings.TrimSpace(r[0].Text), ";")+";")
	}
}

func (s *Shell) read(ctx context.Context, path string) {
	if s.depth >= 16 {
		s.fail(".read %s: files nested more than 16 deep (does it read itself?)", path)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		s.fail(".read: %v", err)
		return
	}
	defer f.Close()
	// The file is a script of its own: a statement it leaves unfinished
	// runs at its end rather than swallowing what is typed next.
	saved := s.buf.String()
	s.buf.Reset()
	s.depth++
	if err := s.Run(ctx, f); err != nil {
		s.fail(".read %s: %v", path, err)
	}
	s.depth--
	s.buf.WriteString(saved)
}

func (s *Shell) named(ctx context.Context, args []string) {
	if len(args) == 0 {
		for _, q := range gtsmsql.Queries() {
			fmt.Fprintf(s.Out, "%-28s %s\n", q.Usage(), q.Description)
		}
		return
	}
	q, err := gtsmsql.QueryByName(args[0])
	if err != nil {
		s.fail("%v", err)
		return
	}
	qargs, err := q.Args(args[1:])
	if err != nil {
		s.fail("%v", err)
		return
	}
	s.runSQL(ctx, q.SQL, qargs...)
}
