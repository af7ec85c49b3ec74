package processor

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

// fakeLoader serves stored times and windows as DuckDB would.
type fakeLoader struct {
	stored  []int64
	queries int
}

func (f *fakeLoader) inRange(from, to int64) []int64 {
	var out []int64
	for _, t := range f.stored {
		if t >= from && t < to {
			out = append(out, t)
		}
	}
	return out
}

func (f *fakeLoader) times(site string, s bottle.Session, from, to int64) ([]int64, error) {
	f.queries++
	return f.inRange(from, to), nil
}

func (f *fakeLoader) window(site string, s bottle.Session, width int, start int64) (*window, bool, error) {
	return nil, false, nil
}

func hourRec(t int64, v int32) record.Record {
	var r record.Record
	r.SetSite("B009")
	r.SetTime(t)
	r.Session = bottle.Hour
	if v != 0 {
		r.SetInt(record.StrainFields(bottle.Hour)[0], v)
	}
	return r
}

// TestGapsAndDuplicates applies Hour records (1 s interval, times in
// seconds below) in the given order and checks outcomes, gaps and counters.
func TestGapsAndDuplicates(t *testing.T) {
	const s0 = 1_625_097_600_000
	sec := func(xs ...int64) []int64 {
		for i := range xs {
			xs[i] = s0 + xs[i]*1000
		}
		return xs
	}
	for _, tc := range []struct {
		name     string
		times    []int64
		outcomes string // s stored, l late, d duplicate
		gaps     string // in ms offsets from s0 / 1000 (seconds)
		counts   [5]int64
	}{
		{"in order", sec(0, 1, 2, 3), "ssss", "", [5]int64{4, 0, 0, 0, 0}},
		{"one gap", sec(0, 1, 5, 6), "ssss", "[2..4:3]", [5]int64{4, 0, 0, 1, 3}},
		{"duplicate", sec(0, 1, 1, 0), "ssdd", "", [5]int64{2, 2, 0, 0, 0}},
		{"fill gap start", sec(0, 5, 1), "ssl", "[2..4:3]", [5]int64{3, 0, 1, 1, 3}},
		{"fill gap end", sec(0, 5, 4), "ssl", "[1..3:3]", [5]int64{3, 0, 1, 1, 3}},
		{"split gap", sec(0, 6, 3), "ssl", "[1..2:2][4..5:2]", [5]int64{3, 0, 1, 2, 4}},
		{"fill whole gap", sec(0, 2, 1), "ssl", "", [5]int64{3, 0, 1, 0, 0}},
		{"before first", sec(10, 11, 5), "ssl", "[6..9:4]", [5]int64{3, 0, 1, 1, 4}},
		{"before first adjacent", sec(10, 9), "sl", "", [5]int64{2, 0, 1, 0, 0}},
		{"late duplicate", sec(0, 5, 3, 3), "ssld", "[1..2:2][4..4:1]", [5]int64{3, 1, 1, 2, 3}},
		// Off the 1 s grid: 1.5 s after the previous sample is less than two
		// intervals (no gap); 2.5 s is a gap of (2500/1000)-1 = 1 sample.
		{"off grid", []int64{s0, s0 + 1500, s0 + 4000}, "sss", "[2500..3000:1]", [5]int64{3, 0, 0, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSessState("B009", bottle.Hour)
			got := ""
			for _, tm := range tc.times {
				r := hourRec(tm, 1)
				out, err := s.apply(&r, nil, 0, 1, &fakeLoader{})
				if err != nil {
					t.Fatal(err)
				}
				got += map[outcome]string{stored: "s", storedLate: "l", duplicate: "d"}[out]
			}
			if got != tc.outcomes {
				t.Errorf("outcomes %q, want %q", got, tc.outcomes)
			}
			gl := ""
			for _, g := range s.gaps {
				a, b := g.prev+s.iv-s0, g.next-s.iv-s0
				if a%1000 == 0 && b%1000 == 0 {
					gl += fmt.Sprintf("[%d..%d:%d]", a/1000, b/1000, g.missing(s.iv))
				} else {
					gl += fmt.Sprintf("[%d..%d:%d]", a, b, g.missing(s.iv))
				}
			}
			if gl != tc.gaps {
				t.Errorf("gaps %s, want %s", gl, tc.gaps)
			}
			c := [5]int64{s.records, s.duplicates, s.late, s.gapCount, s.missing}
			if c != tc.counts {
				t.Errorf("records/duplicates/late/gaps/missing = %v, want %v", c, tc.counts)
			}
			// The dirty gap rows describe exactly the final gaps (deleted
			// ones only for keys that no longer exist).
			var b batch
			s.cut(&b)
			live := map[int64]bool{}
			for _, g := range s.gaps {
				live[g.prev+s.iv] = true
			}
			for _, g := range b.gaps {
				if g.deleted == live[g.start] {
					t.Errorf("gap row %+v: deleted=%v but live=%v", g, g.deleted, live[g.start])
				}
			}
		})
	}
}

// TestDuplicatesAcrossRestart: a state loaded from DuckDB finds the times of
// the days it may hold through the loader, once per day, and only for days
// up to the stored last time.
func TestDuplicatesAcrossRestart(t *testing.T) {
	const d0 = 1_625_097_600_000
	l := &fakeLoader{stored: []int64{d0, d0 + 1000, d0 + 2000}}
	s, err := loadState(stateRow{site: "B009", session: "Hour", has: true, first: d0, last: d0 + 2000, records: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    int64
		want outcome
	}{{d0 + 1000, duplicate}, {d0 + 3000, stored}, {d0 + 3000, duplicate}, {d0 + dayMs, stored}, {d0 - 1000, storedLate}} {
		r := hourRec(tc.t, 5)
		got, err := s.apply(&r, nil, 0, 1, l)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("time %d: %v, want %v", tc.t, got, tc.want)
		}
	}
	// Day d0 (stored rows) and the day before (before the stored last
	// time, may hold rows) are queried; day d0+1 (after it) is not.
	if l.queries != 2 {
		t.Errorf("%d loader queries, want 2", l.queries)
	}
}

// TestWindowFinalAndLateUpdates: with 1 min allowed lateness, a 10m window
// becomes final when the site's time reaches end + 1 min; later records
// still update it and count as late updates.
func TestWindowFinalAndLateUpdates(t *testing.T) {
	const w0 = 1_625_097_600_000 // a 10m (and 1d) boundary
	s := newSessState("B009", bottle.Hour)
	lateness := int64(60_000)
	apply := func(t64 int64, v int32) {
		r := hourRec(t64, v)
		if _, err := s.apply(&r, nil, lateness, 1, &fakeLoader{}); err != nil {
			t.Fatal(err)
		}
	}
	win := func() *window { return s.windows[winKey{0, w0}] }
	apply(w0+1000, 10)
	apply(w0+599_000, 30)
	apply(w0+600_000+59_000, 0) // all-null record in the next window, site time end+59 s
	if win().final {
		t.Fatal("final before end + lateness")
	}
	apply(w0+660_000, 0) // site time = end + lateness
	if !win().final {
		t.Fatal("not final at end + lateness")
	}
	apply(w0, 5) // late update: new first value
	w := win()
	a := w.ch[0]
	if w.n != 3 || a.nNull != 0 || a.min != 5 || a.max != 30 || a.first != 5 || a.last != 30 || a.sum != 45 || w.lateUpdates != 1 {
		t.Errorf("window = n %d, agg %+v, late updates %d", w.n, a, w.lateUpdates)
	}
	next := s.windows[winKey{0, w0 + 600_000}]
	if next.n != 2 || next.ch[0].nNull != 2 || next.final {
		t.Errorf("next window n %d n_null %d final %v", next.n, next.ch[0].nNull, next.final)
	}
	// A late record opening a window that is already past end + lateness:
	// final at once, and a late update.
	s2 := newSessState("B009", bottle.Hour)
	for _, tm := range []int64{w0 + 3_600_000, w0 + 1000} {
		r := hourRec(tm, 7)
		s2.apply(&r, nil, 0, 1, &fakeLoader{})
	}
	if w := s2.windows[winKey{0, w0}]; !w.final || w.lateUpdates != 1 {
		t.Errorf("late-opened window final %v late updates %d", w.final, w.lateUpdates)
	}
	var b batch
	s2.cut(&b)
	if len(b.windows) != 5 || !reflect.DeepEqual(b.states[0].records, int64(2)) {
		t.Errorf("cut: %d windows (want 5: 10m, 1h x2 + 1d), states %+v", len(b.windows), b.states)
	}
}

// countingLoader counts window loads and serves none from "DuckDB" except
// the ones it was given.
type countingLoader struct {
	fakeLoader
	windows map[winKey]*window
	loads   int
}

func (c *countingLoader) window(site string, s bottle.Session, width int, start int64) (*window, bool, error) {
	c.loads++
	w, ok := c.windows[winKey{width, start}]
	if !ok {
		return nil, false, nil
	}
	cp := *w
	return &cp, true, nil
}

// TestEviction: committed final windows and day indexes older than the
// site's time minus a day (windows) or two (days) leave memory, and a late
// record for them reloads from DuckDB instead of starting from zero.
func TestEviction(t *testing.T) {
	const d0 = 1_625_097_600_000
	s := newSessState("B009", bottle.Day)
	l := &countingLoader{windows: map[winKey]*window{}}
	for i := int64(0); i < 4*144; i++ { // four days of Day records
		r := hourRec(d0+i*600_000, int32(100+i))
		r.Session = bottle.Day
		r.SetInt(record.StrainFields(bottle.Day)[0], int32(100+i))
		if _, err := s.apply(&r, nil, 0, 1, l); err != nil {
			t.Fatal(err)
		}
	}
	var b batch
	s.cut(&b) // batch 1 is written...
	for _, wr := range b.windows {
		w := wr.w
		l.windows[winKey{w.width, w.start}] = &w // ...to "DuckDB"
	}
	l.stored = nil
	for d := int64(0); d < 4*144; d++ {
		l.stored = append(l.stored, d0+d*600_000)
	}
	before := len(s.windows)
	s.evictDays(d0+3*dayMs-2*dayMs, 1)
	s.evictWindows(d0+3*dayMs-dayMs, 1)
	if len(s.days) != 3 || len(s.windows) >= before || s.windows[winKey{2, d0}] != nil || s.windows[winKey{2, d0 + 3*dayMs}] == nil {
		t.Fatalf("after eviction: %d days, %d windows (from %d)", len(s.days), len(s.windows), before)
	}
	// A duplicate of day 0 is still a duplicate (index reloaded), and a
	// late record of day 0 at a new time updates the reloaded 1d window.
	dup := hourRec(d0, 1)
	dup.Session = bottle.Day
	if out, _ := s.apply(&dup, nil, 0, 2, l); out != duplicate {
		t.Fatalf("duplicate after eviction: %v", out)
	}
	late := hourRec(d0+300_000, 7)
	late.Session = bottle.Day
	if out, _ := s.apply(&late, nil, 0, 2, l); out != storedLate {
		t.Fatalf("late after eviction: %v", out)
	}
	w := s.windows[winKey{2, d0}]
	if w == nil || w.n != 145 || w.lateUpdates != 1 || !w.final || l.loads == 0 {
		t.Fatalf("reloaded 1d window: %+v, %d loads", w, l.loads)
	}
}
