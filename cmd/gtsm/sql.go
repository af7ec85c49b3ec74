package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/shell"
)

const sqlHelp = `Queries the processor's DuckDB. When a processor runs, its read-only SQL endpoint
answers at --addr and the shell talks to it (DuckDB lets only one process open the
file, so the processor serves the queries itself). Otherwise the shell opens the
DuckDB file read-only. It says which on stderr (unless --quiet).

With an explicit --db (or GTSM_DB), the answers come from that file: it is opened
read-only, or, when a processor holds it, the endpoint at --addr is used only if it
proves it serves that same file (otherwise gtsm sql fails and names both files).

Either way nothing can be written: no file, URL or extension outside the database
is reachable, except files under --allow-dir (read, and written by COPY ... TO).

Statements end with ';' and may span lines; .help lists the dot commands
(.tables, .schema, .mode, .timer, .read, .q for the named demo queries, .quit;
\q, exit and quit leave too). On a terminal: line editing and history
(~/.gtsm_history), and the exit status is 0 when you leave. From a pipe, -c or -f:
no prompts, results only on stdout, errors on stderr, exit status 1 if any failed.

Export to Parquet needs the file itself (stop the processor first) and a directory
the shell may write:
  gtsm sql --db gtsm.duckdb --allow-dir . -c "COPY (SELECT * FROM gtsm_etl) TO 'etl.parquet' (FORMAT parquet)"
Through a running processor, export as CSV from the output instead:
  gtsm sql --mode csv -c ".q hourly B009" > hourly.csv

Examples:
  gtsm sql                                   # interactive
  gtsm sql -c ".q hourly B009"               # a named query for one site
  gtsm sql -c ".q"                           # list the named queries
  gtsm sql --mode json -c ".q latest"
  gtsm sql -f report.sql --mode csv > report.csv
  echo "SELECT count(*) FROM gtsm_etl;" | gtsm sql
  psql -h 127.0.0.1 -p 5433 -d gtsm          # any Postgres client works too

Environment: GTSM_SQL_ADDR (--addr), GTSM_DB (--db), GTSM_SQL_PASSWORD (the endpoint's
password, if it has one).`

// runSQL is "gtsm sql": the SQL shell.
func runSQL(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "sql", "sql [--db FILE] [--addr HOST:PORT] [--allow-dir DIR] [-c SQL] [-f FILE] [--mode MODE] [--quiet]", sqlHelp)
	addr := fs.String("addr", envOr(env, "GTSM_SQL_ADDR", pgwire.DefaultAddr), "the processor's SQL endpoint (env GTSM_SQL_ADDR)")
	db := fs.String("db", envOr(env, "GTSM_DB", "gtsm.duckdb"), "DuckDB file to open read-only when no endpoint answers (env GTSM_DB)")
	command := fs.StringP("command", "c", "", "run these statements / dot commands and exit")
	file := fs.StringP("file", "f", "", "run the statements / dot commands in this file and exit")
	mode := fs.String("mode", "table", "output: table, csv, json or line")
	var allowDirs stringList
	fs.Var(&allowDirs, "allow-dir", "directory SQL may read files from and COPY ... TO into, with --db (repeatable; default: none)")
	quiet := fs.BoolP("quiet", "q", false, "do not say on stderr which backend answers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dbExplicit := env.getenv("GTSM_DB") != ""
	dbExplicit = dbExplicit || fs.Changed("db")
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q (SQL goes in -c or -f, or on stdin)", fs.Args())}
	}
	m, err := shell.ParseMode(*mode)
	if err != nil {
		return usageError{err.Error()}
	}
	b, err := shell.Open(ctx, shell.Options{Addr: *addr, Password: env.getenv("GTSM_SQL_PASSWORD"),
		DBPath: *db, DBExplicit: dbExplicit, AllowDirs: allowDirs})
	if err != nil {
		return err
	}
	defer b.Close()
	if !*quiet {
		fmt.Fprintf(env.stderr, "gtsm sql: using %s\n", b.Describe())
	}
	sh := shell.New(b, env.stdout, env.stderr)
	sh.Mode = m

	switch {
	case *command != "" || *file != "":
		if *command != "" {
			if err := sh.Run(ctx, strings.NewReader(*command)); err != nil {
				return err
			}
		}
		if *file != "" && !sh.Quit() {
			f, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := sh.Run(ctx, f); err != nil {
				return err
			}
		}
	case sqlInteractive(env):
		hist := ""
		if home, err := os.UserHomeDir(); err == nil {
			hist = filepath.Join(home, ".gtsm_history")
		}
		// Ctrl-C belongs to the shell here (it interrupts a statement), so
		// the session only ends on SIGTERM, .quit or Ctrl-D.
		sctx, stop := signal.NotifyContext(context.WithoutCancel(ctx), syscall.SIGTERM)
		defer stop()
		if err := sh.Interactive(sctx, shell.Terminal{In: os.Stdin, Out: os.Stdout}, hist); err != nil && sctx.Err() == nil {
			return err
		}
		// As psql and duckdb: the errors were shown as they happened; a
		// session that ends normally exits 0.
		return nil
	default:
		if err := sh.Run(ctx, env.stdin); err != nil {
			return err
		}
	}
	if n := sh.Errors(); n > 0 {
		return fmt.Errorf("%d statement(s) or command(s) failed", n)
	}
	return nil
}

// sqlInteractive: interactive only when both ends are the real terminal (tests
// pass buffers, pipes get clean output).
func sqlInteractive(env *environ) bool {
	in, ok := env.stdin.(*os.File)
	out, ok2 := env.stdout.(*os.File)
	return ok && ok2 && in == os.Stdin && out == os.Stdout && shell.IsTerminal(in) && shell.IsTerminal(out)
}
