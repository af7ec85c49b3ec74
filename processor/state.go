package processor

import (
	"fmt"
	"math"
	"sort"
	"unsafe"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

// Session sample intervals in milliseconds (the contract: Day 600 s, Hour 1 s,
// Min 50 ms). They define what "the next expected sample" is for gaps and the
// slot grid of the duplicate index.
var intervalMs = [3]int64{bottle.Day: 600_000, bottle.Hour: 1_000, bottle.Min: 50}

// Window widths, in the order of the windows table's width values.
var widths = [3]struct {
	name string
	ms   int64
}{{"10m", 600_000}, {"1h", 3_600_000}, {"1d", 86_400_000}}

const dayMs = 86_400_000

// floorDiv is division rounding toward minus infinity, so that windows and
// days of times before 1970 still tile the axis.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// chanAgg is one strain channel's aggregate in one window.
type chanAgg struct {
	nNull         int64
	min, max      int32
	sum           int64
	first, last   int32
	firstT, lastT int64 // event times of first and last non-null values
	nMicro        int64
	sumMicro      float64
}

// window is one tumbling window of one site and session: n counts every
// stored record of the session in the window (also all-null ones).
type window struct {
	width       int // index into widths
	start       int64
	n           int64
	final       bool
	lateUpdates int64
	ch          [4]chanAgg
	dirty       bool
	modSeq      uint64 // batch sequence of the last change
}

func (w *window) end() int64 { return w.start + widths[w.width].ms }

type winKey struct {
	width int
	start int64
}

// gap is a run of missing samples between two stored samples prev and next
// (next-prev >= 2 intervals): gap_start = prev+interval, gap_end = next-interval.
type gap struct{ prev, next int64 }

func (g gap) missing(iv int64) int64 { return (g.next-g.prev)/iv - 1 }

// dayChunk is the exact set of stored sample times of one UTC day: a bitmap
// over the session's interval grid (20 sps: 1.728 M bits = 216 KiB per day),
// plus a set for the rare times off the grid. A day with few samples keeps
// them as a sorted list of slots instead, until the list would take an
// eighth of the bitmap (6,750 slots, 27 KiB at 20 sps): records spread over
// many days cost bytes per sample, not 216 KiB per day.
type dayChunk struct {
	bits   []uint64 // dense; nil while sparse
	slots  []uint32 // sparse: sorted slot numbers
	extra  map[int64]struct{}
	modSeq uint64 // batch sequence of the last change; evictable once committed
}

// dayWords is the bitmap size of a day at interval iv, in 64-bit words.
func dayWords(iv int64) int { return int((dayMs/iv + 63) / 64) }

// bytes is the chunk's memory, for the per-site bound: struct, map entry
// in sessState.days, bitmap or slot list, off-grid set.
func (c *dayChunk) bytes() int64 {
	return int64(unsafe.Sizeof(*c)) + 32 + 8*int64(cap(c.bits)) + 4*int64(cap(c.slots)) + 48*int64(len(c.extra))
}

// windowBytes is the memory of a window in sessState.windows (struct, map
// entry, pointer in open/dirty lists), for the per-site bound.
const windowBytes = int64(unsafe.Sizeof(window{})) + 64

// refGauge is one gauge's linearization reference.
type refGauge struct {
	ok     bool
	counts float64
	gapM   float64
}

// microstrain linearizes one sample (bottle reference, level 2).
func (r refGauge) microstrain(counts int32) float64 {
	x := float64(counts) / 1e8
	x0 := r.counts / 1e8
	return (x/(1-x) - x0/(1-x0)) * (r.gapM / 0.087) * 1e6
}

// loader reads what DuckDB holds (committed) for state that is not in memory.
type loader interface {
	// times returns the stored times of a site and session in [from, to).
	times(site string, s bottle.Session, from, to int64) ([]int64, error)
	// window returns the stored window (false if none).
	window(site string, s bottle.Session, width int, start int64) (*window, bool, error)
}

// sessState is the per site and session state. It is owned by the goroutine
// of the site's partition.
type sessState struct {
	site    string
	session bottle.Session
	iv      int64

	has                                          bool
	first, last                                  int64
	records, duplicates, late, gapCount, missing int64
	partition                                    int32
	offset                                       int64 // last Kafka offset applied

	// persistedUpTo: day chunks and windows starting at or before this time
	// may have rows in DuckDB that are not in memory (loaded at start, or
	// evicted): look them up on first use. Everything later was created by
	// this process and is in memory.
	persistedUpTo int64
	persisted     bool

	days    map[int64]*dayChunk
	lastDay int64     // cache of the last chunk used: records come in order,
	lastChk *dayChunk // so this saves a map lookup per record
	curWin  [3]*window
	gaps    []gap // sorted by prev, non-overlapping
	windows map[winKey]*window
	open    []*window // not yet final

	seq      uint64 // sequence of the batch being applied (for eviction)
	evictDay int64  // day of the site's time at the last eviction pass
	evictAt  int    // days+windows held at which a large state runs the next pass (amortized)

	// mem is the memory of days and windows (dayChunk.bytes, windowBytes),
	// kept up to date, checked against Config.SiteStateBytes; relieveAt is
	// the level at which the next forced commit-and-evict runs.
	mem       int64
	relieveAt int64
	peakMem   int64 // the highest mem seen (tests, debug log)

	// Changes since the last batch cut.
	dirty     bool
	dirtyWins []*window
	dirtyGaps map[int64]*gap // by gap_start; nil value = deleted
}

func newSessState(site string, s bottle.Session) *sessState {
	return &sessState{
		site: site, session: s, iv: intervalMs[s],
		days: map[int64]*dayChunk{}, windows: map[winKey]*window{}, dirtyGaps: map[int64]*gap{},
	}
}

// outcome of applying one record.
type outcome int

const (
	stored outcome = iota
	storedLate
	duplicate
)

// seen reports whether time t is already stored, loading the day's index
// from DuckDB on first use when DuckDB may hold rows of that day.
func (s *sessState) chunk(t int64, l loader) (*dayChunk, int64, error) {
	day := floorDiv(t, dayMs)
	if s.lastChk != nil && s.lastDay == day {
		return s.lastChk, t - day*dayMs, nil
	}
	c := s.days[day]
	if c == nil {
		c = &dayChunk{}
		if dayWords(s.iv) <= 16 {
			c.bits = make([]uint64, dayWords(s.iv)) // Day: 3 words, never worth a list
		}
		if s.persisted && day*dayMs <= s.persistedUpTo {
			ts, err := l.times(s.site, s.session, day*dayMs, (day+1)*dayMs)
			if err != nil {
				return nil, 0, err
			}
			for _, x := range ts {
				c.add(x-day*dayMs, s.iv, x)
			}
		}
		s.days[day] = c
		s.mem += c.bytes()
	}
	s.lastDay, s.lastChk = day, c
	return c, t - day*dayMs, nil
}

func (c *dayChunk) add(off, iv, t int64) {
	if off%iv == 0 {
		slot := off / iv
		if c.bits == nil {
			// Sorted insert; records mostly come in order (append).
			i := len(c.slots)
			if i > 0 && c.slots[i-1] >= uint32(slot) {
				i = sort.Search(len(c.slots), func(j int) bool { return c.slots[j] >= uint32(slot) })
			}
			c.slots = append(c.slots, 0)
			copy(c.slots[i+1:], c.slots[i:])
			c.slots[i] = uint32(slot)
			if len(c.slots) <= dayWords(iv)/4 {
				return
			}
			c.bits = make([]uint64, dayWords(iv))
			for _, x := range c.slots {
				c.bits[x/64] |= 1 << (x % 64)
			}
			c.slots = nil
			return
		}
		c.bits[slot/64] |= 1 << uint(slot%64)
		return
	}
	if c.extra == nil {
		c.extra = map[int64]struct{}{}
	}
	c.extra[t] = struct{}{}
}

func (c *dayChunk) has(off, iv, t int64) bool {
	if off%iv == 0 {
		slot := off / iv
		if c.bits == nil {
			i := sort.Search(len(c.slots), func(j int) bool { return c.slots[j] >= uint32(slot) })
			return i < len(c.slots) && c.slots[i] == uint32(slot)
		}
		return c.bits[slot/64]&(1<<uint(slot%64)) != 0
	}
	_, ok := c.extra[t]
	return ok
}

// apply updates the state with one record (already known to be of this site
// and session) and reports whether it is stored, stored late, or a duplicate.
func (s *sessState) apply(r *record.Record, refs *[4]refGauge, lateness int64, seq uint64, l loader) (outcome, error) {
	t := r.Time
	s.seq = seq
	c, off, err := s.chunk(t, l)
	if err != nil {
		return 0, err
	}
	s.dirty = true
	if c.has(off, s.iv, t) {
		s.duplicates++
		return duplicate, nil
	}
	before := c.bytes()
	c.add(off, s.iv, t)
	s.mem += c.bytes() - before
	c.modSeq = seq
	s.records++
	out := stored
	prevLast, hadAny := s.last, s.has
	switch {
	case !s.has:
		s.first, s.last, s.has = t, t, true
	case t > s.last:
		if t-s.last >= 2*s.iv {
			s.addGap(gap{s.last, t})
		}
		s.last = t
	case t < s.first:
		out = storedLate
		if s.first-t >= 2*s.iv {
			s.addGap(gap{t, s.first})
		}
		s.first = t
	default:
		out = storedLate
		s.fill(t)
	}
	if out == storedLate {
		s.late++
	}

	strain := record.StrainFields(s.session)
	for wi := range widths {
		w, err := s.window(wi, floorDiv(t, widths[wi].ms)*widths[wi].ms, l)
		if err != nil {
			return 0, err
		}
		if !w.final && hadAny && w.end()+lateness <= prevLast {
			// A window first seen after the site's time passed its end: it
			// is final already, and this record is a late update to it.
			w.final = true
			s.removeOpen(w)
		}
		if w.final {
			w.lateUpdates++
		}
		w.n++
		for ci, f := range strain {
			a := &w.ch[ci]
			v, ok := r.Int(f)
			if !ok {
				a.nNull++
				continue
			}
			if w.n-a.nNull == 1 {
				a.min, a.max, a.first, a.last, a.firstT, a.lastT = v, v, v, v, t, t
			} else {
				a.min, a.max = min(a.min, v), max(a.max, v)
				if t < a.firstT {
					a.first, a.firstT = v, t
				}
				if t > a.lastT {
					a.last, a.lastT = v, t
				}
			}
			a.sum += int64(v)
			if refs != nil && refs[ci].ok {
				a.nMicro++
				a.sumMicro += refs[ci].microstrain(v)
			}
		}
		s.markWin(w)
	}
	if s.last > prevLast || !hadAny {
		s.finalize(lateness)
	}
	return out, nil
}

// finalize marks open windows whose end plus the allowed lateness the site's
// event time has passed.
func (s *sessState) finalize(lateness int64) {
	keep := s.open[:0]
	for _, w := range s.open {
		if w.end()+lateness <= s.last {
			w.final = true
			s.markWin(w)
			continue
		}
		keep = append(keep, w)
	}
	for i := len(keep); i < len(s.open); i++ {
		s.open[i] = nil
	}
	s.open = keep
}

func (s *sessState) removeOpen(w *window) {
	for i, o := range s.open {
		if o == w {
			s.open = append(s.open[:i], s.open[i+1:]...)
			return
		}
	}
}

func (s *sessState) markWin(w *window) {
	w.modSeq = s.seq
	if !w.dirty {
		w.dirty = true
		s.dirtyWins = append(s.dirtyWins, w)
	}
}

func (s *sessState) window(wi int, start int64, l loader) (*window, error) {
	if w := s.curWin[wi]; w != nil && w.start == start {
		return w, nil
	}
	k := winKey{wi, start}
	if w := s.windows[k]; w != nil {
		s.curWin[wi] = w
		return w, nil
	}
	var w *window
	if s.persisted && start <= s.persistedUpTo {
		lw, ok, err := l.window(s.site, s.session, wi, start)
		if err != nil {
			return nil, err
		}
		if ok {
			w = lw
		}
	}
	if w == nil {
		w = &window{width: wi, start: start}
	}
	s.windows[k] = w
	s.mem += windowBytes
	s.curWin[wi] = w
	if !w.final {
		s.open = append(s.open, w)
	}
	return w, nil
}

func (s *sessState) addGap(g gap) {
	i := sort.Search(len(s.gaps), func(i int) bool { return s.gaps[i].prev > g.prev })
	s.gaps = append(s.gaps, gap{})
	copy(s.gaps[i+1:], s.gaps[i:])
	s.gaps[i] = g
	s.gapCount++
	s.missing += g.missing(s.iv)
	gc := g
	s.dirtyGaps[g.prev+s.iv] = &gc
}

// fill removes time t from the gap that contains it, shrinking or splitting
// the gap, so that gaps always equal the missing runs of the stored times.
func (s *sessState) fill(t int64) {
	i := sort.Search(len(s.gaps), func(i int) bool { return s.gaps[i].prev >= t }) - 1
	if i < 0 || s.gaps[i].next <= t {
		return // between two stored samples less than two intervals apart
	}
	g := s.gaps[i]
	s.gaps = append(s.gaps[:i], s.gaps[i+1:]...)
	s.gapCount--
	s.missing -= g.missing(s.iv)
	s.dirtyGaps[g.prev+s.iv] = nil
	if t-g.prev >= 2*s.iv {
		s.addGap(gap{g.prev, t})
	}
	if g.next-t >= 2*s.iv {
		s.addGap(gap{t, g.next})
	}
}

// evictDays drops day indexes older than keepFrom whose changes are all
// committed (committed >= modSeq); they are re-read from DuckDB if needed.
func (s *sessState) evictDays(keepFrom int64, committed uint64) {
	for d, c := range s.days {
		if (d+1)*dayMs <= keepFrom && c.modSeq <= committed {
			delete(s.days, d)
			s.mem -= c.bytes()
			if s.lastChk == c {
				s.lastChk = nil
			}
			s.persisted = true
			s.persistedUpTo = max(s.persistedUpTo, (d+1)*dayMs-1)
		}
	}
}

// evictWindows drops final windows that ended before keepFrom and whose
// changes are committed: a late record for one reloads it from DuckDB.
// Without this a long-running processor would keep every window it ever
// touched (about 1.3 MB per site-session-month of 10m windows).
func (s *sessState) evictWindows(keepFrom int64, committed uint64) {
	for k, w := range s.windows {
		if w.final && !w.dirty && w.modSeq <= committed && w.end() <= keepFrom {
			delete(s.windows, k)
			s.mem -= windowBytes
			if s.curWin[k.width] == w {
				s.curWin[k.width] = nil
			}
			s.persisted = true
			s.persistedUpTo = max(s.persistedUpTo, w.start)
		}
	}
}

// held is how many day indexes and windows are in memory.
func (s *sessState) held() int { return len(s.days) + len(s.windows) }

// maybeEvict runs the eviction pass once per day of the site's time (days
// more than two days, final windows more than one day behind it, committed
// ones only). A pass scans everything held, so for a large state it runs
// only once that has doubled since the last pass: records one day apart
// change the day with every record, and a pass each time was quadratic
// (1,750 rec/s).
func (s *sessState) maybeEvict(committed uint64) {
	day := floorDiv(s.last, dayMs)
	if day == s.evictDay || (s.held() > 1024 && s.held() < s.evictAt) {
		return
	}
	s.evictDay = day
	s.evictDays(day*dayMs-2*dayMs, committed)
	s.evictWindows(day*dayMs-dayMs, committed)
	s.evictAt = 2 * s.held()
}

// evictCommitted drops every day index and final window whose changes are
// committed, whatever its time (they reload from DuckDB on demand): the
// per-site memory bound, after the partition's batch was committed.
func (s *sessState) evictCommitted(committed uint64) {
	s.evictDays(math.MaxInt64-dayMs, committed)
	s.evictWindows(math.MaxInt64-dayMs, committed)
	s.evictAt = 2 * s.held()
}

// Rows of the snapshot written to DuckDB.

type stateRow struct {
	site, session                                string
	has                                          bool
	first, last                                  int64
	records, duplicates, late, gapCount, missing int64
	partition                                    int32
	offset                                       int64
}

type windowRow struct {
	site, session string
	w             window
}

type gapRow struct {
	site, session string
	start         int64 // key
	g             gap   // zero when deleted
	deleted       bool
	iv            int64
}

// cut appends the state's changes since the last cut to the batch and clears
// the change marks.
func (s *sessState) cut(b *batch) {
	if !s.dirty {
		return
	}
	name := s.session.String()
	b.states = append(b.states, stateRow{
		site: s.site, session: name, has: s.has, first: s.first, last: s.last,
		records: s.records, duplicates: s.duplicates, late: s.late, gapCount: s.gapCount, missing: s.missing,
		partition: s.partition, offset: s.offset,
	})
	for _, w := range s.dirtyWins {
		b.windows = append(b.windows, windowRow{site: s.site, session: name, w: *w})
		w.dirty = false
	}
	s.dirtyWins = s.dirtyWins[:0]
	for start, g := range s.dirtyGaps {
		row := gapRow{site: s.site, session: name, start: start, iv: s.iv}
		if g == nil {
			row.deleted = true
		} else {
			row.g = *g
		}
		b.gaps = append(b.gaps, row)
		delete(s.dirtyGaps, start)
	}
	s.dirty = false
}

// loadState rebuilds a state from its site_state row and its gaps.
func loadState(row stateRow, gapStarts, gapEnds []int64) (*sessState, error) {
	sess, err := bottle.ParseSession(row.session)
	if err != nil {
		return nil, fmt.Errorf("site_state row %s/%s: %w", row.site, row.session, err)
	}
	s := newSessState(row.site, sess)
	s.has, s.first, s.last = row.has, row.first, row.last
	s.records, s.duplicates, s.late, s.gapCount, s.missing = row.records, row.duplicates, row.late, row.gapCount, row.missing
	s.partition, s.offset = row.partition, row.offset
	// Only times up to the stored last one can have rows in DuckDB.
	s.persisted, s.persistedUpTo = row.has, row.last
	for i := range gapStarts {
		s.gaps = append(s.gaps, gap{gapStarts[i] - s.iv, gapEnds[i] + s.iv})
	}
	sort.Slice(s.gaps, func(i, j int) bool { return s.gaps[i].prev < s.gaps[j].prev })
	return s, nil
}
