// Partition-owned state (issue 14, Config.StateDir): one DuckDB file per
// Kafka partition in a shared directory, owned by whichever member of the
// group owns the partition, so that any member can take a partition over
// exactly where its last owner committed.
//
// A partition's file holds everything the single-file mode holds for that
// partition (same DDL, gtsmsql.Migrate): its sites' rows, counters, gaps,
// windows, Level-2 state and its kafka_offsets row. Each batch commits in its
// partition's file, rows and state together with the partition's next
// offset, exactly as in single-file mode, so exactly-once is unchanged: the
// file is the truth and Kafka's committed offset never passes it.
//
// Ownership is DuckDB's file lock. A member opens a partition's file on the
// first message of the partition in a goka session (retrying while another
// process holds the lock) and loads the partition's state from it; when the
// session ends (a rebalance or shutdown: goka's Cleanup has stopped every
// partition processor) it commits the pending batches, publishes once and
// closes every file it holds, before goka may start the next session. A
// stalled old owner still holding the lock keeps the new owner waiting, so
// nobody reads a file another process can still write; when the old owner
// wakes up it may commit its pending batch into the file (still exactly
// once: the new owner loads the state only after the lock is released) and
// then closes it.
package processor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// lockGrace is how long a partition whose goka session has already ended
// keeps waiting for the file lock of its old owner: long enough for an old
// owner that is closing (commit, checkpoint) to let go, so the message is
// applied; then the message is given up (consume releases its commit with
// an error, which goka does not mark) rather than hold up this member's
// rebalance, and with it the old owner's if it waits for a file this
// member holds.
const lockGrace = 5 * time.Second

// minStoreMemory is the floor of a partition file's DuckDB memory_limit.
// 32 MiB was too little: with 12 files open (256MB / 12) a 500-row batch's
// commit failed with "failed to pin block of size 256.0 KiB (34.7 MiB/34.8
// MiB used)" (faults.TestStateDirZombieFenced, one member owning all 12).
const minStoreMemory = 128 << 20

// PartitionFile is the DuckDB file of one partition of topic in a state
// directory (Config.StateDir).
func PartitionFile(dir, topic string, part int32) string {
	return filepath.Join(dir, fmt.Sprintf("%s-p%03d.duckdb", topic, part))
}

// store is one open partition file and its sink.
type store struct {
	part int32
	path string
	db   *sql.DB
	sink *sink

	loaded map[string]*[3]*sessState // state at open; read-only
	refs   atomic.Pointer[map[string]*[4]refGauge]
	next   int64 // kafka_offsets.next_offset at open; -1: none

	batches  chan *batch
	sinkDone chan error

	kick    chan struct{} // a commit happened: publish when due
	pubStop chan struct{}
	pubDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// openStore opens (waiting for its lock), migrates and loads the file of
// partition part, and starts its sink. sess is the goka session asking.
func (p *Processor) openStore(sess context.Context, part int32) (*store, error) {
	path := PartitionFile(p.cfg.StateDir, p.cfg.Topic, part)
	db, err := p.openLocked(sess, path, part)
	if err != nil {
		return nil, err
	}
	st := &store{part: part, path: path, db: db, next: -1, batches: make(chan *batch, 1), sinkDone: make(chan error, 1),
		kick: make(chan struct{}, 1), pubStop: make(chan struct{}), pubDone: make(chan struct{})}
	if err := p.initStore(context.WithoutCancel(sess), st); err != nil {
		if st.sink != nil {
			st.sink.close()
		}
		db.Close()
		return nil, fmt.Errorf("partition %d file %s: %w", part, path, err)
	}
	p.storeCount.Add(1)
	p.tuneStoreMemory()
	go func() { st.sinkDone <- p.sinkLoop(st.batches, st.sink, st.path, st.kicked) }()
	// Publish once at open, before any new message: an owner that starts
	// or takes over publishes what the last owner committed and did not
	// publish, even for a partition that receives nothing new.
	st.kick <- struct{}{}
	go p.runPublisher(st)
	p.progMu.Lock()
	if st.next >= 0 {
		p.committed[part] = st.next
	} else {
		delete(p.committed, part)
	}
	p.progMu.Unlock()
	p.log.Info("partition file opened", "partition", part, "file", path, "next_offset", st.next, "sites", len(st.loaded))
	return st, nil
}

// openLocked opens a partition's file, retrying while another process
// holds its lock (the previous owner closing it, or a stalled one).
func (p *Processor) openLocked(sess context.Context, path string, part int32) (*sql.DB, error) {
	logged := false
	var doneAt time.Time
	for {
		db, err := gtsmsql.Open(context.WithoutCancel(sess), path, false)
		if err == nil {
			if logged {
				p.log.Info("partition file lock acquired", "partition", part, "file", path)
			}
			return db, nil
		}
		if !errors.Is(err, gtsmsql.ErrLocked) {
			return nil, err
		}
		if !logged {
			p.log.Warn("partition file locked by another process (its previous owner); waiting", "partition", part, "file", path, "err", err)
			logged = true
		}
		if sess.Err() != nil {
			if doneAt.IsZero() {
				doneAt = time.Now()
			}
			if time.Since(doneAt) > lockGrace {
				return nil, fmt.Errorf("partition %d: %w; gave up %v after the goka session ended", part, err, lockGrace)
			}
		}
		select {
		case <-p.failed:
			return nil, p.failure()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *Processor) initStore(ctx context.Context, st *store) error {
	if err := gtsmsql.Migrate(ctx, st.db); err != nil {
		return err
	}
	if err := setCheckpointThreshold(ctx, st.db, p.cfg.CheckpointThreshold); err != nil {
		return err
	}
	if err := setThreads(ctx, st.db, p.cfg.DuckDBThreads); err != nil {
		return err
	}
	off, loaded, err := readState(ctx, st.db, p.cfg.Topic)
	if err != nil {
		return err
	}
	for part, next := range off {
		if part != st.part {
			return fmt.Errorf("holds offsets of partition %d of %s, not only of partition %d: not this partition's file", part, p.cfg.Topic, st.part)
		}
		st.next = next
	}
	st.loaded = loaded
	if err := readOpenWindows(ctx, st.db, loaded); err != nil {
		return err
	}
	refs, err := readRefs(ctx, st.db)
	if err != nil {
		return err
	}
	st.refs.Store(&refs)
	if err := p.checkPartitionOffset(st); err != nil {
		return err
	}
	if st.sink, err = openSink(ctx, st.db, p.cfg.Topic, p.storeMemLimit(int(p.storeCount.Load())+1)); err != nil {
		return err
	}
	if p.l2 != nil {
		// The sink side of Level-2 caches each site's machine as of the
		// last commit: per file, so a partition that comes back after
		// another member advanced it reloads the machines from its file.
		if st.sink.level2, err = newL2proc(p.log, p.l2.watch, p.l2.rp.prog, p.cfg.Level2Window, p.cfg.Level2ReprocessChunk); err != nil {
			return err
		}
	}
	return nil
}

// checkPartitionOffset is checkGroupOffsets for one partition file: the
// group's committed offset must not be past the file's next offset (a new
// or replaced directory with an old group would silently miss the messages
// in between).
func (p *Processor) checkPartitionOffset(st *store) error {
	admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, p.sarama)
	if err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	defer admin.Close()
	res, err := admin.ListConsumerGroupOffsets(p.cfg.Group, map[string][]int32{p.cfg.Topic: {st.part}})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("offsets of group %s: %w", p.cfg.Group, err)
	}
	b := res.GetBlock(p.cfg.Topic, st.part)
	if b == nil || b.Err != sarama.ErrNoError || b.Offset < 0 {
		return nil
	}
	if next := max(st.next, 0); b.Offset > next {
		return fmt.Errorf("group %s has committed offset %d on %s/%d but the partition file holds it only up to %d: "+
			"the file does not belong to this group; use a new --group (reads the topic from the start) or the group's --state-dir",
			p.cfg.Group, b.Offset, p.cfg.Topic, st.part, next)
	}
	return nil
}

// storeMemLimit is a partition file's DuckDB memory_limit with n files
// open: MemoryLimit shared equally (DuckDB 1.5's limit is per database
// instance, so n files would otherwise use n times it), but at least
// minStoreMemory each.
func (p *Processor) storeMemLimit(n int) string {
	total, err := sizeBytes(p.cfg.MemoryLimit)
	if err != nil {
		return p.cfg.MemoryLimit // openSink reports the bad size
	}
	return strconv.FormatInt(max(total/int64(max(n, 1)), minStoreMemory)>>10, 10) + "KiB"
}

// tuneStoreMemory sets every open file's memory_limit for the current
// number of open files.
func (p *Processor) tuneStoreMemory() {
	p.accMu.Lock()
	var dbs []*sql.DB
	for _, a := range p.accs {
		if a.st != nil && !a.st.isClosed() {
			dbs = append(dbs, a.st.db)
		}
	}
	p.accMu.Unlock()
	lim := p.storeMemLimit(int(p.storeCount.Load()))
	for _, db := range dbs {
		if _, err := db.Exec("SET memory_limit = '" + lim + "'"); err != nil {
			p.log.Warn("set memory_limit of a partition file", "limit", lim, "err", err)
		}
	}
}

var sizeUnits = map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}

// sizeBytes parses a DuckDB size like 256MB or 1GiB.
func sizeBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if !sizeRE.MatchString(s) {
		return 0, fmt.Errorf("size %q: want a size like 512MB or 1GB", s)
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.ToUpper(strings.TrimSpace(s[i:]))
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return int64(f * float64(sizeUnits[unit])), nil
}

func (st *store) kicked() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

func (st *store) isClosed() bool {
	select {
	case <-st.pubStop:
		return true
	default:
		return false
	}
}

// runPublisher calls Config.Publisher after commits, at most every
// PublishInterval; one goroutine per file, so never concurrently for one
// partition. The final call is closeStore's.
func (p *Processor) runPublisher(st *store) {
	defer close(st.pubDone)
	if p.cfg.Publisher == nil {
		return
	}
	var last time.Time
	for {
		select {
		case <-st.pubStop:
			return
		case <-st.kick:
		}
		if wait := time.Until(last.Add(p.cfg.PublishInterval)); wait > 0 {
			select {
			case <-st.pubStop:
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		if !p.publish(st) {
			// Retried after the interval, new messages or not.
			select {
			case st.kick <- struct{}{}:
			default:
			}
		}
	}
}

// closePublishTimeout bounds the publish of a partition file being closed.
const closePublishTimeout = 5 * time.Second

func (p *Processor) publish(st *store) bool { return p.publishWithin(st, 0) }

// publishWithin publishes the partition, giving up after d (0: no limit).
func (p *Processor) publishWithin(st *store, d time.Duration) bool {
	t0 := time.Now()
	ctx := context.Background()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := p.cfg.Publisher.Publish(ctx, st.db, st.part); err != nil {
		p.log.Warn("publish partition", "partition", st.part, "file", st.path, "err", err)
		return false
	}
	p.log.Debug("published partition", "partition", st.part, "took", time.Since(t0))
	return true
}

// closeStore commits what the partition's sink still holds, publishes once,
// and closes the file (appenders, connection, database: a checkpoint),
// releasing its lock. Only one call does the work; others wait for it.
func (p *Processor) closeStore(st *store, why string) error {
	st.closeOnce.Do(func() {
		close(st.batches)
		sinkErr := <-st.sinkDone
		close(st.pubStop)
		<-st.pubDone
		if p.cfg.Publisher != nil && sinkErr == nil && p.failure() == nil {
			// Bounded: the next owner waits for this file's lock, and it
			// publishes what this one did not when it opens the file.
			p.publishWithin(st, closePublishTimeout)
		}
		// Nothing more is written to the file but the checkpoint inside
		// Close, after which the lock is released (and the next owner may
		// open it before "partition file closed" is logged).
		p.log.Info("partition file closing", "partition", st.part, "file", st.path, "why", why)
		err := st.sink.close()
		if err != nil {
			err = fmt.Errorf("close DuckDB appenders of %s: %w", st.path, err)
		}
		if cerr := st.db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close DuckDB %s: %w", st.path, cerr)
		}
		st.closeErr = errors.Join(sinkErr, err)
		p.storeCount.Add(-1)
		p.progMu.Lock()
		delete(p.committed, st.part)
		p.progMu.Unlock()
		p.log.Info("partition file closed", "partition", st.part, "file", st.path, "why", why, "err", st.closeErr)
	})
	return st.closeErr
}

// closePart cuts a partition's last batch and closes its file; the acc is
// then dead (a later message of the partition opens the file again).
func (p *Processor) closePart(a *partAcc, why string) error {
	a.mu.Lock()
	p.cut(a)
	a.closed = true
	a.mu.Unlock()
	err := p.closeStore(a.st, why)
	p.accMu.Lock()
	if p.accs[a.partition] == a {
		delete(p.accs, a.partition)
	}
	p.accMu.Unlock()
	p.tuneStoreMemory()
	return err
}

// closeStores closes every open partition file, in parallel (each is a
// commit and a checkpoint): at the end of each goka session and at shutdown.
func (p *Processor) closeStores(why string) error {
	p.accMu.Lock()
	var as []*partAcc
	for _, a := range p.accs {
		if a.st != nil {
			as = append(as, a)
		}
	}
	p.accMu.Unlock()
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.closePart(a, why)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// prepareStateDir creates the state directory.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state directory (--state-dir): %w", err)
	}
	return nil
}

// checkPartitionCount records the topic's partition count in the state
// directory (<topic>.partitions) the first time, and refuses to start when
// it has changed since: the producer's partitioner then sends a site's new
// records to another partition, whose file does not hold the site's state
// (duplicates, gaps and windows would be computed from nothing).
func (p *Processor) checkPartitionCount() error {
	hw, err := HighWatermarks(p.cfg.Brokers, p.sarama, p.cfg.Topic)
	if err != nil {
		return err
	}
	n := len(hw)
	path := filepath.Join(p.cfg.StateDir, p.cfg.Topic+".partitions")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		had, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil {
			return fmt.Errorf("%s: %q is not a partition count", path, b)
		}
		if had != n {
			return fmt.Errorf("topic %s has %d partitions but the state directory %s was written with %d: "+
				"sites now hash to other partitions than their files; re-process into a new --state-dir and --group (docs/processor.md)",
				p.cfg.Topic, n, p.cfg.StateDir, had)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("state directory: %w", err)
	}
}

// checkStateDirGroup refuses a state directory that lacks the file of a
// partition on which the group has committed offsets (a new or wrong
// --state-dir for an old group): goka would resume after those offsets and
// the directory would silently miss everything before. It only stats the
// files (other members may hold them open); checkPartitionOffset compares
// the offsets when a file is opened.
func (p *Processor) checkStateDirGroup() error {
	c, err := p.groupCommitted()
	if err != nil {
		if errors.Is(err, sarama.ErrGroupIDNotFound) {
			return nil
		}
		return err
	}
	for part, off := range c {
		if off <= 0 {
			continue
		}
		f := PartitionFile(p.cfg.StateDir, p.cfg.Topic, part)
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("group %s has committed offset %d on %s/%d but %s does not exist: "+
				"the state directory does not belong to this group; use a new --group (reads the topic from the start) or the group's --state-dir",
				p.cfg.Group, off, p.cfg.Topic, part, f)
		}
	}
	return nil
}
