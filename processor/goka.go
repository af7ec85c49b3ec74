// The goka side: topic and group checks and the goka processor definition.

package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/IBM/sarama"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
)

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
	inputParts := p.cfg.Partitions
	if d, ok := topics[p.cfg.Topic]; ok {
		inputParts = int(d.NumPartitions)
	}
	for _, t := range []struct {
		name, what string
		parts      int
		compact    bool
		skip       bool
	}{{p.cfg.Topic, "input", p.cfg.Partitions, false, false}, {p.cfg.Topic + ".dlq", "dead-letter", 1, false, false},
		// Level-2's station metadata table (level2.go): compacted, keyed by site.
		{p.cfg.MetadataTopic, "station metadata", 1, true, p.l2 == nil},
		// goka's group table, co-partitioned with the input. goka creates
		// it too, but fails when another member created it between its
		// check and its create (three --state-dir members starting at once:
		// "error creating topic members-table"); here that race is
		// harmless.
		{string(goka.GroupTable(goka.Group(p.cfg.Group))), "group table", inputParts, true, false}} {
		if _, ok := topics[t.name]; ok || t.skip {
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
		goka.WithRebalanceCallback(p.assigned),
	)
	if err != nil {
		return nil, fmt.Errorf("goka processor (brokers %s): %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	return gp, nil
}

// assigned logs each new partition assignment of this member (called by
// goka in every session's Setup). In StateDir mode the files of the
// previous session are closed by then (watchSessions); those of the new
// assignment open on their first message.
func (p *Processor) assigned(a goka.Assignment) {
	parts := make([]int, 0, len(a))
	for part := range a {
		parts = append(parts, int(part))
	}
	sort.Ints(parts)
	p.log.Info("partitions assigned", "group", p.cfg.Group, "partitions", fmt.Sprint(parts))
}

type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)                 { g.l.Debug(fmt.Sprint(v...)) }
func (g gokaLogger) Println(v ...any)               { g.l.Debug(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }
func (g gokaLogger) Printf(format string, v ...any) { g.l.Debug(fmt.Sprintf(format, v...)) }
