package processor

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// Decoder turns Confluent wire-format keys and values into sites and
// records; *registry.Serde is the real one.
type Decoder interface {
	DecodeKey(ctx context.Context, b []byte) (string, error)
	DecodeValue(ctx context.Context, b []byte, r *record.Record) error
}

// Publisher receives each partition's database in StateDir mode (see
// Config.Publisher). db is open and owned by the processor: use it for the
// call only, and do not close it.
type Publisher interface {
	Publish(ctx context.Context, db *sql.DB, partition int32) error
}

// Config is everything the processor needs. Zero values get the defaults
// documented on each field (see withDefaults).
type Config struct {
	Brokers []string // default localhost:19092
	Topic   string   // input topic, default gtsm_etl
	Group   string   // goka group (consumer group and table gtsm-processor-table), default gtsm-processor

	// DBPath is the DuckDB file. It is opened (and locked) by Run, migrated,
	// and closed with a checkpoint when Run returns.
	DBPath string

	// StateDir turns on partition-owned state (issue 14, docs/processor.md
	// "Many processors: --state-dir"): every Kafka partition of Topic has
	// its own DuckDB file in this directory (PartitionFile), opened by the
	// member of the group that owns the partition and closed when its goka
	// session ends, so any member can take a partition over where its last
	// owner committed; DuckDB's file lock fences a stalled old owner.
	// DBPath is then unused, Processor.DB is nil, and MultiInstance is on.
	StateDir string

	// Publisher, in StateDir mode, is called by a partition's owner with
	// the partition's open database after commits, at most every
	// PublishInterval (default 10s), never concurrently for one partition,
	// and once more before the file is closed (e.g. lake/ exports each
	// partition to Parquet). In single-file mode it is called with the one
	// file for each partition the file has offsets of (publish.go), on the
	// same schedule. Its errors are logged, never fatal: the DuckDB file
	// stays the truth.
	Publisher       Publisher
	PublishInterval time.Duration

	// CheckpointThreshold is DuckDB's checkpoint_threshold: the WAL size
	// at which a commit also checkpoints it into the file. Default 1GB:
	// with DuckDB's 16MB default, checkpoints took half the commit time
	// (measured: 100k -> 150k rows per CPU-second); the cost is a longer
	// WAL replay after a crash. A clean shutdown always checkpoints.
	CheckpointThreshold string

	// MemoryLimit is DuckDB's memory_limit, default 192MB (in StateDir
	// mode the total over the open partition files, see storeMemLimit): large
	// transactions write row groups straight to the file, where the buffer
	// pool can evict them, so DuckDB need not hold a backlog's table data
	// (peak RSS measured in docs/performance.md, issue 16: draining 4x a
	// site-day, RSS minus the Go runtime's memory was ~370 MB at 256MB,
	// ~310 MB at 192MB).
	MemoryLimit string

	// DuckDBThreads is DuckDB's threads setting, default 1. The sink
	// writes on one goroutine and each of its statements is a
	// single-threaded pipeline (one source): with more threads, a worker
	// thread runs it while the calling thread busy-polls DuckDB's task
	// queue for the result, which doubled the CPU per landed row
	// (docs/performance.md, "Landing without DuckDB's worker threads").
	// The setting is the database's: raise it when queries of a SQL
	// endpoint sharing the file (Config.OnDB) should use more cores.
	DuckDBThreads int

	BatchRows       int           // rows per partition batch (DuckDB transaction), default 131072: ≥ 122,880 rows lets DuckDB write row groups straight to the file (122880 itself measured no less memory and left an 841 MB WAL, docs/performance.md)
	FlushInterval   time.Duration // commit a partial batch this long after its first message, default 1s
	AllowedLateness time.Duration // a window is final once the site's time >= end + this, default 0

	// Kafka client settings.
	KafkaVersion      sarama.KafkaVersion // default 2.8.0 (Kafka 4.x needs >= 2.1)
	Replication       int                 // replication of the goka table topic, default 1
	Partitions        int                 // partitions when the input topic must be created, default 1
	TLS               *tls.Config         // nil: plaintext
	SASLMechanism     string              // "" (none), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUser, SASLPwd string
	ClientID          string        // default gtsm-processor
	MaxWait           time.Duration // sarama Consumer.MaxWaitTime; default 100ms (fast shutdown)
	SessionTimeout    time.Duration // consumer group session timeout; default 10s (sarama's)
	// RebalanceTimeout bounds how long a join waits for the group's other
	// members, e.g. one killed in the middle of joining. Default 20s: it
	// must stay below sarama's 30s network read timeout, or the join fails
	// with an i/o timeout instead of going ahead without the dead member
	// (sarama's default is 60s).
	RebalanceTimeout time.Duration
	StorageDir       string // goka table storage (LevelDB); "" = in memory, rebuilt from the table topic

	Registry registry.Config // schema registry; URL default http://localhost:8081
	Decoder  Decoder         // overrides Registry (tests)

	// TableEvery: the goka group table (a cache of the per-site counters,
	// DuckDB is the truth) is written at most every this many messages of a
	// site, plus at the first message of a site and when a batch is cut.
	// Default 1000; 1 writes it for every message.
	TableEvery int

	// Event-time policy (docs/processor.md, "Poison and implausible
	// records"): a record whose time is before MinEventTime or more than
	// MaxFuture after the processor's wall clock is a dead letter
	// (time_out_of_range), never stored. Defaults 1990-01-01T00:00Z and
	// 24h. Without a bound, a time of 1970 or 2100 opened a gap of billions
	// of "missing" samples, and one beyond DuckDB's TIMESTAMP range
	// (9.3e15 ms) failed every commit of its partition for good.
	MinEventTime time.Time
	MaxFuture    time.Duration

	// MultiInstance turns off the single-instance check: by default Run
	// refuses to start while the consumer group has another live member
	// (a second `gtsm process` in the group would silently split the
	// topic between two DuckDB files). For a future deliberate
	// multi-instance mode (issue #14); see checkSoleInstance.
	MultiInstance bool

	// SiteStateBytes bounds the memory of one site and session's
	// in-memory indexes (duplicate day index and windows; gaps are
	// extra, 16 bytes each): past it, the partition's batch is committed
	// and everything committed is evicted, to be reloaded from DuckDB on
	// demand. Default 8 MiB. See docs/processor.md, "Memory".
	SiteStateBytes int

	// Level-2 strain (issue 13, docs/level2.md "Processor"): NoLevel2 turns
	// it off (gtsm process --level2=false); by default the processor joins
	// MetadataTopic (default gtsm_metadata) as a goka lookup table and
	// computes Level-2 per site from the Hour 1-sps gauge channels.
	// Level2Window bounds the recomputation of late samples (default 48h):
	// a sample later than that behind the site's newest second is stored
	// but its Level-2 outputs are not recomputed.
	NoLevel2      bool
	MetadataTopic string
	Level2Window  time.Duration
	// Level2ReprocessChunk is the data one Level-2 reprocess transaction
	// covers (default 6h of 1-sps counts; processor/reprocess.go): the
	// longest a reprocess holds up the partition's next batch.
	Level2ReprocessChunk time.Duration

	Logger *slog.Logger // default slog.Default()

	// OnDB is called once the DuckDB file is open and migrated, before any
	// message is processed, e.g. to serve SQL on the same *sql.DB. The
	// database stays open until Run returns.
	OnDB func(*sql.DB)
	// OnCommit is called by the sink after every DuckDB transaction (keep
	// it quick: the next transaction waits), e.g. to update metrics. In
	// StateDir mode each partition file has its own sink, so calls may
	// come concurrently.
	OnCommit func(CommitInfo)
	// OnStart is called with the running processor (for WaitCaughtUp, Lag).
	OnStart func(*Processor)

	// Sarama, when set, changes the sarama config last, after everything
	// above (gtsm process's -X Kafka client properties, see kafkaprops).
	Sarama func(*sarama.Config) error
}

func (c Config) withDefaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"localhost:19092"}
	}
	if c.Topic == "" {
		c.Topic = "gtsm_etl"
	}
	if c.MetadataTopic == "" {
		c.MetadataTopic = "gtsm_metadata"
	}
	if c.Level2Window <= 0 {
		c.Level2Window = 48 * time.Hour
	}
	if c.Level2ReprocessChunk < time.Second {
		c.Level2ReprocessChunk = 6 * time.Hour
	}
	if c.Group == "" {
		c.Group = "gtsm-processor"
	}
	if c.CheckpointThreshold == "" {
		c.CheckpointThreshold = "1GB"
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "192MB"
	}
	if c.DuckDBThreads <= 0 {
		c.DuckDBThreads = 1
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 131072
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.KafkaVersion == (sarama.KafkaVersion{}) {
		c.KafkaVersion = sarama.V2_8_0_0
	}
	if c.Replication <= 0 {
		c.Replication = 1
	}
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if c.ClientID == "" {
		c.ClientID = "gtsm-processor"
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 20 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 100 * time.Millisecond
	}
	if c.Registry.URL == "" {
		c.Registry.URL = "http://localhost:8081"
	}
	if c.TableEvery <= 0 {
		c.TableEvery = 1000
	}
	if c.MinEventTime.IsZero() {
		c.MinEventTime = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = 24 * time.Hour
	}
	if c.SiteStateBytes <= 0 {
		c.SiteStateBytes = 8 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PublishInterval <= 0 {
		c.PublishInterval = 10 * time.Second
	}
	if c.StateDir != "" {
		c.MultiInstance = true
	}
	return c
}

// saramaConfig is goka's default plus what this processor needs: read a new
// group's input from the oldest offset (goka's default is the newest, which
// would silently skip the backlog), a protocol version modern brokers accept,
// acks from all replicas, and a short fetch wait for a quick shutdown.
func (c Config) saramaConfig() (*sarama.Config, error) {
	sc := gokaDefault()
	sc.ClientID = c.ClientID
	sc.Version = c.KafkaVersion
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.MaxWaitTime = c.MaxWait
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Consumer.Group.Rebalance.Timeout = c.RebalanceTimeout
	if c.SessionTimeout > 0 {
		sc.Consumer.Group.Session.Timeout = c.SessionTimeout
		sc.Consumer.Group.Heartbeat.Interval = c.SessionTimeout / 3
	}
	if c.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = c.TLS
	}
	switch c.SASLMechanism {
	case "":
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASLMechanism)
		sc.Net.SASL.User, sc.Net.SASL.Password = c.SASLUser, c.SASLPwd
		if c.SASLMechanism != sarama.SASLTypePlaintext {
			sc.Net.SASL.SCRAMClientGeneratorFunc = newSCRAM(c.SASLMechanism)
		}
	default:
		return nil, fmt.Errorf("SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	if c.Sarama != nil {
		if err := c.Sarama(sc); err != nil {
			return nil, fmt.Errorf("kafka client properties: %w", err)
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client config: %w", err)
	}
	return sc, nil
}
