package record

import (
	"fmt"
	"math"
	"slices"

	"github.com/earthscope/gtsm-stream/bottle"
)

// Merge turns the bottle files of one site and one session into gtsm_etl
// records: one record per distinct sample time found in any file, in time
// order, each carrying every channel that has a sample at that instant. On the
// Day session the 1800 s ancillary and the hourly RTSetting/Cal channels thus
// join the 600 s strain records at the same instants. Missing samples (the
// header's fill value) are null; an instant at which every channel is missing
// still gives a record, so consumers see the logger's timeline and its gaps.
//
// Float channels are carried as ScaleFloat(v): round(v × 10000), the SEED
// convention. Two files giving different values for the same field at the
// same instant are an error, as is a value that does not fit an Avro int.
func Merge(files []*bottle.File) ([]Record, error) {
	if len(files) == 0 {
		return nil, nil
	}
	site, session := files[0].Info.Site, files[0].Info.Session
	fields := make([]int, len(files))
	total := 0
	for k, f := range files {
		if f.Info.Site == "" || f.Info.Field == "" {
			return nil, fmt.Errorf("merge %s: file has no name info (site/channel); read it with bottle.ReadFile or bottle.Walk", f.Name)
		}
		if f.Info.Site != site || f.Info.Session != session {
			return nil, fmt.Errorf("merge: %s is %s %s but %s is %s %s; merge one site and session at a time",
				f.Name, f.Info.Site, f.Info.Session, files[0].Name, site, session)
		}
		i, ok := FieldIndex(f.Info.Field)
		if !ok || i < FirstInt {
			return nil, fmt.Errorf("merge %s: channel %s maps to %q, not a gtsm_etl int field", f.Name, f.Info.Channel, f.Info.Field)
		}
		fields[k] = i
		total += f.Len()
	}

	times := sampleTimes(files, total)
	recs := make([]Record, len(times))
	// All timestamps share one string: one allocation instead of one per
	// record (a Min day has 1.7M records).
	var buf []byte
	ends := make([]int, len(times))
	for i, t := range times {
		buf = appendTimestamp(buf, t)
		ends[i] = len(buf)
	}
	all := string(buf)
	start := 0
	for i, t := range times {
		r := &recs[i]
		r.Site, r.Time, r.Timestamp, r.Session = site, t, all[start:ends[i]], session
		r.Set = 1<<FieldSite | 1<<FieldTime | 1<<FieldTimestamp
		start = ends[i]
	}
	for k, f := range files {
		field := fields[k]
		bit := uint64(1) << uint(field)
		j := 0 // index in times; a file's own times only increase
		for i := range f.Len() {
			t := f.Header.TimeMs(i)
			for times[j] != t {
				j++
			}
			if f.IsMissing(i) {
				continue
			}
			v, err := sampleValue(f, i)
			if err != nil {
				return nil, err
			}
			r := &recs[j]
			if r.Set&bit != 0 && r.Ints[field-FirstInt] != v {
				return nil, fmt.Errorf("merge %s: sample %d (%s) gives %s = %d, but another file gave %d at the same instant",
					f.Name, i, FormatTimestamp(t), FieldNames[field], v, r.Ints[field-FirstInt])
			}
			r.SetInt(field, v)
		}
	}
	return recs, nil
}

// sampleTimes returns the distinct sample times of all files, sorted. Files
// of a session lie on a common grid (600 s, 1 s or 50 ms steps, the Day
// ancillaries at multiples of 600 s), so the usual case marks slots of that
// grid in O(samples); times off any common grid fall back to sorting.
func sampleTimes(files []*bottle.File, total int) []int64 {
	lo, hi, step := int64(math.MaxInt64), int64(math.MinInt64), int64(0)
	for _, f := range files {
		if n := f.Len(); n > 0 {
			lo = min(lo, f.Header.TimeMs(0))
			hi = max(hi, f.Header.TimeMs(n-1))
		}
	}
	if total == 0 {
		return nil
	}
	for _, f := range files {
		if f.Len() > 0 {
			step = gcd(step, f.Header.TimeMs(0)-lo)
			if f.Len() > 1 {
				step = gcd(step, f.Header.IntervalMs())
			}
		}
	}
	if step == 0 { // every file has one sample, all at lo
		return []int64{lo}
	}
	slots := (hi-lo)/step + 1
	if slots > int64(4*total+1024) {
		times := make([]int64, 0, total)
		for _, f := range files {
			for i := range f.Len() {
				times = append(times, f.Header.TimeMs(i))
			}
		}
		slices.Sort(times)
		return slices.Compact(times)
	}
	used := make([]bool, slots)
	n := 0
	for _, f := range files {
		first, k := (f.Header.TimeMs(0)-lo)/step, f.Header.IntervalMs()/step
		for i := range int64(f.Len()) {
			j := first + i*k
			if !used[j] {
				used[j] = true
				n++
			}
		}
	}
	times := make([]int64, 0, n)
	for j, u := range used {
		if u {
			times = append(times, lo+int64(j)*step)
		}
	}
	return times
}

func gcd(a, b int64) int64 {
	if a < 0 {
		a = -a
	}
	if b < 0 {
		b = -b
	}
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// sampleValue is sample i of f as an Avro int.
func sampleValue(f *bottle.File, i int) (int32, error) {
	if f.Header.DataType != bottle.Float32 {
		return f.Ints[i], nil
	}
	v, ok := ScaleFloat(f.Floats[i])
	if !ok {
		return 0, fmt.Errorf("%s: sample %d: float %v × 10000 does not fit an Avro int", f.Name, i, f.Floats[i])
	}
	return v, nil
}

// FloatScale is the factor float channels are multiplied by before rounding:
// the SEED convention the EarthScope tools use (0.0001 units per count; for
// PressureKPa that is 0.1 Pa, i.e. 0.001 hPa per count).
const FloatScale = 10000

// ScaleFloat converts a float32 channel sample to the int carried in the
// record: round(float64(v) × 10000), half away from zero (math.Round), as the
// SEED convention prescribes. ok is false for NaN, ±Inf and values whose
// scaled form does not fit an int32.
func ScaleFloat(v float32) (int32, bool) {
	x := math.Round(float64(v) * FloatScale)
	if math.IsNaN(x) || x < math.MinInt32 || x > math.MaxInt32 {
		return 0, false
	}
	return int32(x), true
}

// InferSession tells a record's session from which fields are set: rs*,
// ancillary and calibration fields are Day, ls* Hour, bs* Min. A record with
// no data field set is Min when its time has milliseconds (only 20 sps
// samples fall between seconds) and unknown otherwise; a record mixing the
// fields of two sessions is unknown.
func InferSession(r *Record) (bottle.Session, bool) {
	const (
		hour = uint64(0xF) << (FirstInt + 4)
		min  = uint64(0xF) << (FirstInt + 8)
		data = (uint64(1)<<NumFields - 1) &^ (1<<FirstInt - 1)
		day  = data &^ hour &^ min
	)
	d, h, m := r.Set&day != 0, r.Set&hour != 0, r.Set&min != 0
	switch {
	case d && !h && !m:
		return bottle.Day, true
	case h && !d && !m:
		return bottle.Hour, true
	case m && !d && !h:
		return bottle.Min, true
	case !d && !h && !m && r.IsSet(FieldTime) && r.Time%1000 != 0:
		return bottle.Min, true
	}
	return 0, false
}
