// State loading: what a restart reads back from DuckDB (offsets, per-site
// counters and gaps, references, open windows) before it consumes.

package processor

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

func (p *Processor) loadState(ctx context.Context) error {
	off, loaded, err := readState(ctx, p.db, p.cfg.Topic)
	if err != nil {
		return err
	}
	p.startOff, p.loaded = off, loaded
	for part, next := range off {
		p.committed[part] = next
	}
	return nil
}

// readState reads what a restart needs from one DuckDB file: the next
// offset of each partition it holds, and every site and session's counters
// and gaps.
func readState(ctx context.Context, db *sql.DB, topic string) (map[int32]int64, map[string]*[3]*sessState, error) {
	startOff := map[int32]int64{}
	rows, err := db.QueryContext(ctx, `SELECT kafka_partition, next_offset FROM kafka_offsets WHERE topic = ?`, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("read kafka_offsets: %w", err)
	}
	for rows.Next() {
		var part int32
		var next int64
		if err := rows.Scan(&part, &next); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read kafka_offsets: %w", err)
		}
		startOff[part] = next
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read kafka_offsets: %w", err)
	}

	type key struct{ site, session string }
	gs := map[key][2][]int64{}
	rows, err = db.QueryContext(ctx, `SELECT site, session, epoch_ms(gap_start), epoch_ms(gap_end) FROM gaps`)
	if err != nil {
		return nil, nil, fmt.Errorf("read gaps: %w", err)
	}
	for rows.Next() {
		var k key
		var s, e int64
		if err := rows.Scan(&k.site, &k.session, &s, &e); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read gaps: %w", err)
		}
		v := gs[k]
		v[0], v[1] = append(v[0], s), append(v[1], e)
		gs[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read gaps: %w", err)
	}

	loaded := map[string]*[3]*sessState{}
	rows, err = db.QueryContext(ctx, `SELECT site, session, first_time IS NOT NULL, coalesce(epoch_ms(first_time), 0),
		coalesce(epoch_ms(last_time), 0), records, duplicates, late, gaps, missing, kafka_partition, kafka_offset FROM site_state`)
	if err != nil {
		return nil, nil, fmt.Errorf("read site_state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r stateRow
		if err := rows.Scan(&r.site, &r.session, &r.has, &r.first, &r.last, &r.records, &r.duplicates, &r.late,
			&r.gapCount, &r.missing, &r.partition, &r.offset); err != nil {
			return nil, nil, fmt.Errorf("read site_state: %w", err)
		}
		g := gs[key{r.site, r.session}]
		s, err := loadState(r, g[0], g[1])
		if err != nil {
			return nil, nil, err
		}
		all := loaded[r.site]
		if all == nil {
			all = new([3]*sessState)
			loaded[r.site] = all
		}
		all[s.session] = s
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read site_state: %w", err)
	}
	return startOff, loaded, nil
}

func (p *Processor) loadRefs(ctx context.Context) error {
	m, err := readRefs(ctx, p.db)
	if err != nil {
		return err
	}
	p.refs.Store(&m)
	return nil
}

// readRefs reads the gauges' reference counts (site_reference) of one file.
func readRefs(ctx context.Context, db *sql.DB) (map[string]*[4]refGauge, error) {
	rows, err := db.QueryContext(ctx, `SELECT site, gauge, reference_counts, gap_m FROM site_reference`)
	if err != nil {
		return nil, fmt.Errorf("read site_reference: %w", err)
	}
	defer rows.Close()
	m := map[string]*[4]refGauge{}
	for rows.Next() {
		var site string
		var gauge int
		var r refGauge
		if err := rows.Scan(&site, &gauge, &r.counts, &r.gapM); err != nil {
			return nil, fmt.Errorf("read site_reference: %w", err)
		}
		if gauge < 1 || gauge > 4 {
			continue // the table's CHECK forbids it
		}
		r.ok = true
		if m[site] == nil {
			m[site] = new([4]refGauge)
		}
		m[site][gauge-1] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read site_reference: %w", err)
	}
	return m, nil
}

// dbLoader reads committed state from DuckDB for the lazy loads of sessState.
type dbLoader struct {
	ctx context.Context
	db  *sql.DB
}

func (l dbLoader) times(site string, s bottle.Session, from, to int64) ([]int64, error) {
	rows, err := l.db.QueryContext(l.ctx, `SELECT "time" FROM gtsm_etl WHERE key_site = ? AND session = ? AND "time" >= ? AND "time" < ?`,
		site, s.String(), from, to)
	if err != nil {
		return nil, fmt.Errorf("read stored times of %s/%s: %w", site, s, err)
	}
	defer rows.Close()
	var ts []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("read stored times of %s/%s: %w", site, s, err)
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// windowColumns are the columns scanWindowRow reads, after site, session,
// width and window_start.
const windowColumns = `channel, n, n_null, coalesce(min, 0), coalesce(max, 0), coalesce(first, 0), coalesce(last, 0),
	final, late_updates, sum, coalesce(first_time, 0), coalesce(last_time, 0), n_micro, sum_micro`

// scanWindowRow reads one channel row of a window into w.
func scanWindowRow(rows *sql.Rows, s bottle.Session, w *window) error {
	var ch string
	var a chanAgg
	if err := rows.Scan(&ch, &w.n, &a.nNull, &a.min, &a.max, &a.first, &a.last, &w.final, &w.lateUpdates,
		&a.sum, &a.firstT, &a.lastT, &a.nMicro, &a.sumMicro); err != nil {
		return err
	}
	for ci, f := range record.StrainFields(s) {
		if record.FieldNames[f] == ch {
			w.ch[ci] = a
			return nil
		}
	}
	return fmt.Errorf("window row with channel %q, not a %s strain channel", ch, s)
}

func (l dbLoader) window(site string, s bottle.Session, width int, start int64) (*window, bool, error) {
	rows, err := l.db.QueryContext(l.ctx, `SELECT `+windowColumns+`
		FROM windows WHERE site = ? AND session = ? AND width = ? AND window_start = ?`,
		site, s.String(), widths[width].name, ms(start))
	if err != nil {
		return nil, false, fmt.Errorf("read window %s/%s %s: %w", site, s, widths[width].name, err)
	}
	defer rows.Close()
	w := &window{width: width, start: start}
	found := false
	for rows.Next() {
		if err := scanWindowRow(rows, s, w); err != nil {
			return nil, false, fmt.Errorf("read window %s/%s: %w", site, s, err)
		}
		found = true
	}
	return w, found, rows.Err()
}

// loadOpenWindows puts the windows that are not final yet into memory: they
// must be finalized when the site's time passes them, even if no other
// record of theirs ever comes.
func (p *Processor) loadOpenWindows(ctx context.Context) error {
	return readOpenWindows(ctx, p.db, p.loaded)
}

// readOpenWindows adds one file's open windows to the sessions in loaded.
func readOpenWindows(ctx context.Context, db *sql.DB, loaded map[string]*[3]*sessState) error {
	rows, err := db.QueryContext(ctx, `SELECT site, session, width, epoch_ms(window_start), `+windowColumns+` FROM windows WHERE NOT final`)
	if err != nil {
		return fmt.Errorf("read open windows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var site, session, width string
		var start int64
		var tmp window
		// Scan once to learn the key, then into the right window.
		if err := scanWindowRowAny(rows, &site, &session, &width, &start, &tmp); err != nil {
			return fmt.Errorf("read open windows: %w", err)
		}
		sess, err := bottle.ParseSession(session)
		if err != nil {
			return fmt.Errorf("windows row %s/%s: %w", site, session, err)
		}
		wi := -1
		for i, w := range widths {
			if w.name == width {
				wi = i
			}
		}
		all := loaded[site]
		if wi < 0 || all == nil || all[sess] == nil {
			return fmt.Errorf("windows row %s/%s %s has no site_state or an unknown width", site, session, width)
		}
		ss := all[sess]
		k := winKey{wi, start}
		w := ss.windows[k]
		if w == nil {
			w = &window{width: wi, start: start}
			ss.windows[k] = w
			ss.mem += windowBytes
			ss.open = append(ss.open, w)
		}
		w.n, w.final, w.lateUpdates = tmp.n, tmp.final, tmp.lateUpdates
		for ci := range tmp.ch {
			if tmp.ch[ci] != (chanAgg{}) {
				w.ch[ci] = tmp.ch[ci]
			}
		}
	}
	return rows.Err()
}

// scanWindowRowAny scans a row of loadOpenWindows: the key columns, then one
// channel's aggregate into w.ch (by strain channel of the row's session).
func scanWindowRowAny(rows *sql.Rows, site, session, width *string, start *int64, w *window) error {
	var ch string
	var a chanAgg
	if err := rows.Scan(site, session, width, start, &ch, &w.n, &a.nNull, &a.min, &a.max, &a.first, &a.last, &w.final,
		&w.lateUpdates, &a.sum, &a.firstT, &a.lastT, &a.nMicro, &a.sumMicro); err != nil {
		return err
	}
	sess, err := bottle.ParseSession(*session)
	if err != nil {
		return err
	}
	for ci, f := range record.StrainFields(sess) {
		if record.FieldNames[f] == ch {
			w.ch[ci] = a
			return nil
		}
	}
	return fmt.Errorf("window row with channel %q, not a %s strain channel", ch, sess)
}
