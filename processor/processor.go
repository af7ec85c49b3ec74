// Package processor is `gtsm process`: a goka processor that consumes the
// gtsm_etl topic keyed by site and lands rows, per-site counters, gaps and
// event-time windows in one DuckDB file, exactly once in effect.
//
// # Exactly once
//
// DuckDB is the single source of truth. Every message's effects (its row, its
// site's counters, windows and gaps) are written in a batch transaction
// together with kafka_offsets.next_offset of its partition, so after any crash
// DuckDB holds exactly the effects of the messages below next_offset and
// nothing else (an uncommitted transaction, appender rows included, is rolled
// back by DuckDB's WAL replay). Kafka offsets are committed only after that
// transaction (goka DeferCommit; sarama's offset marks are monotonic, and the
// commits of a partition are released in offset order), so Kafka's committed
// offset never passes DuckDB's next_offset. On restart the state is loaded
// from DuckDB, and messages below next_offset — replayed because Kafka's
// commit lagged — are skipped: they are in DuckDB already and are NOT
// duplicates (counting them would break the equality with a crash-free run).
//
// goka's group table can be ahead of DuckDB (table writes of a batch whose
// transaction never committed), so it is only a cache for other services
// (goka views, monitoring): the processor never reads state from it; it logs
// when it finds the table ahead. Duplicate detection is exact: per site and
// session, a bitmap of stored sample slots per UTC day (216 KiB per day at
// 20 sps; off-grid times in a set), kept in memory for the days touched since
// start and loaded from gtsm_etl on first use (one range query per day,
// pruned by DuckDB's zone maps); days older than two days whose changes are
// committed are evicted and reloaded if a record for them comes back.
package processor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func gokaDefault() *sarama.Config { return goka.DefaultConfig() }

// Processor is one running `gtsm process`.
type Processor struct {
	cfg    Config
	log    *slog.Logger
	db     *sql.DB
	dec    Decoder
	sarama *sarama.Config
	// instanceTag is this process's mark in its consumer-group join
	// metadata (sarama Member.UserData), so the fence can tell another
	// instance from this one's own earlier goka incarnation (fence.go).
	instanceTag  []byte
	gokaRestarts atomic.Int32 // goka processors runGoka started again after an error
	sink         *sink
	dlq          *dlq

	lateness int64
	minTime  int64 // event-time bounds (Config.MinEventTime, MaxFuture), ms
	future   int64
	loaded   map[string]*[3]*sessState // state from DuckDB at start; read-only
	startOff map[int32]int64           // kafka_offsets at start; read-only
	refs     atomic.Pointer[map[string]*[4]refGauge]
	l2       *l2proc // Level-2 (level2.go); nil when Config.NoLevel2

	accMu sync.Mutex
	accs  map[int32]*partAcc

	storeCount atomic.Int64   // open partition files (StateDir mode)
	filePub    *filePublisher // single-file mode with a Publisher (publish.go)

	batches chan *batch
	rowPool chan rowSet // row columns of committed batches, reused (growing 50k-row slices dominated the profile)
	failed  chan struct{}
	failMu  sync.Mutex
	failErr error

	progMu    sync.Mutex
	committed map[int32]int64 // DuckDB next_offset per partition
	progress  chan struct{}   // closed and replaced on every commit

	stats struct {
		messages, rows, duplicates, late, dead, batches atomic.Int64
	}
}

// partAcc accumulates one partition's current batch. Its mutex is held while
// a message is applied and while a batch is cut, so the time-based flusher
// never sees half a message.
type partAcc struct {
	mu        sync.Mutex
	partition int32
	next      int64 // next offset to apply; lower offsets are applied already
	seq       uint64
	committed atomic.Uint64 // seq of the last committed batch
	sites     map[string]*siteState
	keys      map[string]string // raw Kafka key -> decoded site
	b         *batch
	dirty     []*sessState
	now       int64 // wall clock (ms) as last read for the event-time bound (plausible)

	// Where the partition's state lives: the processor's one file, or in
	// StateDir mode the partition's own file (st).
	st      *store
	loaded  map[string]*[3]*sessState
	db      *sql.DB
	refs    *atomic.Pointer[map[string]*[4]refGauge]
	batches chan<- *batch
	// sess is the goka session of the partition's last message (StateDir
	// mode): once it is done the flusher cuts the batch at once, so the
	// rebalance waits for no flush interval.
	sess   context.Context
	closed bool // StateDir: the file is closed; a new message needs a new acc
}

type siteState struct {
	site     string
	sess     [3]*sessState
	sinceTab int // messages since the goka table was last written
	checked  bool
}

// TableValue is what the goka group table holds per site.
type TableValue struct {
	Site      string         `json:"site"`
	Partition int32          `json:"partition"`
	Offset    int64          `json:"offset"` // last message reflected
	Sessions  []TableSession `json:"sessions"`
}

type TableSession struct {
	Session    string `json:"session"`
	First      int64  `json:"first_time"`
	Last       int64  `json:"last_time"`
	Records    int64  `json:"records"`
	Duplicates int64  `json:"duplicates"`
	Late       int64  `json:"late"`
	Gaps       int64  `json:"gaps"`
	Missing    int64  `json:"missing"`
}

type tableCodec struct{}

func (tableCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (tableCodec) Decode(b []byte) (any, error) {
	var v TableValue
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("group table value: %w", err)
	}
	return &v, nil
}

// Run opens the DuckDB file, processes the topic until ctx is cancelled, and
// shuts down cleanly (last batch committed, DuckDB checkpointed and closed).
func Run(ctx context.Context, cfg Config) error {
	p, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// New opens and migrates the DuckDB file and loads the state. Call Run next;
// Run closes the database.
func New(ctx context.Context, cfg Config) (*Processor, error) {
	cfg = cfg.withDefaults()
	if cfg.DBPath == "" && cfg.StateDir == "" {
		return nil, errors.New("no DuckDB file given (--db)")
	}
	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, err
	}
	p := &Processor{
		cfg: cfg, log: cfg.Logger, sarama: sc, lateness: cfg.AllowedLateness.Milliseconds(),
		minTime: cfg.MinEventTime.UnixMilli(), future: cfg.MaxFuture.Milliseconds(),
		accs: map[int32]*partAcc{}, batches: make(chan *batch, 1), rowPool: make(chan rowSet, 2), failed: make(chan struct{}),
		committed: map[int32]int64{}, progress: make(chan struct{}),
	}
	p.instanceTag = newInstanceTag()
	sc.Consumer.Group.Member.UserData = p.instanceTag
	p.dec = cfg.Decoder
	if p.dec == nil {
		rc, err := registry.New(cfg.Registry)
		if err != nil {
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		err = retryUnreachable(ctx, p.log, "load schemas", cfg.Registry.SafeURL(), func() error {
			k, v, err := registry.LoadSchemas(ctx, rc, "", cfg.Topic)
			if err != nil {
				return err
			}
			p.dec, err = registry.NewSerde(ctx, rc, cfg.Topic, k, v)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("schema registry %s: %w", cfg.Registry.SafeURL(), err)
		}
	}
	if cfg.StateDir != "" {
		// Partition-owned state (store.go): the files are opened per
		// partition as goka assigns them.
		if err := prepareStateDir(cfg.StateDir); err != nil {
			return nil, err
		}
		if !sizeRE.MatchString(cfg.MemoryLimit) {
			return nil, fmt.Errorf("DuckDB memory limit %q: want a size like 512MB or 1GB", cfg.MemoryLimit)
		}
		if !sizeRE.MatchString(cfg.CheckpointThreshold) {
			return nil, fmt.Errorf("checkpoint threshold %q: want a size like 512MB or 1GB", cfg.CheckpointThreshold)
		}
		p.startOff, p.loaded = map[int32]int64{}, map[string]*[3]*sessState{}
		if !cfg.NoLevel2 {
			if p.l2, err = newL2proc(p.log, newMetaWatch(cfg.MetadataTopic), newReprocessProgress(), cfg.Level2Window, cfg.Level2ReprocessChunk); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	p.db, err = gtsmsql.Open(ctx, cfg.DBPath, false)
	if err != nil {
		return nil, err
	}
	if cfg.Publisher != nil {
		p.filePub = &filePublisher{published: map[int32]int64{}}
	}
	if err := p.init(ctx); err != nil {
		p.db.Close()
		return nil, err
	}
	return p, nil
}

func (p *Processor) init(ctx context.Context) error {
	if err := gtsmsql.Migrate(ctx, p.db); err != nil {
		return fmt.Errorf("DuckDB %s: %w", p.cfg.DBPath, err)
	}
	if err := setCheckpointThreshold(ctx, p.db, p.cfg.CheckpointThreshold); err != nil {
		return err
	}
	if err := setThreads(ctx, p.db, p.cfg.DuckDBThreads); err != nil {
		return err
	}
	if err := p.loadState(ctx); err != nil {
		return fmt.Errorf("DuckDB %s: %w", p.cfg.DBPath, err)
	}
	if err := p.loadOpenWindows(ctx); err != nil {
		return fmt.Errorf("DuckDB %s: %w", p.cfg.DBPath, err)
	}
	if err := p.loadRefs(ctx); err != nil {
		return fmt.Errorf("DuckDB %s: %w", p.cfg.DBPath, err)
	}
	var err error
	if p.sink, err = openSink(ctx, p.db, p.cfg.Topic, p.cfg.MemoryLimit); err != nil {
		return err
	}
	if !p.cfg.NoLevel2 { // Level-2 hook (level2.go)
		if p.l2, err = newL2proc(p.log, newMetaWatch(p.cfg.MetadataTopic), newReprocessProgress(), p.cfg.Level2Window, p.cfg.Level2ReprocessChunk); err != nil {
			return err
		}
		p.sink.level2 = p.l2
	}
	return nil
}

var sizeRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)?$`)

func setCheckpointThreshold(ctx context.Context, db *sql.DB, size string) error {
	if !sizeRE.MatchString(size) {
		return fmt.Errorf("checkpoint threshold %q: want a size like 512MB or 1GB", size)
	}
	if _, err := db.ExecContext(ctx, "SET checkpoint_threshold = '"+size+"'"); err != nil {
		return fmt.Errorf("SET checkpoint_threshold = %s: %w", size, err)
	}
	return nil
}

// setThreads sets DuckDB's worker threads (Config.DuckDBThreads).
func setThreads(ctx context.Context, db *sql.DB, n int) error {
	if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads = %d", n)); err != nil {
		return fmt.Errorf("SET threads = %d: %w", n, err)
	}
	return nil
}

// DB is the processor's database (valid until Run returns); nil in
// StateDir mode, where each partition has its own.
func (p *Processor) DB() *sql.DB { return p.db }

// Run processes until ctx is cancelled or a fatal error, then flushes,
// commits and closes the database.
func (p *Processor) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := p.closeDB(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			p.fail(err) // wakes WaitCaughtUp
		}
	}()
	if p.cfg.OnDB != nil && p.db != nil {
		p.cfg.OnDB(p.db)
	}
	if err := p.ensureTopic(); err != nil {
		return err
	}
	if p.l2 != nil {
		// Level-2's station metadata (metawatch.go), read to its end
		// before the first record is applied.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		if err := p.startMetaWatch(wctx, p.l2.watch); err != nil {
			return err
		}
		if err := p.l2.watch.waitRecovered(ctx, p.failed); err != nil {
			if ctx.Err() != nil {
				// Asked to stop before the first record was applied:
				// nothing to commit, a clean stop.
				return nil
			}
			return err
		}
	}
	if err := p.checkSoleInstance(ctx); err != nil {
		return err
	}
	if p.cfg.StateDir == "" {
		// In StateDir mode each partition file is checked when it is
		// opened (checkPartitionOffset).
		if err := p.checkGroupOffsets(); err != nil {
			return err
		}
	} else {
		if err := p.checkPartitionCount(); err != nil {
			return err
		}
		if err := p.checkStateDirGroup(); err != nil {
			return err
		}
	}
	if err := p.agreement(); err != nil { // agree.go: members agree before any consumes
		return err
	}
	if p.dlq, err = newDLQ(p.cfg.Brokers, p.sarama, p.cfg.Topic, p.cfg.Topic+".dlq"); err != nil {
		return err
	}
	defer p.dlq.close()
	gp, err := p.gokaProcessor()
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	sinkDone := make(chan error, 1)
	if p.cfg.StateDir == "" {
		go func() { sinkDone <- p.runSink() }()
	} else {
		sinkDone <- nil // one sink per partition file (store.go)
	}
	flushDone, flushStop := make(chan struct{}), make(chan struct{})
	go func() { defer close(flushDone); p.runFlusher(runCtx, flushStop) }()
	pubDone, pubStop := make(chan struct{}), make(chan struct{})
	if p.filePub != nil {
		go func() { defer close(pubDone); p.runFilePublisher(pubStop) }()
	} else {
		close(pubDone)
	}

	if p.cfg.OnStart != nil {
		p.cfg.OnStart(p)
	}
	p.log.Info("processor started", "topic", p.cfg.Topic, "group", p.cfg.Group, "db", p.cfg.DBPath, "state_dir", p.cfg.StateDir,
		"batch_rows", p.cfg.BatchRows, "flush_interval", p.cfg.FlushInterval, "allowed_lateness", p.cfg.AllowedLateness)

	runErr := p.runGoka(runCtx, cancel, gp)
	cancel()
	close(flushStop)
	<-flushDone
	// goka has stopped calling back: commit what is left.
	p.cutAll(0)
	close(p.batches)
	sinkErr := <-sinkDone
	close(pubStop)
	<-pubDone
	if p.filePub != nil && sinkErr == nil && p.failure() == nil {
		if err := p.PublishAll(context.WithoutCancel(ctx)); err != nil {
			p.log.Warn("publish to the lake at shutdown", "err", err)
		}
	}
	if p.cfg.StateDir != "" {
		sinkErr = p.closeStores("shutdown")
	}
	if ferr := p.failure(); ferr != nil {
		return ferr
	}
	if sinkErr != nil {
		return sinkErr
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		if ctx.Err() == nil {
			return fmt.Errorf("goka processor: %w", runErr)
		}
		// Asked to stop, and every applied message is committed to DuckDB:
		// a failed Kafka offset commit while leaving the group only means
		// those messages are replayed, and skipped, on the next start.
		p.log.Warn("goka shutdown", "err", runErr)
	}
	p.log.Info("processor stopped", "messages", p.stats.messages.Load(), "rows", p.stats.rows.Load(),
		"duplicates", p.stats.duplicates.Load(), "late", p.stats.late.Load(), "dead_letters", p.stats.dead.Load())
	return nil
}

// runGoka runs the goka processor, and a new one after it failed on its own
// (lost group membership, a broker connection timing out in a join): the
// in-memory state stays valid, since every applied message is committed to
// DuckDB or in a batch on its way there, and redelivered messages are
// skipped by offset. It gives up after 5 failures in a row within a minute.
func (p *Processor) runGoka(ctx context.Context, cancel context.CancelFunc, gp *goka.Processor) error {
	failures := 0
	for {
		started := time.Now()
		gokaErr := make(chan error, 1)
		go func() { gokaErr <- p.runSession(ctx, gp) }()
		var err error
		select {
		case err = <-gokaErr:
		case <-p.failed:
			cancel()
			return <-gokaErr
		}
		if err == nil || ctx.Err() != nil || p.failure() != nil {
			return err
		}
		if time.Since(started) > time.Minute {
			failures = 0
		}
		failures++
		if failures >= 5 {
			return err
		}
		p.gokaRestarts.Add(1) // the fence (fence.go) must not take our old member for another instance
		p.log.Warn("goka processor stopped; starting a new one", "err", err, "attempt", failures)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(failures) * time.Second):
		}
		if gp, err = p.gokaProcessor(); err != nil {
			return err
		}
	}
}

// runSession runs a goka processor; in StateDir mode it closes every
// partition file each time a goka session ends (see watchSessions).
func (p *Processor) runSession(ctx context.Context, gp *goka.Processor) error {
	if p.cfg.StateDir == "" {
		return gp.Run(ctx)
	}
	obs := gp.StateReader().ObserveStateChange()
	watched := make(chan struct{})
	go func() { defer close(watched); p.watchSessions(obs.C()) }()
	err := gp.Run(ctx)
	obs.Stop()
	<-watched
	return err
}

// watchSessions closes every partition file when goka's state becomes
// Stopped: its Cleanup has stopped all partition processors (and they have
// waited for their deferred commits), so nothing writes the files any more,
// and the next owner of each partition, on this member or another, may
// take the lock. goka's next state change waits for this one to be read,
// so the files are closed before the next session's Setup.
func (p *Processor) watchSessions(states <-chan goka.State) {
	for s := range states {
		if s != goka.ProcStateStopped {
			continue
		}
		t0 := time.Now()
		if err := p.closeStores("goka session ended (rebalance or shutdown)"); err != nil {
			p.fail(err)
		}
		p.log.Info("goka session ended: partition files closed", "took", time.Since(t0))
	}
}

// closeDB closes the appenders, their connection, then the database, in
// that order, so DuckDB checkpoints the WAL into the file.
func (p *Processor) closeDB() error {
	var first error
	if p.sink != nil {
		if err := p.sink.close(); err != nil {
			first = fmt.Errorf("close DuckDB appenders: %w", err)
		}
		p.sink = nil
	}
	if p.db != nil {
		if err := p.db.Close(); err != nil && first == nil {
			first = fmt.Errorf("close DuckDB %s: %w", p.cfg.DBPath, err)
		}
		p.db = nil
	}
	return first
}

func (p *Processor) fail(err error) {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	if p.failErr == nil {
		p.failErr = err
		close(p.failed)
		p.log.Error("processor failed", "err", err)
	}
}

func (p *Processor) failure() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	return p.failErr
}
