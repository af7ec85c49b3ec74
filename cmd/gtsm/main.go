// Command gtsm is the one binary of gtsm-stream: it publishes GTSM bottle
// files to Kafka, runs the goka processor into DuckDB, and queries the result.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand name
// (or after "bottle inspect" for nested ones) and writes to stdout/stderr.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environ, args []string) error
}

// environ is what a command may touch of the outside world, passed in rather
// than read from globals so commands can be tested in-process.
type environ struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func commands() []command {
	return []command{
		{"demo", "the whole pipeline in one process on the embedded broker: produce, process, query", runDemo},
		{"bottle", "inspect bottle files: gtsm bottle inspect FILE...", runBottle},
		{"compare", "run the named queries on Flink SQL and on DuckDB, show the differences", runCompare},
		{"broker", "run the embedded Kafka broker and schema registry until Ctrl-C", runBroker},
		{"produce", "publish bottle files and archives to Kafka (gtsm_etl)", runProduce},
		{"process", "consume gtsm_etl with the goka processor into a DuckDB file (exactly once)", runProcess},
		{"sql", "SQL shell on the processor's DuckDB (its SQL endpoint, or the file)", runSQL},
		{"healthcheck", "exit 0 when a running processor's /healthz says ok (the image's HEALTHCHECK)", runHealthcheck},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &environ{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run dispatches to a subcommand and turns its error into an exit code:
// 0 success, 2 usage error, 1 anything else.
func run(ctx context.Context, env *environ, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(env.stderr, "gtsm %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(env.stderr, "gtsm %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "gtsm: unknown command %q\n\n", args[0])
	usage(env.stderr, cmds)
	return 2
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "gtsm: GTSM strainmeter bottle files -> Kafka (gtsm_etl) -> goka processor -> DuckDB -> SQL")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: gtsm <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'gtsm <command> -h' for a command's flags and examples.")
}

// usageError marks a wrong invocation (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// newFlagSet makes a flag set that reports errors instead of exiting, writes
// its help to stderr, and prints the given long help (examples) after the flags.
func newFlagSet(env *environ, name, synopsis, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: gtsm %s\n\n", synopsis)
		if help != "" {
			fmt.Fprintln(env.stderr, help)
			fmt.Fprintln(env.stderr)
		}
		fmt.Fprintln(env.stderr, "Flags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping a bad flag to a usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// envOr returns the environment variable's value, or def when it is empty.
func envOr(env *environ, name, def string) string {
	if v := env.getenv(name); v != "" {
		return v
	}
	return def
}
