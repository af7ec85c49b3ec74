// Package publish owns putting station metadata on Kafka: it registers the
// gtsm_metadata key and value schemas, makes sure the compacted topic
// gtsm_metadata exists, and publishes one Confluent-framed Avro record per
// station keyed by site. Parsing the files is package metadata's job; this
// package only moves the parsed records.
//
// Keys are the plain site name (the bytes "B009"), as goka writes the keys
// of every table topic: the processor reads gtsm_metadata as a goka Lookup
// table, whose storage is keyed by the raw Kafka key and whose partition is
// murmur2(key) mod the partition count (partition.For, the hasher goka is
// given). Values are Confluent-framed (magic 0, the schema id of
// gtsm_metadata-value, then the Avro body), so registry-aware tools (kcat -s
// avro, Flink's avro-confluent) read them; the processor strips the frame.
package publish

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/registry"
)

// DefaultTopic is the compacted metadata topic.
const DefaultTopic = "gtsm_metadata"

// Options say where to publish.
type Options struct {
	Kafka    producer.Kafka
	Registry registry.Config
	Topic    string // default DefaultTopic
	// Partitions and Replication apply when this run creates the topic;
	// Partitions defaults to producer.DefaultPartitions, the gtsm_etl
	// default, so the two topics are co-partitioned.
	Partitions  int32
	Replication int16
	NoCreate    bool
}

// Published is one station record the broker acknowledged.
type Published struct {
	Site      string
	Version   string
	Partition int32
	Offset    int64
}

// Summary is what a run did.
type Summary struct {
	Topic         string
	Created       bool
	Partitions    int32
	ValueSchemaID int
	Records       []Published
}

// header is the Confluent wire-format prefix: magic 0 + big-endian schema id.
func header(id int) []byte {
	h := make([]byte, registry.HeaderSize)
	binary.BigEndian.PutUint32(h[1:], uint32(id))
	return h
}

// Publish registers the schemas, ensures the topic and produces one record
// per station, waiting for every acknowledgement (acks=all, idempotent).
func Publish(ctx context.Context, stations []metadata.Station, o Options) (*Summary, error) {
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	codec, err := metadata.NewCodec()
	if err != nil {
		return nil, err
	}
	cl, err := newClient(o.Kafka)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	sum := &Summary{Topic: o.Topic}
	if sum.Partitions, sum.Created, err = EnsureCompacted(ctx, cl, o.Topic, o.Partitions, o.Replication, o.NoCreate); err != nil {
		return nil, err
	}
	rc, err := registry.New(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	if sum.ValueSchemaID, err = rc.Register(ctx, o.Topic+"-value", avroschemas.Metadata); err != nil {
		return nil, fmt.Errorf("schema registry %s: register %s-value: %w", o.Registry.SafeURL(), o.Topic, err)
	}
	recs := make([]*kgo.Record, 0, len(stations))
	versions := make([]string, 0, len(stations))
	for i := range stations {
		s := &stations[i]
		// The processor refuses what fails this check (and keeps the
		// previous version): never publish it.
		if err := metadata.Validate(s); err != nil {
			return nil, err
		}
		body, v, err := codec.Encode(s)
		if err != nil {
			return nil, err
		}
		if err := metadata.CheckSize(len(body) + 5); err != nil {
			return nil, fmt.Errorf("station %s: %w", s.Site, err)
		}
		key := []byte(s.Site)
		val := append(header(sum.ValueSchemaID), body...)
		recs = append(recs, &kgo.Record{Topic: o.Topic, Key: key, Value: val, Partition: partition.For(key, sum.Partitions)})
		versions = append(versions, v)
	}
	// ProduceSync returns results in completion order, not in the order
	// given: find each record's station by the record itself.
	index := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		index[r] = i
	}
	res := cl.ProduceSync(ctx, recs...)
	sort.Slice(res, func(a, b int) bool { return index[res[a].Record] < index[res[b].Record] })
	for _, r := range res {
		i := index[r.Record]
		if r.Err != nil {
			return sum, fmt.Errorf("station %s: produce to %s: %w", stations[i].Site, o.Topic, r.Err)
		}
		sum.Records = append(sum.Records, Published{Site: stations[i].Site, Version: versions[i], Partition: r.Record.Partition, Offset: r.Record.Offset})
	}
	return sum, nil
}

// EnsureCompacted returns the topic's partition count, creating it with
// cleanup.policy=compact when missing (unless noCreate). An existing topic
// whose cleanup.policy does not include compact is refused: on a deleting
// topic a station's metadata would expire and a restarted processor would
// lose it.
func EnsureCompacted(ctx context.Context, cl *kgo.Client, topic string, partitions int32, replication int16, noCreate bool) (int32, bool, error) {
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, false, fmt.Errorf("look up topic %s: %w", topic, err)
	}
	if d, ok := td[topic]; ok && d.Err == nil {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			return 0, false, fmt.Errorf("describe topic %s: %w", topic, err)
		}
		rc, err := rcs.On(topic, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return 0, false, fmt.Errorf("describe topic %s: %w", topic, err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && (c.Value == nil || !hasCompact(*c.Value)) {
				v := "<unset>"
				if c.Value != nil {
					v = *c.Value
				}
				return 0, false, fmt.Errorf("topic %s has cleanup.policy=%s: station metadata needs a compacted topic (kafka-configs.sh --alter --add-config cleanup.policy=compact)", topic, v)
			}
		}
		return int32(len(d.Partitions)), false, nil
	} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return 0, false, fmt.Errorf("look up topic %s: %w", topic, d.Err)
	}
	if noCreate {
		return 0, false, fmt.Errorf("topic %s does not exist and --no-create is set: create it first (kafka-topics.sh --create --topic %s --partitions %d --config cleanup.policy=compact), or drop --no-create", topic, topic, producer.DefaultPartitions)
	}
	if partitions <= 0 {
		partitions = producer.DefaultPartitions
	}
	if replication == 0 {
		replication = -1
	}
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, partitions, replication, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, false, fmt.Errorf("create topic %s (%d partitions, replication %d, compacted): %w", topic, partitions, replication, err)
	}
	if err == nil {
		cl.PurgeTopicsFromClient(topic)
		return resp.NumPartitions, true, nil
	}
	return EnsureCompacted(ctx, cl, topic, partitions, replication, true)
}

func hasCompact(policy string) bool {
	for _, p := range strings.Split(policy, ",") {
		if strings.TrimSpace(p) == "compact" {
			return true
		}
	}
	return false
}

// DryRun writes one JSON line per station: topic, key (the site), version and
// the record as Avro JSON (the encoding goavro gives), no broker needed.
func DryRun(w io.Writer, stations []metadata.Station, topic string) error {
	if topic == "" {
		topic = DefaultTopic
	}
	codec, err := metadata.NewCodec()
	if err != nil {
		return err
	}
	gc, err := goavro.NewCodec(avroschemas.Metadata)
	if err != nil {
		return fmt.Errorf("gtsm_metadata-value.avsc: %w", err)
	}
	for i := range stations {
		body, v, err := codec.Encode(&stations[i])
		if err != nil {
			return err
		}
		n, _, err := gc.NativeFromBinary(body)
		if err != nil {
			return fmt.Errorf("station %s: avro decode: %w", stations[i].Site, err)
		}
		txt, err := gc.TextualFromNative(nil, n)
		if err != nil {
			return fmt.Errorf("station %s: avro json: %w", stations[i].Site, err)
		}
		line, err := json.Marshal(struct {
			Topic   string          `json:"topic"`
			Key     string          `json:"key"`
			Version string          `json:"version"`
			Value   json.RawMessage `json:"value"`
		}{topic, stations[i].Site, v, txt})
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", line); err != nil {
			return err
		}
	}
	return nil
}
