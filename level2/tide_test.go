package level2

import (
	"encoding/json"
	"fmt"
	"math"
	"math/cmplx"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/metadata"
)

func station(t testing.TB, site string) metadata.Station {
	t.Helper()
	st, err := metadata.LoadFiles([]string{"../metadata/testdata/bsm_metadata.txt",
		"../metadata/testdata/TSM5.README.txt", "../metadata/testdata/B004.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Site == site {
			return s
		}
	}
	t.Fatalf("no %s in the test table", site)
	return metadata.Station{}
}

func mustTide(t testing.TB, s *metadata.Station) *Tide {
	t.Helper()
	tide, err := TideFrom(s)
	if err != nil || tide == nil {
		t.Fatalf("TideFrom(%s): %v %v", s.Site, tide, err)
	}
	return tide
}

// tideCase is a series the Go model and an external implementation both
// compute: n points period seconds apart from start, for a station of the
// test metadata (site) or for the constituents of synth.
type tideCase struct {
	name   string
	site   string
	start  string
	n      int
	period int64
	// cons, when set, are the constituents (and lon the longitude) instead
	// of a station's or synthTides.
	cons [][5]string
	lon  float64
}

// oneBandCases are every constituent set of one tidal band a README can
// hold (amplitudes written with 3 decimals, as READMEs do: hartid reads
// fixed columns) (the non-empty subsets of O1 P1 K1 and of M2 N2 S2), each on all four
// gauges with different amplitudes and phases: hartid gives the empty band
// the admittance of the nearest given constituent.
func oneBandCases(days int) []tideCase {
	bands := [][][3]string{
		{{"O1", "1-1 0 0 0 0", "7.4"}, {"P1", "1 1-2 0 0 0", "3.4"}, {"K1", "1 1 0 0 0 0", "10.2"}},
		{{"N2", "2-1 0 1 0 0", "2.8"}, {"M2", "2 0 0 0 0 0", "14.3"}, {"S2", "2 2-2 0 0 0", "6.6"}},
	}
	var out []tideCase
	for bi, band := range bands {
		for mask := 1; mask < 8; mask++ {
			var cons [][5]string
			var names []string
			for k, c := range band {
				if mask&(1<<k) == 0 {
					continue
				}
				names = append(names, c[0])
				for g := 0; g < 4; g++ {
					a, _ := strconv.ParseFloat(c[2], 64)
					cons = append(cons, [5]string{"CH" + strconv.Itoa(g), c[0], c[1],
						fmt.Sprintf("%.3f", a*(1+0.21*float64(g))), readmeNumber(float64(-170 + 83*g + 17*k))})
				}
			}
			lon := []float64{12.60252, -124.42701}[bi]
			out = append(out, tideCase{name: fmt.Sprintf("one band %s, %d days", strings.Join(names, "+"), days),
				start: "2023-01-01T00:00:00Z", n: days * 288, period: 300, cons: cons, lon: lon})
		}
	}
	return out
}

func (c tideCase) t0(t testing.TB) int64 {
	t.Helper()
	s, err := time.Parse(time.RFC3339, c.start)
	if err != nil {
		t.Fatal(err)
	}
	return s.Unix()
}

// synthTides exercises what the six README constituents cannot: more than
// three constituents in a band (the spline), the long-period band (and its
// 180° convention), a western longitude, a gauge with one band only.
// Channel, name, Doodson number, amplitude (nanostrain), local phase.
var synthTides = [][5]string{
	{"CH0", "Mm", "0 1 0-1 0 0", "1.5", "10.0"}, {"CH0", "Mf", "0 2 0 0 0 0", "2.5", "-20.0"}, {"CH0", "Ssa", "0 0 2 0 0 0", "0.8", "35.0"},
	{"CH0", "Q1", "1-2 0 1 0 0", "1.9", "-150.0"}, {"CH0", "O1", "1-1 0 0 0 0", "9.5", "-160.0"}, {"CH0", "P1", "1 1-2 0 0 0", "4.1", "-171.0"},
	{"CH0", "K1", "1 1 0 0 0 0", "13.2", "-168.0"}, {"CH0", "J1", "1 2 0-1 0 0", "0.9", "-140.0"}, {"CH0", "OO1", "1 3 0 0 0 0", "0.55", "-120.0"},
	{"CH0", "2N2", "2-2 0 2 0 0", "0.6", "20.0"}, {"CH0", "N2", "2-1 0 1 0 0", "3.2", "25.0"}, {"CH0", "M2", "2 0 0 0 0 0", "16.1", "31.0"},
	{"CH0", "S2", "2 2-2 0 0 0", "7.4", "40.0"}, {"CH0", "K2", "2 2 0 0 0 0", "1.8", "45.0"},
	{"CH1", "O1", "1-1 0 0 0 0", "6.0", "100.0"}, {"CH1", "K1", "1 1 0 0 0 0", "8.0", "95.0"},
	{"CH1", "M2", "2 0 0 0 0 0", "12.0", "-60.0"}, {"CH1", "S2", "2 2-2 0 0 0", "5.5", "-50.0"},
}

const synthLongitude = -117.6543

// model returns the Go model of the case and its constituents as the README
// strings get_tidal_params keeps, and the longitude.
func (c tideCase) model(t *testing.T) (*Tide, [][5]string, float64) {
	t.Helper()
	switch {
	case c.cons != nil:
		return tideFromStrings(t, c.lon, c.cons), c.cons, c.lon
	case c.site != "":
		s := station(t, c.site)
		return mustTide(t, &s), readmeConstituents(&s), s.Longitude
	}
	return tideFromStrings(t, synthLongitude, synthTides), synthTides, synthLongitude
}

// readmeConstituents are the station's constituents as the README strings
// get_tidal_params keeps: channel, name, Doodson number, amplitude, phase.
func readmeConstituents(s *metadata.Station) [][5]string {
	var cons [][5]string
	for _, k := range s.Tides {
		cons = append(cons, [5]string{"CH" + strconv.Itoa(k.Gauge), k.Name, k.Doodson, readmeNumber(k.Amplitude), readmeNumber(k.Phase)})
	}
	return cons
}

// tideFromStrings builds the model of constituents given as those strings.
func tideFromStrings(t *testing.T, lon float64, cons [][5]string) *Tide {
	t.Helper()
	var g [4][]TideConstituent
	for _, k := range cons {
		n, err := ParseDoodson(k[2])
		if err != nil {
			t.Fatal(err)
		}
		a, _ := strconv.ParseFloat(k[3], 64)
		ph, _ := strconv.ParseFloat(k[4], 64)
		ch := int(k[0][2] - '0')
		g[ch] = append(g[ch], TideConstituent{Doodson: n, Amplitude: a, Phase: ph})
	}
	tide, err := NewTide(lon, g)
	if err != nil {
		t.Fatal(err)
	}
	return tide
}

// writeTideParams writes params.json for tide_hartid.py and tide_oracle.py.
func writeTideParams(t *testing.T, dir string, c tideCase, cons [][5]string, lon float64) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"start": c.t0(t), "n": c.n, "period": c.period,
		"longitude": lon, "constituents": cons})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "params.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readmeNumber writes v as the README does (with a decimal point: "90.0").
// processing.py pads the string with zeros on the right to 7 (amplitude) or
// 8 (phase) characters for hartid's fixed columns, so a README value written
// without a point ("90") would reach hartid as 90000000.
func readmeNumber(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// compareTide reads DIR/tide.csv (time, CH0..CH3 in microstrain) and returns
// the largest |Go − file| over every point and gauge the station has.
func compareTide(t *testing.T, dir string, c tideCase, tide *Tide) (maxDiff float64, points int) {
	t.Helper()
	head, rows := readCSV(t, filepath.Join(dir, "tide.csv"))
	if len(rows) != c.n {
		t.Fatalf("%s: tide.csv has %d rows, want %d", c.name, len(rows), c.n)
	}
	t0 := c.t0(t)
	for i, r := range rows {
		want := t0 + int64(i)*c.period
		if int64(r[0]) != want {
			t.Fatalf("%s row %d: time %v, want %d", c.name, i, r[0], want)
		}
		got := tide.At(want)
		for j := 1; j < len(head); j++ {
			g, err := strconv.Atoi(head[j][2:])
			if err != nil {
				t.Fatalf("%s: column %q", c.name, head[j])
			}
			if math.IsNaN(got[g]) || math.IsNaN(r[j]) {
				t.Fatalf("%s %s at %d: go %v, other %v", c.name, head[j], want, got[g], r[j])
			}
			maxDiff = max(maxDiff, math.Abs(got[g]-r[j]))
			points++
		}
	}
	return maxDiff, points
}

// TestTideAgainstHartid builds SPOTL's hartid with gfortran from
// $GTSM_SPOTL_SRC, runs processing.calculate_tide_correction itself with it
// on PATH (so hartid gets exactly processing.py's input: "l", the longitude,
// "doodson amp phase" lines, -1; arguments Y M D H M S n period; output
// nanostrain × 1e-3) and compares every point with Tide.At.
//
// The differences are (a) hartid's single precision (its amplitudes,
// admittances and recursion frequencies are REAL; output to 1e-5 nanostrain)
// and (b) hartid fixes the astronomical arguments at the first time and
// advances each harmonic at a constant (float32-rounded) frequency, where
// Tide.At evaluates them at each time. Tolerance 2e-6 microstrain
// (0.002 nanostrain, 1e-3 of the smallest constituent amplitude here), also
// for a one-year series; docs/level2.md records the measured maxima.
func TestTideAgainstHartid(t *testing.T) {
	src := os.Getenv("GTSM_SPOTL_SRC")
	if src == "" {
		t.Skip("GTSM_SPOTL_SRC is not set: point it at a directory with SPOTL's hartid.f admint.f tdfrph.f recurs.f spline.f shells.f " +
			"(github.com/geosciman/spotl_modified @58fa3fc, or Agnew's SPOTL distribution) to compare with the Fortran hartid")
	}
	py := requirePython(t)
	ref := processingPy(t)
	gf, err := exec.LookPath("gfortran")
	if err != nil {
		t.Fatalf("gfortran is required to build hartid (apt-get install gfortran): %v", err)
	}
	bin := t.TempDir()
	var srcs []string
	for _, f := range []string{"hartid.f", "admint.f", "tdfrph.f", "recurs.f", "spline.f", "shells.f"} {
		srcs = append(srcs, filepath.Join(src, f))
	}
	if out, err := exec.Command(gf, append([]string{"-O", "-o", filepath.Join(bin, "hartid")}, srcs...)...).CombinedOutput(); err != nil {
		t.Fatalf("gfortran: %v\n%s", err, out)
	}
	cases := []tideCase{
		{name: "TSM5 30 days", site: "TSM5", start: "2022-06-03T00:00:00Z", n: 30 * 288, period: 300},
		{name: "TSM5 1 year", site: "TSM5", start: "2023-01-01T00:00:00Z", n: 365 * 288, period: 300},
		{name: "TSM5 6 hours at 1 s, from 17:35", site: "TSM5", start: "2024-02-29T17:35:00Z", n: 6 * 3600, period: 1},
		{name: "B004 30 days (M2, O1 only; longitude -124.42701)", site: "B004", start: "2015-12-20T12:00:00Z", n: 30 * 288, period: 300},
		{name: "synthetic 30 days (14 constituents, 3 bands, splines)", start: "2019-03-10T08:00:00Z", n: 30 * 288, period: 300},
	}
	cases = append(cases, oneBandCases(3)...)
	const tol = 2e-6
	for _, c := range cases {
		tide, cons, lon := c.model(t)
		if c.site == "" && c.cons == nil {
			// processing.py needs every constituent name on every channel
			// it runs: CH0 has them all.
			cons = cons[:14]
		}
		dir := t.TempDir()
		writeTideParams(t, dir, c, cons, lon)
		cmd := exec.Command(py, "tide_hartid.py", ref, dir)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: tide_hartid.py: %v\n%s", c.name, err, out)
		}
		d, n := compareTide(t, dir, c, tide)
		t.Logf("%s: %d values, max |Go − hartid| = %.3g microstrain (tolerance %g)", c.name, n, d, tol)
		if d > tol {
			t.Errorf("%s: max |Go − hartid| = %g microstrain > %g", c.name, d, tol)
		}
	}
}

// TestTideOracle compares Tide.At with tide_oracle.py, an independent numpy
// and scipy implementation of the admittance method (always on: CI has no
// SPOTL source). Both are double precision and evaluate the astronomical
// arguments at each time, so they must agree to rounding: 1e-9 microstrain.
func TestTideOracle(t *testing.T) {
	py := requirePython(t)
	cases := []tideCase{
		{name: "TSM5 30 days", site: "TSM5", start: "2022-06-03T00:00:00Z", n: 30 * 288, period: 300},
		{name: "B004 30 days", site: "B004", start: "2015-12-20T12:00:00Z", n: 30 * 288, period: 300},
		{name: "synthetic 30 days", site: "", start: "2019-03-10T08:00:00Z", n: 30 * 288, period: 300},
		{name: "TSM5 6 hours at 1 s", site: "TSM5", start: "2024-02-28T21:00:00Z", n: 6 * 3600, period: 1},
	}
	cases = append(cases, oneBandCases(2)...)
	for _, c := range cases {
		tide, cons, lon := c.model(t)
		dir := t.TempDir()
		writeTideParams(t, dir, c, cons, lon)
		if out, err := exec.Command(py, "tide_oracle.py", dir).CombinedOutput(); err != nil {
			t.Fatalf("%s: tide_oracle.py: %v\n%s", c.name, err, out)
		}
		d, n := compareTide(t, dir, c, tide)
		t.Logf("%s: %d values, max |Go − tide_oracle.py| = %.3g microstrain", c.name, n, d)
		if d > 1e-9 {
			t.Errorf("%s: max |Go − tide_oracle.py| = %g microstrain > 1e-9", c.name, d)
		}
	}
}

// groupBasis is the complex signal of one group of harmonics at unix time
// t: Σ (CTE_s/CTE_main)·exp(i V_s(t)) over the harmonics s whose first three
// Doodson numbers (τ, s, h) are the group's. Members differ only in p, N' and
// ps, periods of 8.85, 18.6 and 20,940 years that a year of data cannot
// separate; they enter at their equilibrium ratios (nodal corrections).
type groupBasis struct {
	main    int // the harmonic Z is relative to
	members []int
	ratio   []float64
}

// tideGroups returns the groups of the species given, with the harmonic of
// each given constituent as its group's main one (else the largest), for
// every group whose largest member has |CTE| >= minAmp.
func tideGroups(t *testing.T, cons []TideConstituent, minAmp float64) []groupBasis {
	t.Helper()
	species := map[int]bool{}
	mainOf := map[[3]int]int{}
	for _, c := range cons {
		species[c.Doodson[0]] = true
		found := false
		for i, h := range cte {
			if h.n == c.Doodson {
				mainOf[[3]int{h.n[0], h.n[1], h.n[2]}] = i
				found = true
			}
		}
		if !found {
			t.Fatalf("%v not in the table", c.Doodson)
		}
	}
	byKey := map[[3]int]*groupBasis{}
	var keys [][3]int
	for i, h := range cte {
		if !species[h.n[0]] {
			continue
		}
		k := [3]int{h.n[0], h.n[1], h.n[2]}
		g := byKey[k]
		if g == nil {
			g = &groupBasis{main: i}
			byKey[k] = g
			keys = append(keys, k)
		}
		g.members = append(g.members, i)
		if math.Abs(h.amp) > math.Abs(cte[g.main].amp) {
			g.main = i
		}
	}
	var out []groupBasis
	for _, k := range keys {
		g := byKey[k]
		if m, ok := mainOf[k]; ok {
			g.main = m
		} else if math.Abs(cte[g.main].amp) < minAmp {
			continue
		}
		for _, i := range g.members {
			g.ratio = append(g.ratio, cte[i].amp/cte[g.main].amp)
		}
		out = append(out, *g)
	}
	return out
}

func (g groupBasis) at(d [6]float64) complex128 {
	var z complex128
	for k, i := range g.members {
		var v float64
		for j := range d {
			v += float64(cte[i].n[j]) * d[j]
		}
		r := v * math.Pi / 180
		z += complex(g.ratio[k]*math.Cos(r), g.ratio[k]*math.Sin(r))
	}
	return z
}

// harmonicFit least-squares fits x(t) = Σ_c Re(Z_c · g_c(t)) to the series
// and returns Z_c (microstrain).
func harmonicFit(t *testing.T, times []int64, x []float64, groups []groupBasis) []complex128 {
	t.Helper()
	m := 2 * len(groups)
	ata := make([][]float64, m)
	for i := range ata {
		ata[i] = make([]float64, m+1)
	}
	row := make([]float64, m)
	for k, tm := range times {
		d := doodsonArgs(tm)
		for j, g := range groups {
			z := g.at(d)
			row[2*j], row[2*j+1] = real(z), -imag(z)
		}
		for i := 0; i < m; i++ {
			for j := 0; j < m; j++ {
				ata[i][j] += row[i] * row[j]
			}
			ata[i][m] += row[i] * x[k]
		}
	}
	// Gauss-Jordan with partial pivoting on the normal equations
	for col := 0; col < m; col++ {
		p := col
		for r := col + 1; r < m; r++ {
			if math.Abs(ata[r][col]) > math.Abs(ata[p][col]) {
				p = r
			}
		}
		ata[col], ata[p] = ata[p], ata[col]
		for r := 0; r < m; r++ {
			if r == col {
				continue
			}
			f := ata[r][col] / ata[col][col]
			for k := col; k <= m; k++ {
				ata[r][k] -= f * ata[col][k]
			}
		}
	}
	z := make([]complex128, len(groups))
	for j := range groups {
		z[j] = complex(ata[2*j][m]/ata[2*j][2*j], ata[2*j+1][m]/ata[2*j+1][2*j+1])
	}
	return z
}

// TestTideHarmonicAnalysis: least squares over a year of the synthesized
// tide returns each input constituent's amplitude within 0.5 % and phase
// within 0.5°. The series is a year (369 days, every 30 min), not 29 days,
// because the synthesized tide holds every harmonic of the table: P1 and K1,
// and S2 and K2, are 2 cycles/year apart, so by the Rayleigh criterion they
// separate only over 183 days or more, and N2 and ν2 only over 193 days.
// The fit has one complex unknown per group of harmonics (tideGroups) of the
// bands given whose largest CTE amplitude is >= 0.002, each group with its
// nodal satellites at their equilibrium ratios. The
// expected phase is hartid's: the local phase + species × east longitude,
// + 90° for diurnals, + 180° for long-period ones, + 180° where the CTE
// amplitude is negative (O1). Cases: TSM5's README constituents, and the 14
// synthetic ones (splines in every band) of synthTides, whose long-period
// ones are only logged (Ssa is off by 1.6 %: a year does not separate the
// long-period band from the 18.6-year term).
func TestTideHarmonicAnalysis(t *testing.T) {
	type fitCase struct {
		name  string
		tide  *Tide
		lon   float64
		cons  [4][]TideConstituent
		names [4][]string
	}
	var cases []fitCase
	tsm5 := station(t, "TSM5")
	fc := fitCase{name: "TSM5", tide: mustTide(t, &tsm5), lon: tsm5.Longitude}
	for _, k := range tsm5.Tides {
		n, err := ParseDoodson(k.Doodson)
		if err != nil {
			t.Fatal(err)
		}
		fc.cons[k.Gauge] = append(fc.cons[k.Gauge], TideConstituent{Doodson: n, Amplitude: k.Amplitude, Phase: k.Phase})
		fc.names[k.Gauge] = append(fc.names[k.Gauge], k.Name)
	}
	cases = append(cases, fc)
	sy := fitCase{name: "synthetic", lon: synthLongitude}
	sy.tide, _, _ = tideCase{}.model(t)
	for _, k := range synthTides {
		n, _ := ParseDoodson(k[2])
		a, _ := strconv.ParseFloat(k[3], 64)
		ph, _ := strconv.ParseFloat(k[4], 64)
		g := int(k[0][2] - '0')
		sy.cons[g] = append(sy.cons[g], TideConstituent{Doodson: n, Amplitude: a, Phase: ph})
		sy.names[g] = append(sy.names[g], k[1])
	}
	cases = append(cases, sy)
	const start = 1672531200 // 2023-01-01
	var times []int64
	for tm := int64(start); tm < start+369*86400; tm += 1800 {
		times = append(times, tm)
	}
	const minGroupAmp = 0.002
	for _, c := range cases {
		series := make([][]float64, 4)
		for _, tm := range times {
			v := c.tide.At(tm)
			for g := range series {
				series[g] = append(series[g], v[g])
			}
		}
		for g := 0; g < 4; g++ {
			groups := tideGroups(t, c.cons[g], minGroupAmp)
			z := harmonicFit(t, times, series[g], groups)
			for i, k := range c.cons[g] {
				j := -1
				for gi, gr := range groups {
					if cte[gr.main].n == k.Doodson {
						j = gi
					}
				}
				amp := cmplx.Abs(z[j]) * 1e3 // nanostrain
				ph := cmplx.Phase(z[j]) * 180 / math.Pi
				want := k.Phase + float64(k.Doodson[0])*c.lon
				switch k.Doodson[0] {
				case 0:
					want += 180
				case 1:
					want += 90
				}
				for _, h := range cte {
					if h.n == k.Doodson && h.amp < 0 {
						want += 180
					}
				}
				dph := math.Mod(ph-want+540, 360) - 180
				da := (amp - k.Amplitude) / k.Amplitude
				t.Logf("%s CH%d %s: amplitude %.4f nε (given %.3f, %+.3f %%), phase error %+.4f°", c.name, g, c.names[g][i], amp, k.Amplitude, 100*da, dph)
				if k.Doodson[0] == 0 {
					// a year cannot separate Sa, Ssa and the 18.6-year
					// term; the long-period band is only logged
					continue
				}
				if math.Abs(da) > 0.005 || math.Abs(dph) > 0.5 {
					t.Errorf("%s CH%d %s: amplitude %.4f (given %.3f), phase off by %.3f°", c.name, g, c.names[g][i], amp, k.Amplitude, dph)
				}
			}
		}
	}
}

// TestTideBands: a band without a given constituent is left out (hartid
// would use unset values there); gauges without constituents and stations
// without a model give NaN; bad constituents are refused with the reason.
func TestTideBands(t *testing.T) {
	tide, _, _ := tideCase{}.model(t)
	// CH1 has diurnals and semidiurnals only: no long-period harmonic in
	// its model; CH0's has every long-period harmonic of the table.
	species := func(g int) map[int]int {
		m := map[int]int{}
		for _, tm := range tide.gauges[g] {
			m[cte[tm.h].n[0]]++
		}
		return m
	}
	nlp := 0
	for _, h := range cte {
		if h.n[0] == 0 {
			nlp++
		}
	}
	if s0, s1 := species(0), species(1); s0[0] != nlp || s1[0] != 0 || s1[1] != s0[1] || s1[2] != s0[2] {
		t.Errorf("harmonics per species: CH0 %v, CH1 %v; want CH0 all %d long-period, CH1 none, both every diurnal and semidiurnal", s0, s1, nlp)
	}
	v := tide.At(1552204800)
	if math.IsNaN(v[0]) || math.IsNaN(v[1]) || !math.IsNaN(v[2]) || !math.IsNaN(v[3]) {
		t.Errorf("At = %v: want values on CH0, CH1 and NaN on CH2, CH3", v)
	}
	if !tide.Has(0) || tide.Has(2) {
		t.Error("Has: CH0 has a model, CH2 none")
	}
	var none *Tide
	if v := none.At(0); !math.IsNaN(v[0]) || none.Has(0) {
		t.Errorf("nil Tide: At = %v", v)
	}
	if m, err := TideFrom(&metadata.Station{Site: "B009"}); m != nil || err != nil {
		t.Errorf("station without constituents: %v, %v", m, err)
	}
	bad := []struct {
		name string
		c    []TideConstituent
		want string
	}{
		{"not in table", []TideConstituent{{Doodson: [6]int{2, 0, 0, 0, 0, 1}, Amplitude: 1}}, "not in the 342-harmonic table"},
		{"twice", []TideConstituent{{Doodson: [6]int{2, 0, 0, 0, 0, 0}, Amplitude: 1}, {Doodson: [6]int{2, 0, 0, 0, 0, 0}, Amplitude: 2}}, "two constituents at"},
	}
	for _, b := range bad {
		_, err := NewTide(0, [4][]TideConstituent{nil, b.c})
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "gauge CH1") {
			t.Errorf("%s: error %v, want %q naming gauge CH1", b.name, err, b.want)
		}
	}
	for _, d := range []string{"2 0 0 0 0", "2 0 0 0 0 0 ", "2 x 0 0 0 0"} {
		if _, err := ParseDoodson(d); err == nil {
			t.Errorf("ParseDoodson(%q) accepted", d)
		}
	}
	if n, err := ParseDoodson("1-1 0 0 0 0"); err != nil || n != [6]int{1, -1, 0, 0, 0, 0} {
		t.Errorf("ParseDoodson O1 = %v, %v", n, err)
	}
}

// BenchmarkTideAt: the tide of a station's four gauges at one 300 s point.
func BenchmarkTideAt(b *testing.B) {
	s := station(b, "TSM5")
	tide, err := TideFrom(&s)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = tide.At(1672531200 + int64(i)*300)
	}
}
