package publish

// Level-2 reprocess requests. A request is the station's current metadata
// record published again, unchanged (same key, same value, so the same
// version, and registry-aware readers still read an ordinary record), with
// two Kafka headers: HeaderReprocess (a unique request id) and, optionally,
// HeaderReprocessFrom. The processor reads every record of the topic; one
// whose id it has not handled for that site starts a reprocess of the site.
// Because the request is the site's newest record, compaction keeps it, and a
// processor that restarts before finishing it still finds it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/producer"
)

const (
	// HeaderReprocess marks a metadata record as a Level-2 reprocess request;
	// its value is the request id.
	HeaderReprocess = "gtsm-level2-reprocess"
	// HeaderReprocessFrom is the time (decimal unix seconds) from which the
	// request rewrites Level-2 rows; absent: the whole series.
	HeaderReprocessFrom = "gtsm-level2-reprocess-from"
)

// ErrNoMetadata: the topic holds no metadata record for the site.
var ErrNoMetadata = errors.New("no metadata record")

// Request is a reprocess request that the broker acknowledged.
type Request struct {
	Site      string
	ID        string
	Version   string    // the metadata version the site will be reprocessed with
	From      time.Time // zero: the whole series
	Partition int32
	Offset    int64
}

// RequestReprocess publishes a reprocess request for site: it reads the
// site's newest record from the topic (its partition, start to end) and
// produces it again with the request headers. from zero: the whole series.
func RequestReprocess(ctx context.Context, k producer.Kafka, topic, site string, from time.Time) (*Request, error) {
	if topic == "" {
		topic = DefaultTopic
	}
	// Records go to the partition given: the site's, where the loaded record is.
	cl, err := newClient(k, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("look up topic %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		return nil, fmt.Errorf("topic %s: %w for %s (the topic does not exist: load the station's metadata with gtsm metadata load first)", topic, ErrNoMetadata, site)
	}
	key := []byte(site)
	part := partition.For(key, int32(len(d.Partitions)))
	value, err := newestValue(ctx, cl, adm, topic, part, key)
	if err != nil {
		return nil, err
	}
	if value == nil {
		return nil, fmt.Errorf("topic %s partition %d: %w for %s: load it with gtsm metadata load first (a reprocess recomputes Level-2 with the station's metadata)", topic, part, ErrNoMetadata, site)
	}
	codec, err := metadata.NewCodec()
	if err != nil {
		return nil, err
	}
	_, version, err := codec.DecodeMessage(value)
	if err != nil {
		return nil, fmt.Errorf("topic %s partition %d: the newest record of %s is not station metadata: %w", topic, part, site, err)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("request id: %w", err)
	}
	req := &Request{Site: site, ID: hex.EncodeToString(id[:]), Version: version, From: from}
	rec := &kgo.Record{Topic: topic, Key: key, Value: value, Partition: part,
		Headers: []kgo.RecordHeader{{Key: HeaderReprocess, Value: []byte(req.ID)}}}
	if !from.IsZero() {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderReprocessFrom, Value: []byte(strconv.FormatInt(from.Unix(), 10))})
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return nil, fmt.Errorf("site %s: produce the reprocess request to %s: %w", site, topic, err)
	}
	req.Partition, req.Offset = rec.Partition, rec.Offset
	return req, nil
}

// newClient is a franz-go client for k with extra options.
func newClient(k producer.Kafka, extra ...kgo.Opt) (*kgo.Client, error) {
	kopts, err := k.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(kopts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// newestValue is the value of key's newest record on the partition (nil:
// none, or a tombstone).
func newestValue(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, part int32, key []byte) ([]byte, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, part)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("end offset of %s partition %d: %v", topic, part, end.Err)
	}
	if end.Offset <= 0 {
		return nil, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}})
	var value []byte
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s partition %d: %w", topic, part, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read %s partition %d: %w", topic, part, ferr)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == string(key) {
				value = r.Value
			}
			if r.Offset >= end.Offset-1 {
				done = true
			}
		})
		if done {
			return value, nil
		}
	}
}
