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

	"golang.org/x/sync/semaphore"

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

// MemoryConstant is what the producer needs besides its sample buffer
// (Options.BufferBytes): `gtsm produce` stays within BufferBytes +
// MemoryConstant of resident memory whatever the size of its inputs. It is
// the Go heap's share, MemoryLimit's headroom (128 MiB: the pipeline's
// chunks, inFlightBytes, kgo's buffer of DefaultMaxBufferedBytes and the
// records it keeps, and garbage between collections), plus 64 MiB for what
// the Go limit does not count (the binary's code and data, DuckDB's static
// initialisation, thread stacks). TestProduceMemoryBounded checks it
// against the peak RSS of the real binary; docs/performance.md has the
// measurements.
const (
	MemoryConstant     = 192 << 20
	MemoryConstantText = "192 MiB"
	memoryHeadroom     = 128 << 20
)

// MemoryLimit is the soft limit for the Go runtime (debug.SetMemoryLimit)
// that keeps a producer with this sample buffer within its bound: the
// buffer's samples plus memoryHeadroom. Without it the heap may grow to
// twice what is live (GOGC=100) before a collection.
func MemoryLimit(bufferBytes int64) int64 {
	if bufferBytes <= 0 {
		bufferBytes = DefaultBufferBytes
	}
	return bufferBytes + memoryHeadroom
}

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
	// RegistryWaitHint tells a person how to wait longer (the command
	// line's "--registry-wait 2m waits longer"): added to each retry line
	// and to the error when the wait runs out.
	RegistryWaitHint string
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

// batch is a chunk of one group's records, encoded: at most chunkRecords.
type batch struct {
	krecs       []kgo.Record // Kafka
	lines       []byte       // dry run
	n           int
	first, last int64 // sample times of the first and last record
}

// scratch is a worker's allocation state: the bytes per record of its last
// batch, to size the next batch's buffer in one allocation (append's
// doubling would leave up to half of every buffer unused, and the chunks
// waiting in the pipeline are a large part of the producer's memory).
type scratch struct{ perRecord int }

// size is the buffer to allocate for n records: the last batch's bytes per
// record with 1/16 to spare, or guess per record before the first batch.
func (sc *scratch) size(n, guess int) int {
	per := sc.perRecord
	if per == 0 {
		per = guess
	}
	return n*per + n*per/16 + 1024
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

// job is one group on its way through the workers to the sender: the worker
// merges it chunk by chunk and passes each encoded chunk on batches, which
// it closes at the end (after setting err, if the merge failed).
type job struct {
	g       *group
	st      *streamStats
	batches chan batch
	err     error
}

// Memory bounds of the pipeline between the reader and the sink (the
// grouper's buffer, Options.BufferBytes, is separate):
//   - chunkRecords: a worker merges and encodes this many records at a time,
//     so a group of any length passes through in chunks; one chunk is at
//     most ~0.5 MiB (Avro values plus kgo.Record headers) or ~1.5 MiB of
//     dry-run JSON lines with every field set.
//   - jobBatches: encoded chunks a job may hold before the sender takes
//     them; with queue capacity 2×workers, at most (2×workers+1)×jobBatches
//     chunks wait, plus one being built by each worker.
//   - inFlightBytes: samples of the groups handed to the workers (queued or
//     being merged) and not yet finished; a group larger than this waits
//     until it is alone. Files left on disk count only their header.
const (
	chunkRecords  = 1024
	jobBatches    = 1
	inFlightBytes = 8 << 20
)

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
	// groups in parallel, a chunk of records at a time, and this goroutine
	// hands the encoded chunks to the sink strictly in group order (kgo adds
	// its own goroutines for batching, compression and the network). The
	// queue bounds the groups in flight between reader and sender, each
	// job's channel the chunks it holds, and the semaphore the samples of
	// the groups in flight.
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *job, workers)
	queue := make(chan *job, 2*workers)
	held := semaphore.NewWeighted(inFlightBytes)
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc scratch
			recs := make([]record.Record, chunkRecords)
			for j := range work {
				j.err = mergeJob(readCtx, s, j, recs, &sc)
				held.Release(inFlight(j.g))
				close(j.batches)
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
		late, readErr = read(readCtx, paths, opt, &rc, bad, ignored, func(g *group) error {
			mu.Lock()
			st := stats[g.stream]
			if st == nil {
				st = s.stream(g.stream)
				stats[g.stream] = st
				order = append(order, st)
			}
			mu.Unlock()
			if err := held.Acquire(readCtx, inFlight(g)); err != nil {
				return err
			}
			j := &job{g: g, st: st, batches: make(chan batch, jobBatches)}
			select {
			case queue <- j:
			case <-readCtx.Done():
				held.Release(inFlight(g))
				return readCtx.Err()
			}
			work <- j // a worker is free once the queue took j (queue >= work)
			return nil
		})
	}()

	var sendErr error
	for j := range queue {
		st := j.st
		var published int
		for b := range j.batches {
			if ctx.Err() != nil || sendErr != nil {
				continue // drain so the worker and the reader can finish
			}
			if b.n > 0 {
				if st.sent.Load() == 0 || b.first < st.first {
					st.first = b.first
				}
				if b.last > st.last {
					st.last = b.last
				}
			}
			rc.firstSend.CompareAndSwap(0, time.Now().UnixNano())
			rc.recordsSent.Add(int64(b.n))
			if err := s.commit(st, b); err != nil {
				sendErr = err
				stopRead()
			}
			published += b.n
		}
		if ctx.Err() != nil || sendErr != nil {
			continue
		}
		for _, f := range j.g.files {
			rc.samplesSent.Add(int64(f.Len()))
		}
		if j.err != nil {
			name := groupName(j.g)
			err := fmt.Errorf("merge %s: %w", name, j.err)
			if published > 0 {
				// The group is merged and sent in chunks: what came before
				// the bad sample is on the topic already.
				err = fmt.Errorf("%w (the first %d records of this group, up to the bad sample, were published)", err, published)
			}
			bad(FileError{Name: name, Err: err})
			if opt.Strict {
				sendErr = fmt.Errorf("--strict: stopping at the first bad input: %w", j.err)
				stopRead()
			}
		}
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

// mergeJob merges j's group chunk by chunk, encodes each chunk and passes it
// on j.batches. It stops early when ctx is done (the run is stopping).
func mergeJob(ctx context.Context, s sink, j *job, recs []record.Record, sc *scratch) error {
	m, err := record.NewMerger(j.g.files)
	if err != nil {
		return err
	}
	defer m.Close()
	for {
		n, err := m.Next(recs)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b := s.prepare(j.st, recs[:n], sc)
		b.first, b.last = recs[0].Time, recs[n-1].Time
		select {
		case j.batches <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// inFlight is what a group counts against inFlightBytes: its sample bytes,
// at most the whole semaphore (a larger group then runs alone).
func inFlight(g *group) int64 { return min(g.bytes, inFlightBytes) }

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

func (j *jsonSink) prepare(st *streamStats, recs []record.Record, sc *scratch) batch {
	b := make([]byte, 0, sc.size(len(recs), 1024))
	for i := range recs {
		b = record.AppendJSON(b, j.topic, &recs[i])
		b = append(b, '\n')
	}
	if len(recs) > 0 {
		sc.perRecord = len(b) / len(recs)
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
