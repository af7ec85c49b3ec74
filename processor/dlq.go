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

	// A reference replaces the copy when the copy cannot be written (larger
	// than the producer's or the broker's message size limit, or refused
	// as invalid): no value, the key only if small, the dlq.* headers, and
	// these. The original stays in the source topic (and in DuckDB's
	// dead_letters), found by dlq.topic/partition/offset.
	HeaderDLQReference = "dlq.reference"  // why only a reference is kept
	HeaderDLQKeySize   = "dlq.key_size"   // bytes of the original key
	HeaderDLQValueSize = "dlq.value_size" // bytes of the original value

	// HeaderDLQSeenAt is set on a dead letter from another topic than the
	// input (a station metadata record, read through goka's lookup table,
	// which gives no offset; dlq.partition and dlq.offset are then -1): the
	// input message, topic/partition@offset, at which the processor met it.
	HeaderDLQSeenAt = "dlq.seen_at"
)

// maxRefKey: a reference keeps the original key up to this size.
const maxRefKey = 1024

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
	topic    string
	src      string
	prod     sarama.SyncProducer
	maxBytes int // the producer's Producer.MaxMessageBytes
	version  int // record format version for ProducerMessage.ByteSize
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
	v := 1
	if c.Version.IsAtLeast(sarama.V0_11_0_0) {
		v = 2
	}
	return &dlq{topic: topic, src: src, prod: prod, maxBytes: c.Producer.MaxMessageBytes, version: v}, nil
}

func (d *dlq) send(ctx context.Context, bs []*batch) error {
	var msgs []*sarama.ProducerMessage
	for _, b := range bs {
		for i := range b.dead {
			l := &b.dead[i]
			h := make([]sarama.RecordHeader, 0, len(l.headers)+5)
			for k, v := range l.headers {
				h = append(h, sarama.RecordHeader{Key: []byte(k), Value: v})
			}
			h = append(h, d.origin(l)...)
			h = append(h, sarama.RecordHeader{Key: []byte(HeaderDLQError), Value: []byte(l.err)})
			m := &sarama.ProducerMessage{Topic: d.topic, Headers: h, Metadata: l}
			if l.key != nil {
				m.Key = sarama.ByteEncoder(l.key)
			}
			if l.value != nil {
				m.Value = sarama.ByteEncoder(l.value)
			}
			if size := m.ByteSize(d.version); size > d.maxBytes {
				// Known in advance: sarama would refuse it, every time.
				m = d.reference(l, fmt.Sprintf("the copy (%d bytes) exceeds the dead-letter producer's maximum message size (%d bytes)", size, d.maxBytes))
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
			failed := make([]*sarama.ProducerMessage, 0, len(pe))
			permanent := 0
			for _, e := range pe {
				m := e.Msg
				if l, ok := m.Metadata.(*deadLetter); ok && permanentSendError(e.Err) {
					// A copy the broker refuses (too large for its
					// max.message.bytes, invalid) is refused again on
					// every retry and every restart: keep a reference.
					m = d.reference(l, fmt.Sprintf("the broker refused the copy: %v", e.Err))
					permanent++
				}
				failed = append(failed, m)
			}
			msgs, err = failed, pe[0].Err
			if permanent == len(pe) {
				continue // only references to send: no wait, no try used up
			}
		}
		if try == 8 || ctx.Err() != nil {
			return fmt.Errorf("dead-letter topic %s: %d message(s) not acknowledged: %w", d.topic, len(msgs), err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 15*time.Second)
	}
}

// reference is the dead letter without the original value (and key, if
// large): what fits whatever the size of the poison message.
func (d *dlq) reference(l *deadLetter, why string) *sarama.ProducerMessage {
	where := d.src + "/" + strconv.Itoa(int(l.partition)) + "@" + strconv.FormatInt(l.offset, 10)
	if l.topic != "" && l.topic != d.src {
		where = l.topic + " under key " + truncate(string(l.key), 64) + " (latest value; met at " + where + ")"
	}
	h := append(d.origin(l),
		sarama.RecordHeader{Key: []byte(HeaderDLQError), Value: []byte(truncate(l.err, 4096))},
		sarama.RecordHeader{Key: []byte(HeaderDLQReference), Value: []byte(why + "; the original is at " + where)},
		sarama.RecordHeader{Key: []byte(HeaderDLQKeySize), Value: []byte(strconv.Itoa(len(l.key)))},
		sarama.RecordHeader{Key: []byte(HeaderDLQValueSize), Value: []byte(strconv.Itoa(len(l.value)))},
	)
	// Marked as a reference, so a refusal of the reference itself is not
	// turned into another reference (it is a broker fault: retried).
	m := &sarama.ProducerMessage{Topic: d.topic, Headers: h}
	if l.key != nil && len(l.key) <= maxRefKey {
		m.Key = sarama.ByteEncoder(l.key)
	}
	return m
}

// origin is a dead letter's reason and source headers: dlq.reason,
// dlq.topic, dlq.partition, dlq.offset, and for a record of another topic
// than the input dlq.seen_at.
func (d *dlq) origin(l *deadLetter) []sarama.RecordHeader {
	part, off := strconv.Itoa(int(l.partition)), strconv.FormatInt(l.offset, 10)
	h := []sarama.RecordHeader{{Key: []byte(HeaderDLQReason), Value: []byte(l.reason)}}
	if l.topic != "" && l.topic != d.src {
		return append(h,
			sarama.RecordHeader{Key: []byte(HeaderDLQTopic), Value: []byte(l.topic)},
			sarama.RecordHeader{Key: []byte(HeaderDLQPartition), Value: []byte("-1")},
			sarama.RecordHeader{Key: []byte(HeaderDLQOffset), Value: []byte("-1")},
			sarama.RecordHeader{Key: []byte(HeaderDLQSeenAt), Value: []byte(d.src + "/" + part + "@" + off)})
	}
	return append(h,
		sarama.RecordHeader{Key: []byte(HeaderDLQTopic), Value: []byte(d.src)},
		sarama.RecordHeader{Key: []byte(HeaderDLQPartition), Value: []byte(part)},
		sarama.RecordHeader{Key: []byte(HeaderDLQOffset), Value: []byte(off)})
}

// permanentSendError: errors that every retry of the same message gets.
func permanentSendError(err error) bool {
	var ce sarama.ConfigurationError
	return errors.As(err, &ce) || errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrInvalidMessage) ||
		errors.Is(err, sarama.ErrInvalidMessageSize) || errors.Is(err, sarama.ErrInvalidRecord)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (d *dlq) close() error { return d.prod.Close() }
