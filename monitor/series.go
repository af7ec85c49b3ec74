package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/earthscope/gtsm-stream/sitecode"
)

// The status page's plots load their data from GET /api/series (one site and
// session, a time range), downsampled here so a browser never receives more
// than maxPoints buckets per gauge whatever the range: each bucket carries the
// min, max and mean of the samples in it, so spikes survive the downsampling.

const (
	defaultPoints = 2000
	maxPoints     = 5000
	// rawRowLimit bounds a query over gtsm_etl: a range holding more samples
	// than this is answered from the 10m/1h/1d windows instead (2 M rows: ~28 h
	// of the Min session's 20 samples/s).
	rawRowLimit   = 2_000_000
	seriesTimeout = 10 * time.Second
)

// sessionInfo is what the plots need to know of a session.
type sessionInfo struct {
	intervalMS  int64     // sample interval
	channels    [4]string // strain gauges CH0..CH3
	defaultSpan int64     // ms shown when the page asks for the default range
}

var sessions = map[string]sessionInfo{
	"Day":  {600_000, [4]string{"rs1_t0", "rs2_t0", "rs3_t0", "rs4_t0"}, 7 * 24 * 3600_000},
	"Hour": {1000, [4]string{"ls1_t0", "ls2_t0", "ls3_t0", "ls4_t0"}, 24 * 3600_000},
	"Min":  {50, [4]string{"bs1_t0", "bs2_t0", "bs3_t0", "bs4_t0"}, 3600_000},
}

// windowWidths are the processor's window widths, widest first.
var windowWidths = []struct {
	name string
	ms   int64
}{{"1d", 86_400_000}, {"1h", 3_600_000}, {"10m", 600_000}}

// niceSteps are the bucket widths (ms) a plot may use: round steps, so buckets
// start at round UTC times. Above a day, multiples of a day.
var niceSteps = []int64{50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000,
	60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
	3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000}

// pickStep returns the smallest round bucket width that is a multiple of res
// and gives at most points buckets over span.
func pickStep(span, res int64, points int) int64 {
	want := max(res, (span+int64(points)-1)/int64(points))
	for _, s := range niceSteps {
		if s >= want && s%res == 0 {
			return s
		}
	}
	day := int64(86_400_000)
	return (want + day - 1) / day * day
}

// seriesResponse is the JSON of /api/series. Times are UNIX seconds (what
// uPlot's time scale takes); a null in Min/Max/Mean is a bucket without a
// value (no sample, or only NULL fill values): the line breaks there.
type seriesResponse struct {
	Site, Session string
	From, To      float64 // the range answered, [From, To), s
	First, Last   float64 // the session's first and last sample time, s
	IntervalS     float64 // sample interval, s
	StepS         float64 // bucket width, s
	Source        string  // "samples" (gtsm_etl) or "10m windows", "1h windows", "1d windows"
	Unit          string  // "counts" or "µε"
	T             []float64
	Gauges        [4]gaugeSeries
}

type gaugeSeries struct {
	Channel        string
	Min, Max, Mean []*float64
	// Reference is false when Unit is µε and site_reference has no row for
	// the gauge: its values are all null.
	Reference bool
}

// reference is a gauge's site_reference row.
type reference struct {
	counts, gapM float64
}

// microstrain is the level-2 linearization of sql/views/strain.sql.
func (r reference) microstrain(counts float64) float64 {
	x, x0 := counts/1e8, r.counts/1e8
	return (x/(1-x) - x0/(1-x0)) * (r.gapM / 0.087) * 1e6
}

// badRequest is an error the client caused (HTTP 400), errNoData a site and
// session without samples (404).
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

// finite is f as a JSON value: null for NaN and the infinities, which JSON
// cannot carry (the encoder would fail and the client get nothing).
func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

// checkSite refuses a site= that is missing or not a site code (400): the
// site is a query parameter, but also a name in the response and the page.
func checkSite(site string) error {
	if site == "" {
		return badRequest{"site= is required"}
	}
	if err := sitecode.Check(site); err != nil {
		return badRequest{"site=: " + err.Error()}
	}
	return nil
}

var errNoData = errors.New("no samples")

// parseMS reads a query parameter as UNIX milliseconds.
func parseMS(q url.Values, name string) (int64, bool, error) {
	s := q.Get(name)
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, badRequest{fmt.Sprintf("%s=%q: want UNIX milliseconds", name, s)}
	}
	return v, true, nil
}

// serveSeries answers GET /api/series?site=&session=[&from=&to=(ms)|&span=(ms)|&span=all][&points=][&unit=counts|ue].
func serveSeries(db *sql.DB) http.HandlerFunc { return serveLoaded(db, loadSeries) }

// serveLoaded answers a GET with load's result as JSON, within
// seriesTimeout: 400 for a bad request, 404 when there is no data.
func serveLoaded[T any](db *sql.DB, load func(context.Context, *sql.DB, url.Values) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), seriesTimeout)
		defer cancel()
		resp, err := load(ctx, db, r.URL.Query())
		var br badRequest
		switch {
		case errors.As(err, &br):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case errors.Is(err, errNoData):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(resp)
	}
}

func loadSeries(ctx context.Context, db *sql.DB, q url.Values) (*seriesResponse, error) {
	site, session := q.Get("site"), q.Get("session")
	info, ok := sessions[session]
	if !ok {
		return nil, badRequest{fmt.Sprintf("session=%q: want Day, Hour or Min", session)}
	}
	if err := checkSite(site); err != nil {
		return nil, err
	}
	points, err := parsePoints(q)
	if err != nil {
		return nil, err
	}
	unit := "counts"
	switch q.Get("unit") {
	case "", "counts":
	case "ue", "µε":
		unit = "µε"
	default:
		return nil, badRequest{fmt.Sprintf("unit=%q: want counts or ue", q.Get("unit"))}
	}
	rng, err := parseRange(q, info.defaultSpan)
	if err != nil {
		return nil, err
	}
	resp := &seriesResponse{Site: site, Session: session, Unit: unit, IntervalS: float64(info.intervalMS) / 1000}
	err = readTx(ctx, db, func(tx *sql.Conn) error {
		var first, last sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT epoch_ms(first_time), epoch_ms(last_time) FROM site_state WHERE site = ? AND session = ?`,
			site, session).Scan(&first, &last)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !last.Valid) {
			return fmt.Errorf("site %q session %q: %w", site, session, errNoData)
		}
		if err != nil {
			return fmt.Errorf("series %s %s: read site_state: %w", site, session, err)
		}
		end := last.Int64 + info.intervalMS // [first, end) holds every sample
		from, to := rng.clamp(first.Int64, end)
		if rng.isDefault() && to > from {
			// The default range starts at its first sample: a session
			// recorded now and then (Min files) is not a dot at the edge.
			var firstIn sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT min("time") FROM gtsm_etl WHERE key_site = ? AND session = ? AND "time" >= ? AND "time" < ?`,
				site, session, from, to).Scan(&firstIn); err != nil {
				return fmt.Errorf("series %s %s: first sample in range: %w", site, session, err)
			}
			if firstIn.Valid {
				from = firstIn.Int64
			}
		}
		if to <= from {
			return badRequest{fmt.Sprintf("empty range: the data spans %s .. %s UTC",
				time.UnixMilli(first.Int64).UTC().Format(time.DateTime), time.UnixMilli(last.Int64).UTC().Format(time.DateTime))}
		}
		res := info.intervalMS
		if (to-from)/info.intervalMS > rawRowLimit {
			res = windowWidths[len(windowWidths)-1].ms
		}
		step := pickStep(to-from, res, points)
		from = from / step * step // buckets at round UTC times
		resp.First, resp.Last = float64(first.Int64)/1000, float64(last.Int64)/1000
		resp.From, resp.To, resp.StepS = float64(from)/1000, float64(to)/1000, float64(step)/1000
		var refs [4]*reference
		if unit == "µε" {
			if refs, err = loadReferences(ctx, tx, site); err != nil {
				return err
			}
		}
		return loadBuckets(ctx, tx, resp, info, refs, from, to, step)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func loadReferences(ctx context.Context, tx *sql.Conn, site string) ([4]*reference, error) {
	var refs [4]*reference
	rows, err := tx.QueryContext(ctx, `SELECT gauge, reference_counts, gap_m FROM site_reference WHERE site = ?`, site)
	if err != nil {
		return refs, fmt.Errorf("series %s: read site_reference: %w", site, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g int
		var r reference
		if err := rows.Scan(&g, &r.counts, &r.gapM); err != nil {
			return refs, fmt.Errorf("series %s: scan site_reference: %w", site, err)
		}
		if g >= 1 && g <= 4 {
			refs[g-1] = &r
		}
	}
	return refs, rows.Err()
}

// loadBuckets reads min/max/mean per bucket of step ms and gauge, from the
// samples when step is finer than 10 minutes, else from the widest window
// width that divides step (the windows hold exact min, max and sum).
func loadBuckets(ctx context.Context, tx *sql.Conn, resp *seriesResponse, info sessionInfo, refs [4]*reference, from, to, step int64) error {
	c := info.channels
	var q string
	var args []any
	resp.Source = "samples"
	for _, w := range windowWidths {
		if step%w.ms == 0 {
			resp.Source = w.name + " windows"
			// One row per bucket, the four gauges in columns, as from gtsm_etl.
			agg := ""
			for _, ch := range c {
				agg += fmt.Sprintf(`, min(min) FILTER (channel = '%[1]s'), max(max) FILTER (channel = '%[1]s'),
					sum(sum) FILTER (channel = '%[1]s') / nullif(sum(n - n_null) FILTER (channel = '%[1]s'), 0)`, ch)
			}
			q = `SELECT (epoch_ms(window_start) - ?) // ? AS b` + agg + `
				FROM windows WHERE site = ? AND session = ? AND width = ?
				  AND window_start >= epoch_ms(?::BIGINT) AND window_start < epoch_ms(?::BIGINT)
				GROUP BY b ORDER BY b`
			args = []any{from, step, resp.Site, resp.Session, w.name, from, to}
			break
		}
	}
	if q == "" {
		agg := ""
		for _, ch := range c {
			agg += fmt.Sprintf(`, min(%[1]s), max(%[1]s), avg(%[1]s)`, ch)
		}
		q = `SELECT ("time" - ?) // ? AS b` + agg + `
			FROM gtsm_etl WHERE key_site = ? AND session = ? AND "time" >= ? AND "time" < ?
			GROUP BY b ORDER BY b`
		args = []any{from, step, resp.Site, resp.Session, from, to}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("series %s %s (%s, step %d ms): %w", resp.Site, resp.Session, resp.Source, step, err)
	}
	defer rows.Close()
	for g := range resp.Gauges {
		resp.Gauges[g].Channel = c[g]
		resp.Gauges[g].Reference = resp.Unit == "counts" || refs[g] != nil
	}
	var vals [12]sql.NullFloat64
	dest := []any{new(int64)}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	prev := int64(-2)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("series %s %s: scan: %w", resp.Site, resp.Session, err)
		}
		b := *dest[0].(*int64)
		if prev >= -1 && b > prev+1 {
			// Buckets without samples between two with: a null point
			// breaks the line instead of drawing across the gap.
			resp.T = append(resp.T, float64(from+(prev+1)*step)/1000)
			for g := range resp.Gauges {
				gs := &resp.Gauges[g]
				gs.Min, gs.Max, gs.Mean = append(gs.Min, nil), append(gs.Max, nil), append(gs.Mean, nil)
			}
		}
		prev = b
		resp.T = append(resp.T, float64(from+b*step)/1000)
		for g := range resp.Gauges {
			gs := &resp.Gauges[g]
			conv := func(v sql.NullFloat64) *float64 {
				if !v.Valid || !gs.Reference {
					return nil
				}
				f := v.Float64
				if refs[g] != nil {
					f = refs[g].microstrain(f)
				}
				return finite(f)
			}
			gs.Min = append(gs.Min, conv(vals[3*g]))
			gs.Max = append(gs.Max, conv(vals[3*g+1]))
			gs.Mean = append(gs.Mean, conv(vals[3*g+2]))
		}
	}
	return rows.Err()
}

// timeRange is a request's from=, to= and span= (ms), before it is clamped
// to the data.
type timeRange struct {
	from, to       int64
	hasFrom, hasTo bool
	span           int64 // default span, or span=
	spanGiven      bool
	all            bool // span=all
}

// parseRange reads from=, to= and span= (milliseconds > 0, or all).
func parseRange(q url.Values, defaultSpan int64) (timeRange, error) {
	r := timeRange{span: defaultSpan}
	var err error
	if r.from, r.hasFrom, err = parseMS(q, "from"); err != nil {
		return r, err
	}
	if r.to, r.hasTo, err = parseMS(q, "to"); err != nil {
		return r, err
	}
	switch s := q.Get("span"); s {
	case "":
	case "all":
		r.all, r.spanGiven = true, true
	default:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			return r, badRequest{fmt.Sprintf("span=%q: want milliseconds > 0 or all", s)}
		}
		r.span, r.spanGiven = v, true
	}
	return r, nil
}

// isDefault: the request named no range at all.
func (r timeRange) isDefault() bool { return !r.hasFrom && !r.hasTo && !r.spanGiven }

// clamp resolves the range against data spanning [first, end): explicit
// bounds, or the last span of the data (archives are years old: "now"
// would show nothing), or all of it; clamped to the data, so a short
// session (a Min file is one minute) fills the plot.
func (r timeRange) clamp(first, end int64) (from, to int64) {
	from, to = r.from, r.to
	if !r.hasTo {
		to = end
	}
	if !r.hasFrom {
		from = to - r.span
	}
	if r.all {
		from, to = first, end
	}
	return max(from, first), min(to, end)
}

// parsePoints reads points= (1..maxPoints; default defaultPoints).
func parsePoints(q url.Values) (int, error) {
	s := q.Get("points")
	if s == "" {
		return defaultPoints, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPoints {
		return 0, badRequest{fmt.Sprintf("points=%q: want 1..%d", s, maxPoints)}
	}
	return n, nil
}
