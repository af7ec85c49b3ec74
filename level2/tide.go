package level2

// Tide correction: the body tide at a gauge predicted from the station's
// observed tidal constituents by Agnew's admittance method, as SPOTL's hartid
// computes it (the program processing.calculate_tide_correction runs):
//
//  1. Each given constituent (Doodson number, amplitude in nanostrain, local
//     phase in degrees) is matched to its line of the 342-harmonic
//     Cartwright-Tayler-Edden table (cte342.txt) and turned into a complex
//     admittance: amplitude/|CTE amplitude| at angle (phase + species ×
//     east longitude) (hartid's "l" input: local phases become Greenwich ones).
//  2. Per tidal band (long-period, diurnal, semidiurnal) the real and
//     imaginary parts of the admittance are interpolated in frequency (cycles
//     per day) to every harmonic of the band: linearly when the band has at
//     most 3 given constituents (hartid's spline falls back to straight
//     lines), otherwise by a cubic spline whose end slopes are those of the
//     parabola through the 3 end points; beyond the first and last given
//     frequency the end value is used. A diurnal or semidiurnal band with
//     no given constituent takes the admittance of the nearest given
//     constituent (hartid's spline evaluation clamps to it); a long-period
//     band without one is left out, as hartid leaves it out.
//  3. Harmonic j is CTE_j·|Y(f_j)| · cos(V_j(t) + c_j + arg Y(f_j)), with V_j
//     the Doodson argument (Σ n_k·d_k(t), the IERS 2003 Delaunay polynomials
//     converted to Doodson variables, as SPOTL's tdfrph) and c_j = 90° for
//     diurnals and 180° for long-period harmonics (the long-period band is
//     skipped, as in hartid, when no long-period constituent is given). The
//     tide is the sum, in nanostrain; ×1e-3 gives microstrain, as
//     calculate_tide_correction does.
//
// Streaming: hartid evaluates V_j once, at the first time of the series it is
// asked for, and advances each harmonic at a fixed frequency from there. Here
// V_j is evaluated at each 300 s output time itself, so a point needs nothing
// but its time and the metadata. The two differ by the curvature of the
// Delaunay polynomials and the rounding of hartid's frequencies over the
// length of hartid's series; docs/level2.md gives the measured size
// (TestTideAgainstHartid).

import (
	_ "embed"
	"fmt"
	"math"
	"math/cmplx"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/earthscope/gtsm-stream/metadata"
)

//go:embed cte342.txt
var cteText string

// cteHarmonic is one line of the Cartwright-Tayler-Edden table.
type cteHarmonic struct {
	n   [6]int
	amp float64
}

// maxDoodson bounds the magnitude of the table's argument numbers.
const maxDoodson = 6

// cte is the parsed table; it is read-only after package initialization.
var cte = mustParseCTE(cteText)

func mustParseCTE(s string) []cteHarmonic {
	var out []cteHarmonic
	for i, l := range strings.Split(s, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 7 {
			panic(fmt.Sprintf("cte342.txt:%d: want 6 Doodson numbers and an amplitude, got %q", i+1, l))
		}
		var h cteHarmonic
		for k := 0; k < 6; k++ {
			v, err := strconv.Atoi(f[k])
			if err != nil || v < -maxDoodson || v > maxDoodson {
				panic(fmt.Sprintf("cte342.txt:%d: argument number %q: %v", i+1, f[k], err))
			}
			h.n[k] = v
		}
		a, err := strconv.ParseFloat(f[6], 64)
		if err != nil {
			panic(fmt.Sprintf("cte342.txt:%d: %v", i+1, err))
		}
		h.amp = a
		out = append(out, h)
	}
	if len(out) != 342 {
		panic(fmt.Sprintf("cte342.txt: %d harmonics, want 342", len(out)))
	}
	return out
}

// TideConstituent is one observed tidal constituent on one gauge.
type TideConstituent struct {
	Doodson   [6]int  // argument numbers; the first is the species
	Amplitude float64 // nanostrain
	Phase     float64 // degrees, local (relative to the station's meridian)
}

// ParseDoodson reads a Doodson number as gtsm_metadata.get_tidal_params
// writes it ("1-1 0 0 0 0") and hartid reads it after processing.py's
// leading blank: six fields of two characters (Fortran 6i2).
func ParseDoodson(s string) ([6]int, error) {
	var n [6]int
	l := " " + s
	if len(l) != 12 {
		return n, fmt.Errorf("doodson number %q: want 6 fields of 2 characters", s)
	}
	for k := 0; k < 6; k++ {
		v, err := strconv.Atoi(strings.TrimSpace(l[2*k : 2*k+2]))
		if err != nil {
			return n, fmt.Errorf("doodson number %q field %d: %w", s, k+1, err)
		}
		n[k] = v
	}
	return n, nil
}

// Tide predicts the tide of each gauge of one station. It is immutable.
type Tide struct {
	gauges [4][]tideTerm // nil: the gauge has no constituents
}

// tideTerm is one harmonic of one gauge: amplitude (nanostrain; negative
// where the CTE amplitude is) and the phase added to its Doodson argument.
type tideTerm struct {
	h     int // index into cte
	amp   float64
	phase float64 // degrees
	// amp·cos(phase), amp·sin(phase): the term is ac·cos V − as·sin V
	ac, as float64
}

// TideFrom builds the tide model of a station from its metadata: nil when the
// station has no tidal constituents.
func TideFrom(s *metadata.Station) (*Tide, error) {
	if s == nil || len(s.Tides) == 0 {
		return nil, nil
	}
	var g [4][]TideConstituent
	for _, c := range s.Tides {
		if c.Gauge < 0 || c.Gauge > 3 {
			return nil, fmt.Errorf("station %s tidal constituent %s: gauge %d", s.Site, c.Name, c.Gauge)
		}
		n, err := ParseDoodson(c.Doodson)
		if err != nil {
			return nil, fmt.Errorf("station %s gauge CH%d constituent %s: %w", s.Site, c.Gauge, c.Name, err)
		}
		g[c.Gauge] = append(g[c.Gauge], TideConstituent{Doodson: n, Amplitude: c.Amplitude, Phase: c.Phase})
	}
	t, err := NewTide(s.Longitude, g)
	if err != nil {
		return nil, fmt.Errorf("station %s: %w", s.Site, err)
	}
	return t, nil
}

// NewTide builds the model from each gauge's constituents (an empty list: no
// tide for that gauge) and the station's east longitude in degrees.
func NewTide(longitude float64, gauges [4][]TideConstituent) (*Tide, error) {
	var t Tide
	for g, cs := range gauges {
		if len(cs) == 0 {
			continue
		}
		terms, err := admittance(longitude, cs)
		if err != nil {
			return nil, fmt.Errorf("gauge CH%d: %w", g, err)
		}
		t.gauges[g] = terms
	}
	return &t, nil
}

// Has reports whether gauge g has a tide model.
func (t *Tide) Has(g int) bool { return t != nil && t.gauges[g] != nil }

// admittance is step 1 and 2 of the method for one gauge.
func admittance(longitude float64, cs []TideConstituent) ([]tideTerm, error) {
	freq := doodsonFreqs(0)
	type node struct{ f, re, im float64 }
	var bands [3][]node
	for _, c := range cs {
		k := -1
		for i, h := range cte {
			if h.n == c.Doodson {
				k = i
				break
			}
		}
		if k < 0 {
			return nil, fmt.Errorf("constituent %v is not in the 342-harmonic table", c.Doodson)
		}
		sp := c.Doodson[0]
		if sp < 0 || sp > 2 {
			return nil, fmt.Errorf("constituent %v: species %d", c.Doodson, sp)
		}
		ph := (c.Phase + float64(sp)*longitude) * math.Pi / 180
		a := c.Amplitude / math.Abs(cte[k].amp)
		bands[sp] = append(bands[sp], node{harmFreq(cte[k].n, freq), a * math.Cos(ph), a * math.Sin(ph)})
	}
	var interp [3]func(f float64) (float64, float64)
	for b, ns := range bands {
		if len(ns) == 0 {
			continue
		}
		sort.SliceStable(ns, func(i, j int) bool { return ns[i].f < ns[j].f })
		x := make([]float64, len(ns))
		re := make([]float64, len(ns))
		im := make([]float64, len(ns))
		for i, n := range ns {
			x[i], re[i], im[i] = n.f, n.re, n.im
			if i > 0 && x[i] == x[i-1] {
				return nil, fmt.Errorf("two constituents at %.9f cycles/day", x[i])
			}
		}
		sre, sim := splineSecond(x, re), splineSecond(x, im)
		interp[b] = func(f float64) (float64, float64) {
			return splineEval(x, re, sre, f), splineEval(x, im, sim, f)
		}
	}
	// A diurnal or semidiurnal band without a given constituent takes, as
	// hartid does, the admittance of the nearest given constituent: admint
	// still calls eval for it with no nodes, and eval's end clamps return
	// the value stored next to the empty band, the first constituent of the
	// bands above it (its first node), else the last one below it. The
	// long-period band is left out instead (admint skips it when empty).
	for b := 1; b <= 2; b++ {
		if interp[b] != nil {
			continue
		}
		var near *node
		for up := b + 1; up <= 2 && near == nil; up++ {
			if len(bands[up]) > 0 {
				near = &bands[up][0]
			}
		}
		for down := b - 1; down >= 0 && near == nil; down-- {
			if n := len(bands[down]); n > 0 {
				near = &bands[down][n-1]
			}
		}
		if near != nil {
			re, im := near.re, near.im
			interp[b] = func(float64) (float64, float64) { return re, im }
		}
	}
	terms := make([]tideTerm, 0, len(cte))
	for i, h := range cte {
		sp := h.n[0]
		if interp[sp] == nil {
			continue
		}
		re, im := interp[sp](harmFreq(h.n, freq))
		ph := math.Atan2(im, re) * 180 / math.Pi
		switch sp {
		case 0:
			ph += 180
		case 1:
			ph += 90
		}
		a := h.amp * math.Hypot(re, im)
		sn, cs := math.Sincos(ph * math.Pi / 180)
		terms = append(terms, tideTerm{h: i, amp: a, phase: ph, ac: a * cs, as: a * sn})
	}
	return terms, nil
}

func harmFreq(n [6]int, dd [6]float64) float64 {
	var f float64
	for k := range n {
		f += float64(n[k]) * dd[k]
	}
	return f
}

// splineSecond returns the second derivatives of the interpolant through
// (x, u): zero (straight lines) for at most 3 points; otherwise the cubic
// spline whose end slopes are those of the parabola through the first (last)
// three points (Agnew's spline in SPOTL, a clamped cubic spline).
func splineSecond(x, u []float64) []float64 {
	n := len(x)
	s := make([]float64, n)
	if n <= 3 {
		return s
	}
	// slope at x[0] of the parabola through points 0, 1, 2 (and at x[n-1]
	// through n-1, n-2, n-3)
	parab := func(i, j, k int) float64 {
		d1, h1 := u[j]-u[i], x[j]-x[i]
		d2, h2 := u[k]-u[i], x[k]-x[i]
		return (d1/(h1*h1) - d2/(h2*h2)) / (1/h1 - 1/h2)
	}
	q0, qn := parab(0, 1, 2), parab(n-1, n-2, n-3)
	// tridiagonal system: h[i-1] s[i-1] + 2(h[i-1]+h[i]) s[i] + h[i] s[i+1] = 6(Δ slopes),
	// with the clamped end rows 2h0 s0 + h0 s1 = 6(slope0 - q0) and
	// h[n-2] s[n-2] + 2h[n-2] s[n-1] = 6(qn - slope[n-2]).
	h := make([]float64, n-1)
	sl := make([]float64, n-1)
	for i := 0; i < n-1; i++ {
		h[i] = x[i+1] - x[i]
		sl[i] = (u[i+1] - u[i]) / h[i]
	}
	diag := make([]float64, n)
	rhs := make([]float64, n)
	diag[0], rhs[0] = 2*h[0], 6*(sl[0]-q0)
	for i := 1; i < n-1; i++ {
		diag[i], rhs[i] = 2*(h[i-1]+h[i]), 6*(sl[i]-sl[i-1])
	}
	diag[n-1], rhs[n-1] = 2*h[n-2], 6*(qn-sl[n-2])
	// forward elimination (sub- and super-diagonal of row i are h[i-1], h[i])
	for i := 1; i < n; i++ {
		c := h[i-1] / diag[i-1]
		diag[i] -= c * h[i-1]
		rhs[i] -= c * rhs[i-1]
	}
	s[n-1] = rhs[n-1] / diag[n-1]
	for i := n - 2; i >= 0; i-- {
		s[i] = (rhs[i] - h[i]*s[i+1]) / diag[i]
	}
	return s
}

// splineEval evaluates the interpolant at y; outside [x0, xn] the end value.
func splineEval(x, u, s []float64, y float64) float64 {
	n := len(x)
	if y <= x[0] {
		return u[0]
	}
	if y >= x[n-1] {
		return u[n-1]
	}
	k := sort.SearchFloat64s(x, y) // x[k-1] < y <= x[k]
	k1 := k - 1
	dk := x[k] - x[k1]
	dy, dy1 := x[k]-y, y-x[k1]
	return (s[k1]*dy*dy*dy+s[k]*dy1*dy1*dy1)/(6*dk) + dy1*(u[k]/dk-s[k]*dk/6) + dy*(u[k1]/dk-s[k1]*dk/6)
}

// At returns the tide of each gauge at unix time t (seconds) in microstrain;
// NaN for a gauge without constituents (and every gauge of a nil Tide).
func (t *Tide) At(unix int64) [4]float64 {
	out := [4]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	if t == nil {
		return out
	}
	// exp(i V_j) for every harmonic as a product of powers of exp(i d_k):
	// no trigonometry per harmonic (the argument numbers are at most
	// maxDoodson in magnitude).
	d := doodsonArgs(unix)
	var pw [6][2*maxDoodson + 1]complex128
	for k := range d {
		sn, cs := math.Sincos(d[k] * math.Pi / 180)
		e := complex(cs, sn)
		pw[k][maxDoodson] = 1
		for n := 1; n <= maxDoodson; n++ {
			pw[k][maxDoodson+n] = pw[k][maxDoodson+n-1] * e
			pw[k][maxDoodson-n] = cmplx.Conj(pw[k][maxDoodson+n])
		}
	}
	var v [342]complex128
	done := false
	for g, terms := range t.gauges {
		if terms == nil {
			continue
		}
		if !done {
			for i, h := range cte {
				z := complex(1, 0)
				for k, n := range h.n {
					if n != 0 {
						z *= pw[k][maxDoodson+n]
					}
				}
				v[i] = z
			}
			done = true
		}
		var x float64
		for _, tm := range terms {
			z := v[tm.h]
			x += tm.ac*real(z) - tm.as*imag(z)
		}
		out[g] = x * 1e-3
	}
	return out
}

// doodsonArgs returns the six Doodson variables (τ, s, h, p, N' = −N, ps) in
// degrees, each reduced to [0, 360), at unix time t, as SPOTL's tdfrph
// computes them: UT day fraction for τ, the IERS 2003 Delaunay polynomials
// (IERS Conventions 2003 eq. 5.43) at terrestrial time for the rest.
// TT − UTC comes from tdfrph's leap-second table, which ends with the
// 2009-01-01 second (66.184 s since then; the true value is 69.184 s since
// 2017: 3 s, ~4e-4° of lunar argument), so that a series gets the arguments
// hartid gives it. One slip of tdfrph is not copied: it divides the seconds
// of its start time by 84600 instead of 86400. hartid applies that once, to
// the start of its series (EarthScope's starts are 300 s multiples, where it
// is 0); copied here it would shift every 1 s point by up to 1.2 s of τ.
func doodsonArgs(unix int64) [6]float64 {
	tm := time.Unix(unix, 0).UTC()
	y := tm.Year()
	dayfr := float64(tm.Hour())/24 + float64(tm.Minute())/1440 + float64(tm.Second())/86400
	days := unix / 86400
	if unix%86400 < 0 {
		days--
	}
	jd := float64(days + 2440588) // Julian day number of the UTC date
	year := float32(float64(y) + (float64(tm.YearDay())+dayfr)/float64(365+leapYear(y)))
	delta := ttMinusUTC(year)
	djd := jd - 0.5 + dayfr
	t := (djd - 2451545.0 + float64(delta)/86400) / 36525
	poly := func(c [5]float64) float64 {
		return c[0] + t*(c[1]+t*(c[2]+t*(c[3]+t*c[4])))
	}
	// Delaunay arguments l, l', F, D, Ω in degrees (IERS Conventions 2003, 5.43)
	f1 := poly([5]float64{134.9634025100, 477198.8675605000, 0.0088553333, 0.0000143431, -0.0000000680})
	f2 := poly([5]float64{357.5291091806, 35999.0502911389, -0.0001536667, 0.0000000378, -0.0000000032})
	f3 := poly([5]float64{93.2720906200, 483202.0174577222, -0.0035420000, -0.0000002881, 0.0000000012})
	f4 := poly([5]float64{297.8501954694, 445267.1114469445, -0.0017696111, 0.0000018314, -0.0000000088})
	f5 := poly([5]float64{125.0445550100, -1934.1362619722, 0.0020756111, 0.0000021394, -0.0000000165})
	var d [6]float64
	d[0] = 360*dayfr - f4
	d[1] = f3 + f5
	d[2] = d[1] - f4
	d[3] = d[1] - f1
	d[4] = -f5
	d[5] = d[2] - f2
	for k := range d {
		d[k] = math.Mod(d[k], 360)
		if d[k] < 0 {
			d[k] += 360
		}
	}
	return d
}

// doodsonFreqs returns the frequencies (cycles/day) of the six Doodson
// variables at t Julian centuries from J2000, from the Delaunay rates as
// tdfrph gives them (its constants are single-precision literals; they are
// rounded to float32 here the same way). The admittance interpolation uses
// t = 0: the rates change by less than 1e-8 of themselves in a century.
func doodsonFreqs(t float64) [6]float64 {
	r := func(a, b float32) float64 { return float64(a) + float64(b)*t }
	fd1 := r(0.0362916471, 0.0000000013)
	fd2 := r(0.0027377786, 0)
	fd3 := r(0.0367481951, -0.0000000005)
	fd4 := r(0.0338631920, -0.0000000003)
	fd5 := r(-0.0001470938, 0.0000000003)
	var dd [6]float64
	dd[0] = 1 - fd4
	dd[1] = fd3 + fd5
	dd[2] = dd[1] - fd4
	dd[3] = dd[1] - fd1
	dd[4] = -fd5
	dd[5] = dd[2] - fd2
	return dd
}

func leapYear(y int) int {
	if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		return 1
	}
	return 0
}

// leapSteps are the leap-second dates of tdfrph's etutc table (decimal years,
// each +1 s), Explanatory Supplement to the Astronomical Almanac and GAMIT's
// leap.sec as SPOTL carries them.
var leapSteps = [...]float32{1972.5, 1973.0, 1974.0, 1975.0, 1976.0, 1977.0, 1978.0, 1979.0,
	1980.0, 1981.5, 1982.5, 1983.5, 1985.5, 1988.0, 1990.0,
	1991.0, 1992.5, 1993.5, 1994.5, 1996.0, 1997.5, 1999.0,
	2006.0, 2008.0}

// ttMinusUTC is etutc's ET − UTC in seconds for years after 1972 (32.184 s
// + 10 s at 1972.0 + the steps). Level-2 data start in 2004; earlier years
// get the 1972 value.
func ttMinusUTC(year float32) float32 {
	delta := float32(42.184)
	for _, s := range leapSteps {
		if year < s {
			break
		}
		delta += 1
	}
	return delta
}
