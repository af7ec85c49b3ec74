package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// Dead-letter headers: why a message was set aside and where it came from.
// The original key, value and headers are kept as they were.
const (
	HeaderDLQReason    = "dlq.reason"    // short class, see deadReason
	HeaderDLQError     = "dlq.error"     // the full error text
	HeaderDLQTopic     = "dlq.topic"     // source topic
	HeaderDLQPartition = "dlq.partition" // source partition (decimal)
	HeaderDLQOffset    = "dlq.offset"    // source offset (decimal)
)

// deadReason classifies why a message could not be applied, for the
// dlq.reason header and the log: key_/value_ + bad_magic, unknown_schema_id,
// truncated, corrupt or undecodable; no_time; bad_session; tombstone.
func deadReason(err error) string {
	var bad badMessage
	if errors.As(err, &bad) && bad.reason != "" {
		return bad.reason
	}
	return "undecodable"
}

func decodeClass(part string, err error) string {
	switch {
	case errors.Is(err, registry.ErrBadMagic):
		return part + "_bad_magic"
	case errors.Is(err, registry.ErrUnknownSchemaID):
		return part + "_unknown_schema_id"
	case errors.Is(err, registry.ErrTruncated), errors.Is(err, record.ErrTruncated):
		return part + "_truncated"
	case errors.Is(err, record.ErrCorrupt):
		return part + "_corrupt"
	}
	return part + "_undecodable"
}

// dlq publishes dead letters to the dead-letter topic and waits for the
// broker's acknowledgement. It runs before the DuckDB transaction that
// records the same dead letters and the offsets past them, so once DuckDB
// (and then Kafka) has moved past a poison message, the message is in the
// dead-letter topic: at least once (a crash between the two re-sends it on
// replay), while the dead_letters table holds it exactly once.
type dlq struct {
	topic string
	src   string
	prod  sarama.SyncProducer
}

func newDLQ(brokers []string, sc *sarama.Config, src, topic string) (*dlq, error) {
	c := *sc
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewHashPartitioner
	prod, err := sarama.NewSyncProducer(brokers, &c)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer for %s: %w", topic, err)
	}
	return &dlq{topic: topic, src: src, prod: prod}, nil
}

func (d *dlq) send(ctx context.Context, bs []*batch) error {
	var msgs []*sarama.ProducerMessage
	for _, b := range bs {
		for _, l := range b.dead {
			h := make([]sarama.RecordHeader, 0, len(l.headers)+5)
			for k, v := range l.headers {
				h = append(h, sarama.RecordHeader{Key: []byte(k), Value: v})
			}
			h = append(h,
				sarama.RecordHeader{Key: []byte(HeaderDLQReason), Value: []byte(l.reason)},
				sarama.RecordHeader{Key: []byte(HeaderDLQError), Value: []byte(l.err)},
				sarama.RecordHeader{Key: []byte(HeaderDLQTopic), Value: []byte(d.src)},
				sarama.RecordHeader{Key: []byte(HeaderDLQPartition), Value: []byte(strconv.Itoa(int(l.partition)))},
				sarama.RecordHeader{Key: []byte(HeaderDLQOffset), Value: []byte(strconv.FormatInt(l.offset, 10))},
			)
			m := &sarama.ProducerMessage{Topic: d.topic, Headers: h}
			if l.key != nil {
				m.Key = sarama.ByteEncoder(l.key)
			}
			if l.value != nil {
				m.Value = sarama.ByteEncoder(l.value)
			}
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	// sarama retries a few times on its own (Producer.Retry); on top of
	// that, ride out a broker restart for about a minute before giving up
	// (the processor then stops without committing the batch).
	delay := 500 * time.Millisecond
	for try := 1; ; try++ {
		err := d.prod.SendMessages(msgs)
		if err == nil {
			return nil
		}
		var pe sarama.ProducerErrors
		if errors.As(err, &pe) && len(pe) > 0 {
			failed := make([]*sarama.ProducerMessage, len(pe))
			for i, e := range pe {
				failed[i] = e.Msg
			}
			msgs, err = failed, pe[0].Err
		}
		if try == 8 || ctx.Err() != nil {
			return fmt.Errorf("dead-letter topic %s: %d message(s) not acknowledged: %w", d.topic, len(msgs), err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 15*time.Second)
	}
}

func (d *dlq) close() error { return d.prod.Close() }
