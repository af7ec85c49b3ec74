package faults

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/lake"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// The parallel backfill measurement of issue 14 (docs/scale-out.md,
// "Measurements"). It is a measurement, not a pass/fail speed test: it runs
// only with GTSM_BACKFILL=1, and fails only when a drain is wrong (a row lost
// or duplicated) or does not finish. Knobs (environment):
//
//	GTSM_BACKFILL_MINUTES    20-sps minutes per site (default 20: 24 sites → 576,000 records)
//	GTSM_BACKFILL_SITES      sites per partition (default 2; 12 partitions)
//	GTSM_BACKFILL_PRODUCERS  concurrent `gtsm produce` processes (default 3)
//	GTSM_BACKFILL_ROUNDS     rounds of N = 1, 2, 3 (default 1)
//	GTSM_BACKFILL_NS         the processor counts of a round (default 1,2,3;
//	                         ratios are against the round's first)
//	GTSM_BACKFILL_MODE       state-dir | topics | member | auto (default auto:
//	                         state-dir when `gtsm process` has --state-dir)
//	GTSM_BACKFILL_MEMORY     mode member: processor.Config.MemoryLimit, the
//	                         DuckDB memory shared by a member's open partition
//	                         files (gtsm process has no flag for it: 256MB)
//	GTSM_BACKFILL_ARGS       extra `gtsm process` flags, space separated
//	GTSM_BACKFILL_OUT        a file the result table is appended to
//
// Run: GTSM_BACKFILL=1 go test -run TestParallelBackfill -v -timeout 60m ./faults
const backfillPartitions = 12

// Mode "member" runs each member as this test binary running
// TestBackfillMember: processor.Run with the defaults of
// `gtsm process --state-dir` (no endpoints) except MemoryLimit, which the
// CLI does not expose. Not from an init function: until package
// initialisation ends, the Go runtime parks every callback from a C thread,
// and DuckDB calls the processor's landing table function from its own.
func TestBackfillMember(t *testing.T) {
	if os.Getenv("GTSM_BACKFILL_ROLE") != "member" {
		t.Skip("a member process of TestParallelBackfill")
	}
	os.Exit(backfillMember())
}

func backfillMember() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := processor.Config{
		Brokers: []string{os.Getenv("GTSM_BROKERS")}, Topic: topic, Group: os.Getenv("GTSM_GROUP"),
		Registry: registry.Config{URL: os.Getenv("GTSM_REGISTRY")}, StateDir: os.Getenv("GTSM_STATE_DIR"),
		MemoryLimit: os.Getenv("GTSM_BACKFILL_MEMORY"), Partitions: backfillPartitions,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if err := processor.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return 1
	}
	return 0
}

// backfillRun is one drain of the backlog by n processors.
type backfillRun struct {
	n                 int
	round             int
	load              float64       // 1-minute load average when it started
	wall              time.Duration // start → every partition's committed offset at its end
	firstCommit       time.Duration // start → the first committed offset
	cpu               time.Duration // the processors' user+system time (rusage, after exit)
	brokerCPU         time.Duration // the broker's user+system time during the drain
	maxRSSMB          []int64       // each processor's peak RSS
	stateBytes        int64         // DuckDB files after the drain
	lakeBytes         int64         // Parquet files after the drain (the members' --lake, or published after it)
	publishCPU        time.Duration // this process's CPU to publish the files after the drain (0: the members published)
	records, messages int64
}

func (r backfillRun) rate() float64 { return float64(r.records) / r.wall.Seconds() }
func (r backfillRun) cpuPerRecordUS() float64 {
	return r.cpu.Seconds() / float64(r.records) * 1e6
}

func backfillEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestParallelBackfill produces a backlog of 20-sps records for 2 sites per
// partition of a 12-partition topic from several `gtsm produce` processes at
// once (as from several machines), then drains it with 1, 2 and 3
// `gtsm process --state-dir DIR` processes in one goka group (a fresh group
// and directory each time), and reports records/s and the processors'
// CPU-seconds per record, as ratios against the 1-processor drain of the same
// round. Each drain must land every record exactly once (the sum of gtsm_etl
// over the files equals what was produced).
//
// Mode "topics" is the fallback for a build without --state-dir: N
// single-instance processors (`gtsm process --db`), each on its own topic
// holding 1/N of the sites.
func TestParallelBackfill(t *testing.T) {
	if os.Getenv("GTSM_BACKFILL") == "" {
		t.Skip("a measurement of minutes: GTSM_BACKFILL=1 go test -run TestParallelBackfill -v ./faults")
	}
	minutes := backfillEnvInt("GTSM_BACKFILL_MINUTES", 20)
	perPart := backfillEnvInt("GTSM_BACKFILL_SITES", 2)
	producers := backfillEnvInt("GTSM_BACKFILL_PRODUCERS", 3)
	rounds := backfillEnvInt("GTSM_BACKFILL_ROUNDS", 1)
	extra := strings.Fields(os.Getenv("GTSM_BACKFILL_ARGS"))
	ns := []int{1, 2, 3}
	if v := os.Getenv("GTSM_BACKFILL_NS"); v != "" {
		ns = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 3 {
				t.Fatalf("GTSM_BACKFILL_NS %q: counts 1 to 3", v)
			}
			ns = append(ns, n)
		}
	}
	bin := gtsm(t)

	mode := os.Getenv("GTSM_BACKFILL_MODE")
	if mode == "" || mode == "auto" {
		help, _ := execOutput(bin, "process", "-h")
		mode = "topics"
		if strings.Contains(help, "--state-dir") {
			mode = "state-dir"
		}
	}
	if mode == "member" {
		mode += " MemoryLimit=" + os.Getenv("GTSM_BACKFILL_MEMORY")
	}
	t.Logf("mode %s: %d sites per partition, %d minutes per site, %d producers", mode, perPart, minutes, producers)

	b := newBackfillBroker(t)
	// Sites chosen so that each of the 12 partitions holds perPart of them,
	// by the producer's own partitioner over the key as it frames it.
	serde := b.backfillSerde(t)
	sites := balancedSites(t, serde, perPart)
	files := t.TempDir()
	records := map[string]int64{}
	for i, s := range sites {
		records[s] = writeNoisySite(t, filepath.Join(files, s), s, uint64(i+1), minutes)
	}
	var total int64
	for _, n := range records {
		total += n
	}
	kafkaBefore := dirBytes(t, b.data)

	// The topics and their sites: one topic in state-dir mode; N topics of
	// 1/N of the sites each per N in topics mode.
	type drainTopic struct {
		name  string
		sites []string
	}
	topicsFor := map[int][]drainTopic{}
	for _, n := range ns {
		if mode != "topics" {
			topicsFor[n] = []drainTopic{{topic, sites}}
			continue
		}
		for i := range n {
			dt := drainTopic{name: fmt.Sprintf("%s_n%d_%d", topic, n, i)}
			for j, s := range sites {
				if j%n == i {
					dt.sites = append(dt.sites, s)
				}
			}
			topicsFor[n] = append(topicsFor[n], dt)
		}
	}
	produced := map[string]bool{}
	var produceWall, produceCPU time.Duration
	var produceRecords int64
	for _, n := range ns {
		for _, dt := range topicsFor[n] {
			if produced[dt.name] {
				continue
			}
			produced[dt.name] = true
			var want int64
			for _, s := range dt.sites {
				want += records[s]
			}
			w, c := b.produceParallel(t, dt.name, files, dt.sites, producers)
			produceWall += w
			produceCPU += c
			produceRecords += want
			if got := b.messages(t, dt.name); got != want {
				t.Fatalf("topic %s holds %d messages, produced %d records", dt.name, got, want)
			}
		}
	}
	kafkaBytes := dirBytes(t, b.data) - kafkaBefore
	t.Logf("produced %d records (%d sites) in %v by %d concurrent producers: %.0f records/s, %.2f µs CPU/record; broker data %.1f bytes/record",
		produceRecords, len(sites), produceWall.Round(time.Millisecond), producers, float64(produceRecords)/produceWall.Seconds(),
		produceCPU.Seconds()/float64(produceRecords)*1e6, float64(kafkaBytes)/float64(produceRecords))

	var runs []backfillRun
	for round := 1; round <= rounds; round++ {
		for _, n := range ns {
			var tops []string
			for _, dt := range topicsFor[n] {
				tops = append(tops, dt.name)
			}
			r := b.drain(t, bin, mode, n, tops, fmt.Sprintf("backfill-r%d-n%d", round, n), extra)
			r.round = round
			if r.records != total {
				t.Fatalf("N=%d: %d rows in gtsm_etl over the files, produced %d", n, r.records, total)
			}
			runs = append(runs, r)
			t.Logf("round %d N=%d: %d records in %v (first commit after %v): %.0f records/s, %.2f µs CPU/record (processors), broker %.2f µs/record, peak RSS %v MB, load %.1f",
				round, n, r.records, r.wall.Round(time.Millisecond), r.firstCommit.Round(time.Millisecond), r.rate(), r.cpuPerRecordUS(),
				r.brokerCPU.Seconds()/float64(r.records)*1e6, r.maxRSSMB, r.load)
		}
	}
	table := backfillTable(mode, strings.Join(extra, " "), runs, total, len(sites), minutes, producers, kafkaBytes, produceRecords)
	t.Log("\n" + table)
	if out := os.Getenv("GTSM_BACKFILL_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(f, "\n%s (load at start %.1f)\n%s", time.Now().UTC().Format(time.RFC3339), loadAvg(), table)
	}
}

// backfillTable renders the runs as markdown with ratios against the
// 1-processor run of the same round.
func backfillTable(mode, extra string, runs []backfillRun, total int64, sites, minutes, producers int, kafkaBytes, produced int64) string {
	var sb strings.Builder
	if extra != "" {
		mode += ", gtsm process " + extra
	}
	fmt.Fprintf(&sb, "mode %s, %d records (%d sites × %d min × 1,200 at 20 sps, 12 partitions), %d producers; Kafka log %.1f bytes/record\n\n",
		mode, total, sites, minutes, producers, float64(kafkaBytes)/float64(produced))
	sb.WriteString("| round | N | wall s | first commit s | records/s | ×first | CPU µs/record | ×first | broker CPU µs/record | peak RSS MB | DuckDB bytes/record | Parquet bytes/record | publish CPU µs/record | load |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	base := map[int]backfillRun{} // each round's first run
	for _, r := range runs {
		if _, ok := base[r.round]; !ok {
			base[r.round] = r
		}
	}
	for _, r := range runs {
		b := base[r.round]
		lake, pubCPU := "-", "-"
		if r.lakeBytes > 0 {
			lake = fmt.Sprintf("%.1f", float64(r.lakeBytes)/float64(r.records))
		}
		if r.publishCPU > 0 {
			pubCPU = fmt.Sprintf("%.2f", r.publishCPU.Seconds()/float64(r.records)*1e6)
		}
		fmt.Fprintf(&sb, "| %d | %d | %.1f | %.1f | %.0f | %.2f | %.2f | %.2f | %.2f | %v | %.1f | %s | %s | %.1f |\n",
			r.round, r.n, r.wall.Seconds(), r.firstCommit.Seconds(), r.rate(), r.rate()/b.rate(),
			r.cpuPerRecordUS(), r.cpuPerRecordUS()/b.cpuPerRecordUS(),
			r.brokerCPU.Seconds()/float64(r.records)*1e6, r.maxRSSMB,
			float64(r.stateBytes)/float64(r.records), lake, pubCPU, r.load)
	}
	return sb.String()
}

// newBackfillBroker is newBroker with a 12-partition topic.
func newBackfillBroker(t *testing.T) *broker { return newPartitionedBroker(t, backfillPartitions) }

// newPartitionedBroker is newBroker with a topic of parts partitions and the
// broker's minimum group session lowered to 500 ms (members run 1.5 s
// sessions, so a SIGKILLed one is noticed quickly).
func newPartitionedBroker(t *testing.T, parts int32) *broker {
	t.Helper()
	b := startBroker(t, t.TempDir(), freeAddr(t), freeAddr(t))
	adm := b.admin(t)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	v := "500"
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "group.min.session.timeout.ms", Value: &v}}); err != nil {
		t.Fatal(err)
	}
	return b
}

// backfillSerde registers the topic's built-in schemas, as gtsm produce does (it
// then finds them registered under the same ids), and returns the framing.
func (b *broker) backfillSerde(t *testing.T) *registry.Serde {
	t.Helper()
	ctx := context.Background()
	rc, err := registry.New(registry.Config{URL: b.registry})
	if err != nil {
		t.Fatal(err)
	}
	k, v, err := registry.LoadSchemas(ctx, rc, "", topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.NewSerde(ctx, rc, topic, k, v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// balancedSites picks site codes B000, B001, ... so that every partition of
// a 12-partition topic holds perPart sites.
func balancedSites(t *testing.T, serde *registry.Serde, perPart int) []string {
	t.Helper()
	count := make([]int, backfillPartitions)
	var sites []string
	for i := 0; i < 1000 && len(sites) < perPart*backfillPartitions; i++ {
		s := fmt.Sprintf("B%03d", i)
		p := partition.For(serde.AppendKey(nil, s), backfillPartitions)
		if count[p] < perPart {
			count[p]++
			sites = append(sites, s)
		}
	}
	if len(sites) != perPart*backfillPartitions {
		t.Fatalf("found only %d balanced sites", len(sites))
	}
	return sites
}

// writeNoisySite writes minutes consecutive 20-sps minute files (CH0..CH3)
// of one site from 2021-07-01: a semidiurnal tide, a random walk and white
// noise per gauge, so that DuckDB's and Parquet's compression see values
// like a real gauge's rather than a ramp. It returns the records (samples).
func writeNoisySite(t testing.TB, dir, site string, seed uint64, minutes int) int64 {
	return writeNoisyMinutes(t, dir, site, seed, 0, minutes)
}

// writeNoisyMinutes is writeNoisySite from minute from on.
func writeNoisyMinutes(t testing.TB, dir, site string, seed uint64, from, minutes int) int64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const day = 1625097600
	rng := rand.New(rand.NewPCG(seed, 14))
	walk := [4]float64{}
	for m := from; m < from+minutes; m++ {
		for ch := 0; ch < 4; ch++ {
			v := make([]int32, 1200)
			for i := range v {
				sec := float64(60*m) + float64(i)*0.05
				walk[ch] += rng.NormFloat64() * 2
				tide := 8000 * math.Sin(2*math.Pi*sec/44712+float64(ch))
				v[i] = int32(40_000_000 + float64(ch)*1_000_000 + tide + walk[ch] + rng.NormFloat64()*30)
			}
			f := &bottle.File{Header: bottle.Header{HeaderSize: bottle.MinHeaderSize, Start: float64(day + 60*m),
				Interval: 0.05, NumPts: 1200, DataType: bottle.Int32, Missing: 999999, ID: int32(ch)}, Ints: v}
			raw, err := bottle.Encode(f)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("%s21182%02d%02dCH%d_20", site, m/60, m%60, ch)
			if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return int64(minutes) * 1200
}

// produceParallel publishes the sites' directories to topic from k
// concurrent `gtsm produce` processes (sites dealt round-robin), and returns
// the wall time and their CPU time.
func (b *broker) produceParallel(t *testing.T, topicName, files string, sites []string, k int) (time.Duration, time.Duration) {
	t.Helper()
	k = min(k, len(sites))
	t0 := time.Now()
	var ps []*proc
	for i := range k {
		args := []string{"produce", "-q", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--topic", topicName, "--partitions", strconv.Itoa(backfillPartitions)}
		for j, s := range sites {
			if j%k == i {
				args = append(args, filepath.Join(files, s))
			}
		}
		ps = append(ps, start(t, nil, gtsm(t), args...))
	}
	var cpu time.Duration
	for _, p := range ps {
		go func() {
			for range p.lines {
			}
		}()
		if err := p.wait(10 * time.Minute); err != nil {
			t.Fatalf("gtsm produce: %v\n%s", err, p.stderr)
		}
		cpu += childCPU(p)
	}
	return time.Since(t0), cpu
}

// drain runs n processors on the topics until the group's committed
// offsets reach every partition's end, then stops them with SIGTERM (a
// clean stop: the last checkpoint is part of the cost) and measures.
func (b *broker) drain(t *testing.T, bin, mode string, n int, topics []string, group string, extra []string) backfillRun {
	t.Helper()
	ctx := context.Background()
	adm := b.admin(t)
	ends := map[string]int64{}
	for _, tp := range topics {
		ends[tp] = b.messages(t, tp)
	}
	dir := t.TempDir()
	r := backfillRun{n: n, load: loadAvg()}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	brokerBefore := procCPU(t, b.cmd.Process.Pid)
	t0 := time.Now()
	var ps []*proc
	for i := range n {
		args := []string{"process", "--bootstrap-servers", b.kafka, "--registry", b.registry,
			"--sql-addr", "", "--http-addr", "", "--progress-interval", "0"}
		g := group
		switch {
		case mode == "state-dir":
			args = append(args, "--state-dir", filepath.Join(dir, "state"), "--topic", topics[0])
		case strings.HasPrefix(mode, "member"):
			ps = append(ps, start(t, []string{"GTSM_BACKFILL_ROLE=member", "GTSM_BROKERS=" + b.kafka, "GTSM_REGISTRY=" + b.registry,
				"GTSM_GROUP=" + g, "GTSM_STATE_DIR=" + filepath.Join(dir, "state")}, os.Args[0], "-test.run=^TestBackfillMember$"))
			continue
		default:
			g = fmt.Sprintf("%s-%d", group, i)
			args = append(args, "--db", filepath.Join(dir, fmt.Sprintf("p%d.duckdb", i)), "--topic", topics[i])
		}
		args = append(append(args, "--group", g), extra...)
		ps = append(ps, start(t, nil, bin, args...))
	}
	for _, p := range ps {
		go func() {
			for range p.lines {
			}
		}()
	}
	groups := []string{group}
	if mode == "topics" {
		groups = nil
		for i := range n {
			groups = append(groups, fmt.Sprintf("%s-%d", group, i))
		}
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		var done, want int64
		for i, g := range groups {
			tp := topics[min(i, len(topics)-1)]
			want += ends[tp]
			offs, err := adm.FetchOffsetsForTopics(ctx, g, tp)
			if err != nil {
				continue
			}
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Err == nil && o.At > 0 {
					done += o.At
				}
			})
		}
		if done > 0 && r.firstCommit == 0 {
			r.firstCommit = time.Since(t0)
		}
		if done >= want {
			r.wall = time.Since(t0)
			r.messages = done
			break
		}
		for _, p := range ps {
			select {
			case <-p.done:
				t.Fatalf("a processor exited before the drain ended: %v\n%s", p.err, p.stderr)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("N=%d: committed %d of %d after %v", n, done, want, time.Since(t0))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.brokerCPU = procCPU(t, b.cmd.Process.Pid) - brokerBefore
	for _, p := range ps {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ps {
		if err := p.wait(2 * time.Minute); err != nil {
			t.Fatalf("processor did not stop cleanly: %v\n%s", err, p.stderr)
		}
		r.cpu += childCPU(p)
		if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSSMB = append(r.maxRSSMB, ru.Maxrss/1024)
		}
	}
	// Every record landed exactly once: the files' gtsm_etl rows add up to
	// the backlog.
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, _ := d.Info()
		switch {
		case strings.HasSuffix(path, ".duckdb"):
			r.stateBytes += info.Size()
			r.records += queryInt(t, path, "SELECT count(*) FROM gtsm_etl")
		case strings.HasSuffix(path, ".duckdb.wal"):
			r.stateBytes += info.Size()
		case strings.HasSuffix(path, ".parquet"):
			r.lakeBytes += info.Size()
		}
		return nil
	})
	if mode != "topics" && r.lakeBytes == 0 {
		r.lakeBytes, r.publishCPU = publishAfter(t, filepath.Join(dir, "state"), filepath.Join(dir, "lake"))
	}
	return r
}

// publishAfter publishes every partition file of a drained state directory
// to a lake with package lake, as the members would with --lake, and
// returns the lake's Parquet bytes and the CPU time it took (this process's
// rusage: nothing else runs in it meanwhile).
func publishAfter(t *testing.T, state, dir string) (int64, time.Duration) {
	t.Helper()
	ctx := context.Background()
	pub, err := lake.New(dir, lake.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(state, topic+"-p*.duckdb"))
	before := selfCPU()
	for _, f := range files {
		part, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), topic+"-p"), ".duckdb"))
		if err != nil {
			t.Fatalf("partition of %s: %v", f, err)
		}
		db, err := gtsmsql.Open(ctx, f, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, db, int32(part)); err != nil {
			t.Fatalf("publish %s: %v", f, err)
		}
		db.Close()
	}
	cpu := selfCPU() - before
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".parquet") {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, cpu
}

// selfCPU is this process's user+system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childCPU is an exited child's user+system time.
func childCPU(p *proc) time.Duration {
	if p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// procCPU is a running process's user+system time so far (/proc/PID/stat
// fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from after its ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func loadAvg() float64 {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
