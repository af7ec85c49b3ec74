package producer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/earthscope/gtsm-stream/internal/tlsconfig"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// DefaultPartitions is the partition count of a topic this command creates.
// Sites are the keys (about 80 of them), and the partition count caps how
// many consumers (goka processor instances, Flink subtasks) can share the
// work. Adding partitions later moves sites to other partitions and breaks
// per-site order across the change, so it is chosen generously up front: 12
// splits evenly over 1, 2, 3, 4, 6 or 12 consumers and costs a broker little.
const DefaultPartitions = 12

// Kafka is how to reach and talk to the cluster.
type Kafka struct {
	Brokers []string
	// TLS: enabled when TLS is set or any of the files/flags is.
	TLS                bool
	CAFile             string // PEM CA bundle; system roots when empty
	CertFile, KeyFile  string // client certificate (mutual TLS)
	InsecureSkipVerify bool
	// SASL: "" (none), "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism      string
	Username, Password string

	// Compression: "none", "lz4", "zstd", "snappy", "gzip"; default DefaultCompression.
	Compression string
	Linger      time.Duration // default DefaultLinger
	// MaxBufferedRecords and MaxBufferedBytes bound the records waiting
	// for acknowledgement (and so memory): producing blocks beyond either.
	// Defaults DefaultMaxBufferedRecords and DefaultMaxBufferedBytes.
	MaxBufferedRecords int
	MaxBufferedBytes   int
	ClientID           string
	// Extra options go after all of the above, so they win (gtsm produce's
	// -X Kafka client properties, see package kafkaprops).
	Extra []kgo.Opt
}

// DefaultCompression and DefaultLinger were chosen with
// BenchmarkProduceSiteDay (figures in docs/performance.md): into the
// embedded broker on a loaded 2-core machine snappy had the best median rate
// (none was slowest: the broker copies 4-5x more bytes; zstd costs the most
// CPU). On a real network compression matters even more, and snappy is
// understood by every broker and client version.
const (
	DefaultCompression = "snappy"
	DefaultLinger      = 5 * time.Millisecond
)

// DefaultMaxBufferedRecords and DefaultMaxBufferedBytes bound what kgo holds
// unacknowledged. A buffered record costs its key and value (kgo counts
// those against MaxBufferedBytes; a value is 40-400 bytes) plus ~200 bytes of
// kgo.Record and bookkeeping, and keeps the arena of its chunk (chunkRecords
// records) alive: 32,768 records are at most ~16 MiB of values and ~7 MiB of
// records, ~40 MiB with the chunks they keep. At a few hundred thousand
// records a second that is ~0.1 s of data in flight, enough to keep every
// partition's batches full with a 5 ms linger (rates: docs/performance.md).
const (
	DefaultMaxBufferedRecords = 32_768
	DefaultMaxBufferedBytes   = 16 << 20
)

// Opts returns the franz-go client options for k: acks=all and idempotence
// (kgo's defaults, stated here so nobody turns them off by accident), Java
// murmur2 partitioning done by us (ManualPartitioner: each record carries
// partition.For(key)), batching and compression for throughput, TLS and SASL.
func (k Kafka) Opts() ([]kgo.Opt, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("no Kafka bootstrap servers (set --bootstrap-servers or BOOTSTRAP_SERVERS)")
	}
	codec, err := compression(k.Compression)
	if err != nil {
		return nil, err
	}
	linger := k.Linger
	if linger == 0 {
		linger = DefaultLinger
	}
	maxBuf := k.MaxBufferedRecords
	if maxBuf <= 0 {
		maxBuf = DefaultMaxBufferedRecords
	}
	maxBytes := k.MaxBufferedBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBufferedBytes
	}
	id := k.ClientID
	if id == "" {
		id = "gtsm-produce"
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ClientID(id),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(maxBuf),
		kgo.MaxBufferedBytes(maxBytes),
		// Idempotence (kgo's default, never disabled here) keeps
		// per-partition order with several requests in flight: the broker
		// checks sequence numbers.
	}
	tlsCfg, err := k.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	switch m := strings.ToUpper(k.SASLMechanism); m {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.Username, Pass: k.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.Username, Pass: k.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.Username, Pass: k.Password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", k.SASLMechanism)
	}
	if k.SASLMechanism != "" && k.Username == "" {
		return nil, fmt.Errorf("SASL %s needs a username", k.SASLMechanism)
	}
	return append(opts, k.Extra...), nil
}

func compression(name string) (kgo.CompressionCodec, error) {
	if name == "" {
		name = DefaultCompression
	}
	switch strings.ToLower(name) {
	case "none":
		return kgo.NoCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q (want none, lz4, zstd, snappy or gzip)", name)
}

func (k Kafka) tlsConfig() (*tls.Config, error) {
	if !k.TLS && k.CAFile == "" && k.CertFile == "" && k.KeyFile == "" && !k.InsecureSkipVerify {
		return nil, nil
	}
	return tlsconfig.FromFiles("Kafka TLS", k.CAFile, k.CertFile, k.KeyFile, k.InsecureSkipVerify)
}

// EnsureTopic returns the topic's partition count, creating the topic when
// it is missing (unless noCreate). replication -1 lets the broker choose
// (default.replication.factor), which is right on one broker and on many.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32, replication int16, noCreate bool) (n int32, created bool, err error) {
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, false, fmt.Errorf("look up topic %s: %w", topic, err)
	}
	d, ok := td[topic]
	if ok && d.Err == nil {
		return int32(len(d.Partitions)), false, nil
	}
	if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return 0, false, fmt.Errorf("look up topic %s: %w", topic, d.Err)
	}
	if noCreate {
		return 0, false, fmt.Errorf("topic %s does not exist and --no-create is set: create it first (e.g. kafka-topics.sh --create --topic %s --partitions %d), or drop --no-create", topic, topic, DefaultPartitions)
	}
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	if replication == 0 {
		replication = -1
	}
	resp, err := adm.CreateTopic(ctx, partitions, replication, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, false, fmt.Errorf("create topic %s (%d partitions, replication %d): %w", topic, partitions, replication, err)
	}
	if err == nil {
		// kgo caches the "unknown topic" answer for admin requests
		// (MetadataMinAge); drop it so that the producer looks afresh.
		cl.PurgeTopicsFromClient(topic)
		return resp.NumPartitions, true, nil
	}
	// Someone else (another gtsm produce) created it meanwhile: use theirs,
	// looked up afresh, not through the "unknown topic" kgo cached above.
	cl.PurgeTopicsFromClient(topic)
	return EnsureTopic(ctx, cl, topic, partitions, replication, true)
}

// kafkaSink produces to Kafka and counts acknowledgements.
type kafkaSink struct {
	cl         *kgo.Client
	serde      *registry.Serde
	topic      string
	partitions int32
	created    bool

	// pctx is the records' context: cancelled FlushTimeout after the run's
	// context, so that after Ctrl-C neither a Produce blocked on a full
	// buffer nor a flush to a dead broker waits forever. Records it fails
	// are counted as not delivered.
	pctx    context.Context
	pcancel context.CancelFunc

	errMu    sync.Mutex
	firstErr error
}

func newKafkaSink(ctx context.Context, opt Options) (*kafkaSink, error) {
	kopts, err := opt.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	s := &kafkaSink{cl: cl, topic: opt.Topic}
	s.pctx, s.pcancel = context.WithCancel(context.Background())
	context.AfterFunc(ctx, func() { time.AfterFunc(opt.FlushTimeout, s.pcancel) })
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.partitions, s.created, err = EnsureTopic(tctx, cl, opt.Topic, opt.Partitions, opt.Replication, opt.NoCreate)
	if err != nil {
		hint := ""
		switch ne := (*net.OpError)(nil); {
		case errors.As(err, &ne):
			hint = " (is a broker running there? 'gtsm broker' runs one locally; set --bootstrap-servers or BOOTSTRAP_SERVERS)"
		case errors.Is(err, io.EOF) && opt.Kafka.SASLMechanism != "":
			hint = fmt.Sprintf(" (the broker closed the connection: check the SASL %s user and password, and TLS vs plaintext listener)", opt.Kafka.SASLMechanism)
		case errors.Is(err, io.EOF):
			hint = " (the broker closed the connection: does the listener want TLS (--tls) or SASL (--sasl-mechanism)?)"
		}
		return nil, fmt.Errorf("kafka %s: %w%s", strings.Join(opt.Kafka.Brokers, ","), err, hint)
	}
	rc, err := registry.New(opt.Registry)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	if s.serde, err = connectRegistry(ctx, rc, opt); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// connectRegistry loads the schemas and registers them. While the registry
// is unreachable (connection refused, 5xx) it retries with a doubling
// backoff up to RegistryWait, logging each wait, so a registry that is
// restarting or starts after the producer is waited for instead of failing
// the run; any other error (a 4xx, a bad schema) fails at once.
func connectRegistry(ctx context.Context, rc *registry.Client, opt Options) (*registry.Serde, error) {
	wait := opt.RegistryWait
	if wait == 0 {
		wait = 2 * time.Minute
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	deadline := start.Add(wait)
	delay := time.Second
	for {
		serde, err := func() (*registry.Serde, error) {
			k, v, err := registry.LoadSchemas(ctx, rc, opt.SchemasRoot, opt.Topic)
			if err != nil {
				return nil, fmt.Errorf("schemas: %w", err)
			}
			serde, err := registry.NewSerde(ctx, rc, opt.Topic, k, v)
			if err != nil {
				return nil, fmt.Errorf("schema registry %s: %w", opt.Registry.SafeURL(), err)
			}
			return serde, nil
		}()
		if err == nil || !errors.Is(err, registry.ErrUnreachable) || ctx.Err() != nil || wait < 0 {
			return serde, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			// Out of time: say how long was waited and how to wait longer.
			return nil, fmt.Errorf("%w (gave up after waiting %s%s)", err, time.Since(start).Round(time.Second), hintSuffix(opt.RegistryWaitHint))
		}
		delay = min(delay, left)
		// Each retry line says how long is left of the wait and how to wait
		// longer (a person at a terminal decides from it whether to wait);
		// durations as text, also in JSON ("4s", not nanoseconds).
		log.Warn("schema registry unreachable; retrying", "url", opt.Registry.SafeURL(), "in", delay.Round(time.Millisecond).String(),
			"left", roughly(left), "wait", wait.String(), "wait_longer", opt.RegistryWaitHint, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("schema registry %s: %w (while waiting: %v)", opt.Registry.SafeURL(), ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
}

// roughly shows a duration to the second, or to 100 ms under a second (so
// the last retry line does not say "0s" left).
func roughly(d time.Duration) string {
	switch {
	case d < 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d < time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// hintSuffix is "; " + hint, or nothing without one.
func hintSuffix(hint string) string {
	if hint == "" {
		return ""
	}
	return "; " + hint
}

func (s *kafkaSink) stream(st stream) *streamStats {
	ss := &streamStats{stream: st}
	ss.key = s.serde.AppendKey(nil, st.site)
	ss.partition = partition.For(ss.key, s.partitions)
	hdr := []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte(st.session.String())}}
	// One promise per stream, reused for all its records: no closure
	// allocation per record.
	ss.promise = func(r *kgo.Record, err error) {
		if err != nil {
			ss.failed.Add(1)
			s.errMu.Lock()
			if s.firstErr == nil {
				s.firstErr = fmt.Errorf("%s %s partition %d: %w", st.site, st.session, r.Partition, err)
			}
			s.errMu.Unlock()
			return
		}
		ss.acked.Add(1)
		ss.bytes.Add(int64(len(r.Key) + len(r.Value)))
	}
	ss.headers = hdr
	return ss
}

func (s *kafkaSink) prepare(st *streamStats, recs []record.Record, sc *scratch) batch {
	krecs := make([]kgo.Record, len(recs))
	// The batch's values get their own arena (sized from the previous
	// batch), never one shared with other batches: kgo keeps a record until
	// the broker acknowledges it, and a shared block would keep every batch
	// that touched it alive, so memory would follow the slowest partition.
	// A value is at most ~400 bytes (all 56 ints set); a fresh block is
	// started when less than 1 KiB is left, so append never reallocates a
	// block that earlier values point into.
	arena := make([]byte, 0, sc.size(len(recs), 128))
	used := 0
	for i := range recs {
		if cap(arena)-len(arena) < 1024 {
			used += len(arena)
			arena = make([]byte, 0, sc.size(len(recs)-i, 128))
		}
		off := len(arena)
		arena = s.serde.AppendValue(arena, &recs[i])
		kr := &krecs[i]
		kr.Value = arena[off:len(arena):len(arena)]
		kr.Key = st.key
		kr.Topic = s.topic
		kr.Partition = st.partition
		kr.Headers = st.headers
	}
	if len(recs) > 0 {
		sc.perRecord = (used + len(arena)) / len(recs)
	}
	return batch{krecs: krecs, n: len(recs)}
}

func (s *kafkaSink) commit(st *streamStats, b batch) error {
	now := time.Now()
	st.sent.Add(int64(b.n))
	for i := range b.krecs {
		kr := &b.krecs[i]
		kr.Timestamp = now
		s.cl.Produce(s.pctx, kr, st.promise)
	}
	return nil
}

func (s *kafkaSink) flush(ctx context.Context) error {
	err := s.cl.Flush(ctx)
	if err != nil {
		// Give up on what is left; AbortBufferedRecords fails their promises,
		// so the counts stay exact.
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.cl.AbortBufferedRecords(actx)
	}
	return err
}

func (s *kafkaSink) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.firstErr
}

func (s *kafkaSink) close() {
	s.pcancel()
	s.cl.Close()
}
