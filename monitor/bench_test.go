package monitor

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// BenchmarkSeries measures /api/series' query at its raw bound: 2 M Min
// samples (27.8 h at 20 samples/s) downsampled to 2000 buckets, and the same
// range's 10m windows. Numbers: docs/monitor.md.
//
//	go test -run '^$' -bench Series -benchtime 5x ./monitor
func BenchmarkSeries(b *testing.B) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(b.TempDir(), "gtsm.duckdb"), false)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	const n = rawRowLimit
	for _, q := range []string{
		`INSERT INTO gtsm_etl (key_site, site, "time", bs1_t0, bs2_t0, bs3_t0, bs4_t0, session, kafka_partition, kafka_offset, late)
		 SELECT 'B009', 'B009', 1625097600000 + i * 50, 46000000 + i % 1000, 47000000 + i % 999, 48000000 + i % 998, 49000000 + i % 997, 'Min', 0, i, false
		 FROM range(` + itoa(n) + `) r(i)`,
		`INSERT INTO windows
		 SELECT site, session, '10m', ws, ws + INTERVAL 10 MINUTE, channel, count(*), count(*) - count(counts), min(counts), max(counts), avg(counts),
		        NULL, NULL, NULL, true, 0, sum(counts), min("time"), max("time"), 0, 0
		 FROM (SELECT *, time_bucket(INTERVAL 10 MINUTE, ts) AS ws FROM strain) GROUP BY ALL`,
		`INSERT INTO site_state SELECT 'B009', 'Min', epoch_ms(min("time")), epoch_ms(max("time")), count(*), 0, 0, 0, 0, 0, 0, now() FROM gtsm_etl`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(Handler(db, NewMetrics(), func() error { return nil }))
	defer srv.Close()
	for _, bc := range []struct{ name, query string }{
		{"samples 2M rows to 2000 buckets", "site=B009&session=Min&span=all&points=2000"},
		{"10m windows same range", "site=B009&session=Min&span=all&points=100"},
		{"samples 1 minute", "site=B009&session=Min&span=60000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q, _ := url.ParseQuery(bc.query)
			for i := 0; i < b.N; i++ {
				r, err := loadSeries(ctx, db, q)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(r.T)), "points")
			}
			resp, err := http.Get(srv.URL + "/api/series?" + bc.query)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("%d %s", resp.StatusCode, body)
			}
			b.ReportMetric(float64(len(body)), "JSON-bytes")
		})
	}
}

// BenchmarkLevel2 measures /api/level2 at its bound: of 500,000 300 s
// outputs (~4.75 years) of four gauges (2 M rows) and two matrices' regional
// strains (1 M rows), span=all answers the last 250,000 (level2SlotLimit)
// in 2000 buckets; and a default 30 days, and one day. Numbers:
// docs/monitor.md.
//
//	go test -run '^$' -bench Level2 -benchtime 5x ./monitor
func BenchmarkLevel2(b *testing.B) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(b.TempDir(), "gtsm.duckdb"), false)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	const n = 2 * level2SlotLimit
	st := `{"Site":"B009","Matrices":[{"Name":"lab","Values":[[0.3,0.2,0.25,0.2],[0.4,-0.3,-0.1,0.05],[0.1,0.35,-0.35,0.2]]},` +
		`{"Name":"ER2010","Values":[[0.3,0.2,0.25,0.2],[0.4,-0.3,-0.1,0.05],[0.1,0.35,-0.35,0.2]]}]}`
	for _, q := range []string{
		`INSERT INTO level2_gauge_data
		 SELECT 'B009', to_timestamp(1420070400 + i * 300)::TIMESTAMP, g, 48e6, g + sin(i / 149.0), CASE WHEN i % 7 > 0 THEN 0.01 END, NULL, 0, 'v1'
		 FROM range(` + itoa(n) + `) r(i), range(4) gg(g)`,
		`INSERT INTO level2_regional_data
		 SELECT 'B009', to_timestamp(1420070400 + i * 300)::TIMESTAMP, m, sin(i / 149.0), cos(i / 149.0), 0.1, 'v1'
		 FROM range(` + itoa(n) + `) r(i), (VALUES ('lab'), ('ER2010')) mm(m)`,
		`INSERT INTO station_metadata VALUES ('B009', 'v1', now(), '` + st + `')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(Handler(db, NewMetrics(), func() error { return nil }))
	defer srv.Close()
	for _, bc := range []struct{ name, query string }{
		{"all: the last 250k outputs to 2000 buckets", "site=B009&span=all&points=2000"},
		{"default 30 days", "site=B009"},
		{"1 day every output", "site=B009&span=86400000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q, _ := url.ParseQuery(bc.query)
			for i := 0; i < b.N; i++ {
				r, err := loadLevel2(ctx, db, q)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(r.T)), "points")
			}
			resp, err := http.Get(srv.URL + "/api/level2?" + bc.query)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("%d %s", resp.StatusCode, body)
			}
			b.ReportMetric(float64(len(body)), "JSON-bytes")
		})
	}
}
