// Command gtsm is the one binary of gtsm-stream: it publishes GTSM bottle
// files to Kafka, runs the goka processor into DuckDB, and queries the result.
//
// The command line is cobra (dispatch, help, --version, shell completion)
// over pflag (GNU flags: --flag, -q, flags after arguments). Chosen by
// measurement against kong and ff (docs/cli.md has the table): on a minimal
// two-flag program cobra adds 1.2 MB to the binary (kong 3.0 MB, ff/v3
// 0.25 MB) and 0.4 ms of init (kong 0.3 ms, ff 0.2 ms; all three within the
// noise of process start), and it is the only one of the three with bash,
// zsh and fish completion built in; ff/v3 over the standard flag package
// stops at the first argument (`gtsm produce DIR --dry-run` would take
// --dry-run for a file), kong would mean rewriting every command as a
// struct. pflag's FlagSet has the standard package's method set, so each
// command still declares its flags as fs.StringVar(...) in its own run
// function, and parses them itself (see parseFlags); cobra is given a copy
// of each command's flags for help and completion (collectFlags).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/earthscope/gtsm-stream/kafkaprops"
	"github.com/earthscope/gtsm-stream/registry"
)

// command is one subcommand. run gets the arguments after the subcommand name
// (or after "bottle inspect" for nested ones) and writes to stdout/stderr.
type command struct {
	name    string // "bottle inspect" for a nested one
	summary string
	run     func(ctx context.Context, env *environ, args []string) error
}

// environ is what a command may touch of the outside world, passed in rather
// than read from globals so commands can be tested in-process.
type environ struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// log is the logger of the running command, made by parseFlags from
	// --log-format and --log-level (text on stderr until then).
	log *slog.Logger
	// logFormat is --log-format; logLevelSet tells whether --log-level (or
	// its environment variable) was given, for commands quieter by default.
	logFormat   string
	logLevel    string
	logLevelSet bool
	// collected, when not nil, makes parseFlags record the flag set and
	// stop the command with errCollected before it does anything: that is
	// how cobra learns each command's flags (collectFlags).
	collected *collectedFlags
	// commandFlags are the flag names of each command (by its name, as
	// "bottle inspect"), to check the keys of the config file.
	commandFlags map[string]map[string]bool
}

func commands() []command {
	return []command{
		{"demo", "the whole pipeline in one process on the embedded broker: produce, process, query", runDemo},
		{"bottle inspect", "header, classification and first samples of bottle files", runBottleInspect},
		{"compare", "run the named queries on Flink SQL and on DuckDB, show the differences", runCompare},
		{"broker", "run the embedded Kafka broker and schema registry until Ctrl-C", runBroker},
		{"produce", "publish bottle files and archives to Kafka (gtsm_etl)", runProduce},
		{"process", "consume gtsm_etl with the goka processor into a DuckDB file (exactly once)", runProcess},
		{"query-service", "serve the Parquet lake of many processors over the Postgres wire protocol (one query surface)", runQueryService},
		{"lake maintain", "compact the lake's Iceberg tables, expire old snapshots, delete orphan files", runLakeMaintain},
		{"sql", "SQL shell on the processor's DuckDB (its SQL endpoint, or the file)", runSQL},
		{"metadata load", "publish station metadata (bsm_metadata.txt, <STA>.README.txt) to the compacted topic gtsm_metadata", runMetadataLoad},
		{"export level2", "write a site's Level-2 strain in EarthScope's published ASCII layout", runExportLevel2},
		{"level2 reprocess", "recompute a station's Level-2 from its stored counts with its current metadata (the running processor does it)", runLevel2Reprocess},
		{"healthcheck", "exit 0 when a running processor's /healthz says ok (the image's HEALTHCHECK)", runHealthcheck},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &environ{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// runError marks an error returned by a command's run function (as opposed
// to one from cobra: unknown command or flag), so run can pick the exit code.
type runError struct {
	name string
	err  error
}

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// run dispatches to a subcommand and turns its error into an exit code:
// 0 success, 2 usage error, 1 anything else.
func run(ctx context.Context, env *environ, args []string) int {
	if env.log == nil {
		env.log = slog.New(slog.NewTextHandler(env.stderr, nil))
	}
	// Shell completion asks "gtsm __complete produce --d": then cobra
	// parses the flags itself to complete them; otherwise each command's
	// run function does (DisableFlagParsing), with its own variables.
	completing := len(args) > 0 && strings.HasPrefix(args[0], cobra.ShellCompRequestCmd)
	root := newRoot(ctx, env, completing)
	root.SetArgs(args)
	if len(args) == 0 {
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		root.SetOut(env.stderr)
		root.Help()
		return 2
	}
	c, err := root.ExecuteC()
	var re runError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		switch {
		case errors.Is(re.err, pflag.ErrHelp):
			return 0
		case errors.As(re.err, new(usageError)):
			report(env, re.name, re.err)
			return 2
		default:
			report(env, re.name, re.err)
			return 1
		}
	default: // cobra's own: an unknown command
		fmt.Fprintf(env.stderr, "gtsm: %v\n\n", err)
		c.SetOut(env.stderr)
		c.Usage()
		return 2
	}
}

// report prints a command's error on stderr: a log record with
// --log-format json, else "gtsm CMD: error".
func report(env *environ, name string, err error) {
	if env.logFormat == "json" {
		env.log.Error("gtsm "+name+" failed", "err", err.Error())
		return
	}
	fmt.Fprintf(env.stderr, "gtsm %s: %v\n", name, err)
}

const rootLong = `gtsm: GTSM strainmeter bottle files -> Kafka (gtsm_etl) -> goka processor -> DuckDB -> SQL

Every command takes --config FILE (env GTSM_CONFIG): a YAML file whose keys are
flag names, at the top (for every command that has the flag) or under a
command's name; a flag given on the command line wins over its environment
variable, which wins over the file. --log-format json|text and --log-level
choose how logs are written (on stderr). Completion: gtsm completion bash|zsh|fish.`

// newRoot builds the command tree. Each command's flags are collected by
// running its run function in collect mode (see parseFlags), so one
// declaration serves parsing, help and completion.
func newRoot(ctx context.Context, env *environ, completing bool) *cobra.Command {
	root := &cobra.Command{
		Use:     "gtsm",
		Short:   "GTSM strainmeter bottle files -> Kafka -> goka processor -> DuckDB -> SQL",
		Long:    rootLong,
		Version: version(),
		// Errors and usage are printed by run, which also picks the exit code.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetVersionTemplate("gtsm {{.Version}}\n")
	parents := map[string]*cobra.Command{}
	env.commandFlags = map[string]map[string]bool{}
	for _, c := range commands() {
		col := collectFlags(ctx, env, c)
		names := map[string]bool{}
		col.fs.VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		env.commandFlags[c.name] = names
		parent, name := root, c.name
		if p, leaf, ok := strings.Cut(c.name, " "); ok {
			if parents[p] == nil {
				parents[p] = newParent(p, leaf, c.summary, col.help)
				// "gtsm bottle -h" shows its subcommand's help and flags.
				parents[p].SetHelpFunc(func(*cobra.Command, []string) { printHelp(env.stdout, col.synopsis, col.help, col.fs) })
				root.AddCommand(parents[p])
			}
			parent, name = parents[p], leaf
		}
		cmd := &cobra.Command{
			Use:                name + " " + strings.TrimPrefix(col.synopsis, c.name),
			Short:              c.summary,
			Long:               col.help,
			DisableFlagParsing: !completing,
			RunE: func(_ *cobra.Command, args []string) error {
				if err := c.run(ctx, env, args); err != nil {
					return runError{c.name, err}
				}
				return nil
			},
		}
		if strings.TrimSpace(strings.TrimPrefix(col.synopsis, c.name)) == "" {
			cmd.Use = name
		}
		cmd.Flags().AddFlagSet(col.fs)
		// Help asked for (-h, --help, gtsm help X) is the output: stdout,
		// once, exit 0 (gtsm produce -h | less). pflag stops at -h with
		// ErrHelp without printing (fs.Usage is empty) and cobra prints this.
		cmd.SetHelpFunc(func(*cobra.Command, []string) { printHelp(env.stdout, col.synopsis, col.help, col.fs) })
		_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
		_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
		parent.AddCommand(cmd)
	}
	return root
}

// newParent makes a command that only holds subcommands ("gtsm bottle"):
// alone or with an unknown subcommand it is a usage error naming the
// subcommands; -h shows the help of its (one) subcommand.
func newParent(name, sub, summary, help string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " " + sub,
		Short: summary,
		Long:  help,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return runError{name, usageError{fmt.Sprintf("missing subcommand (want: %s)", sub)}}
			}
			return runError{name, usageError{fmt.Sprintf("unknown subcommand %q (want: %s)", args[0], sub)}}
		},
	}
}

// usageError marks a wrong invocation (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// collectedFlags is what collect mode records of a command.
type collectedFlags struct {
	fs             *pflag.FlagSet
	synopsis, help string
}

// errCollected stops a run function in collect mode.
var errCollected = errors.New("flags collected")

// collectFlags runs c in collect mode: its run function declares its flags
// and returns at parseFlags, before touching anything.
func collectFlags(ctx context.Context, env *environ, c command) *collectedFlags {
	col := &collectedFlags{}
	cenv := *env
	cenv.collected = col
	if err := c.run(ctx, &cenv, nil); !errors.Is(err, errCollected) {
		// A run function that returns before parseFlags is a bug here,
		// not a user's error.
		panic(fmt.Sprintf("gtsm %s: flags not collected: %v", c.name, err))
	}
	return col
}

// commonFlags are the flags every command has (added by newFlagSet). The
// flag values point back at the environ, so parseFlags can find it from the
// flag set alone.
type commonFlags struct {
	env                         *environ
	name                        string
	config, logFormat, logLevel string
}

// envHook is the pflag.Value of --config: a string that also carries the
// commonFlags, so parseFlags(fs, args) keeps its two-argument signature.
type envHook struct{ c *commonFlags }

func (h envHook) String() string     { return h.c.config }
func (h envHook) Set(v string) error { h.c.config = v; return nil }
func (h envHook) Type() string       { return "file" }

// newFlagSet makes a flag set that reports errors instead of exiting, stops
// at -h with pflag.ErrHelp (cobra then prints the command's help once, on
// stdout: see newRoot), and has the common flags --config, --log-format and
// --log-level.
func newFlagSet(env *environ, name, synopsis, help string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.SortFlags = false
	// pflag would print usage before returning ErrHelp; cobra prints the
	// help when a command returns it, so printing here too showed it twice.
	fs.Usage = func() {}
	c := &commonFlags{env: env, name: name}
	fs.Var(envHook{c}, "config", "YAML file of flag values (flags and environment win over it; env GTSM_CONFIG)")
	fs.StringVar(&c.logFormat, "log-format", envOr(env, "GTSM_LOG_FORMAT", "text"), "log format on stderr: text or json (env GTSM_LOG_FORMAT)")
	fs.StringVar(&c.logLevel, "log-level", envOr(env, "GTSM_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env GTSM_LOG_LEVEL)")
	if env.collected != nil {
		env.collected.fs, env.collected.synopsis, env.collected.help = fs, synopsis, help
	}
	return fs
}

// isCommon tells the flags newFlagSet gives every command.
func isCommon(name string) bool {
	return name == "config" || name == "log-format" || name == "log-level" || name == "help"
}

// printHelp writes a command's help: synopsis, long help with examples, its
// own flags, then the flags every command has. Both "gtsm X -h" and
// "gtsm help X" print this.
func printHelp(w io.Writer, synopsis, help string, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: gtsm %s\n\n", synopsis)
	if help != "" {
		fmt.Fprintln(w, help)
		fmt.Fprintln(w)
	}
	own := pflag.NewFlagSet("own", pflag.ContinueOnError)
	common := pflag.NewFlagSet("common", pflag.ContinueOnError)
	own.SortFlags, common.SortFlags = false, false
	fs.VisitAll(func(f *pflag.Flag) {
		f.DefValue = helpDefault(f)
		if isCommon(f.Name) {
			common.AddFlag(f)
		} else {
			own.AddFlag(f)
		}
	})
	fmt.Fprintln(w, "Flags:")
	fmt.Fprint(w, own.FlagUsages())
	fmt.Fprintln(w, "\nFlags of every command:")
	fmt.Fprint(w, common.FlagUsages())
	fmt.Fprintln(w, "  -h, --help   this help")
}

// helpDefault is a flag's default as help shows it: defaults come from the
// environment (SCHEMA_REGISTRY_URL=http://user:password@host), so a URL's
// user-info is cut and a secret flag's default is not shown.
func helpDefault(f *pflag.Flag) string {
	switch {
	case f.DefValue == "":
		return ""
	case kafkaprops.Secret(f.Name):
		return "(set, not shown)"
	case strings.Contains(f.DefValue, "://"):
		return registry.RedactURL(f.DefValue)
	}
	return f.DefValue
}

// flagValueInError is how pflag quotes a refused value.
var flagValueInError = regexp.MustCompile(`invalid argument ("(?:[^"\\]|\\.)*") for "([^"]*)" flag`)

// redactFlagError takes out of pflag's "invalid argument" message a value
// that is or may hold a secret (-X "sasl.password pw", a password flag, a
// URL with user-info).
func redactFlagError(msg string) string {
	return flagValueInError.ReplaceAllStringFunc(msg, func(m string) string {
		sub := flagValueInError.FindStringSubmatch(m)
		v, err := strconv.Unquote(sub[1])
		switch {
		case err != nil || kafkaprops.Secret(v) || kafkaprops.Secret(sub[2]):
			return fmt.Sprintf("invalid argument (not shown: it may hold a secret) for %q flag", sub[2])
		case strings.Contains(v, "://"):
			return fmt.Sprintf("invalid argument %q for %q flag", registry.RedactURL(v), sub[2])
		}
		return m
	})
}

// parseFlags parses args, mapping a bad flag to a usageError; then fills
// each flag not given from its environment variable or else the --config
// file, and makes the command's logger (env.log).
func parseFlags(fs *pflag.FlagSet, args []string) error {
	h := fs.Lookup("config").Value.(envHook)
	env := h.c.env
	if env.collected != nil {
		return errCollected
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{redactFlagError(err.Error())}
	}
	if err := applyConfig(env, fs, h.c); err != nil {
		return err
	}
	log, err := newLogger(env.stderr, h.c.logFormat, h.c.logLevel)
	if err != nil {
		return err
	}
	env.log = log
	env.logFormat = h.c.logFormat
	env.logLevel = h.c.logLevel
	env.logLevelSet = fs.Changed("log-level") || env.getenv("GTSM_LOG_LEVEL") != ""
	return nil
}

// newLogger makes the slog logger that --log-format and --log-level ask for.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: want text or json", format)}
}

// envOr returns the environment variable's value, or def when it is empty.
func envOr(env *environ, name, def string) string {
	if v := env.getenv(name); v != "" {
		return v
	}
	return def
}

// Type makes stringList (compare's repeatable --set) a pflag.Value.
func (s *stringList) Type() string { return "key=value" }
