// Progress: committed offsets, lag and catch-up waits for callers and tests.

package processor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

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
	if p.cfg.StateDir != "" {
		if c, err = p.groupCommitted(); err != nil {
			return nil, err
		}
	}
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
// called is committed to DuckDB (or ctx ends, or the processor fails). In
// StateDir mode that is the whole group's progress, read from the group's
// Kafka offsets (committed only after the partition files).
func (p *Processor) WaitCaughtUp(ctx context.Context) error {
	hw, err := HighWatermarks(p.cfg.Brokers, p.sarama, p.cfg.Topic)
	if err != nil {
		return err
	}
	if p.cfg.StateDir != "" {
		return p.waitGroupCaughtUp(ctx, hw)
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

// groupCommitted returns the group's committed Kafka offset per partition
// of the topic (StateDir mode: the partitions are spread over members, and
// Kafka's commit follows each partition file's).
func (p *Processor) groupCommitted() (map[int32]int64, error) {
	admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, p.sarama)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	defer admin.Close()
	res, err := admin.ListConsumerGroupOffsets(p.cfg.Group, nil)
	if err != nil {
		return nil, fmt.Errorf("offsets of group %s: %w", p.cfg.Group, err)
	}
	c := map[int32]int64{}
	for part, b := range res.Blocks[p.cfg.Topic] {
		if b.Err == sarama.ErrNoError && b.Offset >= 0 {
			c[part] = b.Offset
		}
	}
	return c, nil
}

func (p *Processor) waitGroupCaughtUp(ctx context.Context, hw map[int32]int64) error {
	for {
		c, err := p.groupCommitted()
		if err != nil {
			p.log.Warn("read the group's offsets", "err", err)
		}
		done := err == nil
		for part, h := range hw {
			if c[part] < h {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.failed:
			return p.failure()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
