package level2

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/metadata"
)

// synth is the generated test input: >= 3 days of 1 s gauge counts (tides
// from five constituents, a trend, noise, fill-value runs, absent seconds,
// step offsets) and 30 min pressure counts.
type synth struct {
	t0      int64
	n       int64
	counts  map[int64][4]int32 // absent seconds are not in the map
	pressT  []int64
	pressC  []int32
	station metadata.Station
}

func tsm5(t testing.TB) metadata.Station {
	t.Helper()
	st, err := metadata.LoadFiles([]string{"../metadata/testdata/bsm_metadata.txt", "../metadata/testdata/TSM5.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Site == "TSM5" {
			return s
		}
	}
	t.Fatal("no TSM5 in the test table")
	return metadata.Station{}
}

// Events, in seconds from the start.
const (
	synthDays    = 3.5
	fillShortAt  = 20000 // 5 s of fill values on every gauge
	fillOneAt    = 40000 // 3 s on gauge 2 only
	missHourAt   = 60000 // 3600 absent seconds: exactly the interpolation limit
	fillLongAt   = 100000
	fillLongLen  = 5000 // beyond the limit: 1400 s dropped, a new segment
	fillG0At     = 150000
	fillG0Len    = 4000 // gauge 0 only, beyond the limit
	stepG1At     = 200000
	stepG3At     = 250000
	shortSegAt   = 120000 // 5000 fill values, 450 valid seconds (one short segment), 5000 fill values
	overlapAt    = 170000 // gauge 0: 4000 s of fill; gauge 1: 3000 s from +1000; gauge 2: 200 s from +3500
	missLongAt   = 270000 // 7200 absent seconds
	missLongLen  = 7200
	synthOffset0 = 7 // the data start 7 s after midnight: start_df_at_300s drops 293 s
)

func makeSynth(t testing.TB) *synth {
	s := &synth{t0: 1672531200 + synthOffset0, n: int64(synthDays * 86400), counts: map[int64][4]int32{}, station: tsm5(t)}
	base := [4]float64{45325335, 55394828, 54709901, 45262210}
	// period (h), amplitude (counts) per gauge, phase (rad) per gauge
	cons := []struct {
		hours float64
		amp   [4]float64
		ph    [4]float64
	}{
		{12.4206012, [4]float64{310, 330, 365, 300}, [4]float64{0.55, 2.85, -2.25, -0.30}},
		{12.0, [4]float64{145, 182, 165, 160}, [4]float64{0.57, 2.84, -2.24, -0.27}},
		{12.6583482, [4]float64{59, 56, 71, 53}, [4]float64{0.55, 2.83, -2.26, -0.36}},
		{25.8193417, [4]float64{160, 206, 162, 256}, [4]float64{-2.93, -0.63, 2.00, 2.61}},
		{23.9344697, [4]float64{219, 267, 200, 310}, [4]float64{-2.92, -0.64, 1.95, 2.61}},
	}
	trend := [4]float64{-0.0021, 0.0008, -0.0035, -0.0012} // counts per second
	rng := uint64(88172645463325252)
	noise := func() float64 { // xorshift: deterministic +-1.5 counts
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return float64(rng%3001)/1000 - 1.5
	}
	for i := int64(0); i < s.n; i++ {
		if (i >= missHourAt && i < missHourAt+3600) || (i >= missLongAt && i < missLongAt+missLongLen) {
			continue
		}
		tt := float64(s.t0 + i)
		var c [4]int32
		for g := range c {
			v := base[g] + trend[g]*float64(i) + noise()
			for _, k := range cons {
				v += k.amp[g] * math.Cos(2*math.Pi*tt/(k.hours*3600)+k.ph[g])
			}
			if g == 1 && i >= stepG1At {
				v += 3000
			}
			if g == 3 && i >= stepG3At {
				v -= 2000
			}
			c[g] = int32(math.Round(v))
		}
		switch {
		case i >= fillShortAt && i < fillShortAt+5, i >= fillLongAt && i < fillLongAt+fillLongLen:
			c = [4]int32{FillValue, FillValue, FillValue, FillValue}
		case i >= fillOneAt && i < fillOneAt+3:
			c[2] = FillValue
		case i >= shortSegAt && i < shortSegAt+5000, i >= shortSegAt+5450 && i < shortSegAt+10450:
			c = [4]int32{FillValue, FillValue, FillValue, FillValue}
		case i >= overlapAt && i < overlapAt+4000:
			c[0] = FillValue
			if i >= overlapAt+1000 {
				c[1] = FillValue
			}
			if i >= overlapAt+3500 && i < overlapAt+3700 {
				c[2] = FillValue
			}
		case i >= fillG0At && i < fillG0At+fillG0Len:
			c[0] = FillValue
		}
		s.counts[s.t0+i] = c
	}
	// Pressure every 30 min from an hour before the strain to an hour after.
	k := 0
	for pt := (s.t0/1800 - 2) * 1800; pt <= s.t0+s.n+3600; pt += 1800 {
		hpa := 1013.25 + 4*math.Sin(2*math.Pi*float64(pt)/86400) + 1e-5*float64(pt-s.t0)
		c := int32(math.Round(hpa * 1000))
		if k == 20 {
			c = FillValue
		}
		s.pressT = append(s.pressT, pt)
		s.pressC = append(s.pressC, c)
		k++
	}
	return s
}

// run pushes the input through one machine; every restoreEvery pushes
// (0: never) the machine's state is marshaled and a fresh machine restored
// from it continues. It returns the points, the pressure corrections and
// the largest marshaled state in bytes.
func (s *synth) run(t testing.TB, restoreEvery int) ([]Point, []AtmpPoint, int) {
	return s.runObserved(t, restoreEvery, nil)
}

func (s *synth) runObserved(t testing.TB, restoreEvery int, onSecond func(int64, [4]float64)) ([]Point, []AtmpPoint, int) {
	cfg := ConfigFrom(&s.station)
	m := New(cfg)
	m.onSecond = onSecond
	var pts []Point
	var atm []AtmpPoint
	maxState := 0
	pushes := 0
	pi := 0
	var err error
	for i := int64(0); i < s.n; i++ {
		tt := s.t0 + i
		// Interleave pressure in time order with the strain.
		for pi < len(s.pressT) && s.pressT[pi] <= tt {
			hpa := float64(s.pressC[pi]) * 0.001
			if s.pressC[pi] == FillValue {
				hpa = math.NaN()
			}
			if atm, err = m.PushPressure(s.pressT[pi], hpa, atm); err != nil {
				t.Fatal(err)
			}
			pi++
		}
		c, ok := s.counts[tt]
		if !ok {
			continue
		}
		if pts, err = m.PushStrain(tt, c, pts); err != nil {
			t.Fatal(err)
		}
		pushes++
		if restoreEvery > 0 && pushes%restoreEvery == 0 {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			maxState = max(maxState, len(b))
			m = New(cfg)
			m.onSecond = onSecond
			if err := m.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	for ; pi < len(s.pressT); pi++ {
		hpa := float64(s.pressC[pi]) * 0.001
		if s.pressC[pi] == FillValue {
			hpa = math.NaN()
		}
		if atm, err = m.PushPressure(s.pressT[pi], hpa, atm); err != nil {
			t.Fatal(err)
		}
	}
	return pts, atm, maxState
}

func (s *synth) writeOracleInput(t *testing.T, dir string) {
	// The tide on the 300 s grid from tide_oracle.py, for oracle.py.
	tdir := filepath.Join(dir, "tide")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		t.Fatal(err)
	}
	first := (s.t0 + Period - 1) / Period * Period
	tc := tideCase{name: "oracle grid", start: time.Unix(first, 0).UTC().Format(time.RFC3339),
		n: int((s.t0+s.n-first)/Period) + 1, period: Period}
	writeTideParams(t, tdir, tc, readmeConstituents(&s.station), s.station.Longitude)
	if out, err := exec.Command("/usr/bin/python3", "tide_oracle.py", tdir).CombinedOutput(); err != nil {
		t.Fatalf("tide_oracle.py: %v\n%s", err, out)
	}
	f, err := os.Create(filepath.Join(dir, "strain.csv"))
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"time", "ch0", "ch1", "ch2", "ch3"})
	for i := int64(0); i < s.n; i++ {
		tt := s.t0 + i
		rec := []string{strconv.FormatInt(tt, 10), "", "", "", ""}
		if c, ok := s.counts[tt]; ok {
			for g := range c {
				rec[g+1] = strconv.Itoa(int(c[g]))
			}
		}
		w.Write(rec)
	}
	w.Flush()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = os.Create(filepath.Join(dir, "pressure.csv"))
	if err != nil {
		t.Fatal(err)
	}
	w = csv.NewWriter(f)
	w.Write([]string{"time", "counts"})
	for i := range s.pressT {
		w.Write([]string{strconv.FormatInt(s.pressT[i], 10), strconv.Itoa(int(s.pressC[i]))})
	}
	w.Flush()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var mats [][2]any
	for _, m := range s.station.Matrices {
		mats = append(mats, [2]any{m.Name, m.Values})
	}
	params := map[string]any{
		"reference": s.station.Reference, "gap": s.station.Gap, "matrices": mats, "atmp": s.station.Atmp,
		"offset_window": DefaultOffsetWindow, "offset_multiplier": DefaultOffsetMultiplier,
		"offset_percentile": DefaultOffsetPercentile, "max_pressure_gap": DefaultMaxPressureGap,
		"tide_csv": filepath.Join(tdir, "tide.csv"),
	}
	b, _ := json.Marshal(params)
	if err := os.WriteFile(filepath.Join(dir, "params.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCSV(t *testing.T, path string) ([]string, [][]float64) {
	return testutil.ReadFloatCSV(t, path)
}

// processingPy is EarthScope's processing.py in the shared reference
// material (../shared beside the repository; testutil.Shared skips a fresh
// clone without it, and fails under CI).
func processingPy(t *testing.T) string {
	return filepath.Join(testutil.Shared(t, "reference/earthscopestraintools"), "processing.py")
}

// requirePython returns Debian's python3 with numpy, scipy and pandas.
func requirePython(t *testing.T) string {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy, scipy, pandas").Run(); err != nil {
		t.Fatalf("%s with numpy, scipy and pandas is required (apt-get install python3-numpy python3-scipy python3-pandas): %v", py, err)
	}
	return py
}

// TestOracle runs processing.py's interpolate, decimate_1s_to_300s,
// linearize, apply_calibration_matrix, calculate_pressure_correction and
// calculate_offsets on the generated input and requires the machine's
// streaming output to equal theirs within 1e-6 microstrain.
func TestOracle(t *testing.T) {
	testutil.Long(t)
	py := requirePython(t)
	ref := processingPy(t)
	s := makeSynth(t)
	dir := t.TempDir()
	if d := os.Getenv("LEVEL2_ORACLE_DIR"); d != "" {
		dir = d // keep the oracle's input and output for inspection
	}
	s.writeOracleInput(t, dir)
	cmd := exec.Command(py, "oracle.py", ref, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oracle.py: %v\n%s", err, out)
	}
	seconds := map[int64][4]float64{}
	pts, atm, _ := s.runObserved(t, 0, func(tt int64, v [4]float64) { seconds[tt] = v })

	// interpolate(): the 1 s seconds that survive (every gauge known) and
	// their interpolated counts. interp.csv has the seconds it had to touch;
	// every other second must pass unchanged.
	_, irows := readCSV(t, filepath.Join(dir, "interp.csv"))
	touched := map[int64][]float64{}
	for _, r := range irows {
		touched[int64(r[0])] = r[1:]
	}
	var maxInterp float64
	kept, nInterp := 0, 0
	for i := int64(0); i < s.n; i++ {
		tt := s.t0 + i
		v, ok := seconds[tt]
		want, isTouched := touched[tt]
		if !isTouched {
			c, present := s.counts[tt]
			if !present {
				t.Fatalf("second %d: absent from the input but not touched by interpolate()", tt)
			}
			want = []float64{float64(c[0]), float64(c[1]), float64(c[2]), float64(c[3])}
		}
		if math.IsNaN(want[0]) || math.IsNaN(want[1]) || math.IsNaN(want[2]) || math.IsNaN(want[3]) {
			if ok {
				t.Fatalf("second %d: the stream decimates it, interpolate() leaves a gauge NaN", tt)
			}
			continue
		}
		if !ok {
			t.Fatalf("second %d: interpolate() fills it, the stream drops it", tt)
		}
		kept++
		if isTouched {
			nInterp++
		}
		for g := 0; g < 4; g++ {
			maxInterp = max(maxInterp, math.Abs(v[g]-want[g]))
		}
	}
	if kept != len(seconds) {
		t.Fatalf("interpolate() keeps %d seconds, the stream %d", kept, len(seconds))
	}
	t.Logf("1 s seconds kept: %d of %d, %d of them interpolated; max |stream - interpolate()| %.3g counts", kept, s.n, nInterp, maxInterp)
	if nInterp < 10000 {
		t.Errorf("only %d interpolated seconds compared", nInterp)
	}
	if maxInterp > 1e-6 {
		t.Errorf("interpolated counts differ by %g", maxInterp)
	}

	head, rows := readCSV(t, filepath.Join(dir, "gauge.csv"))
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	byTime := map[int64]Point{}
	for _, p := range pts {
		byTime[p.Time] = p
	}
	const tolMicro = 1e-6
	const tolCounts = 1e-6 * 0.087 / 0.0001 / 1e6 * 1e8 * 0.2 // counts equivalent of 1e-6 microstrain, with margin (~0.017)
	var maxCounts, maxMicro, maxReg, maxOff, maxTide, maxTrend float64
	valid := 0
	for _, r := range rows {
		tt := int64(r[col["time"]])
		p, ok := byTime[tt]
		if math.IsNaN(r[col["counts_CH0"]]) {
			if ok {
				t.Errorf("%d: the stream has a point, processing.py has none", tt)
			}
			continue
		}
		valid++
		if !ok {
			t.Errorf("%d: processing.py has a point, the stream none", tt)
			continue
		}
		delete(byTime, tt)
		for g := 0; g < 4; g++ {
			ch := fmt.Sprintf("CH%d", g)
			maxCounts = max(maxCounts, math.Abs(p.Counts[g]-r[col["counts_"+ch]]))
			maxMicro = max(maxMicro, math.Abs(p.Microstrain[g]-r[col["micro_"+ch]]))
			maxOff = max(maxOff, math.Abs(p.Offset[g]-r[col["off_"+ch]]))
			maxTide = max(maxTide, math.Abs(p.Tide[g]-r[col["tide_"+ch]]))
			maxTrend = max(maxTrend, math.Abs(p.Trend[g]-r[col["trend_"+ch]]))
		}
		for i, m := range s.station.Matrices {
			for j := 0; j < 3; j++ {
				maxReg = max(maxReg, math.Abs(p.Regional[i][j]-r[col[fmt.Sprintf("reg_%s_%d", m.Name, j)]]))
			}
		}
	}
	for tt := range byTime {
		t.Errorf("%d: the stream has a point outside processing.py's index", tt)
	}
	t.Logf("300 s points: %d valid of %d rows; max |stream - processing.py|: counts %.3g, microstrain %.3g, regional %.3g, offsets %.3g, tide %.3g, trend %.3g",
		valid, len(rows), maxCounts, maxMicro, maxReg, maxOff, maxTide, maxTrend)
	if maxTide > 1e-9 || math.IsNaN(maxTide) || maxTrend > tolMicro || math.IsNaN(maxTrend) {
		t.Errorf("tide_c differs from tide_oracle.py by %g (tol 1e-9), trend_c from calculate_linear_trend_correction by %g (tol %g)", maxTide, maxTrend, tolMicro)
	}
	if valid < 900 {
		t.Errorf("only %d valid points: the input should give over 900", valid)
	}
	if maxCounts > tolCounts || maxMicro > tolMicro || maxReg > tolMicro || maxOff > tolMicro {
		t.Errorf("differences above tolerance: counts %g (tol %g), microstrain %g, regional %g, offsets %g (tol %g)",
			maxCounts, tolCounts, maxMicro, maxReg, maxOff, tolMicro)
	}
	// The 450 s segment between two long fill runs gives its points (its
	// first aligned second is 93 s in) and they matched above.
	for _, off := range []int64{5093, 5393} {
		found := false
		for _, p := range pts {
			found = found || p.Time == s.t0+shortSegAt+off
		}
		if !found {
			t.Errorf("no point at %d in the short segment", s.t0+shortSegAt+off)
		}
	}
	// Quality: EarthScope's Timeseries.decimate_1s_to_300s flags gauge g of
	// a 300 s point "i" when the 1 s sample at that time was missing (fill
	// value or absent) and was interpolated.
	nInterpPts := 0
	for _, p := range pts {
		c, present := s.counts[p.Time]
		for g := 0; g < 4; g++ {
			want := !present || c[g] == FillValue
			if got := p.Interpolated&(1<<g) != 0; got != want {
				t.Errorf("point %d gauge %d: interpolated flag %v, want %v", p.Time, g, got, want)
			}
			if want {
				nInterpPts++
			}
		}
	}
	if nInterpPts < 20 {
		t.Errorf("only %d interpolated gauge values among the points", nInterpPts)
	}
	// The trend correction must be more than zeros.
	if last := pts[len(pts)-1]; math.Abs(last.Trend[0]) < 0.01 {
		t.Errorf("trend_c at the end %v: the generated trend was not fitted", last.Trend)
	}
	// The offsets must have caught the two steps (else the comparison is of zeros).
	last := pts[len(pts)-1]
	if last.Offset[1] < 0.1 || last.Offset[3] > -0.05 {
		t.Errorf("offsets at the end %v: the +3000 count step on CH1 and -2000 on CH3 were not detected", last.Offset)
	}

	_, arows := readCSV(t, filepath.Join(dir, "atmp.csv"))
	if len(arows) != len(atm) {
		t.Fatalf("pressure corrections: stream %d, processing.py %d", len(atm), len(arows))
	}
	var maxAtmp float64
	for i, r := range arows {
		if atm[i].Time != int64(r[0]) {
			t.Fatalf("pressure correction %d at %d, processing.py at %d", i, atm[i].Time, int64(r[0]))
		}
		for g := 0; g < 4; g++ {
			maxAtmp = max(maxAtmp, math.Abs(atm[i].Correction[g]-r[2+g]))
		}
	}
	t.Logf("pressure corrections: %d; max |stream - processing.py| %.3g microstrain", len(atm), maxAtmp)
	if maxAtmp > tolMicro {
		t.Errorf("pressure correction differs by %g", maxAtmp)
	}
}
