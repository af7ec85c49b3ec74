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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
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
	sink   *sink
	dlq    *dlq

	lateness int64
	minTime  int64 // event-time bounds (Config.MinEventTime, MaxFuture), ms
	future   int64
	loaded   map[string]*[3]*sessState // state from DuckDB at start; read-only
	startOff map[int32]int64           // kafka_offsets at start; read-only
	refs     atomic.Pointer[map[string]*[4]refGauge]
	l2       *l2proc // Level-2 (level2.go); nil when Config.NoLevel2

	accMu sync.Mutex
	accs  map[int32]*partAcc

	batches chan *batch
	rowPool chan []row // row slices of committed batches, reused (growing 50k-row slices dominated the profile)
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
	if cfg.DBPath == "" {
		return nil, errors.New("no DuckDB file given (--db)")
	}
	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, err
	}
	p := &Processor{
		cfg: cfg, log: cfg.Logger, sarama: sc, lateness: cfg.AllowedLateness.Milliseconds(),
		minTime: cfg.MinEventTime.UnixMilli(), future: cfg.MaxFuture.Milliseconds(),
		accs: map[int32]*partAcc{}, batches: make(chan *batch, 1), rowPool: make(chan []row, 2), failed: make(chan struct{}),
		committed: map[int32]int64{}, progress: make(chan struct{}),
	}
	p.dec = cfg.Decoder
	if p.dec == nil {
		rc, err := registry.New(cfg.Registry)
		if err != nil {
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		err = retryUnreachable(ctx, p.log, "load schemas", cfg.Registry.URL, func() error {
			k, v, err := registry.LoadSchemas(ctx, rc, "", cfg.Topic)
			if err != nil {
				return err
			}
			p.dec, err = registry.NewSerde(ctx, rc, cfg.Topic, k, v)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("schema registry %s: %w", cfg.Registry.URL, err)
		}
	}
	p.db, err = gtsmsql.Open(ctx, cfg.DBPath, false)
	if err != nil {
		return nil, err
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
		if p.l2, err = newL2proc(p.log, p.cfg.MetadataTopic, p.cfg.Level2Window); err != nil {
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

// DB is the processor's database (valid until Run returns).
func (p *Processor) DB() *sql.DB { return p.db }

func (p *Processor) loadState(ctx context.Context) error {
	p.startOff = map[int32]int64{}
	rows, err := p.db.QueryContext(ctx, `SELECT kafka_partition, next_offset FROM kafka_offsets WHERE topic = ?`, p.cfg.Topic)
	if err != nil {
		return fmt.Errorf("read kafka_offsets: %w", err)
	}
	for rows.Next() {
		var part int32
		var next int64
		if err := rows.Scan(&part, &next); err != nil {
			rows.Close()
			return fmt.Errorf("read kafka_offsets: %w", err)
		}
		p.startOff[part] = next
		p.committed[part] = next
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read kafka_offsets: %w", err)
	}

	type key struct{ site, session string }
	gs := map[key][2][]int64{}
	rows, err = p.db.QueryContext(ctx, `SELECT site, session, epoch_ms(gap_start), epoch_ms(gap_end) FROM gaps`)
	if err != nil {
		return fmt.Errorf("read gaps: %w", err)
	}
	for rows.Next() {
		var k key
		var s, e int64
		if err := rows.Scan(&k.site, &k.session, &s, &e); err != nil {
			rows.Close()
			return fmt.Errorf("read gaps: %w", err)
		}
		v := gs[k]
		v[0], v[1] = append(v[0], s), append(v[1], e)
		gs[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read gaps: %w", err)
	}

	p.loaded = map[string]*[3]*sessState{}
	rows, err = p.db.QueryContext(ctx, `SELECT site, session, first_time IS NOT NULL, coalesce(epoch_ms(first_time), 0),
		coalesce(epoch_ms(last_time), 0), records, duplicates, late, gaps, missing, kafka_partition, kafka_offset FROM site_state`)
	if err != nil {
		return fmt.Errorf("read site_state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r stateRow
		if err := rows.Scan(&r.site, &r.session, &r.has, &r.first, &r.last, &r.records, &r.duplicates, &r.late,
			&r.gapCount, &r.missing, &r.partition, &r.offset); err != nil {
			return fmt.Errorf("read site_state: %w", err)
		}
		g := gs[key{r.site, r.session}]
		s, err := loadState(r, g[0], g[1])
		if err != nil {
			return err
		}
		all := p.loaded[r.site]
		if all == nil {
			all = new([3]*sessState)
			p.loaded[r.site] = all
		}
		all[s.session] = s
	}
	return rows.Err()
}

func (p *Processor) loadRefs(ctx context.Context) error {
	rows, err := p.db.QueryContext(ctx, `SELECT site, gauge, reference_counts, gap_m FROM site_reference`)
	if err != nil {
		return fmt.Errorf("read site_reference: %w", err)
	}
	defer rows.Close()
	m := map[string]*[4]refGauge{}
	for rows.Next() {
		var site string
		var gauge int
		var r refGauge
		if err := rows.Scan(&site, &gauge, &r.counts, &r.gapM); err != nil {
			return fmt.Errorf("read site_reference: %w", err)
		}
		if gauge < 1 || gauge > 4 {
			continue // the table's CHECK forbids it
		}
		r.ok = true
		if m[site] == nil {
			m[site] = new([4]refGauge)
		}
		m[site][gauge-1] = r
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read site_reference: %w", err)
	}
	p.refs.Store(&m)
	return nil
}

// dbLoader reads committed state from DuckDB for the lazy loads of sessState.
type dbLoader struct {
	ctx context.Context
	db  *sql.DB
}

func (l dbLoader) times(site string, s bottle.Session, from, to int64) ([]int64, error) {
	rows, err := l.db.QueryContext(l.ctx, `SELECT "time" FROM gtsm_etl WHERE key_site = ? AND session = ? AND "time" >= ? AND "time" < ?`,
		site, s.String(), from, to)
	if err != nil {
		return nil, fmt.Errorf("read stored times of %s/%s: %w", site, s, err)
	}
	defer rows.Close()
	var ts []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("read stored times of %s/%s: %w", site, s, err)
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// windowColumns are the columns scanWindowRow reads, after site, session,
// width and window_start.
const windowColumns = `channel, n, n_null, coalesce(min, 0), coalesce(max, 0), coalesce(first, 0), coalesce(last, 0),
	final, late_updates, sum, coalesce(first_time, 0), coalesce(last_time, 0), n_micro, sum_micro`

// scanWindowRow reads one channel row of a window into w.
func scanWindowRow(rows *sql.Rows, s bottle.Session, w *window) error {
	var ch string
	var a chanAgg
	if err := rows.Scan(&ch, &w.n, &a.nNull, &a.min, &a.max, &a.first, &a.last, &w.final, &w.lateUpdates,
		&a.sum, &a.firstT, &a.lastT, &a.nMicro, &a.sumMicro); err != nil {
		return err
	}
	for ci, f := range record.StrainFields(s) {
		if record.FieldNames[f] == ch {
			w.ch[ci] = a
			return nil
		}
	}
	return fmt.Errorf("window row with channel %q, not a %s strain channel", ch, s)
}

func (l dbLoader) window(site string, s bottle.Session, width int, start int64) (*window, bool, error) {
	rows, err := l.db.QueryContext(l.ctx, `SELECT `+windowColumns+`
		FROM windows WHERE site = ? AND session = ? AND width = ? AND window_start = ?`,
		site, s.String(), widths[width].name, ms(start))
	if err != nil {
		return nil, false, fmt.Errorf("read window %s/%s %s: %w", site, s, widths[width].name, err)
	}
	defer rows.Close()
	w := &window{width: width, start: start}
	found := false
	for rows.Next() {
		if err := scanWindowRow(rows, s, w); err != nil {
			return nil, false, fmt.Errorf("read window %s/%s: %w", site, s, err)
		}
		found = true
	}
	return w, found, rows.Err()
}

// loadOpenWindows puts the windows that are not final yet into memory: they
// must be finalized when the site's time passes them, even if no other
// record of theirs ever comes.
func (p *Processor) loadOpenWindows(ctx context.Context) error {
	rows, err := p.db.QueryContext(ctx, `SELECT site, session, width, epoch_ms(window_start), `+windowColumns+` FROM windows WHERE NOT final`)
	if err != nil {
		return fmt.Errorf("read open windows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var site, session, width string
		var start int64
		var tmp window
		// Scan once to learn the key, then into the right window.
		if err := scanWindowRowAny(rows, &site, &session, &width, &start, &tmp); err != nil {
			return fmt.Errorf("read open windows: %w", err)
		}
		sess, err := bottle.ParseSession(session)
		if err != nil {
			return fmt.Errorf("windows row %s/%s: %w", site, session, err)
		}
		wi := -1
		for i, w := range widths {
			if w.name == width {
				wi = i
			}
		}
		all := p.loaded[site]
		if wi < 0 || all == nil || all[sess] == nil {
			return fmt.Errorf("windows row %s/%s %s has no site_state or an unknown width", site, session, width)
		}
		ss := all[sess]
		k := winKey{wi, start}
		w := ss.windows[k]
		if w == nil {
			w = &window{width: wi, start: start}
			ss.windows[k] = w
			ss.mem += windowBytes
			ss.open = append(ss.open, w)
		}
		w.n, w.final, w.lateUpdates = tmp.n, tmp.final, tmp.lateUpdates
		for ci := range tmp.ch {
			if tmp.ch[ci] != (chanAgg{}) {
				w.ch[ci] = tmp.ch[ci]
			}
		}
	}
	return rows.Err()
}

// scanWindowRowAny scans a row of loadOpenWindows: the key columns, then one
// channel's aggregate into w.ch (by strain channel of the row's session).
func scanWindowRowAny(rows *sql.Rows, site, session, width *string, start *int64, w *window) error {
	var ch string
	var a chanAgg
	if err := rows.Scan(site, session, width, start, &ch, &w.n, &a.nNull, &a.min, &a.max, &a.first, &a.last, &w.final,
		&w.lateUpdates, &a.sum, &a.firstT, &a.lastT, &a.nMicro, &a.sumMicro); err != nil {
		return err
	}
	sess, err := bottle.ParseSession(*session)
	if err != nil {
		return err
	}
	for ci, f := range record.StrainFields(sess) {
		if record.FieldNames[f] == ch {
			w.ch[ci] = a
			return nil
		}
	}
	return fmt.Errorf("window row with channel %q, not a %s strain channel", ch, sess)
}

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
	if p.cfg.OnDB != nil {
		p.cfg.OnDB(p.db)
	}
	if err := p.ensureTopic(); err != nil {
		return err
	}
	if err := p.checkSoleInstance(ctx); err != nil {
		return err
	}
	if err := p.checkGroupOffsets(); err != nil {
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
	go func() { sinkDone <- p.runSink() }()
	flushDone, flushStop := make(chan struct{}), make(chan struct{})
	go func() { defer close(flushDone); p.runFlusher(runCtx, flushStop) }()

	if p.cfg.OnStart != nil {
		p.cfg.OnStart(p)
	}
	p.log.Info("processor started", "topic", p.cfg.Topic, "group", p.cfg.Group, "db", p.cfg.DBPath,
		"batch_rows", p.cfg.BatchRows, "flush_interval", p.cfg.FlushInterval, "allowed_lateness", p.cfg.AllowedLateness)

	runErr := p.runGoka(runCtx, cancel, gp)
	cancel()
	close(flushStop)
	<-flushDone
	// goka has stopped calling back: commit what is left.
	p.cutAll(0)
	close(p.batches)
	sinkErr := <-sinkDone
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
		go func() { gokaErr <- gp.Run(ctx) }()
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

func (p *Processor) tmConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = p.cfg.Replication
	tmc.Stream.Replication = p.cfg.Replication
	return tmc
}

// ensureTopic creates the input topic when it does not exist yet (goka does
// not create input topics), so the processor may start before the producer,
// and the dead-letter topic <topic>.dlq.
func (p *Processor) ensureTopic() error {
	admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, p.sarama)
	if err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka %s: list topics: %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	// The dead-letter topic too, so the first poison message does not
	// depend on the broker auto-creating topics (off on most clusters).
	for _, t := range []struct {
		name, what string
		parts      int
		compact    bool
	}{{p.cfg.Topic, "input", p.cfg.Partitions, false}, {p.cfg.Topic + ".dlq", "dead-letter", 1, false},
		// Level-2's station metadata table (level2.go): compacted, keyed by site.
		{p.cfg.MetadataTopic, "station metadata", 1, true}} {
		if _, ok := topics[t.name]; ok || (t.compact && p.l2 == nil) {
			continue
		}
		td := &sarama.TopicDetail{NumPartitions: int32(t.parts), ReplicationFactor: int16(p.cfg.Replication)}
		if t.compact {
			compact := "compact"
			td.ConfigEntries = map[string]*string{"cleanup.policy": &compact}
		}
		err = admin.CreateTopic(t.name, td, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create %s topic %s: %w", t.what, t.name, err)
		}
		p.log.Info("created "+t.what+" topic", "topic", t.name, "partitions", t.parts, "replication", p.cfg.Replication)
	}
	return nil
}

// checkGroupOffsets refuses to start when the consumer group has committed
// offsets beyond what the DuckDB file holds: the group would resume there
// and the file would silently miss the messages in between (a new or
// replaced file with an old group). Kafka's commit never passes DuckDB's
// next_offset otherwise.
func (p *Processor) checkGroupOffsets() error {
	admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, p.sarama)
	if err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	defer admin.Close()
	res, err := admin.ListConsumerGroupOffsets(p.cfg.Group, nil)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil // a new group: it starts from the oldest offset
	}
	if err != nil {
		return fmt.Errorf("offsets of group %s: %w", p.cfg.Group, err)
	}
	for part, b := range res.Blocks[p.cfg.Topic] {
		if b.Err != sarama.ErrNoError || b.Offset < 0 {
			continue
		}
		next, ok := p.startOff[part]
		if !ok {
			next = 0
		}
		if b.Offset > next {
			return fmt.Errorf("group %s has committed offset %d on %s/%d but DuckDB %s holds that partition only up to %d: "+
				"the file does not belong to this group; use a new --group (reads the topic from the start) or the group's file",
				p.cfg.Group, b.Offset, p.cfg.Topic, part, p.cfg.DBPath, next)
		}
	}
	return nil
}

func (p *Processor) gokaProcessor() (*goka.Processor, error) {
	sb := storage.MemoryBuilder()
	if p.cfg.StorageDir != "" {
		sb = storage.DefaultBuilder(p.cfg.StorageDir)
	}
	edges := []goka.Edge{
		goka.Input(goka.Stream(p.cfg.Topic), new(codec.Bytes), p.consume),
		goka.Persist(tableCodec{}),
	}
	if p.l2 != nil {
		// Level-2 hook (level2.go): the station metadata table, read per
		// record; goka waits for it to be recovered before consuming.
		edges = append(edges, goka.Lookup(p.l2.table, new(codec.Bytes)))
	}
	g := goka.DefineGroup(goka.Group(p.cfg.Group), edges...)
	gp, err := goka.NewProcessor(p.cfg.Brokers, g,
		goka.WithHasher(partition.NewHasher),
		goka.WithClientID(p.cfg.ClientID),
		goka.WithStorageBuilder(sb),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(p.sarama, p.tmConfig())),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(p.sarama)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(p.sarama)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(p.sarama)),
		goka.WithLogger(gokaLogger{p.log.With("component", "goka")}),
		// goka's default drops nil values (tombstones) and commits their
		// offset at once, past DuckDB's next_offset: the next start then
		// refused the file. Passed to consume, a tombstone becomes a dead
		// letter whose commit is deferred like every other message's.
		goka.WithNilHandling(goka.NilProcess),
	)
	if err != nil {
		return nil, fmt.Errorf("goka processor (brokers %s): %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	return gp, nil
}

type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)                 { g.l.Debug(fmt.Sprint(v...)) }
func (g gokaLogger) Println(v ...any)               { g.l.Debug(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }
func (g gokaLogger) Printf(format string, v ...any) { g.l.Debug(fmt.Sprintf(format, v...)) }

func (p *Processor) acc(part int32) *partAcc {
	p.accMu.Lock()
	defer p.accMu.Unlock()
	a := p.accs[part]
	if a == nil {
		next, ok := p.startOff[part]
		if !ok {
			next = -1
		}
		a = &partAcc{partition: part, next: next, seq: 1, sites: map[string]*siteState{}, keys: map[string]string{}}
		p.accs[part] = a
	}
	return a
}

// consume is the goka callback: it applies one message to the site's state
// and the partition's batch. Its Kafka commit is deferred until the batch is
// in DuckDB.
func (p *Processor) consume(gctx goka.Context, msg any) {
	commit := gctx.DeferCommit()
	part, off := gctx.Partition(), gctx.Offset()
	a := p.acc(part)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.b == nil {
		a.b = &batch{seq: a.seq, partition: part, firstAt: time.Now()}
		select {
		case a.b.rows = <-p.rowPool:
		default:
			a.b.rows = make([]row, 0, min(p.cfg.BatchRows, 1<<16))
		}
	}
	b := a.b
	b.commits = append(b.commits, commit)
	b.messages++
	p.stats.messages.Add(1)
	if off < a.next {
		// Applied already: in DuckDB (replay after a crash), or in a batch
		// still on its way there (redelivery after a rebalance).
		b.next = max(b.next, a.next)
		p.maybeCut(a)
		return
	}
	a.next = off + 1
	b.next = a.next
	if err := p.apply(gctx, a, msg, part, off); err != nil {
		var bad badMessage
		if !errors.As(err, &bad) {
			// DuckDB unreadable: stop rather than guess.
			p.fail(err)
			gctx.Fail(err)
			return
		}
		raw, _ := msg.([]byte)
		reason := deadReason(err)
		b.dead = append(b.dead, deadLetter{partition: part, offset: off, err: err.Error(), reason: reason,
			key: []byte(gctx.Key()), value: raw, headers: gctx.Headers()})
		p.stats.dead.Add(1)
		p.log.Warn("dead letter", "topic", p.cfg.Topic, "partition", part, "offset", off, "reason", reason, "to", p.cfg.Topic+".dlq", "err", err)
	}
	p.maybeCut(a)
}

// badMessage marks an error in the message itself (dead letter), as opposed
// to one of the processor (fatal).
type badMessage struct {
	err    error
	reason string // dlq.reason
}

func (e badMessage) Error() string { return e.err.Error() }
func (e badMessage) Unwrap() error { return e.err }

// classify separates a message that cannot be decoded (a dead letter) from a
// registry that cannot be reached (retried in decode until it answers or the
// processor stops; then fatal: the message is not marked applied, and a
// restart retries it).
func classify(part string, err error) error {
	if errors.Is(err, registry.ErrUnreachable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return badMessage{err, decodeClass(part, err)}
}

// retryUnreachable runs f until it succeeds, fails for another reason than
// an unreachable schema registry, or ctx ends, waiting with a doubling
// backoff (1 s .. 30 s) and logging each wait: a registry that restarts or
// starts after the processor is waited for, without a crash loop.
func retryUnreachable(ctx context.Context, log *slog.Logger, what, url string, f func() error) error {
	delay := time.Second
	for {
		err := f()
		if err == nil || !errors.Is(err, registry.ErrUnreachable) || ctx.Err() != nil {
			return err
		}
		log.Warn("schema registry unreachable; retrying", "url", url, "op", what, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (stopped while waiting for the schema registry)", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (p *Processor) apply(gctx goka.Context, a *partAcc, msg any, part int32, off int64) error {
	raw, ok := msg.([]byte)
	if !ok || raw == nil {
		return badMessage{fmt.Errorf("partition %d offset %d: empty value (tombstone)", part, off), "tombstone"}
	}
	ctx := gctx.Context()
	keySite, ok := a.keys[gctx.Key()]
	if !ok {
		err := retryUnreachable(ctx, p.log, fmt.Sprintf("key schema of partition %d offset %d", part, off), p.cfg.Registry.URL, func() (err error) {
			keySite, err = p.dec.DecodeKey(ctx, []byte(gctx.Key()))
			return err
		})
		if err != nil {
			return classify("key", fmt.Errorf("partition %d offset %d: key: %w", part, off, err))
		}
		a.keys[gctx.Key()] = keySite
	}
	var r row
	err := retryUnreachable(ctx, p.log, fmt.Sprintf("value schema of partition %d offset %d", part, off), p.cfg.Registry.URL, func() error {
		return p.dec.DecodeValue(ctx, raw, &r.rec)
	})
	if err != nil {
		return classify("value", fmt.Errorf("partition %d offset %d: value: %w", part, off, err))
	}
	if !r.rec.IsSet(record.FieldTime) {
		return badMessage{fmt.Errorf("partition %d offset %d: site %s: record has no time", part, off, keySite), "no_time"}
	}
	if err := p.plausible(keySite, &r.rec); err != nil {
		return badMessage{fmt.Errorf("partition %d offset %d: %w", part, off, err.err), err.reason}
	}
	sess, err := sessionOf(gctx, &r.rec)
	if err != nil {
		return badMessage{fmt.Errorf("partition %d offset %d: site %s time %d: %w", part, off, keySite, r.rec.Time, err), "bad_session"}
	}
	r.rec.Session = sess

	st := a.sites[keySite]
	if st == nil {
		st = &siteState{site: keySite}
		if l := p.loaded[keySite]; l != nil {
			st.sess = *l
		}
		a.sites[keySite] = st
	}
	if !st.checked {
		st.checked = true
		p.checkTable(gctx, st)
	}
	ss := st.sess[sess]
	if ss == nil {
		ss = newSessState(keySite, sess)
		st.sess[sess] = ss
	}
	if !ss.dirty {
		a.dirty = append(a.dirty, ss)
	}
	var refs *[4]refGauge
	if m := p.refs.Load(); m != nil {
		refs = (*m)[keySite]
	}
	out, err := ss.apply(&r.rec, refs, p.lateness, a.seq, dbLoader{ctx: ctx, db: p.db})
	if err != nil {
		return err
	}
	ss.partition, ss.offset = part, off
	switch out {
	case duplicate:
		p.stats.duplicates.Add(1)
		a.b.dups++
	default:
		r.keySite, r.partition, r.offset, r.late = keySite, part, off, out == storedLate
		a.b.rows = append(a.b.rows, r)
		p.level2Sample(gctx, a.b, keySite, &r.rec) // Level-2 hook (level2.go)
		p.stats.rows.Add(1)
		if out == storedLate {
			p.stats.late.Add(1)
			a.b.late++
		}
	}
	ss.maybeEvict(a.committed.Load())
	st.sinceTab++
	if st.sinceTab >= p.cfg.TableEvery || st.sinceTab == 1 || len(a.b.rows) >= p.cfg.BatchRows {
		gctx.SetValue(st.tableValue(part, off))
		st.sinceTab = 1
	}
	ss.peakMem = max(ss.peakMem, ss.mem)
	if ss.mem > int64(p.cfg.SiteStateBytes) && ss.mem >= ss.relieveAt {
		p.relieve(a, ss)
	}
	return nil
}

// relieve bounds a site's memory (Config.SiteStateBytes): it commits the
// partition's batch (this message included), waits for DuckDB's commit,
// and evicts every committed day index and final window of the session:
// only committed state can be reloaded from DuckDB. Called with a.mu held.
// If what is left is still large (open windows of a long allowed lateness)
// the next try waits until the state has doubled, so it cannot run for
// every record.
func (p *Processor) relieve(a *partAcc, ss *sessState) {
	seq := a.seq
	p.cut(a)
	for {
		p.progMu.Lock()
		ch := p.progress
		p.progMu.Unlock()
		if a.committed.Load() >= seq {
			break
		}
		select {
		case <-ch:
		case <-p.failed:
			return
		}
	}
	before := ss.mem
	ss.evictCommitted(a.committed.Load())
	ss.relieveAt = max(int64(p.cfg.SiteStateBytes), 2*ss.mem)
	p.log.Debug("site state over its memory bound: committed and evicted", "site", ss.site, "session", ss.session,
		"bytes_before", before, "bytes_after", ss.mem, "bound", p.cfg.SiteStateBytes)
}

// plausible applies the event-time and site policy (docs/processor.md,
// "Poison and implausible records"): the time must lie in [MinEventTime,
// wall clock + MaxFuture], and a site in the value must be the key's site
// (the key decides the partition and the state the record counts in; a
// value naming another site is ambiguous, and was stored silently).
func (p *Processor) plausible(keySite string, r *record.Record) *badMessage {
	if r.Time < p.minTime || r.Time > time.Now().UnixMilli()+p.future {
		return &badMessage{fmt.Errorf("site %s: time %d ms (%s) outside [%s, now + %s]", keySite, r.Time,
			fmtTime(r.Time), p.cfg.MinEventTime.UTC().Format(time.RFC3339), p.cfg.MaxFuture), "time_out_of_range"}
	}
	if r.IsSet(record.FieldSite) && r.Site != keySite {
		return &badMessage{fmt.Errorf("time %d: value's site %q is not the key's site %q", r.Time, r.Site, keySite), "site_mismatch"}
	}
	return nil
}

// fmtTime formats an epoch-ms time for an error message; times beyond
// year 9999 are shown in years (time.Format would print garbage).
func fmtTime(ms int64) string {
	const yearMs = 31_556_952_000
	if ms > 253402300799999 || ms < -62135596800000 {
		return fmt.Sprintf("about year %d", 1970+ms/yearMs)
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// checkTable compares the goka table's value for a site with DuckDB's state
// (the truth). The table may be ahead after a crash: it is then rewritten
// from DuckDB's state by the next SetValue.
func (p *Processor) checkTable(gctx goka.Context, st *siteState) {
	tv, _ := gctx.Value().(*TableValue)
	if tv == nil {
		return
	}
	var dbOff int64 = -1
	for _, s := range st.sess {
		if s != nil {
			dbOff = max(dbOff, s.offset)
		}
	}
	if tv.Offset > dbOff {
		p.log.Info("goka table ahead of DuckDB; using DuckDB's state", "site", st.site, "table_offset", tv.Offset, "duckdb_offset", dbOff)
	}
}

func (st *siteState) tableValue(part int32, off int64) *TableValue {
	v := &TableValue{Site: st.site, Partition: part, Offset: off}
	for _, s := range st.sess {
		if s == nil {
			continue
		}
		v.Sessions = append(v.Sessions, TableSession{Session: s.session.String(), First: s.first, Last: s.last,
			Records: s.records, Duplicates: s.duplicates, Late: s.late, Gaps: s.gapCount, Missing: s.missing})
	}
	return v
}

// sessionOf tells the record's session: from its fields when they name one
// session (every record with a strain or ancillary value), else from the
// gtsm_session header (records whose channels are all missing). Reading the
// fields first avoids goka's Headers(), which builds a map per message (10%
// of the processor's CPU per message in the profile); our producer's header
// always agrees with the fields.
func sessionOf(gctx goka.Context, r *record.Record) (bottle.Session, error) {
	if s, ok := record.InferSession(r); ok && r.Set&dataFields != 0 {
		return s, nil
	}
	h := gctx.Headers()
	if v, ok := h[record.SessionHeader]; ok {
		s, err := bottle.ParseSession(string(v))
		if err != nil {
			return 0, fmt.Errorf("header %s: %w", record.SessionHeader, err)
		}
		return s, nil
	}
	s, ok := record.InferSession(r)
	if !ok {
		return 0, fmt.Errorf("no %s header and the session cannot be inferred from the fields", record.SessionHeader)
	}
	return s, nil
}

// dataFields are the value fields after site, time and timestamp.
const dataFields = (uint64(1)<<record.NumFields - 1) &^ (1<<record.FirstInt - 1)

func (p *Processor) maybeCut(a *partAcc) {
	if a.b != nil && (len(a.b.rows) >= p.cfg.BatchRows || a.b.messages >= 2*p.cfg.BatchRows) {
		p.cut(a)
	}
}

// cut closes the partition's current batch (with a.mu held) and hands it to
// the sink; it blocks while the sink is busy, which is the back-pressure.
func (p *Processor) cut(a *partAcc) {
	b := a.b
	if b == nil {
		return
	}
	for _, s := range a.dirty {
		s.cut(b)
	}
	a.dirty = a.dirty[:0]
	a.b = nil
	a.seq++
	select {
	case p.batches <- b:
	case <-p.failed:
		err := p.failure()
		for _, c := range b.commits {
			c(err)
		}
	}
}

// runFlusher cuts batches older than the flush interval; once ctx is done
// (shutting down) it cuts every batch at each tick, because goka waits for
// the deferred commits of the messages it delivered before it returns. It
// ends when stop is closed.
func (p *Processor) runFlusher(ctx context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(max(p.cfg.FlushInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	refresh := time.NewTicker(10 * time.Second)
	defer refresh.Stop()
	done := ctx.Done()
	for {
		select {
		case <-stop:
			return
		case <-done:
			done = nil // from now on every tick cuts everything
			p.cutAll(0)
		case <-tick.C:
			if ctx.Err() != nil {
				p.cutAll(0)
			} else {
				p.cutAll(p.cfg.FlushInterval)
			}
		case <-refresh.C:
			if err := p.loadRefs(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("reload site_reference", "err", err)
			}
		}
	}
}

func (p *Processor) cutAll(age time.Duration) {
	p.accMu.Lock()
	accs := make([]*partAcc, 0, len(p.accs))
	for _, a := range p.accs {
		accs = append(accs, a)
	}
	p.accMu.Unlock()
	for _, a := range accs {
		a.mu.Lock()
		if a.b != nil && time.Since(a.b.firstAt) >= age {
			p.cut(a)
		}
		a.mu.Unlock()
	}
}

// runSink writes batches to DuckDB, group-committing whatever is queued, then
// releases their Kafka commits in order.
func (p *Processor) runSink() error {
	for b := range p.batches {
		bs := []*batch{b}
	more:
		for len(bs) < 16 {
			select {
			case nb, ok := <-p.batches:
				if !ok {
					break more
				}
				bs = append(bs, nb)
			default:
				break more
			}
		}
		if p.failure() != nil {
			p.release(bs, p.failure())
			continue
		}
		t0 := time.Now()
		if err := p.dlq.send(context.Background(), bs); err != nil {
			p.fail(err)
			p.release(bs, err)
			continue
		}
		if err := p.sink.write(context.Background(), bs); err != nil {
			err = fmt.Errorf("DuckDB %s: %w", p.cfg.DBPath, err)
			p.fail(err)
			p.release(bs, err)
			continue
		}
		info := CommitInfo{Duration: time.Since(t0), Batches: len(bs)}
		for _, b := range bs {
			info.Messages += b.messages
			info.Rows += len(b.rows)
			info.Duplicates += b.dups
			info.Late += b.late
			info.DeadLetters += len(b.dead)
			for _, d := range b.dead {
				if info.DeadReasons == nil {
					info.DeadReasons = map[string]int{}
				}
				info.DeadReasons[d.reason]++
			}
		}
		p.release(bs, nil)
		if p.cfg.OnCommit != nil {
			info.Committed = p.Committed()
			p.cfg.OnCommit(info)
		}
	}
	return nil
}

func (p *Processor) release(bs []*batch, err error) {
	for _, b := range bs {
		for _, c := range b.commits {
			c(err)
		}
	}
	if err != nil {
		return
	}
	for _, b := range bs {
		select {
		case p.rowPool <- b.rows[:0]:
		default:
		}
		b.rows = nil
	}
	p.accMu.Lock()
	for _, b := range bs {
		if a := p.accs[b.partition]; a != nil {
			a.committed.Store(b.seq)
		}
	}
	p.accMu.Unlock()
	p.progMu.Lock()
	for _, b := range bs {
		p.committed[b.partition] = max(p.committed[b.partition], b.next)
		p.stats.batches.Add(1)
	}
	close(p.progress)
	p.progress = make(chan struct{})
	p.progMu.Unlock()
}

// CommitInfo describes one DuckDB transaction (for metrics).
type CommitInfo struct {
	Batches     int             // partition batches in the transaction
	Messages    int             // Kafka messages covered (stored, duplicates, skipped replays, dead letters)
	Rows        int             // rows appended to gtsm_etl
	Duplicates  int             // records not stored because already stored
	Late        int             // rows stored late
	DeadLetters int             // messages that could not be decoded
	DeadReasons map[string]int  // DeadLetters by dlq.reason (nil when none)
	Duration    time.Duration   // time to write and commit
	Committed   map[int32]int64 // next offset in DuckDB per partition, after the commit
}

// Committed returns, per partition, the next offset not yet in DuckDB.
func (p *Processor) Committed() map[int32]int64 {
	p.progMu.Lock()
	defer p.progMu.Unlock()
	m := make(map[int32]int64, len(p.committed))
	for k, v := range p.committed {
		m[k] = v
	}
	return m
}

// Lag returns, per partition, how many messages of the topic are not yet in
// DuckDB (high watermark minus committed next offset).
func (p *Processor) Lag(ctx context.Context) (map[int32]int64, error) {
	hw, err := HighWatermarks(p.cfg.Brokers, p.sarama, p.cfg.Topic)
	if err != nil {
		return nil, err
	}
	c := p.Committed()
	lag := map[int32]int64{}
	for part, h := range hw {
		next := c[part]
		if next < 0 {
			next = 0
		}
		lag[part] = max(h-next, 0)
	}
	return lag, nil
}

// WaitCaughtUp blocks until every message that is in the topic when it is
// called is committed to DuckDB (or ctx ends, or the processor fails).
func (p *Processor) WaitCaughtUp(ctx context.Context) error {
	hw, err := HighWatermarks(p.cfg.Brokers, p.sarama, p.cfg.Topic)
	if err != nil {
		return err
	}
	for {
		p.progMu.Lock()
		ch := p.progress
		done := true
		for part, h := range hw {
			if p.committed[part] < h {
				done = false
			}
		}
		p.progMu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.failed:
			return p.failure()
		case <-ch:
		}
	}
}

// HighWatermarks returns the next offset to be written of every partition
// of a topic.
func HighWatermarks(brokers []string, sc *sarama.Config, topic string) (map[int32]int64, error) {
	cl, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(brokers, ","), err)
	}
	defer cl.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	hw := map[int32]int64{}
	for _, part := range parts {
		o, err := cl.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("high watermark of %s/%d: %w", topic, part, err)
		}
		hw[part] = o
	}
	return hw, nil
}

// NewView returns a goka view of the processor's group table (per-site
// counters keyed by the raw Kafka key, values *TableValue), with the same
// murmur2 hasher as the processor and producer. Run it, wait for Recovered,
// then Get(string(serde.AppendKey(nil, site))).
func NewView(cfg Config) (*goka.View, error) {
	cfg = cfg.withDefaults()
	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, err
	}
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication, tmc.Stream.Replication = cfg.Replication, cfg.Replication
	v, err := goka.NewView(cfg.Brokers, goka.GroupTable(goka.Group(cfg.Group)), tableCodec{},
		goka.WithViewHasher(partition.NewHasher),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tmc)),
		goka.WithViewLogger(gokaLogger{cfg.Logger.With("component", "goka-view")}),
	)
	if err != nil {
		return nil, fmt.Errorf("goka view of %s-table: %w", cfg.Group, err)
	}
	return v, nil
}
