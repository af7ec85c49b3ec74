package processor

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/level2"
	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// monthStart is 2022-06-01 00:00:00 UTC.
const monthStart = 1654041600

// monthCounts is the 1-sps gauge counts of the measurement's station at
// second t: TSM5's references, an M2-like and a daily term, a drift and a
// deterministic +-1 count of noise.
func monthCounts(ref [4]int64, t int64) [4]int32 {
	var c [4]int32
	for g := range c {
		v := float64(ref[g]) + 200*math.Sin(2*math.Pi*float64(t)/44714+float64(g)) + 60*math.Sin(2*math.Pi*float64(t)/86164) +
			0.002*float64(t-monthStart)*float64(g+1) + float64((t*7919+int64(g)*104729)%3) - 1
		c[g] = int32(math.Round(v))
	}
	return c
}

func monthPressure(t int64) int32 {
	return int32(math.Round((1013.25 + 3*math.Sin(2*math.Pi*float64(t)/86400) + float64(t-monthStart)/5e6) * 1000))
}

// writeStationMonth builds a processor DuckDB file holding what a processor
// would have stored of site over days days at every session (Min at 20 sps
// from the project's generator synth, Hour 1 sps, Day pressure every 30 min),
// hour by hour as hour files arrive, with its site_state rows and a
// level2_state of a site without metadata (its Level-2 computed before the
// metadata was loaded). It returns the number of gtsm_etl rows.
func writeStationMonth(t *testing.T, path, site string, ref [4]int64, days int) int64 {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var off int64
	err = conn.Raw(func(dc any) error {
		c := dc.(driver.Conn)
		var apps [3]*duckdb.Appender
		for _, s := range bottle.Sessions {
			cols := narrowColumns(s)
			if s == bottle.Day {
				cols = []string{"key_site", "site", "time", "timestamp", "rdo_ts", "session", "kafka_partition", "kafka_offset", "late"}
			}
			if apps[s], err = duckdb.NewAppenderWithColumns(c, "", "", "gtsm_etl", cols); err != nil {
				return err
			}
		}
		defer func() {
			for _, a := range apps {
				a.Close()
			}
		}()
		args := make([]driver.Value, 12)
		for h := int64(0); h < int64(days)*24; h++ {
			t0 := monthStart + h*3600
			for _, r := range synth(site, bottle.Min, t0*1000, 72_000) {
				args[0], args[1], args[2], args[3] = site, site, r.Time, nil
				for i, f := range record.StrainFields(bottle.Min) {
					v, ok := r.Int(f)
					args[4+i] = nullInt(ok, v)
				}
				args[8], args[9], args[10], args[11] = "Min", int32(0), off, false
				off++
				if err := apps[bottle.Min].AppendRow(args...); err != nil {
					return err
				}
			}
			for s := t0; s < t0+3600; s++ {
				c := monthCounts(ref, s)
				args[0], args[1], args[2], args[3] = site, site, s*1000, nil
				for g := range c {
					args[4+g] = c[g]
				}
				args[8], args[9], args[10], args[11] = "Hour", int32(0), off, false
				off++
				if err := apps[bottle.Hour].AppendRow(args...); err != nil {
					return err
				}
			}
			for s := t0; s < t0+3600; s += 1800 {
				if err := apps[bottle.Day].AppendRow(site, site, s*1000, nil, monthPressure(s), "Day", int32(0), off, false); err != nil {
					return err
				}
				off++
			}
			if h%24 == 23 {
				for _, a := range apps {
					if err := a.Flush(); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	end := int64(monthStart + days*86400)
	now := time.Now().UTC()
	for _, s := range []struct {
		name       string
		first, iv  int64
		records    int64
		lastOffset int64
	}{{"Min", monthStart * 1000, 50, int64(days) * 1_728_000, off - 1}, {"Hour", monthStart * 1000, 1000, int64(days) * 86_400, off - 1},
		{"Day", monthStart * 1000, 1_800_000, int64(days) * 48, off - 1}} {
		if _, err := conn.ExecContext(ctx, `INSERT INTO site_state VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, ?, ?)`, site, s.name,
			time.UnixMilli(s.first).UTC(), time.UnixMilli(end*1000-s.iv).UTC(), s.records, s.lastOffset, now); err != nil {
			t.Fatal(err)
		}
	}
	state, err := level2.New(level2.ConfigFrom(nil)).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO level2_state VALUES (?, ?, NULL, NULL, ?)`, site, state, end-1); err != nil {
		t.Fatal(err)
	}
	return off
}

// TestLevel2ReprocessStationMonth measures a reprocess of a 20-sps
// station-month (docs/performance.md, "Level-2 reprocess"): a processor
// (a child process) holds a month of TSM5 at every session (55.9 M gtsm_etl
// rows) whose Level-2 was computed without metadata; the metadata is loaded
// while two other stations stream 20-sps data live (and TSM5 its new 1-sps
// samples). It prints the reprocess's wall time, the child's peak memory
// and the live data's commit lag meanwhile, with the load average, and
// requires the month's Level-2 to equal level2.Machine over the month.
// GTSM_BENCH_REPROCESS=1 and GTSM_LONG=1 run it; GTSM_BENCH_REPROCESS_DAYS
// sets the days (default 30).
func TestLevel2ReprocessStationMonth(t *testing.T) {
	testutil.Long(t)
	if os.Getenv("GTSM_BENCH_REPROCESS") != "1" {
		t.Skip("a measurement: GTSM_BENCH_REPROCESS=1 runs it")
	}
	days := 30
	if v, err := strconv.Atoi(os.Getenv("GTSM_BENCH_REPROCESS_DAYS")); err == nil && v > 0 {
		days = v
	}
	stations := l2Stations(t)
	ts := stations["TSM5"]
	dir := t.TempDir()
	path := filepath.Join(dir, "month.duckdb")
	t0 := time.Now()
	// GTSM_BENCH_REPROCESS_KEEP=DIR keeps the built file there for the next
	// run (writing a month takes ~17 minutes here).
	keep := os.Getenv("GTSM_BENCH_REPROCESS_KEEP")
	kept := filepath.Join(keep, fmt.Sprintf("reprocess-month-%dd.duckdb", days))
	if b, err := os.ReadFile(kept); keep != "" && err == nil {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		writeStationMonth(t, path, "TSM5", ts.Reference, days)
		if keep != "" {
			b, err := os.ReadFile(path)
			if err == nil {
				err = os.WriteFile(kept, b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var rows int64
	rdb := openRO(t, path)
	if err := rdb.QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	fi, _ := os.Stat(path)
	t.Logf("station-month file: %d days, %d gtsm_etl rows, %d MB, ready in %v", days, rows, fi.Size()>>20, time.Since(t0).Round(time.Second))

	st := startStack(t, 3)
	t.Setenv("GTSM_PROC_REPROCESSED", "1")
	t.Setenv("GTSM_PROC_MEM", "1")
	t.Setenv("GTSM_PROC_BATCH_ROWS", "131072")
	t.Setenv("GTSM_PROC_LOG", "info")
	cmd, lines := startHelper(t, st, path, "month", true)
	// The processor is up once it reports its first (empty) progress.
	time.Sleep(3 * time.Second)
	loadBefore := loadAvg()
	vers := publishMeta(t, st, ts)
	start := time.Now()

	// Live data meanwhile: every second, one second of two 20-sps stations
	// and TSM5's next 1-sps sample.
	type pub struct {
		at   time.Time
		upTo int64 // messages published so far
	}
	var pubs []pub
	var sent int64
	live := int64(monthStart + days*86400)
	var tsmLive []record.Record
	stopLive := make(chan struct{})
	liveDone := make(chan struct{})
	pubCh := make(chan pub, 100000)
	go func() {
		defer close(liveDone)
		for i := int64(0); ; i++ {
			select {
			case <-stopLive:
				return
			case <-time.After(time.Until(start.Add(time.Duration(i) * time.Second))):
			}
			var recs []record.Record
			for _, s := range []string{"LIVA", "LIVB"} {
				recs = append(recs, synth(s, bottle.Min, (live+i)*1000, 20)...)
			}
			var r record.Record
			r.SetSite("TSM5")
			r.SetTime((live + i) * 1000)
			r.Session = bottle.Hour
			c := monthCounts(ts.Reference, live+i)
			for g, f := range record.StrainFields(bottle.Hour) {
				r.SetInt(f, c[g])
			}
			recs = append(recs, r)
			tsmLive = append(tsmLive, r)
			if err := st.publishErr(recs); err != nil {
				t.Error(err)
				return
			}
			sent += int64(len(recs))
			pubCh <- pub{time.Now(), sent}
		}
	}()
	var lags []time.Duration
	var finished time.Time
	var committed int64
	deadline := time.After(60 * time.Minute)
	for finished.IsZero() {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited before the reprocess finished: %v", cmd.Wait())
			}
			if n, ok := parseCommitted(l); ok {
				committed = n
			} else {
				t.Logf("helper: %s", l)
			}
			var site string
			var d, tot int64
			var fin bool
			if n, _ := fmt.Sscanf(l, "reprocess %s %d %d %t", &site, &d, &tot, &fin); n == 4 && fin && site == "TSM5" {
				finished = time.Now()
			}
		case p := <-pubCh:
			pubs = append(pubs, p)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("no end of the reprocess within 60 minutes")
		}
		for len(pubs) > 0 && committed >= pubs[0].upTo {
			lags = append(lags, time.Since(pubs[0].at))
			pubs = pubs[1:]
		}
	}
	loadAfter := loadAvg()
	close(stopLive)
	<-liveDone
	var rss, goPeak int64
	for l := range lines { // the helper stops once caught up
		if n, _ := fmt.Sscanf(l, "RESULT 0.000 0.000 %d %d", &rss, &goPeak); n == 2 {
			continue
		}
		if n, ok := parseCommitted(l); ok {
			committed = n
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if rss == 0 {
		t.Fatal("no memory figures from the helper")
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	var p50, pmax time.Duration
	if len(lags) > 0 {
		p50, pmax = lags[len(lags)/2], lags[len(lags)-1]
	}
	wall := finished.Sub(start)
	fmt.Printf("REPROCESS %d days (%d gtsm_etl rows, %d 1-sps seconds): %.1f s wall, %.0f data-seconds/s; helper peak RSS %d MB, Go peak %d MB; "+
		"live: %d messages committed, commit lag during the reprocess median %v max %v (%d samples); load average %s -> %s\n",
		days, rows, days*86400, wall.Seconds(), float64(days*86400)/wall.Seconds(), rss>>20, goPeak>>20,
		committed, p50.Round(time.Millisecond), pmax.Round(time.Millisecond), len(lags), loadBefore, loadAfter)

	// The month's Level-2 is the machine's over the month and the live samples.
	db := openRO(t, path)
	defer db.Close()
	var recs []record.Record
	for s := int64(monthStart); s < live; s++ {
		var r record.Record
		r.SetSite("TSM5")
		r.SetTime(s * 1000)
		r.Session = bottle.Hour
		c := monthCounts(ts.Reference, s)
		for g, f := range record.StrainFields(bottle.Hour) {
			r.SetInt(f, c[g])
		}
		recs = append(recs, r)
	}
	for s := int64(monthStart); s < live; s += 1800 {
		var r record.Record
		r.SetSite("TSM5")
		r.SetTime(s * 1000)
		r.Session = bottle.Day
		r.SetInt(pressureField, monthPressure(s))
		recs = append(recs, r)
	}
	recs = append(recs, tsmLive...)
	wantG, _ := l2Oracle(t, recs, map[string]l2Meta2{"TSM5": {ts, vers["TSM5"]}}, nil, nil)
	gotG := l2Lines(t, db, qL2Gauge+` WHERE site = 'TSM5'`)
	testutil.DiffLines(t, "level2_gauge_data of the month (vs the machine)", gotG, wantG)
	if len(gotG) < days*288*4 {
		t.Errorf("only %d gauge rows", len(gotG))
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
