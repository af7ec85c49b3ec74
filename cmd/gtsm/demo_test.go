package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// The fixtures make 4944 records: Day 144, Hour 3600, Min 1200.
const demoRecords = "4944"

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Run twice in one data directory: the second run produces nothing and the
// tables are the same. Run from cmd/gtsm (no testdata/ here), the demo
// generates the fixtures, which exercises that path too.
func TestDemoTwiceDuplicatesNothing(t *testing.T) {
	dir := t.TempDir()
	args := []string{"demo", "--data", dir, "--kafka-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0",
		"--sql-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--rows", "4"}
	var outs [2]string
	for i := range outs {
		var out, errb strings.Builder
		env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := run(context.Background(), env, args); code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i+1, code, errb.String())
		}
		outs[i] = out.String()
		if i == 0 && !strings.Contains(errb.String(), "generated the fixture sets") {
			t.Errorf("run 1 did not generate the fixtures: %s", errb.String())
		}
		if i == 1 && !strings.Contains(errb.String(), "already holds 4944 records") {
			t.Errorf("run 2 did not skip producing: %s", errb.String())
		}
	}
	for _, want := range []string{
		"(first 4 of " + demoRecords + " rows)",
		"B009     | 2021-07-01 00:00:00.050",
		// The per-session summary: the Hour session's 3600 records over
		// one hour without gaps, and its daily means to 0.1 count.
		"B009 | Hour    |    3600 | 2021-07-01 00:00:00 | 2021-07-01 00:59:59    |    0 |               0",
		"B009 | Hour    | 2021-07-01 | lsN_t0 |  48116543.7 |  49196506.2 |  47623653.3 |  50842292.2",
		"B009 | Min     | 2021-07-01 | bsN_t0 |  48116358.5 |  49196543.1 |  47623870.9 |  50842125.0",
		`gtsm sql --db ` + filepath.Join(dir, "gtsm.duckdb") + ` -c ".q hourly B009"`,
	} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("demo output lacks %q:\n%s", want, outs[0])
		}
	}
	if outs[0] != outs[1] {
		t.Errorf("second run printed different results:\n%s\n---\n%s", outs[0], outs[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "gtsm.duckdb")); err != nil {
		t.Errorf("no DuckDB file in the data directory: %v", err)
	}
}

// "gtsm demo --serve" as a real process, checked from outside with real
// clients: kcat lists the topic and counts its records, psql runs the demo
// query, the status page and metrics answer; Ctrl-C stops it cleanly.
func TestDemoServeWithRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := testutil.RepoRoot(t)
	bin := filepath.Join(t.TempDir(), "gtsm")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gtsm")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kafka, reg, sqlAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "demo", "--serve", "--data", t.TempDir(), "--kafka-addr", kafka,
		"--registry-addr", reg, "--sql-addr", sqlAddr, "--http-addr", httpAddr)
	cmd.Dir = root
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		var seen strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			// The last line of the connect instructions.
			if strings.Contains(sc.Text(), "status page, /metrics, /healthz") {
				ready <- seen.String()
				break
			}
		}
		io.Copy(&seen, stdout)
	}()
	var out string
	select {
	case out = <-ready:
	case <-time.After(90 * time.Second):
		t.Fatalf("demo --serve not ready after 90 s; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"kcat -b " + kafka + " -L", "psql -h 127.0.0.1 -p " + portOf(sqlAddr), "gtsm sql --addr " + sqlAddr} {
		if !strings.Contains(out, want) {
			t.Errorf("connect instructions lack %q:\n%s", want, out)
		}
	}

	if _, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed (CI installs it): skipping the kcat checks")
	} else {
		meta, err := exec.Command("kcat", "-b", kafka, "-L").CombinedOutput()
		if err != nil || !strings.Contains(string(meta), `topic "gtsm_etl"`) {
			t.Errorf("kcat -L: %v\n%s", err, meta)
		}
		offs, err := exec.Command("kcat", "-C", "-b", kafka, "-t", "gtsm_etl", "-e", "-q", "-f", "%o\n").Output()
		if err != nil {
			t.Fatalf("kcat -C: %v", err)
		}
		if n := strings.Count(string(offs), "\n"); n != 4944 {
			t.Errorf("kcat read %d records from gtsm_etl, want %s", n, demoRecords)
		}
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Log("psql not installed (CI installs postgresql-client): skipping the psql check")
	} else {
		q := exec.Command("psql", "-h", "127.0.0.1", "-p", portOf(sqlAddr), "-d", "gtsm", "-A", "-t", "-c",
			`SELECT count(*) FROM (SELECT key_site, "timestamp" FROM gtsm_etl ORDER BY key_site, "time")`)
		q.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "PGUSER=gtsm")
		got, err := q.CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != demoRecords {
			t.Errorf("psql demo query count = %q (%v), want %s", got, err, demoRecords)
		}
	}
	for _, pw := range []struct{ path, want string }{
		{"/", "<td>B009</td><td>Hour</td>"},
		{"/metrics", `gtsm_site_records{session="Min",site="B009"} 1200`},
		{"/metrics", `gtsm_build_info{goversion="` + runtime.Version() + `",revision="`},
		{"/healthz", "ok"},
	} {
		path, want := pw.path, pw.want
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, lacks %q", path, resp.StatusCode, want)
		}
	}

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo --serve after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("demo --serve did not stop within 30 s of Ctrl-C")
	}
}
