// The per-message path: decode, plausibility, per-site state, batching.

package processor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
	"github.com/earthscope/gtsm-stream/sitecode"
	"github.com/lovoo/goka"
)

func (p *Processor) acc(part int32) *partAcc {
	p.accMu.Lock()
	defer p.accMu.Unlock()
	a := p.accs[part]
	if a == nil {
		next, ok := p.startOff[part]
		if !ok {
			next = -1
		}
		a = &partAcc{partition: part, next: next, seq: 1, sites: map[string]*siteState{}, keys: map[string]string{},
			loaded: p.loaded, db: p.db, refs: &p.refs, batches: p.batches}
		p.accs[part] = a
	}
	return a
}

// lockedAcc returns the partition's accumulator with its mutex held. In
// StateDir mode it opens the partition's file first if this member has not
// got it open (store.go); an error means the message cannot be applied.
func (p *Processor) lockedAcc(sess context.Context, part int32) (*partAcc, error) {
	if p.cfg.StateDir == "" {
		a := p.acc(part)
		a.mu.Lock()
		return a, nil
	}
	for {
		p.accMu.Lock()
		a := p.accs[part]
		p.accMu.Unlock()
		if a == nil {
			// Only this partition's goka goroutine opens its file, so
			// the lock need not be held while it waits for the file.
			st, err := p.openStore(sess, part)
			if err != nil {
				return nil, err
			}
			a = &partAcc{partition: part, next: st.next, seq: 1, sites: map[string]*siteState{}, keys: map[string]string{},
				st: st, loaded: st.loaded, db: st.db, refs: &st.refs, batches: st.batches}
			p.accMu.Lock()
			p.accs[part] = a
			p.accMu.Unlock()
		}
		a.mu.Lock()
		if !a.closed && (a.sess == nil || a.sess == sess || a.sess.Err() == nil) {
			a.sess = sess
			return a, nil
		}
		a.mu.Unlock()
		// Closed, or being closed, at the end of the last session (see
		// watchSessions): wait until the file is (its lock released),
		// then open it again and reload its state.
		p.closePart(a, "new goka session")
	}
}

// consume is the goka callback: it applies one message to the site's state
// and the partition's batch. Its Kafka commit is deferred until the batch is
// in DuckDB.
func (p *Processor) consume(gctx goka.Context, msg any) {
	// Deferred first: a callback that returns without DeferCommit has its
	// message committed by goka.
	commit := gctx.DeferCommit()
	part, off := gctx.Partition(), gctx.Offset()
	a, err := p.lockedAcc(gctx.Context(), part)
	if err != nil {
		if gctx.Context().Err() != nil {
			// The session ended while the file's old owner held it:
			// the message is not applied, and its commit is released
			// with an error, which goka never marks (so Kafka cannot
			// pass it; the next owner reads it again) but counts as
			// done, instead of waiting 60 s for it at the rebalance.
			p.log.Warn("message not applied: partition file unavailable at the end of a goka session", "partition", part, "offset", off, "err", err)
			commit(fmt.Errorf("partition %d offset %d not applied: %w", part, off, err))
			return
		}
		p.fail(err)
		gctx.Fail(err)
		return
	}
	defer a.mu.Unlock()
	if a.b == nil {
		a.b = &batch{seq: a.seq, partition: part, firstAt: time.Now()}
		a.now = a.b.firstAt.UnixMilli()
		select {
		case a.b.rows = <-p.rowPool:
		default:
			a.b.rows = newRowSet()
		}
	}
	b := a.b
	b.commits = append(b.commits, commit)
	b.messages++
	p.stats.messages.Add(1)
	if off < a.next {
		// Applied already: in DuckDB (replay after a crash), or in a batch
		// still on its way there (redelivery after a rebalance).
		b.next = max(b.next, a.next)
		p.maybeCut(a)
		return
	}
	a.next = off + 1
	b.next = a.next
	if err := p.apply(gctx, a, msg, part, off); err != nil {
		var bad badMessage
		if !errors.As(err, &bad) {
			// DuckDB unreadable: stop rather than guess.
			p.fail(err)
			gctx.Fail(err)
			return
		}
		raw, _ := msg.([]byte)
		reason := deadReason(err)
		b.dead = append(b.dead, deadLetter{partition: part, offset: off, err: err.Error(), reason: reason,
			key: []byte(gctx.Key()), value: raw, headers: gctx.Headers()})
		p.stats.dead.Add(1)
		p.log.Warn("dead letter", "topic", p.cfg.Topic, "partition", part, "offset", off, "reason", reason, "to", p.cfg.Topic+".dlq", "err", err)
	}
	p.maybeCut(a)
}

// badMessage marks an error in the message itself (dead letter), as opposed
// to one of the processor (fatal).
type badMessage struct {
	err    error
	reason string // dlq.reason
}

func (e badMessage) Error() string { return e.err.Error() }
func (e badMessage) Unwrap() error { return e.err }

// classify separates a message that cannot be decoded (a dead letter) from a
// registry that cannot be reached (retried in decode until it answers or the
// processor stops; then fatal: the message is not marked applied, and a
// restart retries it).
func classify(part string, err error) error {
	if errors.Is(err, registry.ErrUnreachable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return badMessage{err, decodeClass(part, err)}
}

// retryUnreachable runs f until it succeeds, fails for another reason than
// an unreachable schema registry, or ctx ends, waiting with a doubling
// backoff (1 s .. 30 s) and logging each wait: a registry that restarts or
// starts after the processor is waited for, without a crash loop.
func retryUnreachable(ctx context.Context, log *slog.Logger, what, url string, f func() error) error {
	delay := time.Second
	for {
		err := f()
		if err == nil || !errors.Is(err, registry.ErrUnreachable) || ctx.Err() != nil {
			return err
		}
		log.Warn("schema registry unreachable; retrying", "url", url, "op", what, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (stopped while waiting for the schema registry)", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (p *Processor) apply(gctx goka.Context, a *partAcc, msg any, part int32, off int64) error {
	raw, ok := msg.([]byte)
	if !ok || raw == nil {
		return badMessage{fmt.Errorf("partition %d offset %d: empty value (tombstone)", part, off), "tombstone"}
	}
	ctx := gctx.Context()
	keySite, ok := a.keys[gctx.Key()]
	if !ok {
		err := retryUnreachable(ctx, p.log, fmt.Sprintf("key schema of partition %d offset %d", part, off), p.cfg.Registry.SafeURL(), func() (err error) {
			keySite, err = p.dec.DecodeKey(ctx, []byte(gctx.Key()))
			return err
		})
		if err != nil {
			return classify("key", fmt.Errorf("partition %d offset %d: key: %w", part, off, err))
		}
		// The site names files (partition state, export, the lake) and
		// SQL rows: anything but a site code is set aside here, first.
		if err := sitecode.Check(keySite); err != nil {
			return badMessage{fmt.Errorf("partition %d offset %d: key: %w", part, off, err), "key_bad_site"}
		}
		a.keys[gctx.Key()] = keySite
	}
	// Decoded into the batch's scratch record: nothing is allocated per
	// message but the timestamp string; rows.add copies what it keeps.
	rec := &a.b.scratch
	// The first try is a plain call: the retry loop's description and
	// closure cost a Sprintf and an allocation per message (issue 16).
	err := p.dec.DecodeValue(ctx, raw, rec)
	if errors.Is(err, registry.ErrUnreachable) {
		err = retryUnreachable(ctx, p.log, fmt.Sprintf("value schema of partition %d offset %d", part, off), p.cfg.Registry.SafeURL(), func() error {
			return p.dec.DecodeValue(ctx, raw, rec)
		})
	}
	if err != nil {
		return classify("value", fmt.Errorf("partition %d offset %d: value: %w", part, off, err))
	}
	if !rec.IsSet(record.FieldTime) {
		return badMessage{fmt.Errorf("partition %d offset %d: site %s: record has no time", part, off, keySite), "no_time"}
	}
	if err := p.plausible(keySite, rec, &a.now); err != nil {
		return badMessage{fmt.Errorf("partition %d offset %d: %w", part, off, err.err), err.reason}
	}
	sess, err := sessionOf(gctx, rec)
	if err != nil {
		return badMessage{fmt.Errorf("partition %d offset %d: site %s time %d: %w", part, off, keySite, rec.Time, err), "bad_session"}
	}
	rec.Session = sess

	st := a.sites[keySite]
	if st == nil {
		st = &siteState{site: keySite}
		if l := a.loaded[keySite]; l != nil {
			st.sess = *l
		}
		a.sites[keySite] = st
	}
	if !st.checked {
		st.checked = true
		p.checkTable(gctx, st)
	}
	ss := st.sess[sess]
	if ss == nil {
		ss = newSessState(keySite, sess)
		st.sess[sess] = ss
	}
	if !ss.dirty {
		a.dirty = append(a.dirty, ss)
	}
	var refs *[4]refGauge
	if m := a.refs.Load(); m != nil {
		refs = (*m)[keySite]
	}
	// A dbLoader value passed as the loader interface was an allocation per
	// message; a pointer into the batch is not (one loader per batch). Its
	// context is not cancelled with the goka session (loaderFor): a
	// rebalance ending it must not fail a DuckDB read halfway through
	// applying a message. a.db is the partition's database (--state-dir) or
	// the one file.
	if a.b.loader.db == nil || a.b.loaderOf != ctx {
		a.b.loaderOf, a.b.loader = ctx, loaderFor(ctx, a.db)
	}
	out, err := ss.apply(rec, refs, p.lateness, a.seq, &a.b.loader)
	if err != nil {
		return err
	}
	ss.partition, ss.offset = part, off
	switch out {
	case duplicate:
		p.stats.duplicates.Add(1)
		a.b.dups++
	default:
		a.b.rows.add(keySite, rec, part, off, out == storedLate)
		p.level2Sample(gctx, a.b, keySite, rec, off) // Level-2 hook (level2.go)
		p.stats.rows.Add(1)
		if out == storedLate {
			p.stats.late.Add(1)
			a.b.late++
		}
	}
	ss.maybeEvict(a.committed.Load())
	st.sinceTab++
	if st.sinceTab >= p.cfg.TableEvery || st.sinceTab == 1 || a.b.rows.n >= p.cfg.BatchRows {
		gctx.SetValue(st.tableValue(part, off))
		st.sinceTab = 1
	}
	ss.peakMem = max(ss.peakMem, ss.mem)
	if ss.mem > int64(p.cfg.SiteStateBytes) && ss.mem >= ss.relieveAt {
		p.relieve(a, ss)
	}
	return nil
}

// loaderFor is the lazy loader of apply. Its DuckDB reads ignore the
// cancellation of ctx (goka's partition context): a rebalance that revokes
// the partition while a message's day index or window is being read from
// DuckDB made the read fail with "context canceled", which stopped the
// processor (seen 1 in 20 runs of faults.TestKillNineBackfill under load).
// The read is local and short, and its message is applied like any other
// message delivered before the revocation.
func loaderFor(ctx context.Context, db *sql.DB) dbLoader {
	return dbLoader{ctx: context.WithoutCancel(ctx), db: db}
}

// relieve bounds a site's memory (Config.SiteStateBytes): it commits the
// partition's batch (this message included), waits for DuckDB's commit,
// and evicts every committed day index and final window of the session:
// only committed state can be reloaded from DuckDB. Called with a.mu held.
// If what is left is still large (open windows of a long allowed lateness)
// the next try waits until the state has doubled, so it cannot run for
// every record.
func (p *Processor) relieve(a *partAcc, ss *sessState) {
	seq := a.seq
	p.cut(a)
	for {
		p.progMu.Lock()
		ch := p.progress
		p.progMu.Unlock()
		if a.committed.Load() >= seq {
			break
		}
		select {
		case <-ch:
		case <-p.failed:
			return
		}
	}
	before := ss.mem
	ss.evictCommitted(a.committed.Load())
	ss.relieveAt = max(int64(p.cfg.SiteStateBytes), 2*ss.mem)
	p.log.Debug("site state over its memory bound: committed and evicted", "site", ss.site, "session", ss.session,
		"bytes_before", before, "bytes_after", ss.mem, "bound", p.cfg.SiteStateBytes)
}

// plausible applies the event-time and site policy (docs/processor.md,
// "Poison and implausible records"): the time must lie in [MinEventTime,
// wall clock + MaxFuture], and a site in the value must be the key's site
// (the key decides the partition and the state the record counts in; a
// value naming another site is ambiguous, and was stored silently).
//
// *now is the wall clock as read when the partition's batch began (or
// later): a time within that bound is within the current one too, so the
// clock is read again only for a time beyond it, before refusing. Reading
// it for every message cost a tenth of a microsecond each.
func (p *Processor) plausible(keySite string, r *record.Record, now *int64) *badMessage {
	if r.Time > *now+p.future {
		*now = time.Now().UnixMilli()
	}
	if r.Time < p.minTime || r.Time > *now+p.future {
		return &badMessage{fmt.Errorf("site %s: time %d ms (%s) outside [%s, now + %s]", keySite, r.Time,
			fmtTime(r.Time), p.cfg.MinEventTime.UTC().Format(time.RFC3339), p.cfg.MaxFuture), "time_out_of_range"}
	}
	if r.IsSet(record.FieldSite) && r.Site != keySite {
		return &badMessage{fmt.Errorf("time %d: value's site %q is not the key's site %q", r.Time, r.Site, keySite), "site_mismatch"}
	}
	return nil
}

// fmtTime formats an epoch-ms time for an error message; times beyond
// year 9999 are shown in years (time.Format would print garbage).
func fmtTime(ms int64) string {
	const yearMs = 31_556_952_000
	if ms > 253402300799999 || ms < -62135596800000 {
		return fmt.Sprintf("about year %d", 1970+ms/yearMs)
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// checkTable compares the goka table's value for a site with DuckDB's state
// (the truth). The table may be ahead after a crash: it is then rewritten
// from DuckDB's state by the next SetValue.
func (p *Processor) checkTable(gctx goka.Context, st *siteState) {
	tv, _ := gctx.Value().(*TableValue)
	if tv == nil {
		return
	}
	var dbOff int64 = -1
	for _, s := range st.sess {
		if s != nil {
			dbOff = max(dbOff, s.offset)
		}
	}
	if tv.Offset > dbOff {
		p.log.Info("goka table ahead of DuckDB; using DuckDB's state", "site", st.site, "table_offset", tv.Offset, "duckdb_offset", dbOff)
	}
}

func (st *siteState) tableValue(part int32, off int64) *TableValue {
	v := &TableValue{Site: st.site, Partition: part, Offset: off}
	for _, s := range st.sess {
		if s == nil {
			continue
		}
		v.Sessions = append(v.Sessions, TableSession{Session: s.session.String(), First: s.first, Last: s.last,
			Records: s.records, Duplicates: s.duplicates, Late: s.late, Gaps: s.gapCount, Missing: s.missing})
	}
	return v
}

// sessionOf tells the record's session: from its fields when they name one
// session (every record with a strain or ancillary value), else from the
// gtsm_session header (records whose channels are all missing). Reading the
// fields first avoids goka's Headers(), which builds a map per message (10%
// of the processor's CPU per message in the profile); our producer's header
// always agrees with the fields.
func sessionOf(gctx goka.Context, r *record.Record) (bottle.Session, error) {
	if s, ok := record.InferSession(r); ok && r.Set&dataFields != 0 {
		return s, nil
	}
	h := gctx.Headers()
	if v, ok := h[record.SessionHeader]; ok {
		s, err := bottle.ParseSession(string(v))
		if err != nil {
			return 0, fmt.Errorf("header %s: %w", record.SessionHeader, err)
		}
		return s, nil
	}
	s, ok := record.InferSession(r)
	if !ok {
		return 0, fmt.Errorf("no %s header and the session cannot be inferred from the fields", record.SessionHeader)
	}
	return s, nil
}

// dataFields are the value fields after site, time and timestamp.
const dataFields = (uint64(1)<<record.NumFields - 1) &^ (1<<record.FirstInt - 1)

func (p *Processor) maybeCut(a *partAcc) {
	if a.b != nil && (a.b.rows.n >= p.cfg.BatchRows || a.b.messages >= 2*p.cfg.BatchRows) {
		p.cut(a)
	}
}

// cut closes the partition's current batch (with a.mu held) and hands it to
// the sink; it blocks while the sink is busy, which is the back-pressure.
func (p *Processor) cut(a *partAcc) {
	b := a.b
	if b == nil {
		return
	}
	for _, s := range a.dirty {
		s.cut(b)
	}
	a.dirty = a.dirty[:0]
	a.b = nil
	a.seq++
	select {
	case a.batches <- b:
	case <-p.failed:
		err := p.failure()
		for _, c := range b.commits {
			c(err)
		}
	}
}
