package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	flag "github.com/spf13/pflag"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/compare"
	"github.com/earthscope/gtsm-stream/flink"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// compareHelp is compareHelpText with the query lists filled in from the
// embedded Flink queries, so the help cannot drift from what runs.
func compareHelp() string {
	queries := "Queries: " + strings.Join(flink.QueryNames(), ", ") + " (default: all)."
	for _, l := range notCompared() {
		queries += "\n" + wrap("Not compared: "+l+".", 80)
	}
	return strings.Replace(compareHelpText, "{{queries}}", queries, 1)
}

// notCompared is one "name, name (DuckDB only, no Flink twin): why" per
// reason, for the help and the start of a comparison of all queries.
func notCompared() []string {
	var reasons []string
	names := map[string][]string{}
	for _, n := range flink.WithoutTwin() {
		why := flink.WhyNoTwin(n)
		if names[why] == nil {
			reasons = append(reasons, why)
		}
		names[why] = append(names[why], n)
	}
	var out []string
	for _, why := range reasons {
		out = append(out, strings.Join(names[why], ", ")+" (DuckDB only, no Flink twin): "+why)
	}
	return out
}

// wrap breaks text into lines of at most width bytes at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(text) {
		if n > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

const compareHelpText = `Runs named demo queries on Flink SQL and on the processor's DuckDB, over the same
gtsm_etl topic, and shows the rows that differ side by side. Exit status 0 when every
query agrees, 1 when any differs (or fails).

Flink side: through the Flink SQL Gateway REST API (docker-compose.yml runs one on
:8088). A session is opened with table.local-time-zone=UTC, the gtsm_etl table DDL
(flink/gtsm_etl.sql: Kafka connector, avro-confluent, bounded scan) runs in it, then
each query of flink/queries/ runs and its results are paged through to the end, the
changelog (UPDATE_BEFORE/UPDATE_AFTER/DELETE) applied. The session is closed at exit.
DuckDB side: the same name from sql/queries/, on the processor's SQL endpoint (or on a
DuckDB file with --db while no processor holds it).

First it waits (--wait, 30s by default; progress and the time left on stderr) until the gateway answers, the
topic's end offsets (read from Kafka, --bootstrap-servers) stayed the same for two
polls, and the processor has applied exactly those offsets (its kafka_offsets
table); then Flink's scan is pinned to them ('scan.bounded.specific-offsets'),
so both sides read the same messages, and the offsets compared are printed.
With --wait 0 (the default with --db) it does not wait or ask Kafka: Flink is
pinned to whatever the processor has applied.

Both results are normalized before comparing: columns matched by name, integers and
integral floats alike, floats rounded to --precision decimals, timestamps as UTC
milliseconds, rows sorted. A changed row is shown as its key (site, session, channel,
window...) with both sides' values column by column, "<>" marking the differences;
rows on one side only are prefixed "<" (flink) or ">" (duckdb).

This needs the compose stack (or your own Flink with the connector jars and the
processor): there is no Flink in the tests, which run against an in-process gateway.

{{queries}}

Examples:
  export GTSM_SQL_PASSWORD=gtsm && docker compose up -d && gtsm compare --wait 10m   # the compose stack
  docker compose run --rm gtsm-compare                  # the same from the image, only Docker needed
  gtsm compare hourly gaps                              # two queries
  gtsm compare --precision 3 daily                      # looser float comparison
  gtsm compare --gateway http://flink:8088 --pg postgres://gtsm:secret@proc:5433/gtsm
  gtsm compare --db gtsm.duckdb latest                  # processor stopped: read its file
  gtsm compare --wait 0 hourly                          # now, up to what the processor applied
  gtsm compare --api v1 latest                          # Flink 1.16 (REST API v1 only)
  gtsm compare --set parallelism.default=2 hourly       # extra Flink session settings

Environment: FLINK_SQL_GATEWAY (--gateway), BOOTSTRAP_SERVERS (--bootstrap-servers),
GTSM_SQL_ADDR (the endpoint's host:port when --pg is not given), GTSM_SQL_PASSWORD
(its password: docker-compose.yml's processor uses the same variable, default gtsm).`

// defaultCompareWait is how long gtsm compare waits for the stack by
// default: seconds, for a command run by hand against a stack that is up;
// a stack that was just started asks for --wait (the README's one-liner
// gives 10m), and every progress line says the time left.
const defaultCompareWait = 30 * time.Second

// compareTopic is the topic flink/gtsm_etl.sql declares.
const compareTopic = "gtsm_etl"

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runCompare(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "compare", "compare [flags] [QUERY...]", compareHelp())
	gateway := fs.String("gateway", envOr(env, "FLINK_SQL_GATEWAY", "http://localhost:8088"), "Flink SQL Gateway REST address (env FLINK_SQL_GATEWAY)")
	// Flink 1.20's gateway serves v1 to v3 (v4 arrived with Flink 2.0, and
	// adds nothing this client uses); v2 is in every Flink since 1.17.
	api := fs.String("api", "v2", "SQL Gateway REST API version: v1 (Flink 1.16+), v2 (1.17+) or v3 (1.19+)")
	brokers := fs.String("bootstrap-servers", envOr(env, "BOOTSTRAP_SERVERS", "localhost:19092"), "Kafka bootstrap servers, to read the end offsets of "+compareTopic+" (env BOOTSTRAP_SERVERS)")
	wait := fs.Duration("wait", defaultCompareWait, "wait at most this long for the gateway, the producer and the processor to be done, saying what for and the time left (0: no wait; the default with --db, whose processor is stopped); a stack just started with docker compose up -d needs minutes: --wait 10m")
	pgURL := fs.String("pg", "", "the processor's SQL endpoint as a postgres:// URL (default from GTSM_SQL_ADDR, "+pgwire.DefaultAddr+")")
	dbPath := fs.String("db", "", "compare against this DuckDB file, opened read-only, instead of the endpoint")
	ddlFile := fs.String("flink-ddl", "", "Flink SQL script declaring gtsm_etl (default: the built-in flink/gtsm_etl.sql)")
	flinkDir := fs.String("flink-queries", "", "directory of <name>.sql Flink queries (default: the built-in flink/queries)")
	var sets stringList
	fs.Var(&sets, "set", "extra Flink session setting key=value (repeatable)")
	precision := fs.Int("precision", 6, "decimals floats are rounded to before comparing (0-12)")
	maxRows := fs.Int("max-rows", 20, "differing rows printed per kind and query (0: all)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dbPath != "" && !flagGiven(fs, "wait") {
		// A stopped processor's file will not catch up: compare what it holds.
		*wait = 0
	}
	if *precision < 0 || *precision > 12 {
		return usageError{fmt.Sprintf("--precision %d: want 0 to 12", *precision)}
	}
	switch *api {
	case "v1", "v2", "v3":
	default:
		return usageError{fmt.Sprintf("--api %q: want v1, v2 or v3 (the versions Flink 1.20 serves)", *api)}
	}
	props := compare.DefaultFlinkProperties()
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return usageError{fmt.Sprintf("--set %q: want key=value", s)}
		}
		props[k] = v
	}

	names := fs.Args()
	if len(names) == 0 {
		names = flink.QueryNames()
		// Say what "all" leaves out, and why, before any waiting.
		for _, l := range notCompared() {
			fmt.Fprintf(env.stdout, "not compared: %s\n", l)
		}
	}
	var queries []compare.Query
	for _, n := range names {
		q, err := namedCompareQuery(n, *flinkDir)
		if err != nil {
			return usageError{err.Error()}
		}
		queries = append(queries, q)
	}
	ddl := flink.DDL()
	if *ddlFile != "" {
		b, err := os.ReadFile(*ddlFile)
		if err != nil {
			return err
		}
		ddl = string(b)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	g, err := compare.NewGateway(*gateway)
	if err != nil {
		return usageError{err.Error()}
	}
	g.Version = *api

	var duckSide compare.Source
	if *dbPath != "" {
		db, err := gtsmsql.Open(ctx, *dbPath, true)
		if err != nil {
			return err
		}
		defer db.Close()
		duckSide = &compare.DBSource{DB: db, Label: "duckdb"}
	} else {
		es := &endpointSource{env: env, url: *pgURL}
		defer es.close()
		duckSide = es
	}
	applied := func(ctx context.Context) (compare.Offsets, error) {
		return compare.AppliedOffsets(ctx, duckSide, compareTopic)
	}

	// The offsets both sides read: what the processor has applied, once it
	// has applied the whole topic (or right now, with --wait 0).
	var offsets compare.Offsets
	if *wait > 0 {
		seeds := strings.Split(*brokers, ",")
		r := &compare.Readiness{
			Gateway:     g,
			End:         func(ctx context.Context) (compare.Offsets, error) { return endOffsets(ctx, seeds, compareTopic) },
			Applied:     applied,
			Progress:    prefixWriter{"gtsm compare: ", env.stderr},
			GatewayHint: "is the compose stack up? docker compose up -d starts it, in minutes the first time",
			Hint:        "gtsm compare --wait 10m waits longer",
		}
		wctx, wcancel := context.WithTimeout(ctx, *wait)
		offsets, err = r.Wait(wctx)
		wcancel()
		if err != nil {
			return fmt.Errorf("waiting for the stack (--wait %s): %w", *wait, err)
		}
	} else if offsets, err = applied(ctx); err != nil {
		return err
	}
	if offsets.Total() == 0 {
		return fmt.Errorf("the processor has applied no message of %s yet: nothing to compare", compareTopic)
	}
	if ddl, err = flink.PinOffsets(ddl, offsets.Flink()); err != nil {
		return usageError{err.Error()}
	}
	fmt.Fprintf(env.stdout, "comparing %s partition:next-offset %s (%d messages, every one the processor applied and Flink scans)\n",
		compareTopic, offsets, offsets.Total())

	flinkSide := &compare.FlinkSource{Gateway: g, DDL: flink.Statements(ddl), Properties: props}
	defer func() {
		// A fresh context: the session must be closed even after a timeout.
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := flinkSide.Close(cctx); err != nil {
			fmt.Fprintf(env.stderr, "gtsm compare: closing the Flink session: %v\n", err)
		}
	}()

	diffs, runErr := compare.Run(ctx, flinkSide, duckSide, queries, compare.Options{Precision: *precision}, env.stdout, *maxRows)
	// The processor's tables are read while it runs: if it applied more
	// meanwhile, its side may hold messages Flink did not scan.
	if now, err := applied(ctx); err == nil && !now.Equal(offsets) {
		fmt.Fprintf(env.stderr, "gtsm compare: note: the processor applied more messages during the comparison (now %s): differences may come from them; run again\n", now)
	}
	if runErr != nil {
		// Flink's avro-confluent format has no ignore-parse-errors: one
		// message it cannot decode fails every query, where the processor
		// keeps it in dead_letters and goes on.
		if t, err := duckSide.Run(ctx, "SELECT count(*), min(kafka_partition), min(kafka_offset) FROM dead_letters WHERE topic = '"+compareTopic+"'"); err == nil &&
			len(t.Rows) == 1 && t.Rows[0][0] != nil && t.Rows[0][0] != int64(0) {
			fmt.Fprintf(env.stderr, "gtsm compare: note: the processor dead-lettered %v messages of %s (first: partition %v offset %v; SELECT * FROM dead_letters): "+
				"a message Flink cannot decode fails every Flink query (flink/README.md)\n", t.Rows[0][0], compareTopic, t.Rows[0][1], t.Rows[0][2])
		}
	}
	differ := 0
	for _, d := range diffs {
		if !d.Same() {
			differ++
		}
	}
	switch {
	case runErr != nil && differ > 0:
		return fmt.Errorf("%d of %d queries differ between Flink and DuckDB; %w", differ, len(queries), runErr)
	case runErr != nil:
		return runErr
	case differ > 0:
		return fmt.Errorf("%d of %d queries differ between Flink and DuckDB", differ, len(diffs))
	}
	fmt.Fprintf(env.stdout, "all %d queries agree\n", len(diffs))
	return nil
}

// flagGiven says whether the flag was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// namedCompareQuery pairs the Flink and DuckDB texts of a named query; the
// DuckDB query's parameters (a site filter) are bound to NULL: all sites.
func namedCompareQuery(name, flinkDir string) (compare.Query, error) {
	dq, err := gtsmsql.QueryByName(name)
	if err != nil {
		return compare.Query{}, err
	}
	var fq string
	if flinkDir != "" {
		b, err := os.ReadFile(filepath.Join(flinkDir, name+".sql"))
		if err != nil {
			return compare.Query{}, fmt.Errorf("flink query %s: %w", name, err)
		}
		fq = string(b)
	} else if fq, err = flink.Query(name); err != nil {
		return compare.Query{}, err
	}
	args, err := dq.Args(nil)
	if err != nil {
		return compare.Query{}, err
	}
	return compare.Query{Name: name, Flink: fq, DuckDB: dq.SQL, Args: args}, nil
}

// connectEndpoint opens the processor's SQL endpoint.
func connectEndpoint(ctx context.Context, env *environ, url string) (*pgx.Conn, error) {
	if url == "" {
		url = "postgres://gtsm@" + envOr(env, "GTSM_SQL_ADDR", pgwire.DefaultAddr) + "/gtsm?sslmode=disable"
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--pg %q: %v", registry.RedactURL(url), err)}
	}
	if cfg.Password == "" {
		cfg.Password = env.getenv("GTSM_SQL_PASSWORD")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "28P01" {
			// Waiting will not fix a wrong password.
			return nil, compare.Permanent(fmt.Errorf("the processor's SQL endpoint %s:%d refused the password: set GTSM_SQL_PASSWORD to the processor's (docker-compose.yml: ${GTSM_SQL_PASSWORD:-gtsm}): %w", cfg.Host, cfg.Port, err))
		}
		return nil, fmt.Errorf("the processor's SQL endpoint %s:%d (is gtsm process running with --sql-addr? or use --db FILE): %w", cfg.Host, cfg.Port, err)
	}
	return conn, nil
}

// endpointSource is the processor's SQL endpoint, connected on first use
// and again after the connection broke: the readiness wait polls it while
// the processor starts.
type endpointSource struct {
	env  *environ
	url  string
	conn *pgx.Conn
}

func (s *endpointSource) Name() string { return "duckdb" }

func (s *endpointSource) Run(ctx context.Context, query string, args ...any) (*compare.Table, error) {
	if s.conn == nil {
		c, err := connectEndpoint(ctx, s.env, s.url)
		if err != nil {
			return nil, err
		}
		s.conn = c
	}
	t, err := (&compare.PGSource{Conn: s.conn}).Run(ctx, query, args...)
	if err != nil && s.conn.IsClosed() {
		s.conn = nil
	}
	return t, err
}

func (s *endpointSource) close() {
	if s.conn != nil {
		s.conn.Close(context.Background())
	}
}

// endOffsets lists the topic's end offsets: where a bounded scan started now
// stops. A topic that does not exist yet is an error (the producer creates it).
func endOffsets(ctx context.Context, seeds []string, topic string) (compare.Offsets, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, compare.Permanent(fmt.Errorf("--bootstrap-servers %q: %w", strings.Join(seeds, ","), err))
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(seeds, ","), err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	o := compare.Offsets{}
	ends.Each(func(l kadm.ListedOffset) { o[l.Partition] = l.Offset })
	if len(o) == 0 {
		return nil, fmt.Errorf("topic %s: no partitions (not created yet?)", topic)
	}
	return o, nil
}

// prefixWriter prefixes every write (one progress line each) with p.
type prefixWriter struct {
	p string
	w io.Writer
}

func (w prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.p+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

var _ flag.Value = (*stringList)(nil)
