package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle/fixture"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/querysvc"
	"github.com/earthscope/gtsm-stream/registry"
	"github.com/earthscope/gtsm-stream/shell"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

const demoHelp = `Runs the whole pipeline in one process, with no Docker and no Java:
  1. an embedded Kafka-protocol broker (127.0.0.1:19092) and schema registry
     (http://127.0.0.1:8081), persistent in the data directory;
  2. publishes the B009 2021-07-01 Day, Hour and Min bottle sets from testdata/
     to gtsm_etl (skipped when an earlier run already did: nothing is duplicated);
  3. runs the goka processor into <data>/gtsm.duckdb and waits until every
     record is committed and published to <data>/gtsm.duckdb.lake, the lake its
     SQL endpoint (a query process of its own) serves;
  4. prints the first rows of the original demo's query (key_site, timestamp), a
     per-session summary (records, time span, gaps, daily mean of each gauge)
     and the commands to go further.

Its processor uses the consumer group gtsm-demo, so a later 'gtsm process'
(group gtsm-processor) on the same broker starts from the beginning.

With --serve it keeps everything running until Ctrl-C and prints how to connect
kcat, psql, 'gtsm sql' and 'gtsm produce' to it.

Examples:
  gtsm demo                         # run once, print the results, exit
  gtsm demo --serve                 # keep broker, registry, processor and SQL endpoint up
  gtsm demo --data /tmp/gtsm --kafka-addr 127.0.0.1:29092 --registry-addr 127.0.0.1:28081 --sql-addr 127.0.0.1:25433
  rm -rf .gtsm                      # start over`

func runDemo(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "demo", "demo [flags]", demoHelp)
	var bf brokerFlags
	bf.register(fs)
	var ec endpointConfig
	ec.register(fs, env)
	input := fs.String("testdata", "testdata", "directory with the day/, hour/ and min/ fixture sets (generated into the data directory when absent)")
	serve := fs.Bool("serve", false, "keep running until Ctrl-C and print how to connect other tools")
	rows := fs.Int("rows", 10, "rows of the original demo query to print")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if ec.sqlAddr == "" {
		return usageError{"the demo queries through its SQL endpoint: --sql-addr must not be empty"}
	}
	step := func(format string, a ...any) {
		if env.logFormat == "json" {
			env.log.Info("demo: " + fmt.Sprintf(format, a...))
			return
		}
		fmt.Fprintf(env.stderr, "demo: "+format+"\n", a...)
	}
	// The demo prints its own steps; the processor's info lines would only
	// repeat them, unless --log-level asks for them.
	log := env.log
	if !env.logLevelSet {
		log, _ = newLogger(env.stderr, env.logFormat, "warn")
	}

	st, err := bf.start()
	if err != nil {
		return fmt.Errorf("%w (flags --kafka-addr and --registry-addr choose other ports)", err)
	}
	defer st.Close()
	step("broker %s, registry %s, data in %s", st.BootstrapServers, st.RegistryURL, bf.dataDir)

	sets, err := demoInputs(*input, bf.dataDir, step)
	if err != nil {
		return err
	}
	if err := demoProduce(ctx, env, st.BootstrapServers, st.RegistryURL, int32(bf.partitions), sets, step); err != nil {
		return err
	}

	dbPath := filepath.Join(bf.dataDir, "gtsm.duckdb")
	cfg := processor.Config{
		Brokers: []string{st.BootstrapServers}, Registry: registry.Config{URL: st.RegistryURL},
		DBPath: dbPath, Partitions: bf.partitions, Logger: log,
		// Its own group, so the offsets it commits in the embedded broker
		// are not those a later "gtsm process" (group gtsm-processor) on
		// another DuckDB file finds there.
		Group: demoGroup,
	}
	ec.logFormat, ec.logLevel, ec.stderr = env.logFormat, env.logLevel, env.stderr
	if !env.logLevelSet {
		ec.logLevel = "warn"
	}
	// The SQL endpoint serves the lake beside the file (<data>/gtsm.duckdb.lake).
	if err := fileLake(&cfg, &ec, "", 0, log); err != nil {
		return err
	}
	p, err := startProcessor(ctx, cfg, ec)
	if err != nil {
		return err
	}

	start := time.Now()
	waitCtx, cancelWait := context.WithCancel(ctx)
	go demoProgress(waitCtx, env.stderr, p.Processor)
	err = p.WaitCaughtUp(ctx)
	cancelWait()
	if err != nil {
		return errors.Join(fmt.Errorf("processor: %w", err), p.stop())
	}
	step("processor caught up in %s; DuckDB file %s", time.Since(start).Round(time.Millisecond), dbPath)
	// Everything is committed: publish it to the lake now, rather than at
	// the next interval, and wait for the query process to serve it.
	if err := p.PublishAll(ctx); err != nil {
		return errors.Join(err, p.stop())
	}
	rctx, cancelReady := context.WithTimeout(ctx, time.Minute)
	err = waitServed(rctx, p.ep.sql, p.Committed())
	cancelReady()
	if err != nil {
		return errors.Join(fmt.Errorf("SQL endpoint: %w", err), p.stop())
	}

	if err := demoQueries(ctx, env.stdout, p.ep.SQLAddr(), dbPath, *rows); err != nil {
		return errors.Join(err, p.stop())
	}
	if *serve {
		fmt.Fprintf(env.stdout, `
Serving until Ctrl-C. Connect with:
  kcat -b %[1]s -L                                   # the broker (BOOTSTRAP_SERVERS=%[1]s)
  curl %[2]s/subjects                                # the registry (SCHEMA_REGISTRY_URL=%[2]s)
  psql -h %[3]s -p %[4]s -d gtsm -c 'SELECT count(*) FROM gtsm_etl'
  gtsm sql --addr %[5]s                               # the SQL shell; .q lists the named queries
  BOOTSTRAP_SERVERS=%[1]s SCHEMA_REGISTRY_URL=%[2]s gtsm produce more-files/
  open http://%[6]s/                                 # status page, /metrics, /healthz
`, st.BootstrapServers, st.RegistryURL, hostOf(p.ep.SQLAddr()), portOf(p.ep.SQLAddr()), p.ep.SQLAddr(), p.ep.HTTPAddr())
		// Until Ctrl-C (a clean stop), or the processor fails on its own.
		if err := p.wait(ctx); err != nil {
			return fmt.Errorf("processor: %w", err)
		}
		step("stopped")
		return nil
	}
	return p.stop()
}

// waitServed waits until the query process serves and its kafka_offsets
// (published with the rows of the same round) reach committed, the next
// offsets the processor committed per partition.
func waitServed(ctx context.Context, sup *querysvc.Supervisor, committed map[int32]int64) error {
	if err := sup.Ready(ctx); err != nil {
		return err
	}
	var want int64
	for _, n := range committed {
		want += max(n, 0)
	}
	var last error
	for {
		pg, err := shell.DialPG(ctx, sup.Addr().String(), "", 5*time.Second)
		if err == nil {
			var res *shell.Result
			res, err = pg.Exec(ctx, "SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets")
			pg.Close()
			if err == nil && len(res.Rows) == 1 && res.Rows[0][0].Text == strconv.FormatInt(want, 10) {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("the lake did not show the %d committed records: %w (last error: %v)", want, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// demoInputs returns the three fixture sets, from testdata/ when present (a
// checkout), else generated into the data directory (a bare binary): the
// generator is deterministic and a test proves both byte-identical.
// demoGroup is the demo processor's consumer group.
const demoGroup = "gtsm-demo"

func demoInputs(dir, dataDir string, step func(string, ...any)) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, "hour")); err != nil {
		dir = filepath.Join(dataDir, "fixtures")
		if err := fixture.Write(dir); err != nil {
			return nil, fmt.Errorf("generate fixtures in %s: %w", dir, err)
		}
		step("no testdata/ here: generated the fixture sets into %s", dir)
	}
	return []string{filepath.Join(dir, "day"), filepath.Join(dir, "hour"), filepath.Join(dir, "min")}, nil
}

// demoProduce publishes the fixture sets unless the topic already holds at
// least that many records (an earlier demo run in the same data directory).
func demoProduce(ctx context.Context, env *environ, brokers, registryURL string, partitions int32, sets []string, step func(string, ...any)) error {
	dry, err := producer.Run(ctx, sets, producer.Options{DryRun: io.Discard})
	if err != nil {
		return fmt.Errorf("read fixtures: %w", err)
	}
	have, err := topicRecords(ctx, brokers, "gtsm_etl")
	if err != nil {
		return err
	}
	if have >= dry.Records {
		step("gtsm_etl already holds %d records (≥ the %d of the fixtures): not producing again", have, dry.Records)
		return nil
	}
	sum, err := producer.Run(ctx, sets, producer.Options{
		Kafka:      producer.Kafka{Brokers: []string{brokers}},
		Registry:   registry.Config{URL: registryURL},
		Partitions: partitions, Replication: 1,
	})
	if sum != nil {
		sum.Write(env.stderr)
	}
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// topicRecords is the sum of the topic's end offsets (0 when it does not exist).
func topicRecords(ctx context.Context, brokers, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n, nil
}

// demoProgress prints the processor's remaining lag every second.
func demoProgress(ctx context.Context, w io.Writer, p *processor.Processor) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lag, err := p.Lag(ctx)
			if err != nil {
				continue
			}
			var n int64
			for _, l := range lag {
				n += l
			}
			fmt.Fprintf(w, "demo: processing, %d records to go\n", n)
		}
	}
}

// demoQueries runs the original demo's query and the hourly summary through
// the SQL endpoint, the way any client would.
// demoSummary is what the demo prints after the original demo's query: per
// site and session the rows, time span, gaps and missing samples
// (site_state), and the daily mean of each strain channel in counts, rounded
// to 0.1 count (the samples are integer counts; more digits are noise).
const demoSummary = `SELECT s.site, s.session, s.records, s.first_time, s.last_time, s.gaps, s.missing AS missing_samples
FROM site_state s ORDER BY s.site, s.session`

// demoMeans pivots the four gauges into columns; each session has its own
// field names (Day rs1_t0.., Hour ls1_t0.., Min bs1_t0..), hence "fields".
const demoMeans = `SELECT site, session, window_start::DATE AS day, left(min(channel), 2) || 'N_t0' AS fields,
       round(max(mean) FILTER (WHERE channel[3] = '1'), 1)::DECIMAL(14, 1) AS gauge1_mean,
       round(max(mean) FILTER (WHERE channel[3] = '2'), 1)::DECIMAL(14, 1) AS gauge2_mean,
       round(max(mean) FILTER (WHERE channel[3] = '3'), 1)::DECIMAL(14, 1) AS gauge3_mean,
       round(max(mean) FILTER (WHERE channel[3] = '4'), 1)::DECIMAL(14, 1) AS gauge4_mean
FROM windows WHERE width = '1d'
GROUP BY site, session, window_start ORDER BY site, session, window_start`

func demoQueries(ctx context.Context, w io.Writer, sqlAddr, dbPath string, rows int) error {
	pg, err := shell.DialPG(ctx, sqlAddr, "", 10*time.Second)
	if err != nil {
		return err
	}
	defer pg.Close()
	seed, err := gtsmsql.QueryByName("seed")
	if err != nil {
		return err
	}
	count, err := pg.Exec(ctx, "SELECT count(*) AS records FROM gtsm_etl")
	if err != nil {
		return err
	}
	first, err := pg.Exec(ctx, fmt.Sprintf("SELECT * FROM (%s) LIMIT %d", seed.SQL, rows))
	if err != nil {
		return fmt.Errorf("seed query: %w", err)
	}
	fmt.Fprintf(w, "\n%s\n(first %d of %s rows)\n", seed.Description, rows, count.Rows[0][0].Text)
	if err := shell.Render(w, shell.ModeTable, first); err != nil {
		return err
	}
	for _, q := range []struct{ title, sql string }{
		{"Per site and session: records, span (UTC), gaps in the sample timeline and the samples they miss (table site_state)", demoSummary},
		{"Daily mean of each strain channel, in counts (table windows, width 1d; .q hourly and .q daily have n, min, max, first, last)", demoMeans},
	} {
		res, err := pg.Exec(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("demo summary: %w", err)
		}
		fmt.Fprintf(w, "\n%s\n", q.title)
		if err := shell.Render(w, shell.ModeTable, res); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, `
Next:
  gtsm sql --db %[1]s -c ".q hourly B009"    # the full hourly windows; ".q" lists the named queries
  gtsm sql --db %[1]s                         # an SQL shell on the file: .tables, .schema gtsm_etl
  gtsm demo --serve    # keep it all running and connect kcat, psql, the status page
  README.md, "Commands": produce, process and sql step by step on your own files.
`, dbPath)
	return nil
}
