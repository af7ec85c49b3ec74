package processor

// Level-2 strain in the processor (issue 13; docs/level2.md, "Processor").
//
// apply (a goka partition goroutine) hands every stored Hour 1-sps record and
// every Day record with a pressure value to the batch, with the station
// metadata in effect for it (a goka lookup table on the gtsm_metadata topic,
// read per record, so a new version applies from the next sample). The sink,
// inside the batch's DuckDB transaction and after the batch's rows are in
// gtsm_etl, runs each site's level2.Machine and writes the 300 s outputs,
// the machine state (level2_state), hourly checkpoints (level2_checkpoint)
// and the new metadata versions (station_metadata), so they commit with the
// rows and kafka_offsets or not at all.
//
// Late data: a sample at or before the site's last pushed second restores
// the newest checkpoint at or before it and replays the site's stored counts
// from there (the tables then equal the in-order result). The barometric
// correction is a pure function of the stored pressure samples around each
// 300 s time, recomputed for every range a batch touches.
//
// Metadata: both sides read it from one metaWatch (metawatch.go). A site's
// machine changes configuration only in reconcile (reprocess.go): a site
// without Level-2 rows yet takes the current metadata at once; one whose
// rows were computed with another version is reprocessed from its stored
// counts, so no row mixes versions and no step appears at a version change.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lovoo/goka"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/level2"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/record"
)

// checkpointEvery is the spacing of the machine checkpoints (s): a late
// sample replays at most this much more than the data after it.
const checkpointEvery = 3600

// pressureField is the Day session's barometric pressure (PressureKPa,
// 0.001 hPa per count, record.FloatScale).
var pressureField = func() int {
	i, ok := record.FieldIndex("rdo_ts")
	if !ok {
		panic("record has no rdo_ts field")
	}
	return i
}()

// l2Meta is one site's station metadata as the processor last saw it on the
// table (version "" and the zero-metadata config when it has none).
type l2Meta struct {
	raw     []byte
	version string
	cfg     level2.Config
	json    string
	// rejected: raw failed metadata validation; version and cfg are the
	// ones kept in force (none when nothing was), never raw's.
	rejected bool
}

// l2Sample is a stored record's Level-2 input.
type l2Sample struct {
	site     string
	t        int64 // unix seconds
	pressure bool
	counts   [4]int32 // Hour gauge counts, level2.FillValue where null
	hPa      float64  // Day pressure; NaN for a fill value
	meta     *l2Meta
	off      int64 // its Kafka offset (level2_state.updated_offset)
}

// l2Batch is a batch's Level-2 part.
type l2Batch struct {
	samples []l2Sample
	metas   []*l2Meta // versions first seen in this batch
	sites   []string  // site of each metas entry
}

// l2proc is the processor's Level-2 part.
type l2proc struct {
	log    *slog.Logger
	codec  *metadata.Codec
	table  goka.Table
	window int64 // recompute window, s
	watch  *metaWatch

	rp *reprocessor // sink side: reprocess jobs (reprocess.go)

	mu  sync.Mutex
	cur map[string]*l2Meta // apply side: last metadata seen per site

	sites map[string]*l2Site // sink side only (one goroutine)
}

// l2Site is a site's machine as of the last committed (or being committed)
// transaction.
type l2Site struct {
	m       *level2.Machine
	version string // metadata version of m's config; "\x00": a new site, none yet
	last    int64  // last pushed second; -1: none
	lastCk  int64  // newest checkpoint time; -1: none
	// configured: m has the configuration of version (a machine restored
	// from level2_state has none until reconcile gives it).
	configured bool
}

// newL2proc makes a Level-2 part reading metadata from w; in StateDir mode
// each partition file's sink has its own, sharing the processor's w and
// progress.
func newL2proc(log *slog.Logger, w *metaWatch, prog *reprocessProgress, window, chunk time.Duration) (*l2proc, error) {
	c, err := metadata.NewCodec()
	if err != nil {
		return nil, err
	}
	l := &l2proc{log: log, codec: c, table: goka.Table(w.topic), window: int64(window / time.Second), watch: w,
		cur: map[string]*l2Meta{}, sites: map[string]*l2Site{}}
	l.rp = newReprocessor(l, prog, chunk)
	return l, nil
}

// level2Sample is apply's hook: it queues a stored record's Level-2 input.
func (p *Processor) level2Sample(gctx goka.Context, b *batch, site string, r *record.Record, off int64) {
	if p.l2 == nil {
		return
	}
	s := l2Sample{site: site, off: off}
	switch r.Session {
	case bottle.Hour:
		if r.Time%1000 != 0 {
			return // not a 1 s sample
		}
		s.t = r.Time / 1000
		for g, f := range record.StrainFields(bottle.Hour) {
			if v, ok := r.Int(f); ok {
				s.counts[g] = v
			} else {
				s.counts[g] = level2.FillValue
			}
		}
	case bottle.Day:
		v, ok := r.Int(pressureField)
		if !ok || r.Time%1000 != 0 {
			return
		}
		s.t, s.pressure, s.hPa = r.Time/1000, true, float64(v)*0.001
		if v == level2.FillValue {
			s.hPa = math.NaN()
		}
	default:
		return
	}
	s.meta = p.l2.meta(site, p.l2.watch.get(site).raw, b, off)
	b.l2.samples = append(b.l2.samples, s)
}

// meta returns the site's metadata for raw, the table's current value,
// decoding it only when it changed. A version first seen goes to b's
// station_metadata rows (b nil: the caller stores it). A value that fails
// validation is a dead letter (queued in b) and leaves the previous version
// in force (metaintake.go).
func (l *l2proc) meta(site string, raw []byte, b *batch, off int64) *l2Meta {
	l.mu.Lock()
	c := l.cur[site]
	l.mu.Unlock()
	if c != nil && bytes.Equal(c.raw, raw) {
		return c
	}
	m := l.decode(site, raw, b, off, c)
	if m.rejected && b == nil {
		// Refused outside a batch (the sink's reconcile): no dead letter can
		// be queued here, so it is not cached and the next sample's batch
		// reports it once.
		return m
	}
	if m.version != "" && !m.rejected && b != nil {
		b.l2.metas, b.l2.sites = append(b.l2.metas, m), append(b.l2.sites, site)
	}
	l.mu.Lock()
	l.cur[site] = m
	l.mu.Unlock()
	return m
}

// decode is site's metadata from a record of the metadata topic (the
// zero-metadata config, version "", when raw is empty). A record that fails
// validation gives the version in force (prev, or with a batch what DuckDB
// holds) marked rejected; with a batch b it is also queued as a dead letter
// at the input offset off where it was met.
func (l *l2proc) decode(site string, raw []byte, b *batch, off int64, prev *l2Meta) *l2Meta {
	m := &l2Meta{raw: bytes.Clone(raw), cfg: level2.ConfigFrom(nil)}
	if len(raw) > 0 {
		st, v, err := l.acceptMeta(site, raw)
		switch {
		case err != nil && b != nil:
			m = l.rejectMeta(site, raw, b, off, prev, err)
		case err != nil:
			l.log.Warn("station metadata refused", "topic", string(l.table), "site", site, "err", err)
			if prev != nil && prev.version != "" {
				*m = *prev
				m.raw = bytes.Clone(raw)
			}
			m.rejected = true
		default:
			j, err := json.Marshal(st)
			if err != nil {
				l.log.Warn("station metadata as JSON", "site", site, "err", err)
			}
			m.version, m.cfg, m.json = v, level2.ConfigFrom(st), string(j)
			l.log.Info("station metadata", "site", site, "version", v)
		}
	}
	return m
}

// l2Work is one site's Level-2 input of a transaction.
type l2Work struct {
	strain, press []l2Sample
	last          *l2Meta // metadata of the site's last sample in arrival order
	offset        int64   // Kafka offset of the last batch message
}

// write is the sink's hook, inside the transaction, after the batches' rows
// are appended to gtsm_etl.
func (l *l2proc) write(ctx context.Context, conn *sql.Conn, bs []*batch) error {
	work := map[string]*l2Work{}
	for _, b := range bs {
		for i, m := range b.l2.metas {
			if err := storeMeta(ctx, conn, b.l2.sites[i], m); err != nil {
				return err
			}
		}
		for _, s := range b.l2.samples {
			w := work[s.site]
			if w == nil {
				w = &l2Work{}
				work[s.site] = w
			}
			if s.pressure {
				w.press = append(w.press, s)
			} else {
				w.strain = append(w.strain, s)
			}
			// The site's own last record, not the batch's last message: the
			// value must not depend on where batches were cut.
			w.last, w.offset = s.meta, s.off
		}
	}
	sites := make([]string, 0, len(work))
	for s := range work {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, site := range sites {
		if err := l.site(ctx, conn, site, work[site]); err != nil {
			return fmt.Errorf("level2 site %s: %w", site, err)
		}
	}
	return nil
}

func (l *l2proc) load(ctx context.Context, conn *sql.Conn, site string) (*l2Site, error) {
	if st := l.sites[site]; st != nil {
		return st, nil
	}
	st := &l2Site{m: level2.New(level2.ConfigFrom(nil)), version: "\x00", last: -1, lastCk: -1}
	var state []byte
	var last sql.NullInt64
	var ver sql.NullString
	err := conn.QueryRowContext(ctx, `SELECT state, last_second, metadata_version FROM level2_state WHERE site = ?`, site).Scan(&state, &last, &ver)
	switch {
	case err == sql.ErrNoRows:
	case err != nil:
		return nil, fmt.Errorf("read level2_state: %w", err)
	default:
		if err := st.m.UnmarshalBinary(state); err != nil {
			return nil, fmt.Errorf("level2_state: %w", err)
		}
		if last.Valid {
			st.last = last.Int64
		}
		// The version the machine's rows were made with; its configuration
		// is set by reconcile before the machine runs.
		st.version = ver.String
	}
	var ck sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT max("time") FROM level2_checkpoint WHERE site = ?`, site).Scan(&ck); err != nil {
		return nil, fmt.Errorf("read level2_checkpoint: %w", err)
	}
	if ck.Valid {
		st.lastCk = ck.Int64
	}
	l.sites[site] = st
	return st, nil
}

// out collects a site's rows of one transaction.
type l2Out struct {
	gauge, regional []any
	ngauge, nreg    int
	lo, hi          int64 // range of the 300 s times written; lo > hi: none
	from            int64 // points before it are not written (a reprocess from a time)
}

func nullF(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func nullS(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (o *l2Out) add(site string, st *l2Site, p *level2.Point) {
	if p.Time < o.from {
		return
	}
	ts := time.Unix(p.Time, 0).UTC()
	ver := nullS(st.version)
	for g := range p.Counts {
		o.gauge = append(o.gauge, site, ts, g, p.Counts[g], nullF(p.Microstrain[g]), nullF(p.Offset[g]), nullF(p.Tide[g]), ver,
			nullF(p.Trend[g]), p.Interpolated&(1<<g) != 0)
		o.ngauge++
	}
	for i, r := range p.Regional {
		name := st.m.Config().Matrices[i].Name
		o.regional = append(o.regional, site, ts, name, r[0], r[1], r[2], ver)
		o.nreg++
	}
	o.lo, o.hi = min(o.lo, p.Time), max(o.hi, p.Time)
}

// flush writes the collected rows. atmp_c is left NULL here and set by
// atmpRange for the written range.
func (o *l2Out) flush(ctx context.Context, conn *sql.Conn) error {
	const chunk = 400
	ins := func(table, cols string, n int, args []any) error {
		w := strings.Count(cols, ",") + 1 // values per row
		row := "(?" + strings.Repeat(", ?", w-1) + ")"
		for i := 0; i < n; i += chunk {
			k := min(chunk, n-i)
			var sb strings.Builder
			sb.WriteString(`INSERT OR REPLACE INTO ` + table + ` (` + cols + `) VALUES `)
			for j := 0; j < k; j++ {
				if j > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString(row)
			}
			if _, err := conn.ExecContext(ctx, sb.String(), args[i*w:(i+k)*w]...); err != nil {
				return fmt.Errorf("write %s: %w", table, err)
			}
		}
		return nil
	}
	if err := ins("level2_gauge_data", `site, "time", gauge, counts, microstrain, offset_c, tide_c, metadata_version, trend_c, interpolated`, o.ngauge, o.gauge); err != nil {
		return err
	}
	return ins("level2_regional_data", `site, "time", matrix, eee_plus_enn, eee_minus_enn, two_ene, metadata_version`, o.nreg, o.regional)
}

// site runs one site's Level-2 for the samples of a transaction.
func (l *l2proc) site(ctx context.Context, conn *sql.Conn, site string, w *l2Work) error {
	st, err := l.load(ctx, conn, site)
	if err != nil {
		return err
	}
	if err := l.rp.reconcile(ctx, conn, site, st); err != nil {
		return err
	}
	if j := l.rp.active(site); j != nil {
		// Reprocessing: the job reads these samples from gtsm_etl.
		return l.rp.live(ctx, conn, j, w)
	}
	o := &l2Out{lo: math.MaxInt64, hi: math.MinInt64}
	if st.last < 0 && st.lastCk < 0 {
		// A new site: checkpoint 0 is the fresh machine, so a late sample
		// before the first one replays everything from the start.
		if err := l.checkpoint(ctx, conn, site, st, 0); err != nil {
			return err
		}
	}
	if len(w.strain) > 0 {
		sort.SliceStable(w.strain, func(i, j int) bool { return w.strain[i].t < w.strain[j].t })
		if err := l.strain(ctx, conn, site, st, w, o); err != nil {
			return err
		}
	}
	if err := o.flush(ctx, conn); err != nil {
		return err
	}
	cfg := st.m.Config()
	if o.lo <= o.hi {
		if err := l.atmpRange(ctx, conn, site, cfg, st.version, o.lo, o.hi); err != nil {
			return err
		}
	}
	if lo, hi, ok := pressRange(w.press); ok {
		gap := cfg.MaxPressureGap
		if err := l.atmpRange(ctx, conn, site, cfg, st.version, lo-gap, hi+gap); err != nil {
			return err
		}
	}
	state, err := st.m.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO level2_state (site, state, metadata_version, updated_offset, last_second)
		VALUES (?, ?, ?, ?, ?)`, site, state, nullS(st.version), w.offset, st.last); err != nil {
		return fmt.Errorf("write level2_state: %w", err)
	}
	return l.pruneCheckpoints(ctx, conn, site, st.last)
}

// pruneCheckpoints keeps the newest checkpoint at or before the window's
// start (last - window) and every later one: any sample inside the window
// finds one at or before it.
func (l *l2proc) pruneCheckpoints(ctx context.Context, conn *sql.Conn, site string, last int64) error {
	if _, err := conn.ExecContext(ctx, `DELETE FROM level2_checkpoint WHERE site = ? AND "time" <
		(SELECT coalesce(max("time"), 0) FROM level2_checkpoint WHERE site = ? AND "time" <= ?)`, site, site, last-l.window); err != nil {
		return fmt.Errorf("prune level2_checkpoint: %w", err)
	}
	return nil
}

func (l *l2proc) checkpoint(ctx context.Context, conn *sql.Conn, site string, st *l2Site, t int64) error {
	b, err := st.m.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO level2_checkpoint VALUES (?, ?, ?)`, site, t, b); err != nil {
		return fmt.Errorf("write level2_checkpoint %d: %w", t, err)
	}
	st.lastCk = t
	return nil
}

// pressRange is the time range of pressure samples (ok false: none).
func pressRange(press []l2Sample) (lo, hi int64, ok bool) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, s := range press {
		lo, hi = min(lo, s.t), max(hi, s.t)
	}
	return lo, hi, len(press) > 0
}

// push feeds one second to the machine, checkpointing at hour boundaries
// first (the checkpoint at B is the state after every second before B).
func (l *l2proc) push(ctx context.Context, conn *sql.Conn, site string, st *l2Site, t int64, counts [4]int32, o *l2Out) error {
	if b := t - t%checkpointEvery; b > st.lastCk {
		if err := l.checkpoint(ctx, conn, site, st, b); err != nil {
			return err
		}
	}
	pts, err := st.m.PushStrain(t, counts, nil)
	if err != nil {
		return err
	}
	for i := range pts {
		o.add(site, st, &pts[i])
	}
	st.last = t
	return nil
}

func (l *l2proc) strain(ctx context.Context, conn *sql.Conn, site string, st *l2Site, w *l2Work, o *l2Out) error {
	first := w.strain[0].t
	if first > st.last {
		// In order: straight from the batch.
		for _, s := range w.strain {
			if s.t <= st.last {
				continue // the same second twice (cannot pass dedup; defensive)
			}
			if err := l.push(ctx, conn, site, st, s.t, s.counts, o); err != nil {
				return err
			}
		}
		return nil
	}
	var ck int64
	var state []byte
	err := conn.QueryRowContext(ctx, `SELECT "time", state FROM level2_checkpoint WHERE site = ? AND "time" <= ? ORDER BY "time" DESC LIMIT 1`,
		site, first).Scan(&ck, &state)
	if err == sql.ErrNoRows {
		// Beyond the recompute window: stored in gtsm_etl, Level-2 not
		// recomputed; the in-order rest of the batch goes on.
		l.log.Warn("late 1-sps sample beyond the Level-2 recompute window; not recomputed", "site", site,
			"time", time.Unix(first, 0).UTC(), "last", time.Unix(st.last, 0).UTC(), "window_s", l.window)
		for _, s := range w.strain {
			if s.t > st.last {
				if err := l.push(ctx, conn, site, st, s.t, s.counts, o); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read level2_checkpoint: %w", err)
	}
	// Recompute from the checkpoint: its outputs and later checkpoints go,
	// and the stored counts (this transaction's included) are replayed with
	// the site's metadata (the version its rows carry).
	m := level2.New(st.m.Config())
	if err := m.UnmarshalBinary(state); err != nil {
		return fmt.Errorf("level2_checkpoint %d: %w", ck, err)
	}
	st.m, st.lastCk, st.last = m, ck, -1
	for _, q := range []string{`DELETE FROM level2_gauge_data WHERE site = ? AND "time" >= ?`,
		`DELETE FROM level2_regional_data WHERE site = ? AND "time" >= ?`} {
		if _, err := conn.ExecContext(ctx, q, site, time.Unix(ck, 0).UTC()); err != nil {
			return fmt.Errorf("recompute from %d: %w", ck, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM level2_checkpoint WHERE site = ? AND "time" > ?`, site, ck); err != nil {
		return fmt.Errorf("recompute from %d: %w", ck, err)
	}
	n, err := l.replay(ctx, conn, site, st, ck, math.MaxInt64/1000, o)
	l.log.Debug("level2 recompute", "site", site, "from", ck, "late", first, "seconds", n)
	return err
}

// replay pushes site's stored 1-sps counts (gtsm_etl, a null channel as a
// fill value) with times in [lo, hi] through st's machine in time order,
// skipping seconds it has pushed already. It returns the seconds read.
func (l *l2proc) replay(ctx context.Context, conn *sql.Conn, site string, st *l2Site, lo, hi int64, o *l2Out) (int, error) {
	rows, err := conn.QueryContext(ctx, `SELECT "time" // 1000, coalesce(ls1_t0, ?), coalesce(ls2_t0, ?), coalesce(ls3_t0, ?), coalesce(ls4_t0, ?)
		FROM gtsm_etl WHERE key_site = ? AND session = 'Hour' AND "time" BETWEEN ? AND ? AND "time" % 1000 = 0 ORDER BY "time"`,
		level2.FillValue, level2.FillValue, level2.FillValue, level2.FillValue, site, lo*1000, hi*1000)
	if err != nil {
		return 0, fmt.Errorf("read stored counts from %d: %w", lo, err)
	}
	type sec struct {
		t int64
		c [4]int32
	}
	var secs []sec
	for rows.Next() {
		var s sec
		if err := rows.Scan(&s.t, &s.c[0], &s.c[1], &s.c[2], &s.c[3]); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read stored counts from %d: %w", lo, err)
		}
		secs = append(secs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read stored counts from %d: %w", lo, err)
	}
	for _, s := range secs {
		if s.t <= st.last {
			continue
		}
		if err := l.push(ctx, conn, site, st, s.t, s.c, o); err != nil {
			return 0, err
		}
	}
	return len(secs), nil
}

// atmpRange recomputes atmp_c of the site's gauge rows of metadata version
// ver with 300 s times in [lo, hi] from the stored pressure samples, with
// that version's configuration cfg (rows of another version, kept by a
// reprocess from a later time, are left alone): each correction depends only
// on the two samples around its time (level2.Machine.PushPressure), so a
// fresh machine over the samples from lo-MaxPressureGap to hi+MaxPressureGap
// gives it whatever order they arrived in.
func (l *l2proc) atmpRange(ctx context.Context, conn *sql.Conn, site string, cfg level2.Config, ver string, lo, hi int64) error {
	if lo > hi {
		return nil
	}
	from, to := time.Unix(lo, 0).UTC(), time.Unix(hi, 0).UTC()
	if _, err := conn.ExecContext(ctx, `UPDATE level2_gauge_data SET atmp_c = NULL, atmp = NULL WHERE site = ? AND "time" BETWEEN ? AND ?
		AND (atmp_c IS NOT NULL OR atmp IS NOT NULL) AND metadata_version IS NOT DISTINCT FROM ?`, site, from, to, nullS(ver)); err != nil {
		return fmt.Errorf("clear atmp_c: %w", err)
	}
	if cfg.Atmp == nil {
		return nil
	}
	gap := cfg.MaxPressureGap
	rows, err := conn.QueryContext(ctx, `SELECT "time" // 1000, rdo_ts FROM gtsm_etl WHERE key_site = ? AND session = 'Day'
		AND rdo_ts IS NOT NULL AND "time" % 1000 = 0 AND "time" BETWEEN ? AND ? ORDER BY "time"`, site, (lo-gap)*1000, (hi+gap)*1000)
	if err != nil {
		return fmt.Errorf("read pressure: %w", err)
	}
	m := level2.New(cfg)
	var pts []level2.AtmpPoint
	last := int64(math.MinInt64)
	for rows.Next() {
		var t int64
		var v int32
		if err := rows.Scan(&t, &v); err != nil {
			rows.Close()
			return fmt.Errorf("read pressure: %w", err)
		}
		if t <= last {
			continue
		}
		last = t
		hPa := float64(v) * 0.001
		if v == level2.FillValue {
			hPa = math.NaN()
		}
		if pts, err = m.PushPressure(t, hPa, pts); err != nil {
			rows.Close()
			return err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pressure: %w", err)
	}
	var args []any
	n := 0
	for _, p := range pts {
		if p.Time < lo || p.Time > hi {
			continue
		}
		for g, c := range p.Correction {
			args = append(args, time.Unix(p.Time, 0).UTC(), g, c, p.HPa)
			n++
		}
	}
	const chunk = 500
	for i := 0; i < n; i += chunk {
		k := min(chunk, n-i)
		var sb strings.Builder
		sb.WriteString(`UPDATE level2_gauge_data SET atmp_c = v.c, atmp = v.p FROM (VALUES `)
		for j := 0; j < k; j++ {
			if j > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?::TIMESTAMP, ?::UTINYINT, ?::DOUBLE, ?::DOUBLE)")
		}
		sb.WriteString(`) v(t, g, c, p) WHERE level2_gauge_data.site = ? AND level2_gauge_data."time" = v.t AND level2_gauge_data.gauge = v.g
			AND level2_gauge_data.metadata_version IS NOT DISTINCT FROM ?`)
		a := append(args[i*4:(i+k)*4:(i+k)*4], site, nullS(ver))
		if _, err := conn.ExecContext(ctx, sb.String(), a...); err != nil {
			return fmt.Errorf("write atmp_c: %w", err)
		}
	}
	return nil
}
