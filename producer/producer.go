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
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultBufferBytes bounds the samples held for grouping and ordering
// (see grouper). 32 MiB holds a whole 20-sps site-day (27.6 MB of int32
// samples), so such a day comes out in time order whatever the order of its
// files; larger inputs flow through it as a sliding window. Much larger
// buffers only delay the first record (nothing is sent until the buffer
// fills or the input ends).
const DefaultBufferBytes = 32 << 20

// Options configure one run.
type Options struct {
	Topic string // default "gtsm_etl"

	Kafka    Kafka           // brokers, TLS, SASL, tuning
	Registry registry.Config // schema registry
	// SchemasRoot overrides the embedded Avro schemas (registry.LoadSchemas).
	SchemasRoot string
	// RegistryWait is how long a registry that cannot be reached at start
	// is retried (doubling backoff, a log line per wait); default 2 min,
	// negative: fail after the registry client's own retries.
	RegistryWait time.Duration
	// Logger receives the retry lines; default slog.Default() (stderr).
	Logger *slog.Logger

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
	// ETA is the estimated time left, or -1 when there is nothing to base
	// it on yet: expected records (samples read so far, scaled by the input
	// bytes left, times records per sample seen so far) left over the rate
	// since the first records were sent.
	ETA time.Duration
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
	// stream sets up a stream's stats (key, partition, callback).
	stream(st stream) *streamStats
	// prepare encodes a group's records; it runs on several workers at
	// once, each with its own scratch.
	prepare(st *streamStats, recs []record.Record, sc *scratch) batch
	// commit hands a prepared batch over (produce, write); it runs on one
	// goroutine, in the order of the groups.
	commit(st *streamStats, b batch) error
	// flush waits for everything sent to be acknowledged, or for ctx.
	flush(ctx context.Context) error
	// failed returns the first record delivery error, if any.
	failed() error
}

// batch is one group's encoded records.
type batch struct {
	krecs []kgo.Record // Kafka
	lines []byte       // dry run
	n     int
}

// scratch is a worker's allocation arena: values are carved from 1 MiB
// blocks, so encoding does not allocate per record.
type scratch struct{ arena []byte }

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

// job is one group on its way through the workers to the sender.
type job struct {
	g    *group
	st   *streamStats
	recs []record.Record
	b    batch
	err  error
	done chan struct{} // closed by the worker
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

	// Pipeline: one goroutine walks and parses, workers merge and encode
	// groups in parallel, and this goroutine hands the encoded groups to
	// the sink strictly in group order (kgo adds its own goroutines for
	// batching, compression and the network). The queue bounds the groups
	// in flight between reader and sender.
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *job, workers)
	queue := make(chan *job, 4*workers)
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc scratch
			for j := range work {
				j.recs, j.err = record.Merge(j.g.files)
				if j.err == nil {
					j.b = s.prepare(j.st, j.recs, &sc)
				}
				close(j.done)
			}
		}()
	}
	var late []string
	var readErr error
	go func() {
		defer close(queue)
		defer close(work)
		ignored := func(err error) {
			mu.Lock()
			sum.Ignored = append(sum.Ignored, err.Error())
			mu.Unlock()
		}
		late, readErr = read(readCtx, paths, opt.BufferBytes, opt.Strict, &rc, bad, ignored, func(g *group) error {
			mu.Lock()
			st := stats[g.stream]
			if st == nil {
				st = s.stream(g.stream)
				stats[g.stream] = st
				order = append(order, st)
			}
			mu.Unlock()
			j := &job{g: g, st: st, done: make(chan struct{})}
			select {
			case queue <- j:
			case <-readCtx.Done():
				return readCtx.Err()
			}
			work <- j // a worker is free once the queue took j (queue >= work)
			return nil
		})
	}()

	var sendErr error
	for j := range queue {
		<-j.done
		if ctx.Err() != nil || sendErr != nil {
			continue // drain so the reader can finish
		}
		if j.err != nil {
			name := groupName(j.g)
			bad(FileError{Name: name, Err: fmt.Errorf("merge %s: %w", name, j.err)})
			if opt.Strict {
				sendErr = fmt.Errorf("--strict: stopping at the first bad input: %w", j.err)
				stopRead()
			}
			continue
		}
		st := j.st
		if n := len(j.recs); n > 0 {
			if st.sent.Load() == 0 || j.recs[0].Time < st.first {
				st.first = j.recs[0].Time
			}
			if j.recs[n-1].Time > st.last {
				st.last = j.recs[n-1].Time
			}
		}
		rc.firstSend.CompareAndSwap(0, time.Now().UnixNano())
		for _, f := range j.g.files {
			rc.samplesSent.Add(int64(f.Len()))
		}
		rc.recordsSent.Add(int64(len(j.recs)))
		if err := s.commit(st, j.b); err != nil {
			sendErr = err
			stopRead()
		}
		j.recs, j.b = nil, batch{}
	}
	wg.Wait()

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
		errs = append(errs, fmt.Errorf("unreadable input(s): %d, listed in the summary", n))
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
	err   error
}

func (j *jsonSink) stream(s stream) *streamStats { return &streamStats{stream: s, partition: -1} }

func (j *jsonSink) prepare(st *streamStats, recs []record.Record, _ *scratch) batch {
	var b []byte
	for i := range recs {
		b = record.AppendJSON(b, j.topic, &recs[i])
		b = append(b, '\n')
	}
	return batch{lines: b, n: len(recs)}
}

func (j *jsonSink) commit(st *streamStats, b batch) error {
	if _, err := j.w.Write(b.lines); err != nil {
		j.err = fmt.Errorf("write dry-run output: %w", err)
		return j.err
	}
	st.sent.Add(int64(b.n))
	st.acked.Add(int64(b.n))
	st.bytes.Add(int64(len(b.lines)))
	return nil
}

func (j *jsonSink) flush(context.Context) error {
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("write dry-run output: %w", err)
	}
	return nil
}

func (j *jsonSink) failed() error { return j.err }
