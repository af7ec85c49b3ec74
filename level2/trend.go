package level2

// Trend correction (trend_c), the notebook's (level2.ipynb, "Trend"):
//
//   - Where the station README gives borehole trend models with a non-zero
//     coefficient, trend_c is that model, processing.py's
//     calculate_double_exponential_trend_correction: F + A1·exp(T1·d) + M·d +
//     A2·exp(T2·d), d the days since the README's detrend start date. It is
//     a pure function of the time and the metadata.
//   - Otherwise it is the notebook's linear fit,
//     processing.calculate_linear_trend_correction(method='linear'): the
//     series' interior holes interpolated linearly, scipy's linregress of
//     the values on the row number, trend_c = row number × slope (0 at the
//     first row). In the stream the series is the station's 300 s series
//     from its first point up to the point being emitted: trend_c at a
//     point is what the notebook's fit gives for its last row when run on
//     everything up to it. Running sums make that O(1) per row.
//
// A README model whose coefficients are all zero (TSM5's, as level2.ipynb
// prints it) is no model: it would make trend_c 0 everywhere.

import (
	"math"
	"time"

	"github.com/earthscope/gtsm-stream/metadata"
)

// TrendModel is a station's README trend model, ready to evaluate.
type TrendModel struct {
	Start  int64 // unix seconds of the detrend start date
	Gauges [4]metadata.TrendModel
}

// TrendModelFrom returns the station's trend model, or nil when the README
// has none, its coefficients are all zero, or its date does not parse.
func TrendModelFrom(s *metadata.Station) *TrendModel {
	if s == nil || s.Trend == nil {
		return nil
	}
	nonZero := false
	for _, g := range s.Trend.Gauges {
		nonZero = nonZero || g.F != 0 || g.A1 != 0 || g.T1 != 0 || g.M != 0 || g.A2 != 0 || g.T2 != 0
	}
	if !nonZero {
		return nil
	}
	d, err := time.Parse("2006-01-02T15:04:05", s.Trend.Date)
	if err != nil {
		return nil
	}
	return &TrendModel{Start: d.Unix(), Gauges: s.Trend.Gauges}
}

// At is calculate_double_exponential_trend_correction at unix time t.
func (m *TrendModel) At(t int64) [4]float64 {
	var out [4]float64
	days := float64(t-m.Start) / 86400
	for g, p := range m.Gauges {
		out[g] = p.F + p.A1*math.Exp(days*p.T1) + p.M*days + p.A2*math.Exp(days*p.T2)
	}
	return out
}

// trendFit is the streaming linear fit: the running means and co-moments
// (Welford) of row number x and value y over every row of the 300 s series
// since its first point, holes filled linearly.
type trendFit struct {
	Has   bool
	T0    int64 // time of row 0
	LastT int64
	LastV [4]float64
	N     float64
	MeanX float64
	MeanY [4]float64
	Sxx   float64
	Sxy   [4]float64
}

func (f *trendFit) add(x float64, y [4]float64) {
	f.N++
	dx := x - f.MeanX
	f.MeanX += dx / f.N
	f.Sxx += dx * (x - f.MeanX)
	for g := range y {
		// co-moment update: dx (before) times the deviation of y from its
		// updated mean
		f.MeanY[g] += (y[g] - f.MeanY[g]) / f.N
		f.Sxy[g] += dx * (y[g] - f.MeanY[g])
	}
}

// push adds the point at t (and the interpolated rows of a hole before it)
// and returns row number × slope of the fit so far; 0 at the first row.
func (f *trendFit) push(t int64, u [4]float64) [4]float64 {
	if !f.Has {
		*f = trendFit{Has: true, T0: t}
	} else {
		k := (t - f.LastT) / Period // rows from the last point to this one
		x0 := float64((f.LastT - f.T0) / Period)
		for j := int64(1); j < k; j++ {
			// DataFrame.interpolate(): linear in row position
			var y [4]float64
			for g := range y {
				y[g] = f.LastV[g] + (u[g]-f.LastV[g])*float64(j)/float64(k)
			}
			f.add(x0+float64(j), y)
		}
	}
	x := float64((t - f.T0) / Period)
	f.add(x, u)
	f.LastT, f.LastV = t, u
	var out [4]float64
	if f.Sxx == 0 {
		return out
	}
	for g := range out {
		out[g] = x * (f.Sxy[g] / f.Sxx)
	}
	return out
}
