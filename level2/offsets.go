package level2

import (
	"math"
	"slices"
)

// offsets is processing.calculate_offsets (lines 410-446) in a streaming
// form. calculate_offsets takes a whole series: it interpolates it linearly
// (limit 3600 samples), takes first differences, sets a limit of
// limit_multiplier times the mean absolute first difference after dropping
// the round(n*(1-cutoff_percentile)) largest of the n rows, flags every first
// difference above the limit as an offset and returns their running total.
//
// The stream cannot see the whole series, so each 300 s first difference is
// judged against a trailing window: the limit for difference i is what
// calculate_offsets computes on the window of the last OffsetWindow+1 rows
// ending at row i (all rows while fewer have been seen); the offset
// correction at row i is the sum of every difference flagged so far. Rows
// missing from the 300 s series (decimation gaps) are linearly interpolated,
// as calculate_offsets' first step does, once the next point arrives. A hole
// longer than 3600 rows (12.5 days), beyond calculate_offsets' interpolation
// limit, restarts the window; the running total carries on.
type offsets struct {
	Has   bool
	LastT int64
	LastV [4]float64
	N     int64        // rows seen since the window (re)started
	Ring  [4][]float64 // the last OffsetWindow first differences per gauge, oldest first
	Cum   [4]float64   // running total of flagged differences
}

const offsetInterpLimit = 3600

func (o *offsets) push(t int64, u [4]float64, cfg *Config) [4]float64 {
	w := cfg.OffsetWindow
	if w <= 0 {
		w = DefaultOffsetWindow
	}
	mult, pct := cfg.OffsetMultiplier, cfg.OffsetPercentile
	if mult == 0 {
		mult = DefaultOffsetMultiplier
	}
	if pct == 0 {
		pct = DefaultOffsetPercentile
	}
	missing := (t-o.LastT)/Period - 1
	if !o.Has || missing > offsetInterpLimit {
		o.Has, o.LastT, o.LastV, o.N = true, t, u, 1
		for g := range o.Ring {
			o.Ring[g] = o.Ring[g][:0]
		}
		return o.Cum
	}
	var prev [4]float64 = o.LastV
	for k := int64(1); k <= missing+1; k++ {
		var x [4]float64
		if k == missing+1 {
			x = u
		} else {
			for g := range x {
				// np.interp over row positions, as DataFrame.interpolate(method='linear').
				slope := (u[g] - o.LastV[g]) / float64(missing+1)
				x[g] = slope*float64(k) + o.LastV[g]
			}
		}
		o.N++
		rows := min(o.N, int64(w)+1)
		drop := int64(math.RoundToEven(float64(rows) * (1 - pct)))
		for g := range x {
			d := x[g] - prev[g]
			if len(o.Ring[g]) == w {
				copy(o.Ring[g], o.Ring[g][1:])
				o.Ring[g] = o.Ring[g][:w-1]
			}
			o.Ring[g] = append(o.Ring[g], d)
			// iloc[0:-drop] of the sorted absolute differences, NaN (the
			// window's first row) last: the rows-drop smallest; with
			// drop == 0 it is empty, the mean NaN, and nothing is an offset.
			if drop == 0 {
				continue
			}
			// drop < 0 (a percentile given as 75, as level2.ipynb does):
			// iloc[0:-drop] reaches past the end and keeps every row.
			keep := rows - drop
			if drop < 0 {
				keep = int64(len(o.Ring[g]))
			}
			abs := make([]float64, len(o.Ring[g]))
			for i, r := range o.Ring[g] {
				abs[i] = math.Abs(r)
			}
			slices.Sort(abs)
			var sum float64
			for _, a := range abs[:keep] {
				sum += a
			}
			limit := sum / float64(keep) * mult
			if math.Abs(d) > limit {
				o.Cum[g] += d
			}
		}
		prev = x
	}
	o.LastT, o.LastV = t, u
	return o.Cum
}
