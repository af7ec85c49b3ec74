package faults

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/lakecheck"
	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

const topic = "gtsm_etl"

// TestMain doubles as the processor process: with GTSM_FAULT_ROLE=process
// the test binary runs processor.Run (as `gtsm process` does) and prints
// "committed N" whenever the messages committed to DuckDB change, which is
// what lets the kill test SIGKILL it at a point of real progress.
func TestMain(m *testing.M) {
	if os.Getenv("GTSM_FAULT_ROLE") == "process" {
		os.Exit(processRole())
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func processRole() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batch, _ := strconv.Atoi(os.Getenv("GTSM_BATCH"))
	level := slog.LevelInfo
	if os.Getenv("GTSM_FAULT_DEBUG") != "" {
		level = slog.LevelDebug
	}
	if fsize, _ := strconv.ParseUint(os.Getenv("GTSM_FSIZE"), 10, 64); fsize > 0 {
		// A full disk: writes past fsize bytes fail with EFBIG. Go ignores
		// SIGXFSZ only if told to; the default action would kill us.
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: fsize, Max: fsize}); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			return 2
		}
	}
	cfg := processor.Config{
		Brokers: []string{os.Getenv("GTSM_BROKERS")}, Topic: topic, Group: os.Getenv("GTSM_GROUP"),
		DBPath: os.Getenv("GTSM_DB"), Registry: registry.Config{URL: os.Getenv("GTSM_REGISTRY")},
		BatchRows: batch, FlushInterval: 30 * time.Millisecond, SessionTimeout: 1500 * time.Millisecond,
		TableEvery: 50, Partitions: 3,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	until := os.Getenv("GTSM_UNTIL")
	cfg.OnStart = func(p *processor.Processor) {
		go func() {
			last := int64(-1)
			for ctx.Err() == nil {
				var sum int64
				for _, n := range p.Committed() {
					sum += max(n, 0)
				}
				if sum != last {
					fmt.Printf("committed %d\n", sum)
					last = sum
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		if until == "caughtup" {
			go func() {
				if err := p.WaitCaughtUp(ctx); err == nil {
					cancel()
				}
			}()
		}
	}
	if err := processor.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "process:", err)
		fmt.Println("failed:", err)
		return 1
	}
	fmt.Println("stopped")
	return 0
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// gtsm builds the real CLI once per test run.
func gtsm(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "gtsm-faults-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gtsm")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gtsm")
		cmd.Dir = testutil.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/gtsm: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a child process with its stdout as lines and its stderr kept.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

func start(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, lines: make(chan string, 1<<16), stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit error.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("killed after %v: %v", timeout, p.err)
	}
}

// broker is `gtsm broker` as a separate process.
type broker struct {
	*proc
	kafka, registry, data string
}

func startBroker(t *testing.T, data, kafkaAddr, regAddr string) *broker {
	t.Helper()
	p := start(t, nil, gtsm(t), "broker", "--data", data, "--kafka-addr", kafkaAddr, "--registry-addr", regAddr)
	b := &broker{proc: p, kafka: kafkaAddr, registry: "http://" + regAddr, data: data}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("gtsm broker exited: %v\n%s", p.wait(time.Second), p.stderr)
			}
			if strings.HasPrefix(l, "registry") {
				return b
			}
		case <-deadline:
			t.Fatalf("gtsm broker did not start\n%s", p.stderr)
		}
	}
}

// newBroker starts a broker on fresh ports and data directory, with the
// topic created (3 partitions) and short group sessions allowed, so that a
// SIGKILLed processor's membership expires quickly.
func newBroker(t *testing.T) *broker {
	t.Helper()
	b := startBroker(t, t.TempDir(), freeAddr(t), freeAddr(t))
	adm := b.admin(t)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	v := "500"
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "group.min.session.timeout.ms", Value: &v}}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *broker) admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafka))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// messages is the sum of the high watermarks of the topic. Tests poll it
// every few milliseconds, so it closes its own client (b.admin's live until
// the test ends) and gives up after 30 s instead of hanging on a dead broker.
func (b *broker) messages(t testing.TB, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s on %s: %v", topic, b.kafka, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		n += o.Offset
	})
	return n
}

// produce runs `gtsm produce` to completion.
func (b *broker) produce(t *testing.T, args ...string) (exit int, stderr string) {
	t.Helper()
	p := start(t, nil, gtsm(t), append([]string{"produce", "--bootstrap-servers", b.kafka, "--registry", b.registry}, args...)...)
	for range p.lines {
	}
	err := p.wait(3 * time.Minute)
	return exitCode(err), p.stderr.String()
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// processEnv is the environment of a processor process.
func (b *broker) processEnv(db, group string, batch int, extra ...string) []string {
	return append([]string{"GTSM_FAULT_ROLE=process", "GTSM_BROKERS=" + b.kafka, "GTSM_REGISTRY=" + b.registry,
		"GTSM_DB=" + db, "GTSM_GROUP=" + group, "GTSM_BATCH=" + strconv.Itoa(batch)}, extra...)
}

func startProcessor(t testing.TB, env []string) *proc {
	t.Helper()
	return start(t, env, os.Args[0], "-test.run=^$")
}

// runUntilCaughtUp runs a processor until everything in the topic is in
// DuckDB, and requires a clean exit.
func runUntilCaughtUp(t *testing.T, env []string) *proc {
	t.Helper()
	p := startProcessor(t, append(env, "GTSM_UNTIL=caughtup"))
	for range p.lines {
	}
	if err := p.wait(2 * time.Minute); err != nil {
		t.Fatalf("processor: %v\n%s", err, p.stderr)
	}
	return p
}

func parseCommitted(l string) (int64, bool) {
	s, ok := strings.CutPrefix(l, "committed ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// waitCommitted reads the processor's output until it reports at least n
// messages committed to DuckDB.
func waitCommitted(t *testing.T, p *proc, n int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.After(timeout)
	last := int64(-1)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("processor exited before committing %d (at %d): %v\n%s", n, last, p.wait(time.Second), p.stderr)
			}
			if c, ok := parseCommitted(l); ok {
				last = c
				if c >= n {
					return c
				}
			}
		case <-deadline:
			t.Fatalf("processor did not commit %d messages in %v (at %d)\n%s", n, timeout, last, p.stderr)
		}
	}
}

// wallClock are columns that differ between identical runs.
var wallClock = map[string]string{"site_state": "updated_at", "dead_letters": "received_at"}

// dumpTables returns every row of the processor's tables, as sorted text
// lines, wall-clock columns left out.
func dumpTables(t testing.TB, path string) map[string][]string {
	t.Helper()
	db, err := gtsmsql.Open(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	for _, table := range []string{"gtsm_etl", "windows", "gaps", "site_state", "kafka_offsets", "dead_letters"} {
		q := "SELECT * FROM " + table
		if c := wallClock[table]; c != "" {
			q = "SELECT * EXCLUDE (" + c + ") FROM " + table
		}
		out[table] = queryLines(t, db, q+" ORDER BY ALL")
	}
	return out
}

// queryLines is q's rows, blobs in hex and times in RFC 3339 UTC, in q's
// order.
func queryLines(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	return testutil.QueryLines(t, db, q, lakecheck.Format)
}

func queryInt(t testing.TB, path, q string) int64 {
	t.Helper()
	db, err := gtsmsql.Open(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// sameTables requires two DuckDB files to hold the same rows.
func sameTables(t *testing.T, got, want string) {
	t.Helper()
	g, w := dumpTables(t, got), dumpTables(t, want)
	for _, table := range []string{"gtsm_etl", "windows", "gaps", "site_state", "kafka_offsets", "dead_letters"} {
		testutil.DiffLines(t, table, g[table], w[table])
	}
}

// writeMinSet writes 20-sps Min-session bottle files: for each site,
// minutes consecutive minute files of CH0..CH3 starting 2021-07-01 00:00,
// with one minute left out (a gap) and a few fill values (nulls).
func writeMinSet(t testing.TB, dir string, sites []string, minutes int) int {
	t.Helper()
	const day = 1625097600
	records := 0
	for si, site := range sites {
		for m := 0; m < minutes; m++ {
			if m == minutes/2 {
				continue // a one-minute gap
			}
			for ch := 0; ch < 4; ch++ {
				v := make([]int32, 1200)
				for i := range v {
					v[i] = int32(40000000 + si*1000000 + ch*100000 + m*1200 + i)
				}
				if ch == 2 && m%3 == 0 {
					v[m%1200] = 999999 // missing sample
				}
				f := &bottle.File{Header: bottle.Header{HeaderSize: bottle.MinHeaderSize, Start: float64(day + 60*m),
					Interval: 0.05, NumPts: 1200, DataType: bottle.Int32, Missing: 999999, ID: int32(ch)}, Ints: v}
				b, err := bottle.Encode(f)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%s21182%02d%02dCH%d_20", site, m/60, m%60, ch)
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			records += 1200
		}
	}
	return records
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
