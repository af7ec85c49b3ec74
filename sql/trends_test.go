package gtsmsql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// trendOracle is numpy's answer for the same series: polyfit slope and the
// MIDAS steps (pairs exactly one year apart, median, 2-sigma trim, median).
const trendOracle = `
import sys, json, numpy as np
d = np.loadtxt(sys.argv[1], delimiter=',', ndmin=2)
out = {}
for g in range(4):
    x = d[d[:, 0] == g]
    t, v = x[:, 1], x[:, 2]
    lin = np.polyfit(t, v, 1)[0] * 31557600
    pos = {int(tt): vv for tt, vv in zip(t, v)}
    s = np.array([(pos[int(tt) + 31557600] - vv) / 31557600 * 31557600 for tt, vv in zip(t, v) if int(tt) + 31557600 in pos])
    m0 = np.median(s)
    sig = 1.4826 * np.median(np.abs(s - m0))
    k = s[np.abs(s - m0) <= 2 * sig]
    m = np.median(k)
    out[g] = {"linear": lin, "midas": m, "n": int(len(k)), "sigma": 1.4826 * np.median(np.abs(k - m))}
print(json.dumps(out))
`

// trendFixture fills level2_gauge_data for site TRND at 300 s steps over
// 1.4 years: per gauge a known trend, an annual and a semidiurnal cycle,
// noise (the semidiurnal cycle also stored as tide_c), a step of 5 µε (after 2000 rows, 7 days, half of it known as an
// offset correction) and a 10-day hole; site FLAT is an exact line (closed
// form: the slope itself, both estimators). The rows go in by COPY from a CSV
// (row-by-row inserts of 1.2 M rows take minutes). It returns the corrected
// TRND series as CSV (gauge, epoch s, v) for the oracle.
func trendFixture(t *testing.T, db *sql.DB, dir string, slopes [4]float64) string {
	t.Helper()
	start := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	n := 147268 // 1.4 years of 300 s rows
	rng := rand.New(rand.NewPCG(13, 1))
	var csv, rows strings.Builder
	for i := 0; i < n; i++ {
		if i > n/2 && i < n/2+10*288 {
			continue // a hole
		}
		ts := start + int64(i)*300
		yr := float64(ts-start) / 31557600
		for g := 0; g < 4; g++ {
			tide := 0.5 * math.Sin(2*math.Pi*float64(ts)/44714)
			v := 10*float64(g) + slopes[g]*yr + 3*math.Sin(2*math.Pi*yr+float64(g)) + tide + rng.NormFloat64()*0.2
			off := "0" // the processor's running total starts at 0
			corr := v
			if i >= 2000 { // early: MIDAS is robust to a step only few one-year pairs straddle
				v += 5
				off = "2.5"
				corr = v - 2.5
			}
			atmp := 0.1 * math.Cos(float64(i))
			corr -= atmp
			corr -= tide // the semidiurnal cycle is known as tide_c
			fmt.Fprintf(&rows, "TRND,%d,%d,%.17g,%.17g,%s,%.17g\n", ts, g, v, atmp, off, tide)
			fmt.Fprintf(&csv, "%d,%d,%.17g\n", g, ts, corr)
			fmt.Fprintf(&rows, "FLAT,%d,%d,%.17g,,,\n", ts, g, 1+slopes[g]*yr)
		}
	}
	rp := filepath.Join(dir, "rows.csv")
	if err := os.WriteFile(rp, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version)
		SELECT site, to_timestamp(ts)::TIMESTAMP, gauge, NULL, v, atmp, tide, off, 'v1'
		FROM read_csv('` + rp + `', header = false, columns = {'site': 'VARCHAR', 'ts': 'BIGINT', 'gauge': 'UTINYINT', 'v': 'DOUBLE', 'atmp': 'DOUBLE', 'off': 'DOUBLE', 'tide': 'DOUBLE'})`); err != nil {
		t.Fatal(err)
	}
	return csv.String()
}

// TestLevel2TrendsAndQueriesThroughEndpoint checks the trend macros against
// numpy and a closed form, and the named queries level2 and regional, all
// through the read-only SQL endpoint (statement guard and lockdown on).
func TestLevel2TrendsAndQueriesThroughEndpoint(t *testing.T) {
	testutil.Long(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trend.duckdb")
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	slopes := [4]float64{1.5, -2.25, 0.125, 7}
	dir := t.TempDir()
	csv := trendFixture(t, db, dir, slopes)
	if _, err := db.Exec(`INSERT INTO level2_regional_data VALUES ('TRND', TIMESTAMP '2021-01-01 00:05:00', 'lab', 1.5, -0.5, 0.25, 'v1'),
		('TRND', TIMESTAMP '2021-01-01 00:00:00', 'lab', 1, 2, 3, 'v1'), ('FLAT', TIMESTAMP '2021-01-01 00:00:00', 'CH2024', 4, 5, 6, 'v1')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, microstrain) SELECT 'SMALL', TIMESTAMP '2021-01-01' + to_seconds(300 * (i // 4)), i % 4, 1 + i FROM range(8) r(i)`); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(dir, "trnd.csv")
	if err := os.WriteFile(csvPath, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "-c", trendOracle, csvPath).Output()
	if err != nil {
		t.Fatalf("python oracle: %v", err)
	}
	var oracle map[string]struct {
		Linear, Midas, Sigma float64
		N                    int64
	}
	if err := json.Unmarshal(out, &oracle); err != nil {
		t.Fatal(err)
	}

	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx) }()
	defer func() { cancel(); <-errc }()
	conn, err := pgx.Connect(ctx, "postgres://gtsm@"+srv.Addr().String()+"/gtsm?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	type trend struct {
		site  string
		gauge int
		n     int64
		slope float64
		sigma float64
	}
	query := func(q string, args ...any) []trend {
		t.Helper()
		rows, err := conn.Query(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var got []trend
		for rows.Next() {
			var r trend
			var gauge int32
			if strings.Contains(q, "midas") {
				var unc float64
				err = rows.Scan(&r.site, &gauge, &r.n, &r.slope, &r.sigma, &unc)
			} else {
				var first, last time.Time
				var icpt float64
				err = rows.Scan(&r.site, &gauge, &r.n, &first, &last, &r.slope, &icpt)
			}
			if err != nil {
				t.Fatalf("%s: scan: %v", q, err)
			}
			r.gauge = int(gauge)
			got = append(got, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return got
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.12g, want %.12g (±%g)", what, got, want, tol)
		}
	}
	for _, tc := range []struct {
		name string
		q    string
	}{
		{"linear", "SELECT * FROM level2_trend_linear('TRND')"},
		{"midas", "SELECT * FROM level2_trend_midas('TRND')"},
		{"midas", "SELECT * FROM level2_trend_midas(site_ := 'TRND', tol_s := 0)"},
	} {
		got := query(tc.q)
		if len(got) != 4 {
			t.Fatalf("%s: %d rows, want 4", tc.q, len(got))
		}
		for _, r := range got {
			o := oracle[fmt.Sprint(r.gauge)]
			if tc.name == "linear" {
				near(fmt.Sprintf("%s gauge %d", tc.q, r.gauge), r.slope, o.Linear, 1e-9*math.Max(1, math.Abs(o.Linear)))
			} else {
				near(fmt.Sprintf("%s gauge %d", tc.q, r.gauge), r.slope, o.Midas, 1e-9)
				near(fmt.Sprintf("%s gauge %d sigma", tc.q, r.gauge), r.sigma, o.Sigma, 1e-9)
				if r.n != o.N {
					t.Errorf("%s gauge %d: %d pairs, numpy %d", tc.q, r.gauge, r.n, o.N)
				}
				// The estimator is what it is for: the known trend despite
				// the annual cycle and the step.
				near(fmt.Sprintf("%s gauge %d vs the true trend", tc.q, r.gauge), r.slope, slopes[r.gauge], 0.05)
			}
		}
	}
	// Closed form: an exact line gives its slope with both, every site when
	// site_ is NULL.
	// (SMALL, 2 rows a gauge, has a linear fit but no one-year pair.)
	for q, want := range map[string]int{"SELECT * FROM level2_trend_linear()": 12, "SELECT * FROM level2_trend_midas()": 8} {
		got := query(q)
		if len(got) != want {
			t.Fatalf("%s: %d rows, want %d (sites × 4 gauges)", q, len(got), want)
		}
		for _, r := range got {
			if r.site == "FLAT" {
				near(fmt.Sprintf("%s FLAT gauge %d", q, r.gauge), r.slope, slopes[r.gauge], 1e-9)
			}
		}
	}

	// Named queries through the endpoint, with and without the site.
	for _, tc := range []struct {
		name string
		args []any
		want int64
	}{
		{"regional", []any{"TRND"}, 6},
		{"regional", []any{nil}, 9},
		{"level2", []any{"SMALL"}, 8},
	} {
		q, err := gtsmsql.QueryByName(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, q.SQL, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var n int64
		var firstRow []any
		for rows.Next() {
			if n == 0 {
				firstRow, _ = rows.Values()
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := tc.want
		if n != want {
			t.Errorf("%s %v: %d rows, want %d", tc.name, tc.args, n, want)
		}
		if tc.name == "regional" && tc.args[0] == "TRND" && fmt.Sprint(firstRow[2:5]) != "[lab Eee+Enn 1]" {
			t.Errorf("regional first row %v, want lab Eee+Enn 1 (time, then component order)", firstRow)
		}
		if tc.name == "level2" && (fmt.Sprint(firstRow[2]) != "0" || fmt.Sprint(firstRow[3]) != "1" || firstRow[8] != nil ||
			fmt.Sprint(firstRow[9]) != "tide_c,atmp_c,offset_c,trend_c") {
			t.Errorf("level2 first row %v, want gauge 0, microstrain 1, corrected NULL for want of tide_c,atmp_c,offset_c,trend_c", firstRow)
		}
	}
	// corrected = microstrain - atmp_c - tide_c - offset_c - trend_c, NULL
	// where any is NULL.
	var bad int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (`+mustQuery(t, "level2")+`) q JOIN level2_gauge g USING (site, "time", gauge)
		WHERE q.corrected IS DISTINCT FROM (g.microstrain - g.atmp_c - g.tide_c - g.offset_c - g.trend_c)
		   OR g.tide_c IS NULL`, "TRND").Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d level2 rows with a wrong corrected value", bad)
	}
}

func mustQuery(t *testing.T, name string) string {
	q, err := gtsmsql.QueryByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return q.SQL
}

// TestLevel2TrendMissingCorrection: atmp_c is absolute (about -7.5 µε at
// 1013 hPa), so counting a missing value as 0 would put a 7.5 µε step into
// the fitted series. An exact line whose atmp_c is missing for 70 days
// must still give its slope from both macros; a site that never has
// atmp_c is fitted with it as 0.
func TestLevel2TrendMissingCorrection(t *testing.T) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "gap.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// 1.2 years of 300 s rows: v = 2 µε/yr; atmp_c -7.5 (so microstrain is
	// v - 7.5) and NULL for 20000 rows in the middle; NOBARO the same line
	// without atmp_c.
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, microstrain, atmp_c, tide_c, offset_c, trend_c)
		SELECT s, TIMESTAMP '2021-01-01' + to_seconds(300 * i), 0,
		       2.0 * 300 * i / 31557600 + CASE WHEN s = 'GAPP' THEN -7.5 ELSE 0 END,
		       CASE WHEN s = 'GAPP' AND (i < 40000 OR i >= 60000) THEN -7.5 END, 0, 0, 0
		FROM range(126000) r(i), (SELECT unnest(['GAPP', 'NOBARO']) AS s)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT site, slope_per_year FROM level2_trend_linear()`, `SELECT site, slope_per_year FROM level2_trend_midas()`} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var site string
			var slope float64
			if err := rows.Scan(&site, &slope); err != nil {
				t.Fatal(err)
			}
			n++
			if math.Abs(slope-2) > 1e-9 {
				t.Errorf("%s: %s slope %.9g µε/yr, want 2 (a missing atmp_c must not count as 0)", q, site, slope)
			}
		}
		rows.Close()
		if n != 2 {
			t.Errorf("%s: %d rows, want 2", q, n)
		}
	}
	// The gauge's corrected series is NULL, not a 7.5 µε step, where atmp_c is missing.
	var jumps, nulls int64
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE abs(d) > 1e-3), count(*) FILTER (WHERE corrected IS NULL) FROM
		(SELECT corrected, corrected - lag(corrected) OVER (ORDER BY "time") AS d FROM level2_gauge WHERE site = 'GAPP')`).Scan(&jumps, &nulls); err != nil {
		t.Fatal(err)
	}
	if jumps != 0 || nulls != 20000 {
		t.Errorf("GAPP corrected: %d steps over 1e-3 µε, %d NULL rows (want 0 and 20000)", jumps, nulls)
	}
}
