package registry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/earthscope/gtsm-stream/record"
)

// Errors of the wire format, for errors.Is. The wrapping error says which
// byte, offset or id.
var (
	ErrBadMagic        = errors.New("not Confluent wire format (bad magic byte)")
	ErrUnknownSchemaID = errors.New("unknown schema id")
	ErrTruncated       = record.ErrTruncated // the same value, so either package's name matches
)

// HeaderSize is the Confluent wire-format header: magic byte 0 and the
// 4-byte big-endian schema id.
const HeaderSize = 5

// Serde frames and unframes gtsm_etl keys and values for one topic. Our own
// schemas take the specialised codec of package record; messages written
// with any other schema id are decoded with that writer's schema (looked up
// once per id) and resolved by field name to record.Record. Safe for
// concurrent use.
type Serde struct {
	c              *Client
	topic          string
	keyID, valueID int
	keyHdr, valHdr [HeaderSize]byte

	mu      sync.RWMutex
	writers map[writerKey]*writer // decoders of other writers' schemas
}

type writerKey struct {
	id  int
	key bool
}

// NewSerde registers keySchema and valueSchema under the subjects
// <topic>-key and <topic>-value (TopicNameStrategy, what Flink 1.13+ and the
// Confluent serializers expect) and caches their ids. Both schemas must have
// the gtsm_etl layout (field names, types and order as in avro_schemas/),
// since values are written with the specialised codec.
func NewSerde(ctx context.Context, c *Client, topic, keySchema, valueSchema string) (*Serde, error) {
	if err := checkKeyLayout(keySchema); err != nil {
		return nil, fmt.Errorf("key schema for %s: %w", topic, err)
	}
	if err := checkValueLayout(valueSchema); err != nil {
		return nil, fmt.Errorf("value schema for %s: %w", topic, err)
	}
	kid, err := c.Register(ctx, topic+"-key", keySchema)
	if err != nil {
		return nil, err
	}
	vid, err := c.Register(ctx, topic+"-value", valueSchema)
	if err != nil {
		return nil, err
	}
	s := &Serde{c: c, topic: topic, keyID: kid, valueID: vid, writers: map[writerKey]*writer{}}
	s.keyHdr = header(kid)
	s.valHdr = header(vid)
	return s, nil
}

// KeyID and ValueID are the registered schema ids.
func (s *Serde) KeyID() int   { return s.keyID }
func (s *Serde) ValueID() int { return s.valueID }

func header(id int) [HeaderSize]byte {
	var h [HeaderSize]byte
	binary.BigEndian.PutUint32(h[1:], uint32(id))
	return h
}

// AppendKey appends the framed key record {site}.
func (s *Serde) AppendKey(dst []byte, site string) []byte {
	dst = append(dst, s.keyHdr[:]...)
	return record.AppendKeyAvro(dst, site)
}

// AppendValue appends the framed value of r. It does not allocate when dst
// has room.
func (s *Serde) AppendValue(dst []byte, r *record.Record) []byte {
	dst = append(dst, s.valHdr[:]...)
	return record.AppendAvro(dst, r)
}

// SplitHeader checks the Confluent header of msg and returns the schema id
// and the Avro body.
func SplitHeader(msg []byte) (id int, body []byte, err error) {
	if len(msg) == 0 {
		return 0, nil, fmt.Errorf("%w: empty message, need %d header bytes", ErrTruncated, HeaderSize)
	}
	if msg[0] != 0 {
		return 0, nil, fmt.Errorf("%w: byte 0x%02x at offset 0, want 0x00", ErrBadMagic, msg[0])
	}
	if len(msg) < HeaderSize {
		return 0, nil, fmt.Errorf("%w: message of %d bytes, the header alone needs %d", ErrTruncated, len(msg), HeaderSize)
	}
	return int(binary.BigEndian.Uint32(msg[1:HeaderSize])), msg[HeaderSize:], nil
}

// DecodeKey returns the site of a framed key.
func (s *Serde) DecodeKey(ctx context.Context, msg []byte) (string, error) {
	id, body, err := SplitHeader(msg)
	if err != nil {
		return "", fmt.Errorf("%s key: %w", s.topic, err)
	}
	w := fastKey
	if id != s.keyID {
		if w, err = s.writer(ctx, id, true); err != nil {
			return "", fmt.Errorf("%s key: %w", s.topic, err)
		}
	}
	site, err := w.decodeKey(body)
	if err != nil {
		return "", fmt.Errorf("%s key (schema id %d): %w", s.topic, id, err)
	}
	return site, nil
}

// DecodeValue decodes a framed value into r (every Avro field of r is
// overwritten; r.Session is left alone).
func (s *Serde) DecodeValue(ctx context.Context, msg []byte, r *record.Record) error {
	id, body, err := SplitHeader(msg)
	if err != nil {
		return fmt.Errorf("%s value: %w", s.topic, err)
	}
	if id == s.valueID {
		err = decodeFast(body, r)
	} else {
		var w *writer
		if w, err = s.writer(ctx, id, false); err != nil {
			return fmt.Errorf("%s value: %w", s.topic, err)
		}
		err = w.decodeValue(body, r)
	}
	if err != nil {
		return fmt.Errorf("%s value (schema id %d): %w", s.topic, id, err)
	}
	return nil
}

func decodeFast(body []byte, r *record.Record) error {
	n, err := record.DecodeAvro(body, r)
	if err != nil {
		return fmt.Errorf("at body offset %d: %w", n, err)
	}
	if n != len(body) {
		return fmt.Errorf("%w: %d bytes left over after the value at body offset %d", record.ErrCorrupt, len(body)-n, n)
	}
	return nil
}

// writer returns the cached decoder for a writer schema id, building it on
// first use.
func (s *Serde) writer(ctx context.Context, id int, key bool) (*writer, error) {
	s.mu.RLock()
	w := s.writers[writerKey{id, key}]
	s.mu.RUnlock()
	if w != nil {
		return w, nil
	}
	schema, err := s.c.SchemaByID(ctx, id)
	if err != nil {
		return nil, err
	}
	w, err = newWriter(schema, key)
	if err != nil {
		return nil, fmt.Errorf("writer schema id %d: %w", id, err)
	}
	s.mu.Lock()
	s.writers[writerKey{id, key}] = w
	s.mu.Unlock()
	return w, nil
}
