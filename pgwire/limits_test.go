package pgwire_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// rssBytes is this process's resident set size.
func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// rssSampler records this process's peak RSS every interval, from start
// until stop; the memory tests compare it with the RSS before the load.
type rssSampler struct {
	peak atomic.Int64
	quit chan struct{}
	done chan struct{}
}

func sampleRSS(t *testing.T, every time.Duration) *rssSampler {
	s := &rssSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			s.peak.Store(max(s.peak.Load(), rssBytes(t)))
			select {
			case <-s.quit:
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

// Peak is the highest RSS sampled so far.
func (s *rssSampler) Peak() int64 { return s.peak.Load() }

// Stop ends the sampling and returns the peak.
func (s *rssSampler) Stop() int64 {
	close(s.quit)
	<-s.done
	return s.peak.Load()
}

// TestHugeResultBoundedWhileIngesting: the reported statement (10^11 rows)
// must end at the row cap inside DuckDB, with the process RSS staying within
// rssBound of where it started, while a writer keeps committing batches;
// a long CPU-bound statement must not stop the writer either.
func TestHugeResultBoundedWhileIngesting(t *testing.T) {
	const rssBound = 400 << 20
	e := start(t, pgwire.Config{QueryTimeout: 3 * time.Second, MemoryLimit: "1GB"}, `CREATE TABLE w (batch INTEGER, k INTEGER)`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var committed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; ctx.Err() == nil; b++ {
			if err := writeBatch(e.db, b, 1000); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			committed.Add(1)
		}
	}()
	base := rssBytes(t)
	rss := sampleRSS(t, 20*time.Millisecond)
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	before := committed.Load()
	t0 := time.Now()
	rows, err := c.Query(ctx, `SELECT * FROM range(100000000) a, range(1000) b`)
	n := 0
	if err == nil {
		for rows.Next() {
			n++
		}
		err = rows.Err()
	}
	if pgCode(err) != "54000" || n > pgwire.DefaultRowCap {
		t.Errorf("10^11-row result: %d rows, err %v; want the row cap (54000)", n, err)
	}
	capped := time.Since(t0)
	// A statement that runs (CPU) until the timeout: ingest goes on.
	mid := committed.Load()
	var sum int64
	err = c.QueryRow(ctx, `SELECT count(*) FROM range(100000000) a, range(1000) b WHERE a.range + b.range = -1`).Scan(&sum)
	if pgCode(err) != "57014" {
		t.Errorf("long statement: %v, want the timeout (57014)", err)
	}
	during := committed.Load() - mid
	peak := rss.Stop()
	cancel()
	wg.Wait()
	grow := peak - base
	t.Logf("row-capped after %v; RSS %d MB -> peak %d MB (+%d MB); %d batches committed during the capped query, %d during the 3 s statement",
		capped.Round(time.Millisecond), base>>20, peak>>20, grow>>20, mid-before, during)
	if grow > rssBound {
		t.Errorf("RSS grew by %d MB, bound %d MB", grow>>20, rssBound>>20)
	}
	if during < 1 {
		t.Errorf("no batch committed while a statement ran for 3 s: ingest stalled")
	}
}

// TestConnectionLimit: beyond MaxConns a client gets 53300 and the others
// keep working; a closed connection frees its place.
func TestConnectionLimit(t *testing.T) {
	e := start(t, pgwire.Config{MaxConns: 3})
	ctx := context.Background()
	var cs []*pgx.Conn
	for i := 0; i < 3; i++ {
		c, err := pgx.Connect(ctx, e.url(""))
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		cs = append(cs, c)
	}
	if c, err := pgx.Connect(ctx, e.url("")); err == nil {
		c.Close(ctx)
		t.Fatal("a 4th connection was accepted with MaxConns 3")
	} else if pgCode(err) != "53300" {
		t.Errorf("4th connection: %v, want 53300", err)
	}
	var n int
	if err := cs[0].QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Errorf("existing connection: %d, %v", n, err)
	}
	cs[2].Close(ctx)
	eventually(t, 5*time.Second, func() error {
		c, err := pgx.Connect(ctx, e.url(""))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
	for _, c := range cs[:2] {
		c.Close(ctx)
	}
}

// TestIdleTimeout: a client that sends nothing (not even a startup
// message), and an authenticated session left idle, are closed.
func TestIdleTimeout(t *testing.T) {
	e := start(t, pgwire.Config{IdleTimeout: 300 * time.Millisecond})
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	if _, err := raw.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent connection: read %v, want EOF (closed by the server)", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("silent connection closed after %v", d)
	}
	ctx := context.Background()
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("a session idle for 1 s (timeout 300 ms) still answers")
	}
}

// TestAuthFailuresThrottledAndLogged: wrong passwords from one host are
// slowed down exponentially, each is logged as an authentication failure
// (not as an unexpected error), and the right password still works.
func TestAuthFailuresThrottledAndLogged(t *testing.T) {
	var logs testutil.SyncBuffer
	e := start(t, pgwire.Config{Password: "right", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	t0 := time.Now()
	const attempts = 5
	for i := 0; i < attempts; i++ {
		if c, err := pgx.Connect(ctx, e.url("&password=wrong")); err == nil {
			c.Close(ctx)
			t.Fatal("wrong password accepted")
		} else if pgCode(err) != "28P01" {
			t.Errorf("attempt %d: %v, want 28P01", i+1, err)
		}
	}
	// The waits before attempts 2..5: 250 ms + 500 ms + 1 s + 2 s.
	if d := time.Since(t0); d < 3500*time.Millisecond {
		t.Errorf("%d wrong passwords took %v: not throttled (want >= 3.5 s)", attempts, d)
	}
	c, err := pgx.Connect(ctx, e.url("&password=right"))
	if err != nil {
		t.Fatalf("right password after failures: %v", err)
	}
	c.Close(ctx)
	out := logs.String()
	if n := strings.Count(out, "authentication failed"); n != attempts {
		t.Errorf("%d authentication-failure log lines, want %d:\n%s", n, attempts, out)
	}
	if strings.Contains(out, "unexpected error") {
		t.Errorf("a wrong password logged as an unexpected error:\n%s", out)
	}
}

// TestAcceptRetriedWhenOutOfFiles: with the file descriptor limit reached by
// idle clients, accept fails (EMFILE); the endpoint must keep listening and
// serve again once they leave. The endpoint runs in a child process with a
// low RLIMIT_NOFILE.
func TestAcceptRetriedWhenOutOfFiles(t *testing.T) {
	if os.Getenv("GTSM_FD_CHILD") != "" {
		fdChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptRetriedWhenOutOfFiles$")
	cmd.Env = append(os.Environ(), "GTSM_FD_CHILD="+t.TempDir())
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	addr := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("child did not start: %s", stderr.String())
	}
	// Far more idle clients than the child's 64 descriptors.
	var idle []net.Conn
	for i := 0; i < 150; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		idle = append(idle, c)
	}
	time.Sleep(500 * time.Millisecond) // the child hits EMFILE
	for _, c := range idle {
		c.Close()
	}
	ctx := context.Background()
	eventually(t, 20*time.Second, func() error {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://x@%s/gtsm?sslmode=disable&connect_timeout=2", addr))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var n int
		return c.QueryRow(ctx, "SELECT 42").Scan(&n)
	})
	if !strings.Contains(stderr.String(), "accept failed") {
		t.Errorf("the child never ran out of descriptors (no accept failure logged):\n%.3000s", stderr.String())
	}
}

func fdChild() {
	dir := os.Getenv("GTSM_FD_CHILD")
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(dir, "fd.duckdb"), false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", MaxConns: 1000, IdleTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ADDR %s\n", srv.Addr())
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "Serve:", err)
	}
	os.Exit(3) // Serve must not return
}

// eventually retries f until it succeeds or the time is up.
func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMemoryLimitBoundsAggregation: a statement whose hash table needs far
// more than Config.MemoryLimit spills or fails with an out-of-memory error;
// either way the process RSS stays near the limit, and the writer goes on.
func TestMemoryLimitBoundsAggregation(t *testing.T) {
	const limit, rssBound = 200 << 20, 280 << 20 // without the limit: +326 MB
	e := start(t, pgwire.Config{QueryTimeout: 20 * time.Second, MemoryLimit: "200MB"}, `CREATE TABLE w (batch INTEGER, k INTEGER)`)
	ctx := context.Background()
	base := rssBytes(t)
	rss := sampleRSS(t, 20*time.Millisecond)
	done := make(chan struct{})
	var committed atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for b := 0; ; b++ {
			select {
			case <-done:
				return
			default:
			}
			if err := writeBatch(e.db, b, 1000); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			committed.Add(1)
		}
	}()
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	var n int64
	t0 := time.Now()
	err := c.QueryRow(ctx, `SELECT count(DISTINCT range::VARCHAR) FROM range(5000000)`).Scan(&n)
	took := time.Since(t0)
	close(done)
	peak := rss.Stop()
	<-writerDone
	grow := peak - base
	t.Logf("count(DISTINCT) of 5M strings under memory_limit 200MB: n=%d err=%v after %v; RSS +%d MB; %d batches committed meanwhile",
		n, err, took.Round(time.Millisecond), grow>>20, committed.Load())
	if err != nil && pgCode(err) != "53200" && !strings.Contains(err.Error(), "Out of Memory") {
		t.Errorf("err = %v: want a result or an out-of-memory error", err)
	}
	if err == nil && n != 5000000 {
		t.Errorf("count = %d", n)
	}
	if grow > rssBound {
		t.Errorf("RSS grew by %d MB under a %d MB memory limit (bound %d MB)", grow>>20, limit>>20, rssBound>>20)
	}
	if committed.Load() < 1 {
		t.Error("no batch committed during the statement")
	}
}
