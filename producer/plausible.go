package producer

import (
	"fmt"
	"strconv"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

// Plausibility bounds (see timeBounds.check), documented in docs/records.md
// "Plausible times":
//   - eraStartMs, 1990-01-01 UTC: no GTSM strainmeter recorded before it. A
//     time before it comes from a damaged or misread header (0, or a small
//     number of seconds: 1970).
//   - futureSlack: a sample may lie at most this far after the run's clock
//     (a logger clock slightly ahead, time zones); anything later is not a
//     measurement.
//   - nameSlack: a file's samples must lie within the period its name gives
//     (the day, hour or minute), widened by this much on each side. Real
//     files lie exactly within it; a file whose header disagrees with its
//     name by more is misnamed or damaged, and merging it into the named
//     period would put records in the wrong order and the wrong group.
const (
	eraStartMs  = 631152000000 // 1990-01-01 00:00:00 UTC
	futureSlack = 24 * time.Hour
	nameSlack   = 24 * time.Hour
)

// timeBounds refuses files whose sample times are implausible. Times beyond
// DuckDB's TIMESTAMP range (a header start of 1e12 s, an interval of 1e7 s)
// would stop the processor, and times in 1970 or 2100 make gap reports count
// billions of missing samples; such a file is a bad input like a truncated
// one: reported with its name and the first bad sample, not published.
type timeBounds struct {
	lo, hi int64 // era bounds, epoch ms
}

func newTimeBounds(now time.Time) timeBounds {
	return timeBounds{lo: eraStartMs, hi: now.Add(futureSlack).UnixMilli()}
}

// check returns an error naming f and its first sample outside both the era
// [1990-01-01, now + futureSlack] and f's name period ± nameSlack. The times
// come from the header alone (start + i × interval), so this needs no sample
// and computes the first bad index without overflow.
func (b timeBounds) check(f *bottle.File) error {
	n := int64(f.Len())
	if n == 0 {
		return nil
	}
	pStart := periodStart(f.Info)
	pEnd := pStart + periodLength(f.Info).Milliseconds()
	lo := max(b.lo, pStart-nameSlack.Milliseconds())
	hi := min(b.hi, pEnd+nameSlack.Milliseconds())
	start, step := f.Header.StartMs(), f.Header.IntervalMs()
	bad := int64(-1)
	switch {
	case start < lo || start > hi:
		bad = 0
	case (hi-start)/step < n-1:
		bad = (hi-start)/step + 1
	}
	if bad < 0 {
		return nil
	}
	t := start + bad*step
	why := fmt.Sprintf("%s .. %s UTC (the GTSM era, 1990-01-01 to the clock + %s, and the %s the file name gives ± %s)",
		record.FormatTimestamp(lo), record.FormatTimestamp(hi), futureSlack, periodWord(f.Info), nameSlack)
	return fmt.Errorf("%s: implausible time: sample %d of %d is at %s (start %s s + %d × interval %s s), outside %s; file not published",
		f.Name, bad, n, record.FormatTimestamp(t), strconv.FormatFloat(f.Header.Start, 'f', -1, 64), bad,
		strconv.FormatFloat(float64(f.Header.Interval), 'g', -1, 32), why)
}

// periodLength is the span of the period a file name covers.
func periodLength(n bottle.Name) time.Duration {
	switch {
	case n.Minute >= 0:
		return time.Minute
	case n.Hour >= 0:
		return time.Hour
	}
	return 24 * time.Hour
}

func periodWord(n bottle.Name) string {
	switch {
	case n.Minute >= 0:
		return "minute"
	case n.Hour >= 0:
		return "hour"
	}
	return "day"
}
