// Package producer publishes GTSM bottle files to the gtsm_etl topic: it
// walks files, directories and EarthScope archives, merges each site's
// channels into one record per sample time (record.Merge), encodes key and
// value in the Confluent wire format (registry.Serde), and produces them with
// an idempotent, acks=all franz-go client on Kafka's Java murmur2 partition
// of the serialized key, counting what the broker acknowledged.
package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultBufferBytes bounds the samples held for grouping and ordering:
// 256 MiB is about nine 20-sps site-days (a 4-channel 20-sps day is 27.6 MB
// of int32 samples).
const DefaultBufferBytes = 256 << 20

// Options configure one run.
type Options struct {
	Topic string // default "gtsm_etl"

	Kafka    Kafka           // brokers, TLS, SASL, tuning
	Registry registry.Config // schema registry
	// SchemasRoot overrides the embedded Avro schemas (registry.LoadSchemas).
	SchemasRoot string

	Partitions  int32 // for a missing topic; default DefaultPartitions
	Replication int16 // for a missing topic; -1 = broker default
	NoCreate    bool  // a missing topic is an error instead

	// DryRun writes one record.AppendJSON line per record to this writer and
	// touches neither broker nor registry.
	DryRun io.Writer

	Strict      bool  // stop at the first input that cannot be read
	BufferBytes int64 // default DefaultBufferBytes

	// Progress, when set, is called about every ProgressEvery with a snapshot.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// FlushTimeout bounds the wait for in-flight records after a cancel
	// (Ctrl-C); what is still unacknowledged then is abandoned and not
	// counted. Default 30 s.
	FlushTimeout time.Duration
}

// Progress is a snapshot for the progress line.
type Progress struct {
	Files, BadFiles  int64
	Records, Bytes   int64 // acknowledged (or written, in a dry run)
	Elapsed          time.Duration
	InputDone, Input int64 // input bytes completely read / in total
}

// Run publishes everything under paths (already expanded, see Expand). It
// returns the summary and a non-nil error unless every record of every input
// was acknowledged: bad inputs, failed records and cancellation are errors,
// and the summary then says exactly what was delivered.
func Run(ctx context.Context, paths []string, opt Options) (*Summary, error) {
	if opt.Topic == "" {
		opt.Topic = "gtsm_etl"
	}
	if opt.BufferBytes <= 0 {
		opt.BufferBytes = DefaultBufferBytes
	}
	if opt.FlushTimeout <= 0 {
		opt.FlushTimeout = 30 * time.Second
	}
	sum := &Summary{Topic: opt.Topic, DryRun: opt.DryRun != nil}
	var s sink
	if opt.DryRun != nil {
		s = &jsonSink{w: bufio.NewWriterSize(opt.DryRun, 1<<16), topic: opt.Topic}
	} else {
		ks, err := newKafkaSink(ctx, opt)
		if err != nil {
			return sum, err
		}
		defer ks.close()
		sum.Partitions = ks.partitions
		sum.Created = ks.created
		s = ks
	}
	return sum, run(ctx, paths, opt, s, sum)
}

// sink is where records go: Kafka, or JSON lines for a dry run.
type sink interface {
	stream(st stream) *streamStats
	send(st *streamStats, recs []record.Record) error
	// flush waits for everything sent to be acknowledged, or for ctx.
	flush(ctx context.Context) error
	// failed returns the first record delivery error, if any.
	failed() error
}

// streamStats counts one stream's acknowledged records. The counters are
// atomic because kgo runs promises on its own goroutines.
type streamStats struct {
	stream
	sent, acked, failed, bytes atomic.Int64
	first, last                int64 // sample times sent (sender goroutine only)
	key                        []byte
	partition                  int32
	headers                    []kgo.RecordHeader
	promise                    func(*kgo.Record, error) // the sink's per-stream callback
}

// totals feed the progress line.
type totals struct {
	records, bytes atomic.Int64
}

func run(ctx context.Context, paths []string, opt Options, s sink, sum *Summary) error {
	start := time.Now()
	var rc readCounters
	var mu sync.Mutex // guards sum.Failed, written by reader and sender
	bad := func(fe FileError) {
		mu.Lock()
		sum.Failed = append(sum.Failed, fe)
		mu.Unlock()
	}
	stats := map[stream]*streamStats{}
	var order []*streamStats

	stopProgress := startProgress(opt, paths, &rc, func() (int64, int64) {
		var r, b int64
		mu.Lock()
		for _, st := range order {
			r += st.acked.Load()
			b += st.bytes.Load()
		}
		mu.Unlock()
		return r, b
	}, start)

	// Reading and parsing run on one goroutine, merging, encoding and
	// producing on this one: on two cores that is the useful parallelism
	// (kgo adds its own goroutines for batching and the network).
	groups := make(chan *group, 16)
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	var late []string
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(groups)
		ignored := func(err error) {
			mu.Lock()
			sum.Ignored = append(sum.Ignored, err.Error())
			mu.Unlock()
		}
		late, readErr = read(readCtx, paths, opt.BufferBytes, opt.Strict, &rc, bad, ignored, func(g *group) error {
			select {
			case groups <- g:
				return nil
			case <-readCtx.Done():
				return readCtx.Err()
			}
		})
	}()

	var sendErr error
	for g := range groups {
		if ctx.Err() != nil || sendErr != nil {
			continue // drain so the reader can finish
		}
		recs, err := record.Merge(g.files)
		if err != nil {
			bad(FileError{Name: groupName(g), Err: fmt.Errorf("merge %s: %w", groupName(g), err)})
			if opt.Strict {
				sendErr = fmt.Errorf("--strict: stopping at the first bad input: %w", err)
				stopRead()
			}
			continue
		}
		mu.Lock()
		st := stats[g.stream]
		if st == nil {
			st = s.stream(g.stream)
			stats[g.stream] = st
			order = append(order, st)
		}
		mu.Unlock()
		if len(recs) > 0 {
			if st.sent.Load() == 0 || recs[0].Time < st.first {
				st.first = recs[0].Time
			}
			if recs[len(recs)-1].Time > st.last {
				st.last = recs[len(recs)-1].Time
			}
		}
		if err := s.send(st, recs); err != nil {
			sendErr = err
			stopRead()
		}
	}
	<-done

	// Flush: normally wait as long as it takes (kgo retries until the
	// delivery timeout); after a cancel, wait at most FlushTimeout.
	fctx := context.Background()
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(context.Background(), opt.FlushTimeout)
		defer cancel()
	}
	flushErr := s.flush(fctx)
	stopProgress()

	sum.Duration = time.Since(start)
	sum.Files = rc.files.Load()
	sum.Late = late
	for _, st := range order {
		ss := StreamSummary{Site: st.site, Session: st.session, Records: st.acked.Load(),
			Failed: st.failed.Load(), Unacked: st.sent.Load() - st.acked.Load() - st.failed.Load(),
			Bytes: st.bytes.Load(), First: st.first, Last: st.last, Partition: st.partition}
		sum.Streams = append(sum.Streams, ss)
		sum.Records += ss.Records
		sum.Bytes += ss.Bytes
		sum.Unacked += ss.Unacked
		sum.RecordsFailed += ss.Failed
	}
	sum.sortStreams()

	var errs []error
	if ctx.Err() != nil {
		sum.Interrupted = true
		errs = append(errs, fmt.Errorf("interrupted: %d records delivered before stopping", sum.Records))
	}
	if sendErr != nil {
		errs = append(errs, sendErr)
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		errs = append(errs, readErr)
	}
	if flushErr != nil {
		errs = append(errs, fmt.Errorf("flush: %w", flushErr))
	}
	if err := s.failed(); err != nil {
		errs = append(errs, fmt.Errorf("%d records not delivered: %w", sum.RecordsFailed+sum.Unacked, err))
	} else if sum.Unacked > 0 {
		errs = append(errs, fmt.Errorf("%d records sent but not acknowledged", sum.Unacked))
	}
	if n := len(sum.Failed); n > 0 && !opt.Strict {
		errs = append(errs, fmt.Errorf("%d inputs could not be read (listed in the summary)", n))
	}
	return errors.Join(errs...)
}

func groupName(g *group) string {
	if len(g.files) == 1 {
		return g.files[0].Name
	}
	return fmt.Sprintf("%s %s %s (%s and %d more)", g.site, g.session, fmtMs(g.start), g.files[0].Name, len(g.files)-1)
}

// jsonSink is the dry run: JSON lines in publish order, nothing else.
type jsonSink struct {
	w     *bufio.Writer
	topic string
	buf   []byte
	err   error
}

func (j *jsonSink) stream(s stream) *streamStats { return &streamStats{stream: s, partition: -1} }

func (j *jsonSink) send(st *streamStats, recs []record.Record) error {
	for i := range recs {
		j.buf = record.AppendJSON(j.buf[:0], j.topic, &recs[i])
		j.buf = append(j.buf, '\n')
		if _, err := j.w.Write(j.buf); err != nil {
			j.err = fmt.Errorf("write dry-run output: %w", err)
			return j.err
		}
		st.sent.Add(1)
		st.acked.Add(1)
		st.bytes.Add(int64(len(j.buf)))
	}
	return nil
}

func (j *jsonSink) flush(context.Context) error {
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("write dry-run output: %w", err)
	}
	return nil
}

func (j *jsonSink) failed() error { return j.err }
