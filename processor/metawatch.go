package processor

// The station metadata topic as the processor sees it (Level-2,
// level2.go and reprocess.go): one goka View of the whole compacted topic,
// read from its start at every start (in memory: the topic is small), whose
// update callback keeps each site's newest record and announces every
// change. It is the one source of metadata for both sides of Level-2: apply
// reads a sample's metadata from it, and the sink compares it with the
// version each site's Level-2 was computed with, starting a reprocess when
// they differ, also when the site's data have stopped (no sample would
// notice the change). Records carrying the reprocess header (written by
// `gtsm level2 reprocess`, metadata/publish) are reprocess requests.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/earthscope/gtsm-stream/metadata/publish"
	"github.com/earthscope/gtsm-stream/partition"
)

// metaRec is a site's newest record on the metadata topic.
type metaRec struct {
	raw []byte // the value (nil: none, or a tombstone)
	// reqID is the reprocess request the record carries (the
	// publish.HeaderReprocess header); "" for a plain metadata record.
	reqID string
	from  int64 // the request's publish.HeaderReprocessFrom, unix s; 0: the whole series
}

// metaWatch follows the metadata topic.
type metaWatch struct {
	topic string
	view  *goka.View

	mu      sync.Mutex
	recs    map[string]metaRec
	gen     uint64        // changes seen
	changed chan struct{} // closed and replaced on every change
	bad     map[string]string
}

func newMetaWatch(topic string) *metaWatch {
	return &metaWatch{topic: topic, recs: map[string]metaRec{}, changed: make(chan struct{}), bad: map[string]string{}}
}

// start creates the view (the topic must exist) and runs it until ctx ends;
// a view that stops on its own is a processor failure.
func (p *Processor) startMetaWatch(ctx context.Context, w *metaWatch) error {
	v, err := goka.NewView(p.cfg.Brokers, goka.Table(w.topic), new(codec.Bytes),
		goka.WithViewCallback(w.update),
		goka.WithViewHasher(partition.NewHasher),
		goka.WithViewClientID(p.cfg.ClientID+"-metadata"),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(p.sarama, p.tmConfig())),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(p.sarama)),
		goka.WithViewLogger(gokaLogger{p.log.With("component", "goka-metadata-view")}),
		goka.WithViewAutoReconnect(),
	)
	if err != nil {
		return fmt.Errorf("station metadata topic %s: %w", w.topic, err)
	}
	w.view = v
	go func() {
		if err := v.Run(ctx); err != nil && ctx.Err() == nil {
			p.fail(fmt.Errorf("station metadata topic %s: %w", w.topic, err))
		}
	}()
	return nil
}

// waitRecovered waits until the view has read the topic to its end as of
// its start, so the first samples see the metadata published before.
func (w *metaWatch) waitRecovered(ctx context.Context, failed <-chan struct{}) error {
	for !w.view.Recovered() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-failed:
			return fmt.Errorf("station metadata topic %s: not recovered", w.topic)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// update is the view's callback for every record (recovery included).
func (w *metaWatch) update(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	if err := goka.DefaultUpdate(ctx, s, key, value); err != nil {
		return err
	}
	r := metaRec{raw: bytes.Clone(value)}
	if value != nil {
		h := ctx.Headers()
		if id := h[publish.HeaderReprocess]; len(id) > 0 {
			r.reqID = string(id)
			if f := h[publish.HeaderReprocessFrom]; len(f) > 0 {
				t, err := strconv.ParseInt(string(f), 10, 64)
				if err != nil || t < 0 {
					// A request that names no usable time is not a reason to stop
					// consuming: it is refused and logged by the sink.
					w.mu.Lock()
					w.bad[key] = fmt.Sprintf("offset %d: header %s %q is not unix seconds", ctx.Offset(), publish.HeaderReprocessFrom, f)
					w.mu.Unlock()
					r.reqID = ""
				}
				r.from = t
			}
		}
	}
	w.mu.Lock()
	w.recs[key] = r
	w.gen++
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	return nil
}

// get is site's newest record.
func (w *metaWatch) get(site string) metaRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recs[site]
}

// generation is the number of changes seen and a channel closed at the next.
func (w *metaWatch) generation() (uint64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen, w.changed
}

// takeBad returns and forgets the refused requests (site -> why).
func (w *metaWatch) takeBad() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.bad) == 0 {
		return nil
	}
	b := w.bad
	w.bad = map[string]string{}
	return b
}
