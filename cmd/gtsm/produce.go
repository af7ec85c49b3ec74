package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"time"

	"github.com/earthscope/gtsm-stream/producer"
)

const produceHelp = `Publishes GTSM bottle files to Kafka, one Avro record per site, session and
sample time (the four strain channels of an instant merged into one record),
keyed by {site} in the Confluent wire format, with the session name in the
Kafka header gtsm_session. Records go to partition murmur2(key) like Java's
producer, acks=all, idempotent; within a site each session goes out in time
order. The command exits 0 only when the broker acknowledged every record.

INPUT is any mix of bottle files, directories (recursive), glob patterns
(quoted globs are expanded here; one matching nothing is an error) and
EarthScope archives (.tgz, _20.tar, day tars of hour tars). An input that
cannot be read is reported (file, archive member, reason), skipped, and
makes the exit status 1; --strict stops at the first instead. Ctrl-C stops
reading, waits for in-flight records, and reports exactly what was delivered.

A schema registry that cannot be reached at start (connection refused, 5xx)
is retried for --registry-wait (15s), each retry logged with the time left;
then the command fails saying how to wait longer. Kafka errors fail at once.

Memory: the process stays within --buffer-mb + 192 MiB (RSS) whatever the
size of the inputs: large files are read in chunks, records are merged,
encoded and sent 1024 at a time, and at most 32,768 records (16 MiB) wait
for the broker's acknowledgement. Symbolic links are followed, also inside
directories (a link back to a directory being walked is reported, not
entered). A file whose sample times are implausible (before 1990, after the
clock + 1 day, or more than a day outside the period its name gives) is an
unreadable input: reported with its first bad sample, nothing of it sent.

Environment (flags win; both win over --config): BOOTSTRAP_SERVERS,
SCHEMA_REGISTRY_URL, AVRO_SCHEMAS_ROOT (a directory with gtsm_etl-key.avsc /
gtsm_etl-value.avsc overriding the schemas built in), KAFKA_SASL_PASSWORD,
SCHEMA_REGISTRY_PASSWORD.

Kafka client properties as kcat and librdkafka take them: -X key=value
(repeatable) and --kafka-properties FILE; -X wins over the file and both over
the dedicated flags. Unknown ones are refused by name (docs/cli.md lists them).

Examples:
  # preview the records of the test fixtures, no broker needed
  gtsm produce --dry-run testdata/hour | head -1

  # the embedded stack ('gtsm broker' in another terminal), all fixtures
  gtsm produce testdata/day testdata/hour testdata/min

  # one EarthScope 20-sps day archive, and a quoted glob of hour archives
  gtsm produce B001.2022001_20.tar 'archive/B001.2022*.tgz'

  # a real cluster with SASL/SCRAM over TLS and a registry with basic auth
  export KAFKA_SASL_PASSWORD=... SCHEMA_REGISTRY_PASSWORD=...
  gtsm produce --bootstrap-servers kafka1:9093,kafka2:9093 \
    --tls --tls-ca ca.pem --sasl-mechanism SCRAM-SHA-512 --sasl-username gtsm \
    --registry https://registry:8081 --registry-username gtsm \
    --no-create /data/bottles/2022/

  # the same with librdkafka-style client properties
  gtsm produce -X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512 \
    -X sasl.username=gtsm -X ssl.ca.location=ca.pem -X compression.type=zstd \
    --bootstrap-servers kafka1:9093 --registry https://registry:8081 /data/bottles/2022/

  # read it back with an independent client: partition, offset, key as
  # magic byte 0, schema id, Avro string length, site (e.g. "0 1 8 B009" is
  # printed run together as "018B009"), and the session header
  kcat -C -b localhost:19092 -t gtsm_etl -e -q -s key='>bIbs' -f '%p %o %k %h\n' | head`

// defaultRegistryWait is how long gtsm produce retries an unreachable schema
// registry at start: seconds, for a command run by hand (a registry that is
// just starting answers within them; a wrong URL is said soon). Services
// that start with the registry wait longer with --registry-wait
// (docker-compose.yml's producer does).
const defaultRegistryWait = 15 * time.Second

func runProduce(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "produce", "produce [flags] INPUT...", produceHelp)
	var (
		o      producer.Options
		conn   connFlags
		bufMB  int64
		quiet  bool
		dryRun bool
		parts  int
		repl   int
	)
	conn.register(fs, env) // broker, registry, TLS, SASL and -X flags, shared with gtsm metadata load
	fs.StringVar(&o.SchemasRoot, "schemas", env.getenv("AVRO_SCHEMAS_ROOT"), "directory with <topic>-key.avsc / <topic>-value.avsc overriding the built-in schemas (env AVRO_SCHEMAS_ROOT)")
	fs.StringVar(&o.Topic, "topic", "gtsm_etl", "Kafka topic")
	fs.IntVar(&parts, "partitions", producer.DefaultPartitions, "partitions of the topic if this run creates it (sites spread over them; more later would move sites)")
	fs.IntVar(&repl, "replication-factor", -1, "replication factor if this run creates the topic; -1 = the broker's default.replication.factor")
	fs.BoolVar(&o.NoCreate, "no-create", false, "fail if the topic does not exist instead of creating it")
	fs.BoolVar(&dryRun, "dry-run", false, "print one JSON line per record to stdout, in publish order; no broker or registry needed")
	fs.BoolVar(&o.Strict, "strict", false, "stop at the first input that cannot be read")
	fs.BoolVarP(&quiet, "quiet", "q", false, "no progress line and no summary (errors are still printed)")
	fs.Int64Var(&bufMB, "buffer-mb", producer.DefaultBufferBytes>>20, "MiB of samples held to put each site's records in time order whatever the input order; the process stays within this + "+producer.MemoryConstantText+" of memory (RSS), whatever the input size")
	fs.StringVar(&conn.kafka.Compression, "compression", producer.DefaultCompression, "batch compression: none, lz4, zstd, snappy, gzip")
	fs.DurationVar(&conn.kafka.Linger, "linger", producer.DefaultLinger, "how long a partition waits to fill a batch")
	fs.DurationVar(&o.RegistryWait, "registry-wait", defaultRegistryWait, "how long an unreachable schema registry is retried at start, each retry logged with the time left (0: do not wait)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no INPUT given (bottle files, directories, globs or archives); see gtsm produce -h"}
	}
	if parts < 1 || parts > 1<<20 {
		return usageError{fmt.Sprintf("--partitions %d: want at least 1", parts)}
	}
	if repl == 0 || repl < -1 || repl > 32767 {
		return usageError{fmt.Sprintf("--replication-factor %d: want -1 (broker default) or a positive count", repl)}
	}
	if bufMB < 1 {
		return usageError{fmt.Sprintf("--buffer-mb %d: want at least 1", bufMB)}
	}
	o.Partitions, o.Replication, o.BufferBytes = int32(parts), int16(repl), bufMB<<20
	if o.RegistryWait < 0 {
		return usageError{fmt.Sprintf("--registry-wait %s: want 0 or more", o.RegistryWait)}
	}
	if o.RegistryWait == 0 {
		o.RegistryWait = -1 // the producer's "do not wait"
	}
	o.RegistryWaitHint = "gtsm produce --registry-wait 2m waits longer"
	// Retry lines and warnings in the format --log-format asks for.
	o.Logger = env.log
	// Passwords come from the environment after parsing, so that -h never
	// prints them as a flag default.
	if err := conn.resolve(env); err != nil {
		return err
	}
	o.Kafka, o.Registry = conn.kafka, conn.reg
	paths, err := producer.Expand(fs.Args())
	if err != nil {
		return err
	}
	if dryRun {
		o.DryRun = env.stdout
	}
	if !quiet && isTerminal(env.stderr) {
		o.Progress = func(p producer.Progress) {
			// \r + erase line: redraw in place.
			fmt.Fprintf(env.stderr, "\r\033[K%s", p.Line())
		}
		o.ProgressEvery = 250 * time.Millisecond
	}
	// Hold the Go heap to the buffer plus the pipeline's constant
	// (docs/performance.md, "Producer memory"): a soft limit, only for this
	// run, and only when GOMEMLIMIT does not set one.
	if env.getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(producer.MemoryLimit(o.BufferBytes)))
	}
	sum, err := producer.Run(ctx, paths, o)
	if o.Progress != nil {
		fmt.Fprint(env.stderr, "\r\033[K")
	}
	if !quiet && sum != nil && sum.Duration > 0 { // the run got past connecting
		if env.logFormat == "json" {
			logSummary(env.log, sum)
		} else {
			sum.Write(env.stderr)
		}
	}
	return err
}

// logSummary is the summary as log records (--log-format json): one per site
// and session, one per input skipped, and the totals.
func logSummary(log *slog.Logger, s *producer.Summary) {
	ms := func(t int64) string { return time.UnixMilli(t).UTC().Format(time.RFC3339Nano) }
	for _, st := range s.Streams {
		log.Info("stream", "topic", s.Topic, "site", st.Site, "session", st.Session.String(), "partition", st.Partition,
			"records", st.Records, "failed", st.Failed, "unacked", st.Unacked, "bytes", st.Bytes, "first", ms(st.First), "last", ms(st.Last))
	}
	for _, f := range s.Failed {
		log.Warn("input skipped", "input", f.Name, "err", f.Err.Error())
	}
	level := slog.LevelInfo
	if s.RecordsFailed > 0 || s.Unacked > 0 || len(s.Failed) > 0 || s.Interrupted {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "produced", "topic", s.Topic, "dry_run", s.DryRun, "partitions", s.Partitions,
		"created", s.Created, "files", s.Files, "records", s.Records, "bytes", s.Bytes, "records_failed", s.RecordsFailed,
		"unacked", s.Unacked, "inputs_skipped", len(s.Failed), "late_groups", len(s.Late), "interrupted", s.Interrupted,
		"seconds", s.Duration.Seconds(), "records_per_s", math.Round(s.Rate()))
}

// isTerminal reports whether w is a character device (a terminal): the
// progress line is drawn only there, never into a log file or pipe.
// (golang.org/x/term is not in go.sum; a char-device check suffices.)
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
