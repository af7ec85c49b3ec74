// Package level2 owns Level-2 strain processing for GTSM borehole
// strainmeters, streaming, one state machine per station: 1-sps gauge counts
// in, in time order; 300 s Level-2 points out (decimated counts, linearized
// gauge microstrain, regional strains for every calibration matrix, the tide
// correction of tide.go, the trend correction of trend.go, offsets found on
// the tide- and trend-corrected strain as level2.ipynb finds them, and
// EarthScope's interpolated flag), and barometric corrections from the
// station's pressure channel. Each step is the one EarthScope's processing.py
// defines (see docs/level2.md for the formula and source line of every step);
// an oracle test runs processing.py itself on the same input and requires
// the same numbers.
//
// The machine's whole state is a State value: bounded (docs/level2.md gives
// its size in bytes) and serializable (MarshalBinary), so it can be saved
// with the Kafka offsets of the samples it has consumed and restored after a
// crash to continue exactly where it stopped.
package level2

import (
	"fmt"
	"math"

	"github.com/earthscope/gtsm-stream/metadata"
)

// FillValue is the count GTSM data use for "no sample" (calibration pulses,
// gaps); processing.interpolate replaces it with NaN (replace=999999).
const FillValue = 999999

// Period is the Level-2 sample period in seconds.
const Period = 300

// Config is what the machine needs from the station's metadata. The zero
// Config is a station without metadata: it still gets decimated counts.
type Config struct {
	// HaveLinearization: Reference and Gap are known, so microstrain,
	// regional strains and offsets are computed.
	HaveLinearization bool
	Reference         [4]int64
	Gap               float64 // m
	Matrices          []metadata.Matrix
	// Atmp is the barometric response in microstrain per hPa; nil: no
	// pressure correction.
	Atmp *[4]float64
	// Tide predicts each gauge's tide from the station's constituents
	// (tide.go); nil: no tide correction.
	Tide *Tide
	// TrendModel is the README's borehole trend model (trend.go); nil: the
	// notebook's linear fit gives trend_c.
	TrendModel *TrendModel

	// InterpLimit is the longest run of missing 1 s samples that is
	// interpolated (processing.interpolate limit=3600).
	InterpLimit int
	// Offset detection (calculate_offsets): multiplier and percentile, and
	// the streaming window: the trailing OffsetWindow first differences.
	OffsetMultiplier float64
	OffsetPercentile float64
	OffsetWindow     int
	// MaxPressureGap is the longest interval (s) between two pressure
	// samples that is interpolated across.
	MaxPressureGap int64
}

// Defaults: processing.py's for interpolation; level2.ipynb's for offsets
// (cell 17: calculate_offsets(limit_multiplier=5, cutoff_percentile=75) on
// microstrain − tide_c − trend_c; 75, not 0.75, so processing.py drops no
// difference: round(n·(1−75)) is negative and iloc[0:-drop] keeps them all);
// a one-day offset window; pressure is interpolated across at most 3 h (six
// missing 30 min samples are not).
const (
	DefaultInterpLimit      = 3600
	DefaultOffsetMultiplier = 5
	DefaultOffsetPercentile = 75
	DefaultOffsetWindow     = 288
	DefaultMaxPressureGap   = 3 * 3600
)

// ConfigFrom builds a Config from a station's metadata (nil: no metadata)
// with the default parameters.
func ConfigFrom(s *metadata.Station) Config {
	c := Config{InterpLimit: DefaultInterpLimit, OffsetMultiplier: DefaultOffsetMultiplier,
		OffsetPercentile: DefaultOffsetPercentile, OffsetWindow: DefaultOffsetWindow, MaxPressureGap: DefaultMaxPressureGap}
	if s == nil {
		return c
	}
	c.HaveLinearization = true
	c.Reference = s.Reference
	c.Gap = s.Gap
	c.Matrices = s.Matrices
	c.Atmp = s.Atmp
	// TideFrom fails only on constituents the metadata parser would not
	// produce (a Doodson number outside the table); such a station gets no
	// tide correction rather than none of its Level-2.
	c.Tide, _ = TideFrom(s)
	c.TrendModel = TrendModelFrom(s)
	return c
}

// Point is one 300 s Level-2 output.
type Point struct {
	Time        int64      // unix seconds, a multiple of 300
	Counts      [4]float64 // decimated counts (decimate_1s_to_300s)
	Microstrain [4]float64 // linearize; NaN without metadata
	Regional    [][3]float64
	// Offset is the running total of detected offsets per gauge
	// (calculate_offsets' cumulative sum, in microstrain, found on
	// Microstrain − Tide − Trend as level2.ipynb does); NaN without metadata.
	Offset [4]float64
	// Trend is the trend correction per gauge in microstrain (trend.go);
	// NaN without metadata.
	Trend [4]float64
	// Interpolated has bit g set when gauge g's 1 s sample at Time was
	// missing (fill value or absent) and interpolated: EarthScope's
	// Timeseries.decimate_1s_to_300s flags such a point "i".
	Interpolated uint8
	// Tide is the tide correction per gauge in microstrain
	// (calculate_tide_correction, tide.go); NaN where the gauge has no
	// tidal constituents.
	Tide [4]float64
}

// AtmpPoint is the barometric correction at one 300 s time.
type AtmpPoint struct {
	Time       int64
	HPa        float64    // pressure interpolated to Time
	Correction [4]float64 // microstrain, HPa * response (calculate_pressure_correction)
}

// Machine is one station's Level-2 state machine. It is not safe for
// concurrent use; the processor runs one per station partition key.
type Machine struct {
	cfg Config
	st  State
	// onSecond, when set (tests), sees every second that goes on to
	// decimation with its interpolated counts.
	onSecond func(t int64, v [4]float64)
}

// New returns a machine at the start of a station's data.
func New(cfg Config) *Machine {
	return &Machine{cfg: cfg, st: newState()}
}

// Config returns the machine's configuration.
func (m *Machine) Config() Config { return m.cfg }

// SetConfig replaces the configuration (new metadata version): it applies to
// every point produced from the next pushed sample on. The filter state is
// kept: decimation does not depend on metadata.
func (m *Machine) SetConfig(cfg Config) { m.cfg = cfg }

// PushStrain consumes the gauge counts of second t (unix seconds); a count
// equal to FillValue is missing. Seconds between the previous push and t are
// missing on every gauge (as if their counts were fill values). It appends
// the 300 s points the sample completes to out and returns it. t must be
// after every earlier pushed second.
func (m *Machine) PushStrain(t int64, counts [4]int32, out []Point) ([]Point, error) {
	st := &m.st
	if st.Started && t <= st.LastT {
		return out, fmt.Errorf("level2: strain sample at %d is not after %d", t, st.LastT)
	}
	if st.Started {
		// Missing seconds. Only the first InterpLimit of a hole can be
		// interpolated (and are buffered until the hole closes); every
		// later second of it stays NaN and is dropped, so skip them.
		end := min(t-1, st.LastT+int64(m.limit()))
		nan := [4]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
		for s := st.LastT + 1; s <= end; s++ {
			out = m.row(s, nan, out)
		}
	}
	var v [4]float64
	for g, c := range counts {
		if c == FillValue {
			v[g] = math.NaN()
		} else {
			v[g] = float64(c)
		}
	}
	st.Started = true
	out = m.row(t, v, out)
	st.LastT = t
	return out, nil
}

func (m *Machine) limit() int {
	if m.cfg.InterpLimit > 0 {
		return m.cfg.InterpLimit
	}
	return DefaultInterpLimit
}

// row is processing.interpolate for one second on every gauge, then
// DataFrame.dropna: a second whose gauges are all known (measured or
// interpolated) goes on to decimation in time order; one with a gauge that
// stays NaN is dropped, which starts a new decimation segment.
func (m *Machine) row(t int64, v [4]float64, out []Point) []Point {
	st := &m.st
	lim := int64(m.limit())
	var pending uint8
	drop := false
	for g := range v {
		gs := &st.Gauge[g]
		if !math.IsNaN(v[g]) {
			if gs.InRun && gs.HasLast {
				// np.interp between the last valid sample and this one, for
				// the first InterpLimit missing seconds of the run.
				slope := (v[g] - gs.LastV) / float64(t-gs.LastT)
				for i := range st.Buf {
					r := &st.Buf[i]
					if r.Pending&(1<<g) != 0 && r.T >= gs.RunStart && r.T < gs.RunStart+lim {
						r.V[g] = slope*float64(r.T-gs.LastT) + gs.LastV
						r.Pending &^= 1 << g
					}
				}
			}
			gs.InRun = false
			gs.HasLast, gs.LastT, gs.LastV = true, t, v[g]
			continue
		}
		if !gs.InRun {
			gs.InRun, gs.RunStart = true, t
		}
		if !gs.HasLast || t-gs.RunStart >= lim {
			drop = true // leading NaN (forward interpolation) or beyond the limit
		} else {
			pending |= 1 << g
		}
	}
	// A dropped second is not buffered: the next valid second after it
	// is not contiguous with the one before, which is what ends a segment.
	if !drop {
		st.Buf = append(st.Buf, bufRow{T: t, V: v, Pending: pending, Interp: pending})
	}
	// Release the rows at the front that are fully known. While the front
	// row waits for gauge g's hole to close, every second more than
	// InterpLimit into that hole is dropped, so the buffer never holds more
	// than InterpLimit rows.
	n := 0
	for n < len(st.Buf) && st.Buf[n].Pending == 0 {
		if m.onSecond != nil {
			m.onSecond(st.Buf[n].T, st.Buf[n].V)
		}
		out = m.decimate(st.Buf[n].T, st.Buf[n].V, st.Buf[n].Interp, out)
		n++
	}
	if n > 0 {
		st.Buf = append(st.Buf[:0], st.Buf[n:]...)
	}
	return out
}

// decimate is decimate_1s_to_300s for one valid second: a second not
// following the previous valid one starts a new segment
// (split_into_continuous_dataframes); a segment starts at its first second on
// a 5-minute boundary (start_df_at_300s); apply_Agnew_2007 subtracts the
// segment's first values, runs the cascade, and adds them back.
func (m *Machine) decimate(t int64, v [4]float64, interp uint8, out []Point) []Point {
	sg := &m.st.Seg
	if !sg.Open || t != sg.LastT+1 {
		// A dropped second (or a hole beyond the limit) came between.
		*sg = newSegment()
		sg.Open = true
	}
	sg.LastT = t
	if !sg.Aligned {
		if t%Period != 0 {
			return out // start_df_at_300s drops up to 299 s
		}
		sg.Aligned = true
		sg.Initial = v
	}
	var x [4]float64
	for g := range x {
		x[g] = v[g] - sg.Initial[g]
	}
	for s, stg := range stages {
		var y [4]float64
		for g := range x {
			y[g] = firStep(stg.b, sg.Z[s][g], x[g])
		}
		keep := sg.Count[s] == 0
		sg.Count[s] = (sg.Count[s] + 1) % stg.factor
		if !keep {
			return out
		}
		x = y
	}
	p := Point{Time: t, Regional: make([][3]float64, len(m.cfg.Matrices)), Interpolated: interp}
	for g := range x {
		p.Counts[g] = x[g] + sg.Initial[g]
	}
	m.level1(&p)
	return append(out, p)
}

// level1 fills the metadata-dependent parts of a point.
func (m *Machine) level1(p *Point) {
	p.Tide = m.cfg.Tide.At(p.Time)
	if !m.cfg.HaveLinearization {
		for g := range p.Microstrain {
			p.Microstrain[g], p.Offset[g], p.Trend[g] = math.NaN(), math.NaN(), math.NaN()
		}
		p.Regional = nil
		return
	}
	p.Microstrain = Linearize(p.Counts, m.cfg.Reference, m.cfg.Gap)
	for i, mat := range m.cfg.Matrices {
		p.Regional[i] = Regional(&mat.Values, p.Microstrain)
	}
	// The linear fit runs on every point, also under a README model, so a
	// metadata version without a model continues it.
	p.Trend = m.st.Trend.push(p.Time, p.Microstrain)
	if m.cfg.TrendModel != nil {
		p.Trend = m.cfg.TrendModel.At(p.Time)
	}
	// Offsets on tide- and trend-corrected strain (level2.ipynb cell 17); a
	// gauge without tidal constituents is searched without the tide.
	var x [4]float64
	for g := range x {
		x[g] = p.Microstrain[g] - p.Trend[g]
		if !math.IsNaN(p.Tide[g]) {
			x[g] -= p.Tide[g]
		}
	}
	p.Offset = m.st.Off.push(p.Time, x, &m.cfg)
}

// Linearize is processing.linearize (lines 33-43) for one sample:
// ((c/1e8)/(1-c/1e8) - (r/1e8)/(1-r/1e8)) * (gap/0.087) * 1e6 microstrain,
// with the operations in processing.py's order.
func Linearize(counts [4]float64, ref [4]int64, gap float64) [4]float64 {
	var u [4]float64
	for g, c := range counts {
		cs := c / 100000000
		rs := float64(ref[g]) / 100000000
		u[g] = ((cs / (1 - cs)) - (rs / (1 - rs))) * (gap / metadata.Diameter) * 1000000
	}
	return u
}

// Regional is processing.apply_calibration_matrix with all four gauges
// (use_channels [1,1,1,1]): pinv(pinv(M)*ones) = M for the full-rank 3x4
// calibration matrices, so the regional strains are M times the gauge
// strains: Eee+Enn, Eee-Enn, 2Ene.
func Regional(mat *[3][4]float64, u [4]float64) [3]float64 {
	var r [3]float64
	for i := range r {
		for g := range u {
			r[i] += mat[i][g] * u[g]
		}
	}
	return r
}

// PushPressure consumes one pressure sample (time t, unix seconds; hPa, the
// channel's counts times 0.001 as level2.ipynb scales RDO) and appends the
// barometric corrections of the 300 s times in (previous sample, t]: the
// linear interpolation np.interp gives, times the station's response
// (calculate_pressure_correction). The sample's own time, when it is a 300 s
// time, is included (its value is the sample itself), so the newest
// sample's correction does not wait for the next sample; without a previous
// sample within MaxPressureGap only that one is. A NaN hPa (fill value) is
// skipped. Without a response it returns out unchanged.
func (m *Machine) PushPressure(t int64, hPa float64, out []AtmpPoint) ([]AtmpPoint, error) {
	ps := &m.st.Press
	if ps.Has && t <= ps.LastT {
		return out, fmt.Errorf("level2: pressure sample at %d is not after %d", t, ps.LastT)
	}
	if math.IsNaN(hPa) {
		return out, nil
	}
	maxGap := m.cfg.MaxPressureGap
	if maxGap <= 0 {
		maxGap = DefaultMaxPressureGap
	}
	if m.cfg.Atmp != nil {
		first := t + 1 // none
		if t%Period == 0 {
			first = t // only t itself
		}
		slope := 0.0
		if ps.Has && t-ps.LastT <= maxGap {
			slope = (hPa - ps.LastV) / float64(t-ps.LastT)
			first = ps.LastT - ps.LastT%Period + Period // the first 300 s time after the previous sample
		}
		for T := first; T <= t; T += Period {
			p := hPa // at the sample itself exactly its value
			if T < t {
				p = slope*float64(T-ps.LastT) + ps.LastV
			}
			a := AtmpPoint{Time: T, HPa: p}
			for g, c := range m.cfg.Atmp {
				a.Correction[g] = p * c
			}
			out = append(out, a)
		}
	}
	ps.Has, ps.LastT, ps.LastV = true, t, hPa
	return out, nil
}
