package monitor

import (
	"context"
	"database/sql"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// fixture is a real DuckDB file with the processor's schema and, for site
// B009, samples of each session in gtsm_etl, with the windows, gaps and
// site_state the processor would derive from them (computed here in SQL
// from the samples, as the processor's documented semantics say):
//   - Day: 2021-06-29 00:00 .. 2021-07-02 23:50 every 10 minutes, a gap of
//     five samples (2021-07-01 10:00 .. 10:40) and rs2_t0 NULL (a fill value)
//     in three samples; a semidiurnal tide of ±1000 counts;
//   - Hour: 2021-07-01 00:00:00 .. 00:59:59 every second;
//   - Min: 2021-07-01 00:00:00 .. 00:00:59.95 at 20 samples/s (one Min
//     file: the session whose plot showed one point per gauge).
//
// and B010's Min session: one-minute files at 2021-07-01 00:00, 2021-07-02
// 22:00 and 2021-07-03 00:00: more 50 ms slots than a raw query may scan, and
// only the last file in the default range (the last hour).
//
// The four gauges sit 1e6 counts apart (48e6 + g·1e6), as real ones do.
type fixture struct {
	db  *sql.DB
	srv *httptest.Server
}

const (
	dayGapStart = "2021-07-01 10:00:00"
	dayGapEnd   = "2021-07-01 10:40:00"
)

func newFixture(t *testing.T) *fixture {
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
	// samples(session, prefix, start ms, interval ms, count, value expression
	// of i (sample index) and {g} (gauge 1..4)).
	samples := func(site, session, prefix string, start, interval, count int64, expr string) {
		t.Helper()
		exec(`INSERT INTO gtsm_etl (key_site, site, "time", "timestamp", ` + prefix + `1_t0, ` + prefix + `2_t0, ` + prefix + `3_t0, ` + prefix + `4_t0,
				session, kafka_partition, kafka_offset, late)
			SELECT '` + site + `', '` + site + `', t, strftime(epoch_ms(t), '%Y-%m-%d %H:%M:%S'), v1, v2, v3, v4, '` + session + `', 0, i, false
			FROM (SELECT i, ` + itoa(start) + ` + i * ` + itoa(interval) + ` AS t,
			             ` + gauge(expr, 1) + ` AS v1, ` + gauge(expr, 2) + ` AS v2, ` + gauge(expr, 3) + ` AS v3, ` + gauge(expr, 4) + ` AS v4
			      FROM range(` + itoa(count) + `) r(i))`)
	}
	ms := func(s string) int64 {
		ts, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts.UnixMilli()
	}
	samples("B009", "Day", "rs", ms("2021-06-29 00:00:00"), 600_000, 576, `48000000 + {g} * 1000000 + 1000 * sin(i / 6 / 12.42 * 2 * pi())`)
	exec(`DELETE FROM gtsm_etl WHERE session = 'Day' AND "time" BETWEEN ? AND ?`, ms(dayGapStart), ms(dayGapEnd))
	exec(`UPDATE gtsm_etl SET rs2_t0 = NULL WHERE session = 'Day' AND "time" IN (?, ?, ?)`,
		ms("2021-06-30 06:00:00"), ms("2021-06-30 06:10:00"), ms("2021-06-30 06:20:00"))
	samples("B009", "Hour", "ls", ms("2021-07-01 00:00:00"), 1000, 3600, `47000000 + {g} * 1000000 + 30 * sin(i / 600 * 2 * pi()) + (i % 7)`)
	minExpr := `46000000 + {g} * 1000000 + 50 * sin(i / 200 * 2 * pi()) + (i * 7 % 5)`
	samples("B009", "Min", "bs", ms("2021-07-01 00:00:00"), 50, 1200, minExpr)
	samples("B010", "Min", "bs", ms("2021-07-01 00:00:00"), 50, 1200, minExpr)
	samples("B010", "Min", "bs", ms("2021-07-02 22:00:00"), 50, 1200, minExpr)
	samples("B010", "Min", "bs", ms("2021-07-03 00:00:00"), 50, 1200, minExpr)

	// windows, gaps and site_state as the processor defines them
	// (docs/processor.md), derived from the samples.
	exec(`INSERT INTO windows
		SELECT site, session, width, ws, ws + iv, channel, count(*), count(*) - count(v), min(v), max(v), avg(v),
		       NULL, NULL, NULL, true, 0, coalesce(sum(v), 0), min("time"), max("time"), 0, 0
		FROM (SELECT s.site, s.session, s.channel, s.counts AS v, s."time", w.width, w.iv, time_bucket(w.iv, s.ts) AS ws
		      FROM strain s, (VALUES ('10m', INTERVAL 10 MINUTE), ('1h', INTERVAL 1 HOUR), ('1d', INTERVAL 1 DAY)) w(width, iv))
		GROUP BY ALL`)
	exec(`INSERT INTO gaps
		SELECT key_site, session, epoch_ms(prev + iv), epoch_ms("time" - iv), ("time" - prev) // iv - 1
		FROM (SELECT key_site, session, "time", lag("time") OVER (PARTITION BY key_site, session ORDER BY "time") AS prev,
		             CASE session WHEN 'Day' THEN 600000 WHEN 'Hour' THEN 1000 ELSE 50 END AS iv FROM gtsm_etl)
		WHERE "time" - prev >= 2 * iv`)
	exec(`INSERT INTO site_state
		SELECT key_site, session, epoch_ms(min("time")), epoch_ms(max("time")), count(*), 0, 0,
		       (SELECT count(*) FROM gaps g WHERE g.site = e.key_site AND g.session = e.session),
		       (SELECT coalesce(sum(missing), 0) FROM gaps g WHERE g.site = e.key_site AND g.session = e.session),
		       0, max(kafka_offset), now()
		FROM gtsm_etl e GROUP BY key_site, session`)

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
	return &fixture{db: db, srv: srv}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// gauge substitutes the gauge number for {g} in a value expression and casts
// it to the INTEGER of the column.
func gauge(expr string, g int) string {
	return "CAST(" + strings.ReplaceAll(expr, "{g}", strconv.Itoa(g)) + " AS INTEGER)"
}
