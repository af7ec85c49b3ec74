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
			if err := p.loadRefs(ctx); err != nil && ctx.Err() == nil {
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
		if a.b != nil && time.Since(a.b.firstAt) >= age {
			p.cut(a)
		}
		a.mu.Unlock()
	}
}

// runSink writes batches to DuckDB, group-committing whatever is queued, then
// releases their Kafka commits in order.
func (p *Processor) runSink() error {
	for b := range p.batches {
		bs := []*batch{b}
	more:
		for len(bs) < 16 {
			select {
			case nb, ok := <-p.batches:
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
		if err := p.sink.write(context.Background(), bs); err != nil {
			err = fmt.Errorf("DuckDB %s: %w", p.cfg.DBPath, err)
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
		if p.cfg.OnCommit != nil {
			info.Committed = p.Committed()
			p.cfg.OnCommit(info)
		}
	}
	return nil
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
