package level2

import (
	"math"
	"testing"

	"github.com/earthscope/gtsm-stream/metadata"
)

// The worked example: level2.ipynb's first five 300 s rows for IV.TSM5,
// decimated counts and the linearized microstrain it prints (6 decimals),
// with the references and gap from bsm_metadata.txt.
func TestWorkedExampleTSM5(t *testing.T) {
	s := tsm5(t)
	for _, c := range []struct {
		counts [4]float64
		want   [4]float64
	}{
		{[4]float64{45325335, 55394828, 54709901, 45262210}, [4]float64{-236.716184, 96.037116, 44.349675, -196.500414}},
		{[4]float64{45325331, 55394829, 54709890, 45262207}, [4]float64{-236.716337, 96.037173, 44.349059, -196.500530}},
		{[4]float64{45325301, 55394831, 54709844, 45262174}, [4]float64{-236.717491, 96.037289, 44.346481, -196.501795}},
		{[4]float64{45325293, 55394839, 54709801, 45262134}, [4]float64{-236.717799, 96.037751, 44.344072, -196.503330}},
		{[4]float64{45325328, 55394853, 54709769, 45262104}, [4]float64{-236.716453, 96.038560, 44.342279, -196.504481}},
	} {
		got := Linearize(c.counts, s.Reference, s.Gap)
		for g := range got {
			if math.Abs(got[g]-c.want[g]) > 5e-7 {
				t.Errorf("counts %v gauge %d: %.7f microstrain, level2.ipynb prints %.6f", c.counts, g, got[g], c.want[g])
			}
		}
	}
}

func constCounts(v int32) [4]int32 { return [4]int32{v, v + 1, v + 2, v + 3} }

// feed pushes constant counts for seconds [from, to) except the holes
// (absent seconds) and fills (fill values on every gauge), and returns the
// times of the points.
func feed(t *testing.T, m *Machine, from, to int64, absent, fill [][2]int64) []Point {
	var pts []Point
	var err error
	in := func(x int64, rs [][2]int64) bool {
		for _, r := range rs {
			if x >= r[0] && x < r[1] {
				return true
			}
		}
		return false
	}
	for s := from; s < to; s++ {
		if in(s, absent) {
			continue
		}
		c := constCounts(50000000)
		if in(s, fill) {
			c = [4]int32{FillValue, FillValue, FillValue, FillValue}
		}
		if pts, err = m.PushStrain(s, c, pts); err != nil {
			t.Fatal(err)
		}
	}
	return pts
}

// Segmenting and alignment on constant data, where every point must equal
// the input exactly (x - first value = 0 through the whole cascade).
func TestSegments(t *testing.T) {
	const t0 = 1672531200 // a 5-minute boundary
	for _, c := range []struct {
		name         string
		from, to     int64
		absent, fill [][2]int64
		want         []int64 // point times, relative to t0
	}{
		{"aligned start", t0, t0 + 901, nil, nil, []int64{0, 300, 600, 900}},
		{"unaligned start drops up to 299 s", t0 + 7, t0 + 901, nil, nil, []int64{300, 600, 900}},
		{"hole of 3600 absent seconds is interpolated", t0, t0 + 4501, [][2]int64{{t0 + 400, t0 + 4000}}, nil, []int64{0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600, 3900, 4200, 4500}},
		{"hole of 3601 absent seconds: a new segment", t0, t0 + 4801, [][2]int64{{t0 + 400, t0 + 4001}}, nil, []int64{0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600, 3900, 4200, 4500, 4800}},
		// 5000 fill values from 400: 400..3999 interpolated (points to 3900),
		// 4000..5399 dropped, the new segment starts at 5400 (aligned).
		{"5000 fill values", t0, t0 + 6001, nil, [][2]int64{{t0 + 400, t0 + 5400}}, []int64{0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600, 3900, 5400, 5700, 6000}},
		// 5001: 5401 is the first valid second, the segment starts at 5700.
		{"5001 fill values", t0, t0 + 6001, nil, [][2]int64{{t0 + 400, t0 + 5401}}, []int64{0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600, 3900, 5700, 6000}},
		{"leading fill values are dropped", t0, t0 + 901, nil, [][2]int64{{t0, t0 + 10}}, []int64{300, 600, 900}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New(ConfigFrom(nil))
			pts := feed(t, m, c.from, c.to, c.absent, c.fill)
			if len(pts) != len(c.want) {
				var got []int64
				for _, p := range pts {
					got = append(got, p.Time-t0)
				}
				t.Fatalf("points at %v, want %v", got, c.want)
			}
			for i, p := range pts {
				if p.Time != t0+c.want[i] {
					t.Errorf("point %d at %d, want %d", i, p.Time-t0, c.want[i])
				}
				for g, v := range p.Counts {
					if v != float64(constCounts(50000000)[g]) {
						t.Errorf("point %d gauge %d: %v, want the constant input", i, g, v)
					}
					if !math.IsNaN(p.Microstrain[g]) {
						t.Errorf("no metadata, yet microstrain %v", p.Microstrain[g])
					}
				}
			}
		})
	}
}

// In the "3601 absent seconds" case above the points go on at 4200... only
// because the second after the hole happens to be aligned; this checks the
// decimation really restarted: a ramp's output right after the hole equals
// the new segment's first value.
func TestNewSegmentRestartsFilter(t *testing.T) {
	const t0 = 1672531200
	m := New(ConfigFrom(nil))
	var pts []Point
	var err error
	for s := int64(t0); s < t0+8000; s++ {
		if s >= t0+400 && s < t0+4001 {
			continue
		}
		v := int32(50000000 + (s - t0))
		if pts, err = m.PushStrain(s, [4]int32{v, v, v, v}, pts); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pts {
		if p.Time == t0+4200 {
			if p.Counts[0] != 50000000+4200 {
				t.Fatalf("first point of the new segment %v, want its first sample 50004200", p.Counts[0])
			}
			return
		}
	}
	t.Fatal("no point at the start of the new segment")
}

func TestPushErrors(t *testing.T) {
	m := New(ConfigFrom(nil))
	if _, err := m.PushStrain(100, constCounts(1), nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		t    int64
	}{{"same second", 100}, {"earlier second", 99}} {
		if _, err := m.PushStrain(c.t, constCounts(1), nil); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if _, err := m.PushPressure(1800, 1000, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PushPressure(1800, 1000, nil); err == nil {
		t.Error("pressure at the same time: no error")
	}
}

func TestPressure(t *testing.T) {
	st := tsm5(t)
	for _, c := range []struct {
		name  string
		times []int64
		hpa   []float64
		want  []int64 // correction times
	}{
		// The newest sample's own time (3600) comes with it, not with the next sample.
		{"30 min samples", []int64{0, 1800, 3600}, []float64{1000, 1001.8, 1000}, []int64{0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600}},
		{"unaligned samples", []int64{100, 1900}, []float64{1000, 1001.8}, []int64{300, 600, 900, 1200, 1500, 1800}},
		{"a fill value is skipped", []int64{0, 1800, 3600}, []float64{1000, math.NaN(), 1003.6}, []int64{0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600}},
		{"gap over 3 h is not bridged", []int64{0, 1800, 1800 + 3*3600 + 1}, []float64{1000, 1000, 1000}, []int64{0, 300, 600, 900, 1200, 1500, 1800}},
		{"a sample after a gap gives its own time", []int64{0, 3*3600 + 1800}, []float64{1000, 1002}, []int64{0, 3*3600 + 1800}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New(ConfigFrom(&st))
			var out []AtmpPoint
			var err error
			for i := range c.times {
				if out, err = m.PushPressure(c.times[i], c.hpa[i], out); err != nil {
					t.Fatal(err)
				}
			}
			if len(out) != len(c.want) {
				t.Fatalf("%d corrections %v, want at %v", len(out), out, c.want)
			}
			for i, a := range out {
				if a.Time != c.want[i] {
					t.Errorf("correction %d at %d, want %d", i, a.Time, c.want[i])
				}
				for g := range a.Correction {
					if a.Correction[g] != a.HPa*st.Atmp[g] {
						t.Errorf("correction %v, want hPa %v times %v", a.Correction[g], a.HPa, st.Atmp[g])
					}
				}
			}
			if c.name == "30 min samples" && math.Abs(out[3].HPa-1000.9) > 1e-9 {
				t.Errorf("interpolated pressure at 900 s %v, want 1000.9", out[3].HPa)
			}
			// At a sample's own time the pressure is the sample, exactly.
			for i, tt := range c.times {
				for _, a := range out {
					if a.Time == tt && !math.IsNaN(c.hpa[i]) && a.HPa != c.hpa[i] {
						t.Errorf("pressure at the sample time %d: %v, want %v", tt, a.HPa, c.hpa[i])
					}
				}
			}
		})
	}
	m := New(ConfigFrom(nil)) // no metadata: no corrections
	out, _ := m.PushPressure(0, 1000, nil)
	out, _ = m.PushPressure(1800, 1000, out)
	if len(out) != 0 {
		t.Errorf("no response coefficients, yet %d corrections", len(out))
	}
}

// A new metadata version applies from the next point on.
func TestSetConfig(t *testing.T) {
	st := tsm5(t)
	m := New(ConfigFrom(nil))
	const t0 = 1672531200
	pts := feed(t, m, t0, t0+301, nil, nil)
	m.SetConfig(ConfigFrom(&st))
	pts = append(pts, feed(t, m, t0+301, t0+601, nil, nil)...)
	if len(pts) != 3 || !math.IsNaN(pts[1].Microstrain[0]) || math.IsNaN(pts[2].Microstrain[0]) || len(pts[2].Regional) != len(st.Matrices) {
		t.Fatalf("points %+v: want NaN microstrain before the metadata and values after", pts)
	}
	if want := Linearize(pts[2].Counts, st.Reference, st.Gap); pts[2].Microstrain != want {
		t.Errorf("microstrain %v, want %v", pts[2].Microstrain, want)
	}
	_ = metadata.Diameter
}

func samePoints(a, b []Point) bool {
	if len(a) != len(b) {
		return false
	}
	eq := func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) }
	for i := range a {
		if a[i].Time != b[i].Time || len(a[i].Regional) != len(b[i].Regional) || a[i].Interpolated != b[i].Interpolated {
			return false
		}
		for g := 0; g < 4; g++ {
			if !eq(a[i].Counts[g], b[i].Counts[g]) || !eq(a[i].Microstrain[g], b[i].Microstrain[g]) || !eq(a[i].Offset[g], b[i].Offset[g]) || !eq(a[i].Tide[g], b[i].Tide[g]) || !eq(a[i].Trend[g], b[i].Trend[g]) {
				return false
			}
		}
		for j := range a[i].Regional {
			for k := 0; k < 3; k++ {
				if !eq(a[i].Regional[j][k], b[i].Regional[j][k]) {
					return false
				}
			}
		}
	}
	return true
}

// Saving the state and continuing from a restored copy, at many points of
// the oracle input (inside holes and fill runs too), gives bit-identical
// output to an uninterrupted run.
func TestStateRestore(t *testing.T) {
	s := makeSynth(t)
	want, wantAtm, _ := s.run(t, 0)
	for _, every := range []int{997, 7919} {
		got, gotAtm, maxState := s.run(t, every)
		if !samePoints(got, want) {
			t.Errorf("restoring every %d pushes changed the points", every)
		}
		if len(gotAtm) != len(wantAtm) {
			t.Errorf("restoring every %d pushes: %d pressure corrections, want %d", every, len(gotAtm), len(wantAtm))
		}
		for i := range gotAtm {
			if gotAtm[i] != wantAtm[i] {
				t.Errorf("restoring every %d pushes: pressure correction %d %+v, want %+v", every, i, gotAtm[i], wantAtm[i])
				break
			}
		}
		t.Logf("restore every %d pushes: largest state %d bytes", every, maxState)
	}
	m := New(ConfigFrom(nil))
	if err := m.UnmarshalBinary([]byte("not gob")); err == nil {
		t.Error("garbage state restored")
	}
}

// TestStateSize measures the marshaled state: in steady running, and at its
// worst, with a hole of InterpLimit missing seconds open on every gauge.
func TestStateSize(t *testing.T) {
	st := tsm5(t)
	const t0 = 1672531200
	m := New(ConfigFrom(&st))
	// Two days of a tide-like signal: the offset window is full of
	// differences that are not zero (gob writes zeros in one byte).
	var err error
	for s := int64(t0); s < t0+2*86400; s++ {
		v := int32(50000000 + 300*math.Sin(float64(s)*2*math.Pi/44714))
		if _, err = m.PushStrain(s, [4]int32{v, v + 7, v - 3, v + 11}, nil); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	steady := len(b)
	feed(t, m, t0+2*86400, t0+2*86400+DefaultInterpLimit, nil, [][2]int64{{t0 + 2*86400, t0 + 2*86400 + DefaultInterpLimit}})
	if n := len(m.st.Buf); n != DefaultInterpLimit {
		t.Fatalf("buffer holds %d seconds inside a %d s hole, want %d", n, DefaultInterpLimit, DefaultInterpLimit)
	}
	b, _ = m.MarshalBinary()
	worst := len(b)
	// Past the limit nothing more is buffered, however long the hole.
	feed(t, m, t0+2*86400+DefaultInterpLimit, t0+3*86400, nil, [][2]int64{{0, t0 + 3*86400}})
	if n := len(m.st.Buf); n != DefaultInterpLimit {
		t.Fatalf("buffer holds %d seconds after a day-long hole, want %d", n, DefaultInterpLimit)
	}
	b, _ = m.MarshalBinary()
	t.Logf("state: %d bytes steady, %d bytes with a %d s hole open, %d bytes after a day-long hole", steady, worst, DefaultInterpLimit, len(b))
	if steady > 16000 || worst > 260000 || len(b) > worst {
		t.Errorf("state %d / %d / %d bytes: over the bounds docs/level2.md states (16000 steady, 260000 worst)", steady, worst, len(b))
	}
}
