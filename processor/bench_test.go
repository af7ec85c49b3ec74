package processor

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// siteDay is one site's day at every session: 1,728,000 Min records (20 sps),
// 86,400 Hour and 144 Day records, in the producer's order (by session, then
// time).
// GTSM_BENCH_MIN_RECORDS scales the Min part down for quick runs.
func siteDay() []record.Record {
	start := int64(1625097600000)
	nMin := 1_728_000
	if v, err := strconv.Atoi(os.Getenv("GTSM_BENCH_MIN_RECORDS")); err == nil && v > 0 {
		nMin = v
	}
	out := synth("B009", bottle.Day, start, 144)
	out = append(out, synth("B009", bottle.Hour, start, 86_400)...)
	return append(out, synth("B009", bottle.Min, start, nMin)...)
}

var benchOnce struct {
	sync.Once
	st  *stack
	n   int
	err error
}

// benchStack fills a topic once per test binary run (publishing 1.8 M
// records takes a while) and shares it between the benchmarks.
func benchStack(b *testing.B) (*stack, int) {
	benchOnce.Do(func() {
		st := startStackKeep(b, 3)
		recs := siteDay()
		for i := 0; i < len(recs); i += 200_000 {
			if err := st.publishErr(recs[i:min(i+200_000, len(recs))]); err != nil {
				benchOnce.err = err
				return
			}
		}
		ms, err := metadata.LoadFiles([]string{"../metadata/testdata/bsm_metadata.txt"})
		if err != nil {
			benchOnce.err = err
			return
		}
		for i := range ms {
			if ms[i].Site == "B009" {
				publishMeta(b, st, &ms[i])
			}
		}
		benchOnce.st, benchOnce.n = st, len(recs)
	})
	if benchOnce.err != nil {
		b.Fatal(benchOnce.err)
	}
	return benchOnce.st, benchOnce.n
}

// BenchmarkDrainSiteDay drains the pre-filled topic into a fresh DuckDB file
// per iteration: "processor" is `gtsm process` (goka, state, windows, gaps,
// exactly-once batches); "baseline" is a plain Kafka consumer that decodes
// and appends the same rows with no goka, state or windows. Run with
// -benchtime=1x -count=3; compare records/s.
func BenchmarkDrainSiteDay(b *testing.B) {
	st, n := benchStack(b)
	// "processor" computes Level-2 (the default; B009's metadata is on the
	// gtsm_metadata topic); "processor-level2-off" is --level2=false.
	for _, mode := range []struct {
		name string
		off  bool
	}{{"processor", false}, {"processor-level2-off", true}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				db := filepath.Join(b.TempDir(), "bench.duckdb")
				cfg := st.config(db, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i))
				cfg.BatchRows, cfg.FlushInterval, cfg.SessionTimeout = 50000, time.Second, 0
				cfg.NoLevel2 = mode.off
				t0, c0 := time.Now(), cpuTime()
				r := startProc(b, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
				err := r.p.WaitCaughtUp(ctx)
				cancel()
				el, cpu := time.Since(t0), cpuTime()-c0
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/cpu.Seconds(), "records/cpu-s")
				var rows int
				if err := r.p.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&rows); err != nil || rows != n {
					b.Fatalf("%d rows, %v; want %d", rows, err, n)
				}
				if !mode.off {
					// Level-2 state per site: the machine (level2_state) and its
					// hourly checkpoints (level2_checkpoint).
					var state, ck, pts int64
					if err := r.p.DB().QueryRow(`SELECT (SELECT sum(octet_length(state)) FROM level2_state),
					(SELECT sum(octet_length(state)) FROM level2_checkpoint), (SELECT count(*) FROM level2_gauge_data WHERE microstrain IS NOT NULL)`).Scan(&state, &ck, &pts); err != nil || pts < 4*280 {
						b.Fatalf("level2: %d gauge rows with microstrain, %v", pts, err)
					}
					b.ReportMetric(float64(state), "l2-state-B")
					b.ReportMetric(float64(ck), "l2-checkpoints-B")
				}
				r.stop(b)
				b.ReportMetric(float64(n)/el.Seconds(), "records/s")
				b.ReportMetric(el.Seconds(), "s/drain")
			}
		})
	}
	b.Run("baseline", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			db := filepath.Join(b.TempDir(), "base.duckdb")
			t0, c0 := time.Now(), cpuTime()
			if err := baselineDrain(st, db, n); err != nil {
				b.Fatal(err)
			}
			el, cpu := time.Since(t0), cpuTime()-c0
			b.ReportMetric(float64(n)/cpu.Seconds(), "records/cpu-s")
			b.ReportMetric(float64(n)/el.Seconds(), "records/s")
			b.ReportMetric(el.Seconds(), "s/drain")
		}
	})
}

// baselineDrain: kgo consumer -> registry decode -> DuckDB appender, one
// transaction per 50,000 rows, same gtsm_etl table (schema migrated).
func baselineDrain(st *stack, path string, n int) error {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		return err
	}
	if err := setCheckpointThreshold(ctx, db, "1GB"); err != nil { // as the processor
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The same appenders as the processor's sink (full and narrow).
	k := newSinkArgs()
	if err := conn.Raw(func(dc any) error {
		if k.rows, err = duckdb.NewAppender(dc.(driver.Conn), "", "", "gtsm_etl"); err != nil {
			return err
		}
		for _, s := range bottle.Sessions {
			if k.narrow[s], err = duckdb.NewAppenderWithColumns(dc.(driver.Conn), "", "", "gtsm_etl", narrowColumns(s)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	defer func() {
		for _, a := range []*duckdb.Appender{k.rows, k.narrow[0], k.narrow[1], k.narrow[2]} {
			a.Close()
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	got, inTx := 0, 0
	var r row
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			return err
		}
		if inTx == 0 {
			if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
				return err
			}
		}
		var ferr error
		fs.EachRecord(func(kr *kgo.Record) {
			if ferr != nil {
				return
			}
			site, err := st.serde.DecodeKey(ctx, kr.Key)
			if err != nil {
				ferr = err
				return
			}
			r = row{keySite: site, partition: kr.Partition, offset: kr.Offset}
			if ferr = st.serde.DecodeValue(ctx, kr.Value, &r.rec); ferr != nil {
				return
			}
			r.rec.Session, _ = bottle.ParseSession(string(kr.Headers[0].Value))
			ferr = k.appendRow(&r)
			got++
			inTx++
		})
		if ferr != nil {
			return ferr
		}
		if inTx >= 50000 || got >= n {
			if err := k.flushRows(); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
				return err
			}
			inTx = 0
		}
	}
	return nil
}

// BenchmarkLag measures the end-to-end lag of a live stream: a chunk of
// 1,000 Min records (50 s of one site at 20 sps) is published, and the lag
// is the time from the producer's acknowledgement to the chunk being
// committed in DuckDB (WaitCaughtUp), for two flush intervals. Batches are
// never full here, so the flush interval bounds the lag.
func BenchmarkLag(b *testing.B) {
	for _, flush := range []time.Duration{100 * time.Millisecond, time.Second} {
		b.Run("flush="+flush.String(), func(b *testing.B) {
			st := startStackKeep(b, 3)
			db := filepath.Join(b.TempDir(), "lag.duckdb")
			cfg := st.config(db, "lag")
			cfg.BatchRows, cfg.FlushInterval, cfg.SessionTimeout = 50000, flush, 0
			r := startProc(b, cfg)
			defer r.stop(b)
			recs := synth("LAG1", bottle.Min, 1625097600000, 1000*(b.N+1))
			var lags []time.Duration
			for i := 0; i <= b.N; i++ {
				if err := st.publishErr(recs[i*1000 : (i+1)*1000]); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := r.p.WaitCaughtUp(ctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				if i > 0 { // the first chunk includes the group join
					lags = append(lags, time.Since(t0))
				}
			}
			slices.Sort(lags)
			b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "ms-p50-lag")
			b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "ms-max-lag")
		})
	}
}

// cpuTime is the CPU time (user + system) of this process so far. On a
// shared, overloaded machine records per CPU-second says more than records
// per wall-clock second (the broker runs in this process too, for both).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
