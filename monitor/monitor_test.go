package monitor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// newDB makes a real DuckDB file with the processor's schema and a little
// state: one site with a gap and two days of 10-minute windows.
func newDB(t *testing.T) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "gtsm.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO site_state VALUES ('B009', 'Day', TIMESTAMP '2021-07-01 00:00:00', TIMESTAMP '2021-07-02 23:50:00',
		288, 3, 2, 1, 5, 0, 287, now())`)
	exec(`INSERT INTO gaps VALUES ('B009', 'Day', TIMESTAMP '2021-07-01 10:00:00', TIMESTAMP '2021-07-01 10:40:00', 5)`)
	// 288 windows per gauge over two days; the plot must keep only the last day
	// (144 points per gauge), counted from the data's own last window.
	exec(`INSERT INTO windows
		SELECT 'B009', 'Day', '10m', ts, ts + INTERVAL 10 MINUTE, 'rs' || g || '_t0', 1, 0, v, v, v, v, v, NULL, true, 0, v, 0, 0, 0, 0
		FROM (SELECT TIMESTAMP '2021-07-01 00:00:00' + i * INTERVAL 10 MINUTE AS ts, g,
		             CAST(48000000 + g * 1000000 + 1000 * sin(i / 12.42 / 6 * 2 * pi()) AS INTEGER) AS v
		      FROM range(288) r(i), range(1, 5) gs(g))`)
	m := NewMetrics()
	m.ObserveCommit(291, 288, 3, 2, map[string]int{"value_bad_magic": 1}, 20*time.Millisecond)
	m.WatchSites(db)
	m.WatchLag("gtsm_etl", func(context.Context) (map[int32]int64, error) { return map[int32]int64{0: 0, 1: 17}, nil })
	healthy := true
	srv := httptest.NewServer(Handler(db, m, func() error {
		if !healthy {
			return errors.New("kafka unreachable")
		}
		return nil
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { healthy = false })
	return srv
}

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
	srv := newDB(t)
	tests := []struct {
		path     string
		code     int
		contains []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/metrics", 200, []string{"gtsm_records_in_total 291", "gtsm_rows_written_total 288", "gtsm_batches_total 1",
			"gtsm_duplicate_records_total 3", "gtsm_late_records_total 2", `gtsm_dead_letters_total{reason="value_bad_magic"} 1`, "gtsm_flush_seconds_count 1",
			`gtsm_site_records{session="Day",site="B009"} 288`, `gtsm_site_duplicates{session="Day",site="B009"} 3`,
			`gtsm_site_missing_samples{session="Day",site="B009"} 5`, `gtsm_consumer_lag_records{partition="1",topic="gtsm_etl"} 17`,
			"gtsm_site_state_scrape_error 0", "gtsm_lag_scrape_error 0", "go_goroutines"}},
		{"/", 200, []string{"<td>B009</td><td>Day</td><td>2021-07-02 23:50:00", "<td>288</td><td>3</td><td>2</td><td>1</td><td>5</td>",
			"2021-07-01 10:00:00", "<svg", "rs1_t0", "rs4_t0", "B009 Day: 10-minute mean strain counts"}},
		{"/plot/B009/Day.svg", 200, []string{"<svg", "<polyline"}},
		{"/plot/B009/Hour.svg", 404, []string{"no 10-minute windows"}},
		{"/plot/B009/Day", 404, nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, srv.URL+tc.path)
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

func TestPlotShowsLastDayOnly(t *testing.T) {
	srv := newDB(t)
	_, svg := get(t, srv.URL+"/plot/B009/Day.svg")
	if n := strings.Count(svg, "<polyline"); n != 4 {
		t.Fatalf("%d curves, want one per gauge (4)", n)
	}
	// Each polyline has one "x,y" pair per window: 144 windows in the last day
	// (2021-07-02 00:00 .. 23:50) plus the window exactly one day before the last.
	for _, line := range strings.Split(svg, "<polyline")[1:] {
		pts := strings.Fields(strings.SplitN(strings.SplitN(line, `points="`, 2)[1], `"`, 2)[0])
		if len(pts) != 145 {
			t.Fatalf("curve has %d points, want 145", len(pts))
		}
	}
	if !strings.Contains(svg, "07-01 23:50") || !strings.Contains(svg, "07-02 23:50") {
		t.Errorf("time axis does not span 07-01 23:50 .. 07-02 23:50")
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
