package main

import (
	"context"
	"errors"
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
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/processor"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// gtsmBinary builds the real CLI once per test run.
func gtsmBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gtsm-query-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gtsm")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gtsm")
		cmd.Dir = testutil.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/gtsm: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// queryServiceProc is a real `gtsm query-service` over an empty lake.
type queryServiceProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testutil.SyncBuffer
	done   chan struct{}
}

func startQueryServiceProc(t *testing.T, args ...string) *queryServiceProc {
	t.Helper()
	addr := freeAddr(t)
	lake := t.TempDir()
	cmd := exec.Command(gtsmBinary(t), append([]string{"query-service", "--lake", lake, "--sql-addr", addr}, args...)...)
	q := &queryServiceProc{cmd: cmd, addr: addr, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = q.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(q.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-q.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-q.done
		}
	})
	if _, err := q.answers(t, time.Minute); err != nil {
		t.Fatalf("gtsm query-service never answered: %v\n%s", err, q.stderr)
	}
	return q
}

func (q *queryServiceProc) url() string {
	return fmt.Sprintf("postgres://gtsm@%s/gtsm?sslmode=disable&connect_timeout=5", q.addr)
}

// answers polls until SELECT 1 works, and says how long that took.
func (q *queryServiceProc) answers(t *testing.T, bound time.Duration) (time.Duration, error) {
	return testutil.PGAnswers(context.Background(), q.url(), bound)
}

// workers are the query processes the supervisor started (the serving one
// and its standby), once both are there.
func (q *queryServiceProc) workers(t *testing.T) []int {
	t.Helper()
	// Children of whichever threads started them (the supervisor keeps
	// each on its thread: Pdeathsig).
	deadline := time.Now().Add(20 * time.Second)
	var pids []int
	for time.Now().Before(deadline) {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", q.cmd.Process.Pid))
		if err != nil || len(tasks) == 0 {
			t.Skipf("no /proc children lists: %v", err)
		}
		pids = pids[:0]
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					pids = append(pids, n)
				}
			}
		}
		if len(pids) >= 2 {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
	return pids
}

// serving is the pid of the query process serving: the one that answers
// connections (the standby does not accept).
func (q *queryServiceProc) serving(t *testing.T) int {
	t.Helper()
	ws := q.workers(t)
	for _, w := range ws {
		if strings.Contains(q.stderr.String(), fmt.Sprintf(`msg="query process serving" pid=%d `, w)) {
			return w
		}
	}
	t.Fatalf("none of the query processes %v is logged as serving:\n%s", ws, q.stderr)
	return 0
}

// Attacks on the SQL endpoint's process model, against the real binary.
func TestQueryProcessAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx := context.Background()

	// 64 (the default --sql-max-conns) sockets and more that never send a
	// startup message lock nobody out: psql gets in at once, and the
	// sockets are closed by the server once their startup time is up.
	t.Run("silent sockets", func(t *testing.T) {
		q := startQueryServiceProc(t)
		var socks []net.Conn
		for range 200 {
			c, err := net.Dial("tcp", q.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			socks = append(socks, c)
		}
		t0 := time.Now()
		out, err := exec.Command("psql", "-h", hostOf(q.addr), "-p", portOf(q.addr), "-d", "gtsm", "-A", "-t", "-c", "SELECT 40 + 2").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "42" {
			t.Fatalf("psql behind 200 silent sockets: %v %s\nlog:\n%s", err, out, grepLines(q.stderr.String(), "refus"))
		}
		t.Logf("psql answered %v after opening 200 silent sockets", time.Since(t0).Round(time.Millisecond))
		last := socks[len(socks)-1]
		last.SetReadDeadline(time.Now().Add(30 * time.Second))
		t1 := time.Now()
		if _, err := last.Read(make([]byte, 1)); err == nil {
			t.Error("a silent socket received data")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("a silent socket still open after 30 s (startup timeout 10 s)")
		}
		t.Logf("the newest silent socket was closed by the server %v later", time.Since(t1).Round(time.Millisecond))
	})

	// A crashed query process (kill -9) is restarted; meanwhile clients
	// get an error (57P03 or a closed connection), never a hang.
	t.Run("query process killed", func(t *testing.T) {
		q := startQueryServiceProc(t)
		w := q.serving(t)
		syscall.Kill(w, syscall.SIGKILL)
		t0 := time.Now()
		for time.Since(t0) < 2*time.Second {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.Connect(cctx, q.url())
			cancel()
			if err == nil {
				c.Close(ctx)
				continue
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a connection during the restart hung: %v", err)
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code != "57P03" {
				t.Errorf("during the restart: %v, want 57P03", err)
			}
		}
		back, err := q.answers(t, 10*time.Second)
		if err != nil {
			t.Fatalf("not answering 10 s after the kill: %v\n%s", err, q.stderr)
		}
		if w2 := q.serving(t); w2 == w {
			t.Errorf("query process %d still serving after it was killed", w)
		}
		t.Logf("answering again %v after the kill", (time.Since(t0) - 2*time.Second + back).Round(time.Millisecond))
	})

	// The query processes (serving and standby) die with their
	// supervisor, even by kill -9.
	t.Run("supervisor killed", func(t *testing.T) {
		q := startQueryServiceProc(t)
		ws := q.workers(t)
		if len(ws) != 2 {
			t.Fatalf("query processes %v under gtsm query-service, want a serving one and a standby", ws)
		}
		q.cmd.Process.Kill()
		<-q.done
		deadline := time.Now().Add(10 * time.Second)
		for _, w := range ws {
			for syscall.Kill(w, 0) == nil {
				if time.Now().After(deadline) {
					t.Fatalf("query process %d still alive 10 s after its supervisor was killed", w)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if c, err := net.DialTimeout("tcp", q.addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the supervisor and its query process died", q.addr)
		}
	})
}

// TestStatementTimeoutHolds: a statement DuckDB cannot interrupt
// (levenshtein of two long strings is one scalar call) used to run for as
// long as the function (26 s with a 3 s timeout here): now the client has
// an error by --sql-timeout + the stuck grace (3 s) + the time to notice,
// because the query process is replaced, and the endpoint answers again.
func TestStatementTimeoutHolds(t *testing.T) {
	testutil.Long(t)
	q := startQueryServiceProc(t, "--sql-timeout", "2s")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, q.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	t0 := time.Now()
	_, err = c.Exec(ctx, `SELECT levenshtein(repeat('a', 60000), repeat('b', 60000))`)
	took := time.Since(t0)
	if err == nil {
		t.Fatal("levenshtein of 60,000 characters finished within the 2 s timeout")
	}
	t.Logf("statement ended after %v with %v (timeout 2s)", took.Round(time.Millisecond), err)
	if took > 10*time.Second {
		t.Errorf("the statement ran %v with --sql-timeout 2s (bound: timeout + 3 s grace + slack)", took)
	}
	back, err := q.answers(t, 10*time.Second)
	if err != nil {
		t.Fatalf("not answering after the stuck statement: %v\n%s", err, q.stderr)
	}
	t.Logf("answering again %v later", back.Round(time.Millisecond))
	if !strings.Contains(q.stderr.String(), "ignored its interrupt") {
		t.Errorf("no log line about the stuck statement:\n%s", q.stderr)
	}
}

// fileLake: the single-file processor's lake is <db>.lake by default when
// the SQL endpoint is on, the --lake directory when given, and none when
// the endpoint is off and no --lake is given.
func TestFileLake(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "g.duckdb")
	for _, c := range []struct {
		name, sqlAddr, lake, want string
		interval, wantEvery       time.Duration
	}{
		{"default beside the file", "127.0.0.1:0", "", db + ".lake", 0, defaultFilePublish},
		{"--lake", "127.0.0.1:0", filepath.Join(dir, "elsewhere"), filepath.Join(dir, "elsewhere"), 5 * time.Second, 5 * time.Second},
		{"endpoint off, --lake", "", filepath.Join(dir, "kept"), filepath.Join(dir, "kept"), 0, defaultFilePublish},
		{"endpoint off", "", "", "", 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := processor.Config{DBPath: db}
			ec := endpointConfig{sqlAddr: c.sqlAddr}
			if err := fileLake(&cfg, &ec, c.lake, c.interval, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
				t.Fatal(err)
			}
			if ec.lakeDir != c.want || (c.want == "") != (cfg.Publisher == nil) || cfg.PublishInterval != c.wantEvery {
				t.Errorf("lake %q, publisher %v, every %v; want %q, every %v", ec.lakeDir, cfg.Publisher != nil, cfg.PublishInterval, c.want, c.wantEvery)
			}
			if c.want != "" {
				if st, err := os.Stat(c.want); err != nil || !st.IsDir() {
					t.Errorf("lake directory %s not created: %v", c.want, err)
				}
			}
		})
	}
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
