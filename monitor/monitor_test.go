package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	f := newFixture(t)
	uplot, err := os.ReadFile(filepath.Join("static", "uplot", "uPlot.iife.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		code     int
		contains []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/metrics", 200, []string{"gtsm_records_in_total 291", "gtsm_rows_written_total 288", "gtsm_batches_total 1",
			"gtsm_duplicate_records_total 3", "gtsm_late_records_total 2", `gtsm_dead_letters_total{reason="value_bad_magic"} 1`, "gtsm_flush_seconds_count 1",
			`gtsm_site_records{session="Day",site="B009"} 571`, `gtsm_site_records{session="Min",site="B009"} 1200`,
			`gtsm_site_missing_samples{session="Day",site="B009"} 5`, `gtsm_consumer_lag_records{partition="1",topic="gtsm_etl"} 17`,
			"gtsm_site_state_scrape_error 0", "gtsm_lag_scrape_error 0", "go_goroutines"}},
		// Day: 576 slots, 5 missing (one gap), 3 NULL rs2_t0 values: the
		// table says which is which.
		{"/", 200, []string{"<td>B009</td><td>Day</td><td>2021-07-02 23:50:00", "<td>571</td><td>0</td><td>0</td><td>1</td><td>5</td><td>3</td>",
			"<td>B009</td><td>Hour</td><td>2021-07-01 00:59:59", "<td>3600</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td>",
			"<td>B009</td><td>Min</td><td>2021-07-01 00:00:59.95", "<td>1200</td>",
			"missing samples (timeline gaps)", "NULL gauge values (fill)", dayGapStart,
			`<section class="plot" data-site="B009" data-session="Min">`, "B009 Min session: bs1_t0, bs2_t0, bs3_t0, bs4_t0 (20 samples/s)",
			"B009 Day session: rs1_t0, rs2_t0, rs3_t0, rs4_t0 (one sample per 10 minutes)",
			`src="/static/uplot/uPlot.iife.min.js"`, `src="/static/status.js"`,
			"<noscript><p>The plots need JavaScript. Their data is JSON at /api/series?site=SITE&amp;session=SESSION"}},
		{"/static/uplot/uPlot.iife.min.js", 200, []string{string(uplot[:200])}},
		{"/static/status.js", 200, []string{"/api/series"}},
		{"/static/uplot/LICENSE", 200, []string{"MIT"}},
		{"/api/series?site=B009&session=Week", 400, []string{`session="Week"`}},
		{"/api/series?session=Min", 400, []string{"site= is required"}},
		{"/api/series?site=NOPE&session=Min", 404, []string{`site "NOPE" session "Min": no samples`}},
		{"/api/series?site=B009&session=Min&points=6000", 400, []string{"points"}},
		{"/api/series?site=B009&session=Min&unit=kg", 400, []string{"unit"}},
		{"/api/series?site=B009&session=Min&from=0&to=1000", 400, []string{"empty range: the data spans 2021-07-01 00:00:00 .. 2021-07-01 00:00:59 UTC"}},
		{"/api/series?site=B009&session=Min&from=x", 400, []string{"UNIX milliseconds"}},
		{"/plot/B009/Day.svg", 404, nil}, // the SVG writer is gone
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, f.srv.URL+tc.path)
			if code != tc.code {
				t.Fatalf("GET %s = %d, want %d: %s", tc.path, code, tc.code, body)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("GET %s: body lacks %q", tc.path, s)
				}
			}
		})
	}
}

func utcMS(s string) int64 {
	ts, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return ts.UnixMilli()
}

// want is one bucket as computed independently, in SQL over gtsm_etl.
type want struct {
	t               float64
	min, max, mean  float64
	null            bool
	channelsNotNull int
}

// TestSeries checks /api/series against SQL over the raw samples: the range
// chosen, the bucket width and source, and every bucket's min/max/mean of
// gauge 1 (and nulls where samples are missing or NULL).
func TestSeries(t *testing.T) {
	f := newFixture(t)
	if _, err := f.db.Exec(`INSERT INTO site_reference VALUES ('B009', 1, 47000000, 0.0001)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, query    string
		session, col   string
		from, to       string // the range answered (UTC)
		step           float64
		source         string
		buckets, nulls int // entries in T; entries where gauge 1's mean is null
	}{
		// The Min session: every 50 ms sample, over the one minute there is
		// (the default hour is clamped to the data).
		{"Min default", "site=B009&session=Min", "Min", "bs1_t0", "2021-07-01 00:00:00", "2021-07-01 00:01:00", 0.05, "samples", 1200, 0},
		{"Min zoomed", "site=B009&session=Min&from=" + itoa(utcMS("2021-07-01 00:00:10")) + "&to=" + itoa(utcMS("2021-07-01 00:00:20")),
			"Min", "bs1_t0", "2021-07-01 00:00:10", "2021-07-01 00:00:20", 0.05, "samples", 200, 0},
		{"Min 100 points", "site=B009&session=Min&points=100", "Min", "bs1_t0", "2021-07-01 00:00:00", "2021-07-01 00:01:00", 1, "samples", 60, 0},
		// Day: the default 7 days clamped to the 4 days of data; 10 minutes
		// per point from the 10m windows; the 5-sample gap is one null point.
		{"Day default", "site=B009&session=Day", "Day", "rs1_t0", "2021-06-29 00:00:00", "2021-07-03 00:00:00", 600, "10m windows", 572, 1},
		// rs2_t0 has 3 NULL samples: 3 more null means than rs1_t0.
		{"Day rs2 NULLs", "site=B009&session=Day", "Day", "rs2_t0", "2021-06-29 00:00:00", "2021-07-03 00:00:00", 600, "10m windows", 572, 4},
		{"Day all 10 points", "site=B009&session=Day&span=all&points=10", "Day", "rs1_t0", "2021-06-29 00:00:00", "2021-07-03 00:00:00", 43200, "1h windows", 8, 0},
		{"Day 1 d", "site=B009&session=Day&span=86400000", "Day", "rs1_t0", "2021-07-02 00:00:00", "2021-07-03 00:00:00", 600, "10m windows", 144, 0},
		{"Day 2 d by the day", "site=B009&session=Day&span=172800000&points=2", "Day", "rs1_t0", "2021-07-01 00:00:00", "2021-07-03 00:00:00", 86400, "1d windows", 2, 0},
		{"Hour 10 min", "site=B009&session=Hour&span=600000", "Hour", "ls1_t0", "2021-07-01 00:50:00", "2021-07-01 01:00:00", 1, "samples", 600, 0},
		{"Hour all 100 points", "site=B009&session=Hour&span=all&points=100", "Hour", "ls1_t0", "2021-07-01 00:00:00", "2021-07-01 01:00:00", 60, "samples", 60, 0},
		// B010, Min files at 07-01 00:00, 07-02 22:00, 07-03 00:00.
		// The default range (the last hour, not more: the file at 22:00 is
		// outside) starts at its first sample: B010's last file, not 59
		// empty minutes and a dot at the edge.
		{"B010 Min default", "site=B010&session=Min", "Min", "bs1_t0", "2021-07-03 00:00:00", "2021-07-03 00:01:00", 0.05, "samples", 1200, 0},
		{"B010 Min 1 h", "site=B010&session=Min&span=3600000", "Min", "bs1_t0", "2021-07-02 23:01:00", "2021-07-03 00:01:00", 2, "samples", 30, 0},
		// 2 days of 50 ms slots (3.5 M) exceed the raw query bound, so 10m
		// windows answer: three minutes of data, a null between each.
		{"B010 Min all (over the raw bound)", "site=B010&session=Min&span=all", "Min", "bs1_t0", "2021-07-01 00:00:00", "2021-07-03 00:01:00", 600, "10m windows", 5, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, f.srv.URL+"/api/series?"+tc.query)
			if code != 200 {
				t.Fatalf("GET %s = %d: %s", tc.query, code, body)
			}
			var r seriesResponse
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			if got, want := r.From, float64(utcMS(tc.from))/1000; got != want {
				t.Errorf("From = %v, want %v (%s)", got, want, tc.from)
			}
			if got, want := r.To, float64(utcMS(tc.to))/1000; got != want {
				t.Errorf("To = %v, want %v (%s)", got, want, tc.to)
			}
			if r.StepS != tc.step || r.Source != tc.source || r.Unit != "counts" {
				t.Errorf("step %v s from %q in %q, want %v s from %q in counts", r.StepS, r.Source, r.Unit, tc.step, tc.source)
			}
			if len(r.T) != tc.buckets {
				t.Fatalf("%d points, want %d", len(r.T), tc.buckets)
			}
			gi := int(tc.col[2] - '1')
			g := r.Gauges[gi]
			if g.Channel != tc.col || len(g.Min) != len(r.T) || len(g.Max) != len(r.T) || len(g.Mean) != len(r.T) {
				t.Fatalf("gauge %d: channel %q, %d/%d/%d values for %d times", gi+1, g.Channel, len(g.Min), len(g.Max), len(g.Mean), len(r.T))
			}
			// The same buckets, computed from the samples.
			rows, err := f.db.Query(`SELECT ("time" - ?) // ? AS b, min(`+tc.col+`), max(`+tc.col+`), avg(`+tc.col+`)
				FROM gtsm_etl WHERE key_site = ? AND session = ? AND "time" >= ? AND "time" < ? GROUP BY b ORDER BY b`,
				int64(r.From*1000), int64(r.StepS*1000), r.Site, tc.session, utcMS(tc.from), utcMS(tc.to))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			byT := map[float64][3]*float64{}
			for rows.Next() {
				var b int64
				var mn, mx, mean *float64
				if err := rows.Scan(&b, &mn, &mx, &mean); err != nil {
					t.Fatal(err)
				}
				byT[r.From+float64(b)*r.StepS] = [3]*float64{mn, mx, mean}
			}
			nulls := 0
			for i, ts := range r.T {
				if i > 0 && ts <= r.T[i-1] {
					t.Fatalf("times not increasing at %d: %v after %v", i, ts, r.T[i-1])
				}
				w, ok := byT[ts]
				if g.Mean[i] == nil {
					nulls++
					if ok && w[2] != nil {
						t.Errorf("%s: null, want mean %v", time.Unix(int64(ts), 0).UTC(), *w[2])
					}
					continue
				}
				if !ok || w[2] == nil {
					t.Fatalf("%s: a value where the samples have none", time.Unix(int64(ts), 0).UTC())
				}
				for k, got := range []*float64{g.Min[i], g.Max[i], g.Mean[i]} {
					if got == nil || math.Abs(*got-*w[k]) > 1e-6 {
						t.Fatalf("%s: min/max/mean[%d] = %v, want %v", time.Unix(int64(ts), 0).UTC(), k, got, *w[k])
					}
				}
			}
			if nulls != tc.nulls {
				t.Errorf("%d null means, want %d", nulls, tc.nulls)
			}
			// Bounded: never more buckets with data than asked for.
			if n := len(r.T) - nulls; n > 2000 {
				t.Errorf("%d buckets with data, more than the 2000 asked for", n)
			}
		})
	}

	// µε: gauge 1 of B009 has a site_reference row, the others not. Each
	// 50 ms bucket is one sample: its value equals the strain view's.
	t.Run("microstrain", func(t *testing.T) {
		_, body := get(t, f.srv.URL+"/api/series?site=B009&session=Min&unit=ue")
		var r seriesResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if r.Unit != "µε" || !r.Gauges[0].Reference || r.Gauges[1].Reference || len(r.T) != 1200 {
			t.Fatalf("unit %q, references %v %v, %d points", r.Unit, r.Gauges[0].Reference, r.Gauges[1].Reference, len(r.T))
		}
		rows, err := f.db.Query(`SELECT ts, microstrain FROM strain WHERE site = 'B009' AND session = 'Min' AND gauge = 1 ORDER BY ts`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		i := 0
		for ; rows.Next(); i++ {
			var ts time.Time
			var ue float64
			if err := rows.Scan(&ts, &ue); err != nil {
				t.Fatal(err)
			}
			if float64(ts.UnixMilli())/1000 != r.T[i] || math.Abs(*r.Gauges[0].Mean[i]-ue) > 1e-9*math.Max(1, math.Abs(ue)) {
				t.Fatalf("sample %d: %v %v µε, the strain view says %v %v", i, r.T[i], *r.Gauges[0].Mean[i], ts, ue)
			}
			if r.Gauges[1].Mean[i] != nil {
				t.Fatalf("gauge 2 has no reference but a µε value")
			}
		}
		if i != 1200 {
			t.Fatalf("strain view: %d rows", i)
		}
	})
}

func TestPickStep(t *testing.T) {
	const day = 86_400_000
	tests := []struct {
		span, res int64
		points    int
		want      int64
	}{
		{60_000, 50, 2000, 50},             // a Min minute: every sample
		{3_600_000, 50, 2000, 2000},        // a Min hour: 1800 ms → 2 s
		{3_600_000, 1000, 2000, 2000},      // an Hour hour
		{4 * day, 600_000, 2000, 600_000},  // Day: never finer than its samples
		{4 * day, 600_000, 10, 43_200_000}, // 12 h
		{365 * day, 600_000, 2000, 21_600_000},
		{3650 * day, 600_000, 2000, 2 * day}, // beyond the list: whole days
		{7 * day, 600_000, 5, 2 * day},
	}
	for _, tc := range tests {
		got := pickStep(tc.span, tc.res, tc.points)
		if got != tc.want {
			t.Errorf("pickStep(%d, %d, %d) = %d, want %d", tc.span, tc.res, tc.points, got, tc.want)
		}
		if got%tc.res != 0 || tc.span/got > int64(tc.points) {
			t.Errorf("pickStep(%d, %d, %d) = %d: not a multiple of %d or more than %d buckets", tc.span, tc.res, tc.points, got, tc.res, tc.points)
		}
	}
}

func TestHealthzUnhealthy(t *testing.T) {
	m := NewMetrics()
	srv := httptest.NewServer(Handler(nil, m, func() error { return errors.New("duckdb: disk full") }))
	defer srv.Close()
	code, body := get(t, srv.URL+"/healthz")
	if code != 503 || !strings.Contains(body, "disk full") {
		t.Fatalf("GET /healthz = %d %q, want 503 naming the cause", code, body)
	}
}

var _ = context.Background
