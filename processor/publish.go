package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Publishing in single-file mode (Config.Publisher without StateDir): the
// one DuckDB file holds every partition, and each partition is published
// on its own (Publisher.Publish(ctx, db, partition)), so the lake's
// bookkeeping is per partition in both modes. A partition is published
// after a commit moved its next offset, at most every PublishInterval, and
// every partition once at start (the lake may be behind the file: a crash
// after a commit, before its publish) and once more after the last commit.
// Every filePublishFull intervals all partitions are published whatever
// moved, for the rows that change without a gtsm_etl offset (station
// metadata and the Level-2 results it changes).
type filePublisher struct {
	mu        sync.Mutex      // one publish of the file at a time
	published map[int32]int64 // next offset at the last successful publish
	rounds    int
}

const filePublishFull = 15

// PublishAll publishes every partition of the file now (single-file mode
// with a Publisher; a no-op otherwise) and returns the first error.
func (p *Processor) PublishAll(ctx context.Context) error {
	return p.publishFile(ctx, true)
}

func (p *Processor) publishFile(ctx context.Context, all bool) error {
	fp := p.filePub
	if fp == nil || p.db == nil {
		return nil
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	parts, err := p.filePartitions(ctx)
	if err != nil {
		return err
	}
	fp.rounds++
	if fp.rounds%filePublishFull == 0 {
		all = true
	}
	var errs []error
	for part, next := range parts {
		if last, ok := fp.published[part]; ok && last == next && !all {
			continue
		}
		t0 := time.Now()
		if err := p.cfg.Publisher.Publish(ctx, p.db, part); err != nil {
			errs = append(errs, fmt.Errorf("publish partition %d of %s: %w", part, p.cfg.DBPath, err))
			continue
		}
		fp.published[part] = next
		p.log.Debug("published partition", "partition", part, "next_offset", next, "took", time.Since(t0))
	}
	return errors.Join(errs...)
}

// filePartitions is every partition the file has offsets of, with the
// next offset committed.
func (p *Processor) filePartitions(ctx context.Context) (map[int32]int64, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT kafka_partition, next_offset FROM kafka_offsets WHERE topic = ?`, p.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("publish: read kafka_offsets of %s: %w", p.cfg.DBPath, err)
	}
	defer rows.Close()
	parts := map[int32]int64{}
	for rows.Next() {
		var part int32
		var next int64
		if err := rows.Scan(&part, &next); err != nil {
			return nil, fmt.Errorf("publish: read kafka_offsets of %s: %w", p.cfg.DBPath, err)
		}
		parts[part] = next
	}
	return parts, rows.Err()
}

// runFilePublisher publishes after commits until stop is closed; the last
// publish is the caller's (after the last commit). The commit signal is
// taken before each publish, so a commit during a publish (a backfill
// commits faster than a round publishes) brings another round: taken after
// it, the last commits of a backlog stayed unpublished (1.8M records
// committed, 1,697,949 in the lake a minute later).
func (p *Processor) runFilePublisher(stop <-chan struct{}) {
	var last time.Time
	var ch chan struct{}
	for first := true; ; first = false {
		if !first {
			select {
			case <-stop:
				return
			case <-ch:
			}
			if wait := time.Until(last.Add(p.cfg.PublishInterval)); wait > 0 {
				select {
				case <-stop:
					return
				case <-time.After(wait):
				}
			}
		}
		p.progMu.Lock()
		ch = p.progress
		p.progMu.Unlock()
		last = time.Now()
		if err := p.publishFile(context.Background(), first); err != nil {
			// The file stays the truth; the next publish retries.
			p.log.Warn("publish to the lake", "err", err)
		}
	}
}
