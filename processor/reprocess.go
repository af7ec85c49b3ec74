package processor

// Level-2 reprocessing (docs/level2.md, "Reprocessing"): when the metadata
// a site's Level-2 rows were computed with is not the site's current
// metadata (it first arrived after the data, or a new version was loaded),
// or `gtsm level2 reprocess` asks, the site's Level-2 is recomputed from its
// stored 1-sps counts (gtsm_etl) by a fresh machine under the current
// version, from the start of the data, exactly as if the whole series had
// been processed with that version: rows at or after the job's from time
// are rewritten and carry the new version; no row mixes versions and no
// step appears where the version changed.
//
// A job runs in the sink's goroutine, one chunk of data
// (Config.Level2ReprocessChunk, default 6 h: 21,600 pushes) per
// DuckDB transaction, between the live batches (one chunk after each
// commit, back to back while no batch waits), so the partition is held up
// by at most one chunk at a time. Each chunk commits its rows, checkpoints
// and the job's cursor and machine state (level2_reprocess) together: a
// killed processor resumes from the last committed chunk and ends in the
// same tables. While a site's job runs its live machine is frozen: its new
// samples are stored (gtsm_etl) and the job reads them when its cursor
// gets there; a late sample before the cursor rewinds the job to the
// checkpoint before it; new pressure samples update atmp_c of the rows the
// job has written. When the cursor reaches the site's newest stored second
// the job's machine becomes the site's live machine (level2_state) in the
// same transaction.

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/earthscope/gtsm-stream/level2"
)

// reprocessLogEvery spaces the progress log lines of a job.
const reprocessLogEvery = 5 * time.Second

// ReprocessStatus is one site's Level-2 reprocess, running or last done.
type ReprocessStatus struct {
	Site     string
	Version  string // metadata version recomputed with ("": none)
	Reason   string
	From     time.Time // rows at or after it are rewritten; zero: all
	Done     int64     // seconds of data pushed (cursor - first)
	Total    int64     // seconds of data stored (newest - first)
	Points   int64     // 300 s points written
	Chunks   int64
	Started  time.Time
	Finished time.Time // zero while running
}

// reprocessProgress is the processor-wide view of the jobs (all partition
// files), for Processor.Level2Reprocess.
type reprocessProgress struct {
	mu   sync.Mutex
	jobs map[string]ReprocessStatus
}

func newReprocessProgress() *reprocessProgress {
	return &reprocessProgress{jobs: map[string]ReprocessStatus{}}
}

func (p *reprocessProgress) set(s ReprocessStatus) {
	p.mu.Lock()
	p.jobs[s.Site] = s
	p.mu.Unlock()
}

// Level2Reprocess returns the Level-2 reprocess jobs this processor has run
// or resumed since it started, by site.
func (p *Processor) Level2Reprocess() []ReprocessStatus {
	if p.l2 == nil {
		return nil
	}
	pr := p.l2.rp.prog
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make([]ReprocessStatus, 0, len(pr.jobs))
	for _, s := range pr.jobs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// l2Job is a level2_reprocess row.
type l2Job struct {
	site     string
	target   *l2Meta
	from     int64
	reqID    string
	reason   string
	first    int64 // -1: no data
	cursor   int64 // -1: nothing pushed
	cleared  int64
	state    []byte
	lastCk   int64 // -1: none
	chunks   int64
	points   int64
	started  time.Time
	finished time.Time
	newest   int64     // last seen newest stored second (progress)
	logged   time.Time // last progress log line
}

func (j *l2Job) running() bool { return j.finished.IsZero() }

func (j *l2Job) status() ReprocessStatus {
	s := ReprocessStatus{Site: j.site, Version: j.target.version, Reason: j.reason, Points: j.points, Chunks: j.chunks,
		Started: j.started, Finished: j.finished}
	if j.from > 0 {
		s.From = time.Unix(j.from, 0).UTC()
	}
	if j.first >= 0 {
		s.Total = max(j.newest-j.first, 0)
		s.Done = min(max(j.cursor-j.first, 0), s.Total)
	}
	return s
}

// reprocessor is a sink's reprocess jobs (one per DuckDB file).
type reprocessor struct {
	l       *l2proc
	prog    *reprocessProgress
	loaded  bool
	jobs    map[string]*l2Job
	seenGen uint64 // metaWatch generation last reconciled; ^0: never
	chunk   int64  // data per transaction, s (Config.Level2ReprocessChunk)
}

func newReprocessor(l *l2proc, prog *reprocessProgress, chunk time.Duration) *reprocessor {
	return &reprocessor{l: l, prog: prog, jobs: map[string]*l2Job{}, seenGen: ^uint64(0), chunk: max(int64(chunk/time.Second), 1)}
}

// active is site's running job, or nil.
func (r *reprocessor) active(site string) *l2Job {
	if j := r.jobs[site]; j != nil && j.running() {
		return j
	}
	return nil
}

func (r *reprocessor) load(ctx context.Context, conn *sql.Conn) error {
	if r.loaded {
		return nil
	}
	rows, err := conn.QueryContext(ctx, `SELECT site, metadata, from_time, request_id, reason, first_second, cursor, cleared, state,
		last_ck, chunks, points, started_at, finished_at FROM level2_reprocess`)
	if err != nil {
		return fmt.Errorf("read level2_reprocess: %w", err)
	}
	defer rows.Close()
	var jobs []*l2Job
	for rows.Next() {
		j := &l2Job{}
		var raw, state []byte
		var req sql.NullString
		var first, cursor, lastCk sql.NullInt64
		var fin sql.NullTime
		if err := rows.Scan(&j.site, &raw, &j.from, &req, &j.reason, &first, &cursor, &j.cleared, &state, &lastCk,
			&j.chunks, &j.points, &j.started, &fin); err != nil {
			return fmt.Errorf("read level2_reprocess: %w", err)
		}
		j.target = r.l.decode(j.site, raw, nil, 0, nil)
		j.reqID, j.state = req.String, state
		j.first, j.cursor, j.lastCk = nullOr(first, -1), nullOr(cursor, -1), nullOr(lastCk, -1)
		if fin.Valid {
			j.finished = fin.Time
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read level2_reprocess: %w", err)
	}
	rows.Close()
	for _, j := range jobs {
		r.jobs[j.site] = j
		if !j.running() {
			j.newest = j.cursor // the last job's figures, for Level2Reprocess and /metrics
			r.prog.set(j.status())
			continue
		}
		var err error
		if _, j.newest, err = r.span(ctx, conn, j.site); err != nil {
			return err
		}
		s := j.status()
		r.l.log.Info("level2 reprocess resumed", "site", j.site, "version", j.target.version, "done_s", s.Done, "total_s", s.Total)
		r.prog.set(s)
	}
	r.loaded = true
	return nil
}

func nullOr(v sql.NullInt64, d int64) int64 {
	if v.Valid {
		return v.Int64
	}
	return d
}

func nullI(v int64) any {
	if v < 0 {
		return nil
	}
	return v
}

func (r *reprocessor) save(ctx context.Context, conn *sql.Conn, j *l2Job) error {
	var fin any
	if !j.running() {
		fin = j.finished
	}
	var raw any
	if len(j.target.raw) > 0 {
		raw = j.target.raw
	}
	var state any
	if j.state != nil {
		state = j.state
	}
	if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO level2_reprocess VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.site, nullS(j.target.version), raw, j.from, nullS(j.reqID), j.reason, nullI(j.first), nullI(j.cursor), j.cleared, state,
		nullI(j.lastCk), j.chunks, j.points, j.started, fin); err != nil {
		return fmt.Errorf("write level2_reprocess %s: %w", j.site, err)
	}
	r.prog.set(j.status())
	return nil
}

// reconcile compares site's current metadata (the topic's newest record)
// with the version its Level-2 was or is being computed with, and starts a
// job when they differ or an unhandled reprocess request names the site.
// A site without Level-2 rows yet takes the metadata at once. It runs
// inside a transaction.
func (r *reprocessor) reconcile(ctx context.Context, conn *sql.Conn, site string, st *l2Site) error {
	if err := r.load(ctx, conn); err != nil {
		return err
	}
	rec := r.l.watch.get(site)
	want := r.l.meta(site, rec.raw, nil, 0)
	j := r.jobs[site]
	running := j != nil && j.running()
	have := st.version
	if running {
		have = j.target.version
	}
	if want.rejected {
		// A record that fails validation changes nothing: no job starts
		// (the sample path dead-letters it) and the version in force stays;
		// a site not yet configured in this process takes that version's
		// configuration from DuckDB.
		if !running && !st.configured && st.version != "" {
			if want.version != st.version {
				m, err := inForce(ctx, conn, r.l.codec, site)
				if err != nil {
					return err
				}
				if m == nil {
					return nil
				}
				want = m
			}
			st.m.SetConfig(want.cfg)
			st.configured = true
		}
		return nil
	}
	req := rec.reqID != "" && (j == nil || j.reqID != rec.reqID)
	if !req && want.version == have {
		if !running && !st.configured {
			st.m.SetConfig(want.cfg)
			st.configured = true
		}
		return nil
	}
	if st.last < 0 && !running {
		// No Level-2 rows yet: the metadata applies from the first sample.
		if err := storeMeta(ctx, conn, site, want); err != nil {
			return err
		}
		st.m.SetConfig(want.cfg)
		st.version, st.configured = want.version, true
		if req {
			// Nothing to recompute; the request is handled.
			now := time.Now().UTC()
			nj := &l2Job{site: site, target: want, reqID: rec.reqID, reason: "request", first: -1, cursor: -1, cleared: -1, lastCk: -1,
				started: now, finished: now}
			r.jobs[site] = nj
			return r.save(ctx, conn, nj)
		}
		return nil
	}
	reqID, from, reason := "", int64(0), "metadata version changed"
	switch {
	case req:
		reqID, from, reason = rec.reqID, rec.from, "request"
	case have == "":
		reason = "metadata first arrived"
	}
	if j != nil && !req {
		reqID = j.reqID // the last handled request stays handled
	}
	if running && req {
		// A request while a job runs: the rows the running job was to
		// rewrite are rewritten too.
		from = min(from, j.from)
	}
	return r.start(ctx, conn, site, want, from, reqID, reason)
}

// start begins a job for site under want (a running one is replaced).
func (r *reprocessor) start(ctx context.Context, conn *sql.Conn, site string, want *l2Meta, from int64, reqID, reason string) error {
	if err := storeMeta(ctx, conn, site, want); err != nil {
		return err
	}
	// The old machine's checkpoints go: the job writes its own as it
	// pushes, and they become the live machine's at the hand-over.
	if _, err := conn.ExecContext(ctx, `DELETE FROM level2_checkpoint WHERE site = ?`, site); err != nil {
		return fmt.Errorf("reprocess %s: %w", site, err)
	}
	first, newest, err := r.span(ctx, conn, site)
	if err != nil {
		return err
	}
	j := &l2Job{site: site, target: want, from: from, reqID: reqID, reason: reason, first: first, cursor: -1,
		cleared: from - 1, lastCk: -1, started: time.Now().UTC(), newest: newest}
	r.jobs[site] = j
	var fromT any = "start of data"
	if from > 0 {
		fromT = time.Unix(from, 0).UTC()
	}
	r.l.log.Info("level2 reprocess started", "site", site, "version", want.version, "reason", reason, "from", fromT,
		"total_s", max(newest-first, 0))
	j.logged = time.Now()
	return r.save(ctx, conn, j)
}

// storeMeta records a version in station_metadata (once): reconcile may
// decode it before any sample does (the apply side then sees no new version).
func storeMeta(ctx context.Context, conn *sql.Conn, site string, m *l2Meta) error {
	if m.version == "" {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `INSERT OR IGNORE INTO station_metadata VALUES (?, ?, ?, ?)`,
		site, m.version, time.Now().UTC(), m.json); err != nil {
		return fmt.Errorf("station_metadata %s version %s: %w", site, m.version, err)
	}
	return nil
}

// span is the first and newest stored 1-sps second of site (-1: none),
// from site_state, which the same transactions keep.
func (r *reprocessor) span(ctx context.Context, conn *sql.Conn, site string) (first, newest int64, err error) {
	var f, n sql.NullInt64
	err = conn.QueryRowContext(ctx, `SELECT epoch_ms(first_time) // 1000, epoch_ms(last_time) // 1000 FROM site_state WHERE site = ? AND session = 'Hour'`,
		site).Scan(&f, &n)
	if err != nil && err != sql.ErrNoRows {
		return 0, 0, fmt.Errorf("reprocess %s: read site_state: %w", site, err)
	}
	return nullOr(f, -1), nullOr(n, -1), nil
}

// live is the live path of a site whose job runs (inside the batch's
// transaction): a late strain sample before the cursor rewinds the job;
// pressure samples update atmp_c of the rows the job has written; the
// site's last record offset is kept in level2_state.
func (r *reprocessor) live(ctx context.Context, conn *sql.Conn, j *l2Job, w *l2Work) error {
	first := int64(math.MaxInt64)
	for _, s := range w.strain {
		first = min(first, s.t)
	}
	if first <= j.cursor {
		if err := r.rewind(ctx, conn, j, first); err != nil {
			return err
		}
	}
	if lo, hi, ok := pressRange(w.press); ok && j.cursor >= 0 {
		cfg := j.target.cfg
		gap := cfg.MaxPressureGap
		if err := r.l.atmpRange(ctx, conn, j.site, cfg, j.target.version, max(lo-gap, j.from), min(hi+gap, j.cursor)); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, `UPDATE level2_state SET updated_offset = ? WHERE site = ?`, w.offset, j.site); err != nil {
		return fmt.Errorf("write level2_state: %w", err)
	}
	return nil
}

// rewind moves the job back to the newest of its checkpoints at or before
// t (a late sample): the rows from there are rewritten as the cursor
// passes them again.
func (r *reprocessor) rewind(ctx context.Context, conn *sql.Conn, j *l2Job, t int64) error {
	var ck int64
	var state []byte
	err := conn.QueryRowContext(ctx, `SELECT "time", state FROM level2_checkpoint WHERE site = ? AND "time" <= ? ORDER BY "time" DESC LIMIT 1`,
		j.site, t).Scan(&ck, &state)
	if err == sql.ErrNoRows {
		r.l.log.Warn("late 1-sps sample beyond the Level-2 recompute window of a reprocess; not recomputed", "site", j.site,
			"time", time.Unix(t, 0).UTC(), "cursor", time.Unix(j.cursor, 0).UTC())
		return nil
	}
	if err != nil {
		return fmt.Errorf("read level2_checkpoint: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM level2_checkpoint WHERE site = ? AND "time" > ?`, j.site, ck); err != nil {
		return fmt.Errorf("reprocess %s: rewind to %d: %w", j.site, ck, err)
	}
	j.state, j.cursor, j.lastCk = state, ck-1, ck
	j.cleared = min(j.cleared, max(ck-1, j.from-1))
	return r.save(ctx, conn, j)
}

// background is the sink's work between batches: reconcile every site of
// the file after the metadata topic changed, else one chunk of a running
// job. more: there is work left.
func (r *reprocessor) background(ctx context.Context, conn *sql.Conn) (more bool, err error) {
	gen, _ := r.l.watch.generation()
	if gen != r.seenGen {
		for site, why := range r.l.watch.takeBad() {
			r.l.log.Warn("level2 reprocess request refused", "site", site, "err", why)
		}
		if err := inTx(ctx, conn, func() error { return r.reconcileAll(ctx, conn) }); err != nil {
			return false, err
		}
		r.seenGen = gen
		return true, nil
	}
	var next *l2Job
	for _, j := range r.jobs { // the oldest running job first
		if j.running() && (next == nil || j.started.Before(next.started) || (j.started.Equal(next.started) && j.site < next.site)) {
			next = j
		}
	}
	if next == nil {
		return false, nil
	}
	if err := inTx(ctx, conn, func() error { return r.step(ctx, conn, next) }); err != nil {
		return false, err
	}
	return true, nil
}

// pending says whether background has work.
func (r *reprocessor) pending() bool {
	gen, _ := r.l.watch.generation()
	if gen != r.seenGen {
		return true
	}
	for _, j := range r.jobs {
		if j.running() {
			return true
		}
	}
	return false
}

func inTx(ctx context.Context, conn *sql.Conn, f func() error) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("DuckDB begin: %w", err)
	}
	if err := f(); err != nil {
		conn.ExecContext(context.Background(), "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("DuckDB commit: %w", err)
	}
	return nil
}

// reconcileAll reconciles every site with Level-2 state in the file.
func (r *reprocessor) reconcileAll(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, `SELECT site FROM level2_state ORDER BY site`)
	if err != nil {
		return fmt.Errorf("read level2_state: %w", err)
	}
	var sites []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("read level2_state: %w", err)
		}
		sites = append(sites, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read level2_state: %w", err)
	}
	for _, s := range sites {
		st, err := r.l.load(ctx, conn, s)
		if err != nil {
			return fmt.Errorf("level2 site %s: %w", s, err)
		}
		if err := r.reconcile(ctx, conn, s, st); err != nil {
			return fmt.Errorf("level2 site %s: %w", s, err)
		}
	}
	return nil
}

// step runs one chunk of j (inside a transaction).
func (r *reprocessor) step(ctx context.Context, conn *sql.Conn, j *l2Job) error {
	l, site := r.l, j.site
	m := level2.New(j.target.cfg)
	if j.state != nil {
		if err := m.UnmarshalBinary(j.state); err != nil {
			return fmt.Errorf("reprocess %s: %w", site, err)
		}
	}
	st := &l2Site{m: m, version: j.target.version, last: j.cursor, lastCk: j.lastCk, configured: true}
	if st.lastCk < 0 {
		if err := l.checkpoint(ctx, conn, site, st, 0); err != nil {
			return err
		}
	}
	first, newest, err := r.span(ctx, conn, site)
	if err != nil {
		return err
	}
	if j.first < 0 {
		j.first = first
	}
	j.newest = newest
	lo := max(j.cursor+1, 0)
	if lo < first {
		lo = first
	}
	hi := min(lo+r.chunk-1, newest)
	o := &l2Out{lo: math.MaxInt64, hi: math.MinInt64, from: j.from}
	n := 0
	if lo <= hi {
		if n, err = l.replay(ctx, conn, site, st, lo, hi, o); err != nil {
			return err
		}
		if n == 0 {
			// A stretch without data: the next chunk starts at the next
			// stored second instead of stepping through the gap.
			var next sql.NullInt64
			if err := conn.QueryRowContext(ctx, `SELECT min("time") // 1000 FROM gtsm_etl WHERE key_site = ? AND session = 'Hour'
				AND "time" > ? AND "time" % 1000 = 0`, site, hi*1000).Scan(&next); err != nil {
				return fmt.Errorf("reprocess %s: next stored second after %d: %w", site, hi, err)
			}
			if next.Valid {
				hi = min(max(hi, next.Int64-1), newest)
			}
		}
	}
	hi = max(hi, j.cursor)
	done := hi >= newest
	// Old rows of the range go first (rows emitted now for earlier times
	// replace the job's own); at the end every old row after the cursor too.
	if delLo := max(j.cleared+1, j.from); delLo <= hi || done {
		for _, table := range []string{"level2_gauge_data", "level2_regional_data"} {
			if _, err := conn.ExecContext(ctx, `DELETE FROM `+table+` WHERE site = ? AND "time" >= ? AND ("time" <= ? OR ?)`,
				site, time.Unix(delLo, 0).UTC(), time.Unix(hi, 0).UTC(), done); err != nil {
				return fmt.Errorf("reprocess %s: %w", site, err)
			}
		}
	}
	if err := o.flush(ctx, conn); err != nil {
		return err
	}
	if o.lo <= o.hi {
		if err := l.atmpRange(ctx, conn, site, j.target.cfg, j.target.version, o.lo, o.hi); err != nil {
			return err
		}
	}
	if err := l.pruneCheckpoints(ctx, conn, site, st.last); err != nil {
		return err
	}
	if j.state, err = m.MarshalBinary(); err != nil {
		return err
	}
	j.cursor, j.cleared, j.lastCk = hi, max(j.cleared, hi), st.lastCk
	j.chunks++
	j.points += int64(o.ngauge / 4)
	if done {
		if err := r.handOver(ctx, conn, j, st); err != nil {
			return err
		}
	}
	if done || time.Since(j.logged) >= reprocessLogEvery {
		s := j.status()
		pct := 100.0
		if s.Total > 0 {
			pct = 100 * float64(s.Done) / float64(s.Total)
		}
		msg := "level2 reprocess progress"
		if done {
			msg = "level2 reprocess done"
		}
		l.log.Info(msg, "site", site, "version", j.target.version, "done_s", s.Done, "total_s", s.Total,
			"percent", math.Round(pct*10)/10, "points", j.points, "chunks", j.chunks, "seconds_read", n, "elapsed", time.Since(j.started).Round(time.Millisecond))
		j.logged = time.Now()
	}
	return r.save(ctx, conn, j)
}

// handOver makes the job's machine the site's live machine.
func (r *reprocessor) handOver(ctx context.Context, conn *sql.Conn, j *l2Job, st *l2Site) error {
	state, err := st.m.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO level2_state (site, state, metadata_version, last_second) VALUES (?, ?, ?, ?)
		ON CONFLICT (site) DO UPDATE SET state = excluded.state, metadata_version = excluded.metadata_version, last_second = excluded.last_second`,
		j.site, state, nullS(j.target.version), st.last); err != nil {
		return fmt.Errorf("reprocess %s: write level2_state: %w", j.site, err)
	}
	r.l.sites[j.site] = st
	j.finished = time.Now().UTC()
	return nil
}
