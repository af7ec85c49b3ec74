package processor

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
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
	days, _ := strconv.Atoi(os.Getenv("GTSM_BENCH_DAYS")) // GTSM_BENCH_DAYS site-days: one day of that many sites
	var out []record.Record
	for d := 0; d < max(days, 1); d++ {
		site := fmt.Sprintf("B%03d", 9+d)
		out = append(out, synth(site, bottle.Day, start, 144)...)
		out = append(out, synth(site, bottle.Hour, start, 86_400)...)
		out = append(out, synth(site, bottle.Min, start, nMin)...)
	}
	return out
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

// BenchmarkDrainSiteDay drains the pre-filled topic (GTSM_BENCH_DAYS
// site-days, default 1) into a fresh DuckDB file, three ways, each in a
// child process (this test binary, TestBenchChild) so that its CPU time and
// max RSS are its own (the broker stays in this process):
//
//   - processor: `gtsm process` with default flags (goka, state, windows,
//     gaps, exactly-once batches), timed to caught up (the last COMMIT);
//   - baseline: a plain franz-go consumer that decodes and appends the same
//     rows with the row appenders, 50,000 rows per transaction;
//   - duckdb: the DuckDB columnar limit, INSERT…SELECT of the same rows from
//     an in-memory table, 1M rows per transaction (loading the source table
//     is not timed);
//   - replay: the worst-case replay after a kill -9 (rewindForReplay):
//     seconds from the processor's start to caught up.
//
// It reports records/s, records/CPU-s, max RSS, the Go runtime's peak
// memory and the load average of each, and the processor's ratios to the
// other two with the load average of the runs compared; a ratio measured at
// load average >= 3 is marked as not counting. Run with -benchtime=1x.
func BenchmarkDrainSiteDay(b *testing.B) {
	st, n := benchStack(b)
	res := map[string]childResult{}
	dir := b.TempDir()
	procDB := filepath.Join(dir, "proc.duckdb")
	// "processor" computes Level-2 (the default; B009's metadata is on the
	// gtsm_metadata topic); "processor-level2-off" is --level2=false.
	modes := []string{"processor", "processor-level2-off", "baseline", "duckdb", "replay"}
	if m := os.Getenv("GTSM_BENCH_MODES"); m != "" { // e.g. "processor" alone for a 4x RSS check
		modes = strings.Split(m, ",")
	}
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				db := filepath.Join(dir, fmt.Sprintf("%s-%d.duckdb", mode, i))
				if mode == "processor" {
					os.Remove(procDB)
					db = procDB
				}
				if mode == "replay" && res["processor"].wall == 0 {
					b.Skip("replay rewinds the processor mode's file: run it after processor")
				}
				l0 := loadAverage()
				r, err := runChild(st, mode, db, procDB, n)
				if err != nil {
					b.Fatal(err)
				}
				r.load = [2]float64{l0, loadAverage()}
				res[mode] = r
				b.ReportMetric(max(r.load[0], r.load[1]), "loadavg")
				if mode == "replay" {
					b.ReportMetric(r.wall, "s-replay")
				} else {
					b.ReportMetric(float64(n)/r.wall, "records/s")
					b.ReportMetric(float64(n)/r.cpu, "records/cpu-s")
				}
				b.ReportMetric(float64(r.maxRSS)/(1<<20), "MB-maxrss")
				b.ReportMetric(float64(r.maxGo)/(1<<20), "MB-maxgo")
			}
		})
	}
	p, base, lim := res["processor"], res["baseline"], res["duckdb"]
	if p.wall > 0 && lim.wall > 0 {
		b.Logf("%d records: processor/duckdb %.2f× records/s, %.2f× records/cpu-s %s", n, lim.wall/p.wall, lim.cpu/p.cpu, loadNote(p, lim))
	}
	if p.wall > 0 && base.wall > 0 {
		b.Logf("%d records: processor/baseline %.2f× records/s, %.2f× records/cpu-s %s", n, base.wall/p.wall, base.cpu/p.cpu, loadNote(p, base))
	}
}

// countingLoad: a ratio counts only when measured below this load average
// (2 cores: above it other processes take a core from one side or the
// other, and the ratio follows the load more than the code).
const countingLoad = 3

// loadNote tells the load average (1 minute, read before and after each
// of the runs compared) and whether the ratio counts.
func loadNote(rs ...childResult) string {
	lo, hi := rs[0].load[0], rs[0].load[0]
	for _, r := range rs {
		lo, hi = min(lo, r.load[0], r.load[1]), max(hi, r.load[0], r.load[1])
	}
	if hi < countingLoad {
		return fmt.Sprintf("(load average %.2f-%.2f: counts)", lo, hi)
	}
	return fmt.Sprintf("(load average %.2f-%.2f: DOES NOT COUNT, load >= %d)", lo, hi, countingLoad)
}

// loadAverage is the 1-minute load average (/proc/loadavg; 0 if unreadable).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscanf(string(b), "%g", &l)
	return l
}

type childResult struct {
	wall, cpu float64    // seconds of the timed part
	maxRSS    int64      // bytes, whole child
	maxGo     int64      // bytes, peak of the Go runtime's own memory (heap, stacks, GC metadata) in the child
	load      [2]float64 // load average before and after the child ran
}

// runChild runs TestBenchChild in a child process and reads its RESULT line.
func runChild(st *stack, mode, db, src string, n int) (childResult, error) {
	args := []string{"-test.run=^TestBenchChild$", "-test.v", "-test.count=1"}
	if d := os.Getenv("GTSM_BENCH_PROFILE_DIR"); d != "" { // CPU profile of each child; heap profiles at its Go memory peaks
		args = append(args, "-test.cpuprofile="+filepath.Join(d, mode+".cpu"))
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GTSM_BENCH_CHILD="+mode, "GTSM_BENCH_BROKERS="+st.BootstrapServers,
		"GTSM_BENCH_REGISTRY="+st.RegistryURL, "GTSM_BENCH_DB="+db, "GTSM_BENCH_SRC="+src, "GTSM_BENCH_N="+strconv.Itoa(n))
	if l := os.Getenv("GTSM_BENCH_CHILD_GOMEMLIMIT"); l != "" { // the child's alone: the parent holds the published records
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+l)
	}
	if g := os.Getenv("GTSM_BENCH_CHILD_GOGC"); g != "" { // overrides TuneRuntime's GC percent in the child
		cmd.Env = append(cmd.Env, "GOGC="+g)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return childResult{}, fmt.Errorf("bench child %s: %w\n%s", mode, err, out)
	}
	var r childResult
	for _, l := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "RESULT %g %g %d %d", &r.wall, &r.cpu, &r.maxRSS, &r.maxGo); err == nil {
			break
		}
		if strings.Contains(l, "bench_test.go:") { // the child's own logs (WAL size, shutdown time, Level-2 state)
			fmt.Printf("    %s: %s\n", mode, strings.TrimSpace(l))
		}
	}
	if r.wall == 0 {
		return r, fmt.Errorf("bench child %s: no RESULT line:\n%s", mode, out)
	}
	return r, nil
}

// TestBenchChild is one drain of BenchmarkDrainSiteDay, run in a child
// process; without GTSM_BENCH_CHILD it is skipped.
func TestBenchChild(t *testing.T) {
	mode := os.Getenv("GTSM_BENCH_CHILD")
	if mode == "" {
		t.Skip("run by BenchmarkDrainSiteDay")
	}
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Getenv("GTSM_BENCH_N"))
	db := os.Getenv("GTSM_BENCH_DB")
	st := &stack{Stack: &embedded.Stack{BootstrapServers: os.Getenv("GTSM_BENCH_BROKERS"), RegistryURL: os.Getenv("GTSM_BENCH_REGISTRY")}}
	// The Go runtime's memory, sampled: max RSS minus this is (mostly)
	// DuckDB's, which Go cannot see.
	var goPeak atomic.Int64
	stopSampler := make(chan struct{})
	defer close(stopSampler)
	go sampleGoMemory(&goPeak, stopSampler)
	var t0 time.Time
	var c0 time.Duration
	var wall, cpu float64
	start := func() { t0, c0 = time.Now(), cpuTime() }
	report := func(time.Time, time.Duration) { wall, cpu = time.Since(t0).Seconds(), (cpuTime() - c0).Seconds() }
	defer func() {
		if wall > 0 && !t.Failed() {
			printResult(wall, cpu, goPeak.Load()) // after the processor's shutdown, whose checkpoint counts in the RSS
		}
	}()
	switch mode {
	case "processor", "processor-level2-off":
		TuneRuntime() // as gtsm process
		cfg := st.config(db, fmt.Sprintf("bench-%d", time.Now().UnixNano()))
		cfg.BatchRows, cfg.FlushInterval, cfg.SessionTimeout, cfg.RebalanceTimeout = 0, 0, 0, 0 // the defaults
		cfg.NoLevel2 = mode == "processor-level2-off"
		start()
		r := startProc(t, cfg)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		err := r.p.WaitCaughtUp(cctx)
		cancel()
		report(t0, c0)
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := r.p.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&rows); err != nil || rows != n {
			t.Fatalf("%d rows, %v; want %d", rows, err, n)
		}
		if !cfg.NoLevel2 {
			// Level-2 state per site: the machine (level2_state) and its
			// hourly checkpoints (level2_checkpoint), in bytes.
			var state, ck, pts int64
			if err := r.p.DB().QueryRow(`SELECT (SELECT sum(octet_length(state)) FROM level2_state),
				(SELECT sum(octet_length(state)) FROM level2_checkpoint),
				(SELECT count(*) FROM level2_gauge_data WHERE microstrain IS NOT NULL)`).Scan(&state, &ck, &pts); err != nil || pts < 4*280 {
				t.Fatalf("level2: %d gauge rows with microstrain, %v", pts, err)
			}
			t.Logf("level2 state %d B, checkpoints %d B", state, ck)
		}
		logWAL(t, db)
		stopSlow(t, r)
	case "replay":
		// The worst case after a kill -9 re-applies every message not yet
		// committed in DuckDB: with P partitions, the transaction in flight
		// holds at most P+1 batches (the queued one and one blocked cut per
		// partition), and meanwhile one batch per partition is open or
		// blocked, plus one queued: 2P+2 batches (8 at the 3 partitions of
		// the benchmark topic). The processor's drained file is rewound by
		// that many messages (rows and offsets; the derived state is cleared,
		// so the replay runs the same per-record path as a drain), then timed
		// from start (DuckDB open, group join) to caught up.
		parts, err := rewindForReplay(ctx, os.Getenv("GTSM_BENCH_SRC"), db, replayMessages)
		if err != nil {
			t.Fatal(err)
		}
		TuneRuntime() // as gtsm process
		cfg := st.config(db, fmt.Sprintf("bench-%d", time.Now().UnixNano()))
		cfg.BatchRows, cfg.FlushInterval, cfg.SessionTimeout, cfg.RebalanceTimeout = 0, 0, 0, 0 // the defaults
		start()
		r := startProc(t, cfg)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		err = r.p.WaitCaughtUp(cctx)
		cancel()
		report(t0, c0)
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := r.p.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&rows); err != nil || rows != n {
			t.Fatalf("%d rows, %v; want %d", rows, err, n)
		}
		t.Logf("replayed %d messages (%d partitions with data)", replayMessages, parts)
		stopSlow(t, r)
	case "baseline":
		rc, err := registry.New(registry.Config{URL: st.RegistryURL})
		if err != nil {
			t.Fatal(err)
		}
		k, v, err := registry.LoadSchemas(ctx, rc, "", testTopic)
		if err != nil {
			t.Fatal(err)
		}
		if st.serde, err = registry.NewSerde(ctx, rc, testTopic, k, v); err != nil {
			t.Fatal(err)
		}
		start()
		if err := baselineDrain(st, db, n); err != nil {
			t.Fatal(err)
		}
		report(t0, c0)
	case "duckdb":
		if err := columnarLimit(ctx, db, os.Getenv("GTSM_BENCH_SRC"), n, start); err != nil {
			t.Fatal(err)
		}
		report(t0, c0)
	}
}

// replayMessages is the most messages a kill -9 can leave uncommitted with
// the benchmark's 3 partitions and the default 131,072-row batches:
// (2×3+2) batches (see the replay mode).
const replayMessages = (2*3 + 2) * 131072

// stopSlow stops the processor like running.stop, but waits up to 10
// minutes (its shutdown checkpoint of several site-days on an overloaded
// machine can take more than stop's minute), and logs how long it took.
func stopSlow(t *testing.T, r *running) {
	t0 := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("processor: %v", err)
		}
	case <-time.After(10 * time.Minute):
		t.Fatal("processor did not stop in 10 minutes")
	}
	t.Logf("shutdown (final checkpoint) %.1f s", time.Since(t0).Seconds())
}

// logWAL logs the size of DuckDB's write-ahead log: what a kill -9 at this
// point would replay at the next start.
func logWAL(t *testing.T, db string) {
	if fi, err := os.Stat(db + ".wal"); err == nil {
		t.Logf("DuckDB WAL at caught up: %.1f MB", float64(fi.Size())/1e6)
	} else {
		t.Logf("DuckDB WAL at caught up: none (%v)", err)
	}
}

// rewindForReplay copies the drained DuckDB file src to dst and takes back
// the last msgs messages (spread over the partitions): their rows go, the
// partitions' offsets move back, and the derived state (site_state, windows,
// gaps, Level-2) is cleared so that the replayed records take the stored
// path, as after a crash. It returns the number of partitions.
func rewindForReplay(ctx context.Context, src, dst string, msgs int) (int, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return 0, fmt.Errorf("replay source: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return 0, err
	}
	db, err := gtsmsql.Open(ctx, dst, false)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var parts int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM kafka_offsets`).Scan(&parts); err != nil || parts == 0 {
		return 0, fmt.Errorf("kafka_offsets: %d partitions, %v", parts, err)
	}
	back := msgs / parts // a site-day is one site, so one partition holds it all at 1×
	for _, q := range []string{
		fmt.Sprintf(`DELETE FROM gtsm_etl USING kafka_offsets o WHERE o.kafka_partition = gtsm_etl.kafka_partition AND gtsm_etl.kafka_offset >= o.next_offset - %d`, back),
		fmt.Sprintf(`UPDATE kafka_offsets SET next_offset = next_offset - %d`, back),
		`DELETE FROM site_state`, `DELETE FROM windows`, `DELETE FROM gaps`,
		`DELETE FROM level2_gauge_data`, `DELETE FROM level2_regional_data`, `DELETE FROM level2_state`, `DELETE FROM level2_checkpoint`,
		`CHECKPOINT`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("rewind: %s: %w", q, err)
		}
	}
	return parts, nil
}

// printResult prints the timed part and the child's peak RSS. The peak is read
// from /proc/self/status (VmHWM, this process's own memory): getrusage's
// maxrss of a child starts at the parent's RSS, whose memory the child
// shared until exec.
func printResult(wall, cpu float64, goPeak int64) {
	var hwm int64
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &hwm)
			}
		}
	}
	fmt.Printf("RESULT %.3f %.3f %d %d\n", wall, cpu, hwm*1024, goPeak)
}

// sampleGoMemory records in peak the highest memory the Go runtime has
// mapped and not released (runtime/metrics: all memory classes minus
// released heap), every 50 ms until stop is closed. With
// GTSM_BENCH_PROFILE_DIR it writes a heap profile whenever the live heap
// (as of the last GC) reaches a new high, so the profile shows what the
// peak holds.
func sampleGoMemory(peak *atomic.Int64, stop <-chan struct{}) {
	ms := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}, {Name: "/gc/heap/live:bytes"}}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	dir := os.Getenv("GTSM_BENCH_PROFILE_DIR")
	var live uint64
	for {
		metrics.Read(ms)
		if v := int64(ms[0].Value.Uint64() - ms[1].Value.Uint64()); v > peak.Load() {
			peak.Store(v)
		}
		if l := ms[2].Value.Uint64(); dir != "" && l > live*21/20 {
			live = l
			if f, err := os.Create(filepath.Join(dir, os.Getenv("GTSM_BENCH_CHILD")+".heap")); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// columnarLimit copies the processor's rows into an in-memory table, then
// (timed from start) lands them into a fresh gtsm_etl with INSERT…SELECT,
// 1M rows per transaction: the fastest way into DuckDB measured (issue 16).
func columnarLimit(ctx context.Context, path, src string, n int, start func()) error {
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		return err
	}
	if err := setCheckpointThreshold(ctx, db, "1GB"); err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{"ATTACH '" + src + "' AS p (READ_ONLY)",
		"CREATE TEMP TABLE src AS SELECT row_number() OVER () AS rn, * EXCLUDE (rn) FROM (SELECT 0 AS rn, * FROM p.gtsm_etl)",
		"DETACH p"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	start()
	for lo := 0; lo < n; lo += 1_000_000 {
		if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO gtsm_etl SELECT * EXCLUDE (rn) FROM temp.src WHERE rn > ? AND rn <= ?", lo, lo+1_000_000); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			return err
		}
	}
	return nil
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

// BenchmarkLand compares the ways the sink lands narrow rows, alone:
// 262,144 Min rows in one transaction into a fresh DuckDB file, through the
// row appender, the data-chunk table function (land.go) or the C
// appender's data chunks (chunks.go, the sink's default), with the
// processor's DuckDB settings (threads: Config.DuckDBThreads's default;
// GTSM_BENCH_THREADS overrides it).
func BenchmarkLand(b *testing.B) {
	recs := synth("B009", bottle.Min, 1625097600000, 262_144)
	rows := newRowSet()
	for i := range recs {
		rows.add("B009", &recs[i], 0, int64(i), false)
	}
	for _, way := range []string{"appender", "chunks", "capi"} {
		b.Run(way, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ctx := context.Background()
				db, err := gtsmsql.Open(ctx, filepath.Join(b.TempDir(), "land.duckdb"), false)
				if err != nil {
					b.Fatal(err)
				}
				if err := gtsmsql.Migrate(ctx, db); err != nil {
					b.Fatal(err)
				}
				threads := Config{}.withDefaults().DuckDBThreads
				if v, err := strconv.Atoi(os.Getenv("GTSM_BENCH_THREADS")); err == nil && v > 0 {
					threads = v
				}
				if err := setThreads(ctx, db, threads); err != nil {
					b.Fatal(err)
				}
				k, err := openSink(ctx, db, testTopic, "256MB")
				if err != nil {
					b.Fatal(err)
				}
				if way != "capi" {
					for i, c := range k.chunks {
						c.close()
						k.chunks[i] = nil
					}
				}
				if way == "appender" {
					k.land = "" // isNarrow rows go to the narrow appender
				}
				bt := &batch{partition: 0, next: int64(rows.n), rows: rows}
				t0, c0 := time.Now(), cpuTime()
				if err := k.write(ctx, []*batch{bt}); err != nil {
					b.Fatal(err)
				}
				el, cpu := time.Since(t0), cpuTime()-c0
				b.ReportMetric(float64(rows.n)/el.Seconds(), "rows/s")
				b.ReportMetric(float64(rows.n)/cpu.Seconds(), "rows/cpu-s")
				k.close()
				db.Close()
			}
		})
	}
}
