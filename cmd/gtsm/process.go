package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/earthscope/gtsm-stream/internal/tlsconfig"

	"github.com/IBM/sarama"

	"github.com/earthscope/gtsm-stream/lake"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/producer"
)

const processHelp = `Consumes the gtsm_etl topic with a goka processor keyed by site and lands, in
one DuckDB file: every record (table gtsm_etl, duplicates stored once, late ones
flagged), per site and session counters (site_state), gaps in the sample
timeline (gaps), and 10m/1h/1d event-time windows of the strain channels
(windows, with a microstrain mean where site_reference has the gauge's
reference counts). Each batch of rows is committed to DuckDB together with the
Kafka offsets it covers, and Kafka offsets are committed only afterwards, so a
crash (even kill -9) and restart gives exactly the tables of a run without one.

A message that cannot be decoded (bad magic byte, unknown schema id, corrupt
Avro, no time) is a dead letter: a row of table dead_letters and a copy in the
topic <topic>.dlq with headers dlq.reason, dlq.error, dlq.topic, dlq.partition
and dlq.offset. An unreachable schema registry is waited for (a log line per
retry); a DuckDB write failure (disk full) stops it without committing offsets.

Stop it with Ctrl-C (SIGINT) or SIGTERM: it commits the last batch and
checkpoints the file. Only one process can open a DuckDB file; query a running
processor through its SQL endpoint, or stop it and use 'gtsm sql --db FILE'.

While it runs it serves SQL over the Postgres wire protocol, read-only
(--sql-addr, default 127.0.0.1:5433: psql, pgx, Grafana, 'gtsm sql'), from a
query process of its own: no statement a client sends runs in this process.
It publishes each partition to a lake beside the file (<db>.lake, or --lake)
every --publish-interval (2s) after commits, and the query process serves that
lake: a committed row is queryable within the interval plus about a second.
The query process is restarted if it crashes (clients get an error meanwhile),
its memory is bounded by the kernel (from --sql-memory-limit), and a statement
that ignores --sql-timeout ends with it. --sql-addr "" turns SQL off (and the
lake, unless --lake is given). Monitoring (--http-addr, default
127.0.0.1:8080): a status page with each site's state, gaps and strain curves,
Prometheus /metrics and /healthz. A non-loopback --sql-addr needs a password
(env GTSM_SQL_PASSWORD).

It logs progress (records/s, lag per partition) every --progress-interval;
--log-format json makes every log line JSON. --exit-at-end (-e, as kcat -e)
stops once everything the topic held at start is committed.

Kafka client properties as kcat and librdkafka take them, mapped onto sarama:
-X key=value (repeatable) and --kafka-properties FILE; -X wins over the file
and both over the dedicated flags. Unknown ones are refused by name
(docs/cli.md lists them).

Environment (flags win; both win over --config): BOOTSTRAP_SERVERS,
SCHEMA_REGISTRY_URL, KAFKA_SASL_PASSWORD, SCHEMA_REGISTRY_PASSWORD, GTSM_DB,
GTSM_SQL_ADDR, GTSM_SQL_PASSWORD.

Examples:
  gtsm broker &                                  # embedded Kafka + registry
  gtsm produce testdata/hour testdata/day
  gtsm process --db gtsm.duckdb                  # Ctrl-C when done
  gtsm process --db gtsm.duckdb --exit-at-end    # to the end of the topic, then stop
  gtsm process --state-dir /shared/gtsm --lake /shared/lake   # one of several members of a group (docs/scale-out.md)
  gtsm process --db gtsm.duckdb -X client.id=gtsm-b009 -X session.timeout.ms=30000 --log-format json
  gtsm process --db gtsm.duckdb --allowed-lateness 2m --batch-rows 20000 --flush-interval 500ms
  # a real cluster: Kafka 3.x/4.x over TLS with SASL/SCRAM, registry with basic auth
  export KAFKA_SASL_PASSWORD=... SCHEMA_REGISTRY_PASSWORD=...
  gtsm process --bootstrap-servers kafka1:9093,kafka2:9093 --kafka-version 3.7.0 --replication-factor 3 \
    --tls --tls-ca ca.pem --sasl-mechanism SCRAM-SHA-512 --sasl-username gtsm \
    --registry https://registry:8081 --registry-username gtsm --db /data/gtsm.duckdb`

func runProcess(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "process", "process [flags]", processHelp)
	var (
		cfg                            processor.Config
		brokers, version               string
		tlsOn, tlsInsecure             bool
		tlsCA, tlsCert, tlsKey         string
		lateness, flush, sessTimeout   = &cfg.AllowedLateness, &cfg.FlushInterval, &cfg.SessionTimeout
		registryUser, registryPassword string
	)
	fs.StringVar(&brokers, "bootstrap-servers", envOr(env, "BOOTSTRAP_SERVERS", "localhost:19092"), "Kafka bootstrap servers, comma separated (env BOOTSTRAP_SERVERS)")
	fs.StringVar(&cfg.Registry.URL, "registry", envOr(env, "SCHEMA_REGISTRY_URL", "http://localhost:8081"), "schema registry URL (env SCHEMA_REGISTRY_URL)")
	fs.StringVar(&cfg.Topic, "topic", "gtsm_etl", "input topic")
	fs.StringVar(&cfg.Group, "group", "gtsm-processor", "goka group: consumer group and group table <group>-table")
	fs.StringVar(&cfg.DBPath, "db", envOr(env, "GTSM_DB", "gtsm.duckdb"), "DuckDB file (created and migrated if needed; env GTSM_DB)")
	fs.StringVar(&cfg.StateDir, "state-dir", env.getenv("GTSM_STATE_DIR"), "many processors: one DuckDB file per Kafka partition in this shared directory, owned by whichever member of the group has the partition; --db is then unused and the SQL endpoint is off (env GTSM_STATE_DIR; docs/processor.md)")
	lakeDir := fs.String("lake", envOr(env, "GTSM_LAKE", ""), "publish each partition into the Apache Iceberg tables of this lake directory (package lake; catalog: env GTSM_LAKE_CATALOG, default a SQLite file inside it; with --db the default is <db>.lake, which the SQL endpoint serves; with --state-dir serve it with gtsm query-service --lake; env GTSM_LAKE)")
	fs.DurationVar(&cfg.PublishInterval, "publish-interval", 0, "publish each partition at most this often after commits (default 2s with --db, 10s with --state-dir)")
	fs.StringVar(&cfg.CheckpointThreshold, "checkpoint-threshold", "1GB", "DuckDB WAL size that triggers a checkpoint into the file (bigger: faster ingest, longer replay after a crash)")
	fs.IntVar(&cfg.DuckDBThreads, "duckdb-threads", 1, "DuckDB worker threads of the processor's database (it writes on one; more only make it busy-wait for them; client SQL runs in the separate query process)")
	fs.IntVar(&cfg.BatchRows, "batch-rows", 131072, "rows per partition per DuckDB transaction (≥ 122880 lets DuckDB write row groups straight to the file; larger: more replay after a crash)")
	fs.DurationVar(flush, "flush-interval", time.Second, "commit a partial batch this long after its first message (the end-to-end latency bound)")
	fs.DurationVar(lateness, "allowed-lateness", 0, "a window is final once its site's event time passes window end + this; later data still updates it (counted in late_updates)")
	fs.StringVar(&version, "kafka-version", "2.8.0", "Kafka protocol version to speak (at least 2.1.0 for Kafka 4.x)")
	fs.IntVar(&cfg.Replication, "replication-factor", 1, "replication of the goka table topic (and of the input topic if it must be created); 3 on a real cluster")
	fs.IntVar(&cfg.Partitions, "partitions", producer.DefaultPartitions, "partitions of the input topic if it does not exist yet (the same as gtsm produce, so sites land where it puts them)")
	fs.DurationVar(sessTimeout, "session-timeout", 0, "consumer group session timeout (0: sarama's 10s)")
	fs.DurationVar(&cfg.RebalanceTimeout, "rebalance-timeout", 20*time.Second, "how long a group join waits for other members (keep it below 30s, sarama's network read timeout)")
	fs.StringVar(&cfg.StorageDir, "storage-dir", "", "directory for goka's local copy of the group table (LevelDB); empty: in memory, rebuilt from Kafka on start")
	fs.IntVar(&cfg.TableEvery, "table-every", 1000, "write a site's goka group-table value at most every N of its messages (DuckDB is the truth; the table is a cache for views)")
	fs.BoolVar(&tlsOn, "tls", false, "connect to Kafka with TLS (implied by the other --tls-* flags)")
	fs.StringVar(&tlsCA, "tls-ca", "", "PEM CA bundle for Kafka (default: system roots)")
	fs.StringVar(&tlsCert, "tls-cert", "", "PEM client certificate for Kafka (mutual TLS)")
	fs.StringVar(&tlsKey, "tls-key", "", "PEM client key for Kafka (mutual TLS)")
	fs.BoolVar(&tlsInsecure, "tls-insecure", false, "do not verify the Kafka broker certificate (testing only)")
	fs.StringVar(&cfg.SASLMechanism, "sasl-mechanism", "", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (use with --tls)")
	fs.StringVar(&cfg.SASLUser, "sasl-username", "", "Kafka SASL user")
	fs.StringVar(&cfg.SASLPwd, "sasl-password", "", "Kafka SASL password (prefer env KAFKA_SASL_PASSWORD: flags show in ps)")
	fs.StringVar(&registryUser, "registry-username", "", "schema registry basic-auth user")
	fs.StringVar(&registryPassword, "registry-password", "", "schema registry basic-auth password (prefer env SCHEMA_REGISTRY_PASSWORD)")
	fs.StringVar(&cfg.Registry.CAFile, "registry-ca", "", "PEM CA bundle for an https registry")
	fs.BoolVar(&cfg.Registry.InsecureSkipVerify, "registry-insecure", false, "do not verify the registry certificate (testing only)")
	var ec endpointConfig
	ec.register(fs, env)
	var kp kafkaPropFlags
	kp.register(fs)
	exitAtEnd := fs.BoolP("exit-at-end", "e", false, "stop once every record in the topic when it started is committed to DuckDB (like kcat -e): for batch runs and scripts")
	progressEvery := fs.Duration("progress-interval", 30*time.Second, "log progress (records/s, lag per partition) this often; 0: only at start and stop")
	level2On := fs.Bool("level2", true, "compute Level-2 strain per site (docs/level2.md); --level2=false: counts only")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	cfg.Logger = env.log
	cfg.NoLevel2 = !*level2On
	if *lakeDir != "" && cfg.StateDir != "" {
		pub, err := lake.New(*lakeDir, lake.Topic(cfg.Topic), lake.Logger(env.log))
		if err != nil {
			return err
		}
		cfg.Publisher = pub
	}
	// Go's soft memory limit and GC percent for a drain (an operator's
	// GOMEMLIMIT / GOGC win): see processor.TuneRuntime.
	processor.TuneRuntime()
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	if len(cfg.Brokers) == 0 {
		return usageError{"--bootstrap-servers is empty"}
	}
	kv, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		return usageError{fmt.Sprintf("--kafka-version %q: %v", version, err)}
	}
	cfg.KafkaVersion = kv
	if cfg.DuckDBThreads <= 0 {
		return usageError{"--duckdb-threads must be positive"}
	}
	if cfg.BatchRows <= 0 {
		return usageError{"--batch-rows must be positive"}
	}
	if *lateness < 0 {
		return usageError{"--allowed-lateness must not be negative"}
	}
	cfg.SASLPwd = cmp.Or(cfg.SASLPwd, env.getenv("KAFKA_SASL_PASSWORD"))
	cfg.Registry.Username = registryUser
	cfg.Registry.Password = cmp.Or(registryPassword, env.getenv("SCHEMA_REGISTRY_PASSWORD"))
	if tlsOn || tlsCA != "" || tlsCert != "" || tlsKey != "" || tlsInsecure {
		if cfg.TLS, err = processTLS(tlsCA, tlsCert, tlsKey, tlsInsecure); err != nil {
			return err
		}
	}
	if err := applySaramaProps(&cfg, &kp); err != nil {
		return err
	}
	ec.sqlPassword = env.getenv("GTSM_SQL_PASSWORD")
	ec.logFormat, ec.logLevel, ec.stderr = env.logFormat, env.logLevel, env.stderr
	if cfg.StateDir == "" {
		if err := fileLake(&cfg, &ec, *lakeDir, cfg.PublishInterval, env.log); err != nil {
			return err
		}
	}
	var committed atomic.Int64
	cfg.OnCommit = func(ci processor.CommitInfo) { committed.Add(int64(ci.Messages)) }
	r, err := startProcessor(ctx, cfg, ec)
	if err != nil {
		return err
	}
	if r.ep.sql != nil {
		// "running" means clients can connect: wait (bounded) for the
		// query process, while the processor already consumes.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := r.ep.sql.Ready(rctx); err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("SQL endpoint not serving yet; the processor runs on", "err", err)
		}
		cancel()
	}
	cfg.Logger.Info("processor running", "db", cfg.DBPath, "state_dir", cfg.StateDir, "sql", r.ep.SQLAddr(), "http", r.ep.HTTPAddr())
	if *progressEvery > 0 {
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go logProgress(pctx, cfg.Logger, *progressEvery, &committed, r.Lag)
	}
	if *exitAtEnd {
		if err := r.WaitCaughtUp(ctx); err != nil && ctx.Err() == nil {
			return errors.Join(err, r.stop())
		}
		cfg.Logger.Info("caught up: every record the topic held at start is committed; stopping", "records", committed.Load())
		return r.stop()
	}
	return r.wait(ctx)
}

// logProgress logs, every interval, the messages committed to DuckDB since
// the last line (and per second) and the lag of each partition: the high
// watermark minus the next offset committed to DuckDB.
func logProgress(ctx context.Context, log *slog.Logger, every time.Duration, committed *atomic.Int64,
	lag func(context.Context) (map[int32]int64, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := committed.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := committed.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			attrs := []any{"records", n, "records_per_s", math.Round(rate*10) / 10}
			lctx, cancel := context.WithTimeout(ctx, every)
			byPart, err := lag(lctx)
			cancel()
			if err != nil {
				log.Info("progress", append(attrs, "lag_error", err.Error())...)
				continue
			}
			var total int64
			parts := make([]any, 0, len(byPart))
			for _, p := range slices.Sorted(maps.Keys(byPart)) {
				total += byPart[p]
				parts = append(parts, slog.Int64(strconv.Itoa(int(p)), byPart[p]))
			}
			log.Info("progress", append(attrs, "lag", total, slog.Group("lag_by_partition", parts...))...)
		}
	}
}

// applySaramaProps maps -X / --kafka-properties onto the processor's config:
// security onto its TLS and SASL fields (it builds sarama's SASL and SCRAM
// from them), the rest onto sarama's config after the processor's own.
func applySaramaProps(cfg *processor.Config, kp *kafkaPropFlags) error {
	props, err := kp.props()
	if err != nil {
		return err
	}
	sec, apply, err := props.Sarama()
	if err != nil {
		return usageError{err.Error()}
	}
	if sec.SASLSet {
		if cfg.SASLMechanism != "" {
			return usageError{"SASL set both by --sasl-* flags and by Kafka properties (-X sasl.*): choose one"}
		}
		cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPwd = sec.SASLMechanism, sec.User, sec.Password
	}
	if sec.TLSSet {
		cfg.TLS = sec.TLS
	}
	// goka sets each client's id from the processor's ClientID, over
	// sarama's config: so client.id goes there too.
	if id, ok := props.Get("client.id"); ok {
		cfg.ClientID = id
	}
	cfg.Sarama = apply
	return nil
}

func processTLS(ca, cert, key string, insecure bool) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, usageError{"--tls-cert and --tls-key go together"}
	}
	return tlsconfig.FromFiles("Kafka TLS (--tls-*)", ca, cert, key, insecure)
}
