// Batches to DuckDB: the flusher that cuts them and the sink loop that
// commits them with the Kafka offsets, then releases goka's commits.

package processor

import (
	"context"
	"fmt"
	"time"
)

// runFlusher cuts batches older than the flush interval; once ctx is done
// (shutting down) it cuts every batch at each tick, because goka waits for
// the deferred commits of the messages it delivered before it returns. It
// ends when stop is closed.
func (p *Processor) runFlusher(ctx context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(max(p.cfg.FlushInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	refresh := time.NewTicker(10 * time.Second)
	defer refresh.Stop()
	done := ctx.Done()
	for {
		select {
		case <-stop:
			return
		case <-done:
			done = nil // from now on every tick cuts everything
			p.cutAll(0)
		case <-tick.C:
			if ctx.Err() != nil {
				p.cutAll(0)
			} else {
				p.cutAll(p.cfg.FlushInterval)
			}
		case <-refresh.C:
			if p.db == nil {
				p.reloadStoreRefs(ctx)
			} else if err := p.loadRefs(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("reload site_reference", "err", err)
			}
		}
	}
}

func (p *Processor) cutAll(age time.Duration) {
	p.accMu.Lock()
	accs := make([]*partAcc, 0, len(p.accs))
	for _, a := range p.accs {
		accs = append(accs, a)
	}
	p.accMu.Unlock()
	for _, a := range accs {
		a.mu.Lock()
		// A batch whose goka session has ended is cut at once: the
		// rebalance waits for its deferred commits.
		if a.b != nil && (time.Since(a.b.firstAt) >= age || (a.sess != nil && a.sess.Err() != nil)) {
			p.cut(a)
		}
		a.mu.Unlock()
	}
}

// runSink writes batches to the processor's DuckDB file.
func (p *Processor) runSink() error { return p.sinkLoop(p.batches, p.sink, p.cfg.DBPath, nil) }

// sinkLoop writes batches to one DuckDB file (the processor's, or in
// StateDir mode a partition's), group-committing whatever is queued, then
// releases their Kafka commits in order and calls committed (if not nil).
// Between batches it runs the file's Level-2 reprocess work (reprocess.go):
// one chunk after each commit, and chunk after chunk while none waits.
func (p *Processor) sinkLoop(batches <-chan *batch, k *sink, path string, committed func()) error {
	for {
		b, ok := p.nextBatch(batches, k, path)
		if !ok {
			return nil
		}
		bs := []*batch{b}
	more:
		for len(bs) < 16 {
			select {
			case nb, ok := <-batches:
				if !ok {
					break more
				}
				bs = append(bs, nb)
			default:
				break more
			}
		}
		if p.failure() != nil {
			p.release(bs, p.failure())
			continue
		}
		t0 := time.Now()
		if err := p.dlq.send(context.Background(), bs); err != nil {
			p.fail(err)
			p.release(bs, err)
			continue
		}
		if err := k.write(context.Background(), bs); err != nil {
			err = fmt.Errorf("DuckDB %s: %w", path, err)
			p.fail(err)
			p.release(bs, err)
			continue
		}
		info := CommitInfo{Duration: time.Since(t0), Batches: len(bs)}
		for _, b := range bs {
			info.Messages += b.messages
			info.Rows += b.rows.n
			info.Duplicates += b.dups
			info.Late += b.late
			info.DeadLetters += len(b.dead)
			for _, d := range b.dead {
				if info.DeadReasons == nil {
					info.DeadReasons = map[string]int{}
				}
				info.DeadReasons[d.reason]++
			}
		}
		p.release(bs, nil)
		if committed != nil {
			committed()
		}
		if p.cfg.OnCommit != nil {
			info.Committed = p.Committed()
			p.cfg.OnCommit(info)
		}
		p.reprocessStep(k, path)
	}
}

// nextBatch waits for the next batch (ok false: the channel is closed),
// doing reprocess work while none is queued.
func (p *Processor) nextBatch(batches <-chan *batch, k *sink, path string) (*batch, bool) {
	for {
		select {
		case b, ok := <-batches:
			return b, ok
		default:
		}
		if k.level2 == nil || p.failure() != nil {
			b, ok := <-batches
			return b, ok
		}
		// The channel before the work: a change while it runs wakes the wait.
		_, changed := k.level2.watch.generation()
		if p.reprocessStep(k, path) {
			continue
		}
		select {
		case b, ok := <-batches:
			return b, ok
		case <-changed:
		case <-p.failed:
		}
	}
}

// reprocessStep does one piece of k's reprocess work; false: none left.
func (p *Processor) reprocessStep(k *sink, path string) bool {
	if k.level2 == nil || p.failure() != nil || !k.level2.rp.pending() {
		return false
	}
	more, err := k.level2.rp.background(context.Background(), k.conn)
	if err != nil {
		p.fail(fmt.Errorf("DuckDB %s: level2 reprocess: %w", path, err))
		return false
	}
	return more
}

func (p *Processor) release(bs []*batch, err error) {
	for _, b := range bs {
		for _, c := range b.commits {
			c(err)
		}
	}
	if err != nil {
		return
	}
	for _, b := range bs {
		select {
		case p.rowPool <- b.rows.reset():
		default:
		}
		b.rows = rowSet{}
	}
	p.accMu.Lock()
	for _, b := range bs {
		if a := p.accs[b.partition]; a != nil {
			a.committed.Store(b.seq)
		}
	}
	p.accMu.Unlock()
	p.progMu.Lock()
	for _, b := range bs {
		p.committed[b.partition] = max(p.committed[b.partition], b.next)
		p.stats.batches.Add(1)
	}
	close(p.progress)
	p.progress = make(chan struct{})
	p.progMu.Unlock()
}

// reloadStoreRefs rereads site_reference of every open partition file.
func (p *Processor) reloadStoreRefs(ctx context.Context) {
	p.accMu.Lock()
	var sts []*store
	for _, a := range p.accs {
		if a.st != nil {
			sts = append(sts, a.st)
		}
	}
	p.accMu.Unlock()
	for _, st := range sts {
		if st.isClosed() {
			continue
		}
		m, err := readRefs(ctx, st.db)
		if err != nil {
			if ctx.Err() == nil && !st.isClosed() {
				p.log.Warn("reload site_reference", "partition", st.part, "err", err)
			}
			continue
		}
		st.refs.Store(&m)
	}
}
