package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// jsonLines parses every line of s as a JSON log record: with --log-format
// json nothing else may be on stderr.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Errorf("not a JSON record on stderr: %q", l)
			continue
		}
		recs = append(recs, r)
	}
	return recs
}

// TestProduceRegistryWait: the real gtsm produce against a broker whose
// schema registry cannot be reached, with --log-format json: every retry is
// a JSON record saying the time left of --registry-wait and how to wait
// longer, and the command gives up after that wait (not minutes) with an
// error saying the same. By default it waits 15 s.
func TestProduceRegistryWait(t *testing.T) {
	bin := testutil.Binary(t)
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	root := testutil.RepoRoot(t)
	cmd := exec.Command(bin, "produce", "--log-format", "json", "--registry-wait", "2s", "--bootstrap-servers", st.BootstrapServers,
		"--registry", "http://"+closedAddr(t), filepath.Join(root, "testdata", "hour"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; stderr:\n%s", err, stderr.String())
	}
	// 2 s of waiting plus the client's own retries of the last try (~1.5 s).
	if took > 20*time.Second {
		t.Errorf("gave up after %v with --registry-wait 2s", took)
	}
	retries := 0
	var last map[string]any
	for _, r := range jsonLines(t, stderr.String()) {
		last = r
		if r["msg"] != "schema registry unreachable; retrying" {
			continue
		}
		retries++
		left, err := time.ParseDuration(r["left"].(string))
		if err != nil || left <= 0 || left > 2*time.Second || r["wait"] != "2s" ||
			r["wait_longer"] != "gtsm produce --registry-wait 2m waits longer" {
			t.Errorf("retry record %v: want left (0, 2s], wait 2s, wait_longer", r)
		}
	}
	if retries == 0 {
		t.Errorf("no retry record:\n%s", stderr.String())
	}
	if last["level"] != "ERROR" || !strings.Contains(last["err"].(string), "gave up after waiting") ||
		!strings.Contains(last["err"].(string), "--registry-wait 2m waits longer") {
		t.Errorf("last record %v: want the error saying how long and how to wait longer", last)
	}

	// The default, in text: the first retry line says 15s.
	cmd = exec.Command(bin, "produce", "--bootstrap-servers", st.BootstrapServers, "--registry", "http://"+closedAddr(t), filepath.Join(root, "testdata", "hour"))
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(pipe).ReadString('\n')
	if !strings.Contains(line, `msg="schema registry unreachable; retrying"`) || !strings.Contains(line, " wait=15s ") || !strings.Contains(line, " left=") {
		t.Errorf("first line %q: want a retry with wait=15s and the time left", line)
	}
}

// TestSQLTableModeDoubles: gtsm sql's table mode shows a double to 12
// significant digits, on the file and through the endpoint; csv keeps every
// digit, and DECIMAL, integers and NaN are shown as they are.
func TestSQLTableModeDoubles(t *testing.T) {
	bin := testutil.Binary(t)
	path := filepath.Join(t.TempDir(), "d.duckdb")
	db, err := gtsmsql.Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	const q = "SELECT 48116515.166666664::DOUBLE AS mean, 0.1::FLOAT AS f, 0.000012345678901234::DOUBLE AS small, " +
		"123.456789012345678::DECIMAL(18,15) AS dec, 48116355::DOUBLE AS whole, 'nan'::DOUBLE AS n, 1234567890123::BIGINT AS i"
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)
	sqlRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"sql"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gtsm sql %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	for _, src := range [][]string{{"--addr", srv.Addr().String()}, {"--db", path}} {
		if src[0] == "--db" {
			// The endpoint holds the file: stop it first.
			cancel()
			srv.Close()
			db.Close()
		}
		table := sqlRun(append(src, "-c", q)...)
		rows := strings.Split(table, "\n")
		if len(rows) < 3 {
			t.Fatalf("%v: table %q", src, table)
		}
		cells := strings.Split(rows[2], "|")
		for i, c := range cells {
			cells[i] = strings.TrimSpace(c)
		}
		want := []string{"48116515.1667", "0.1", "1.23456789012e-05", "123.456789012345678", "48116355", "NaN", "1234567890123"}
		if strings.Join(cells, "|") != strings.Join(want, "|") {
			t.Errorf("%v table mode row\n got %q\nwant %q", src, cells, want)
		}
		csv := sqlRun(append(src, "--mode", "csv", "-c", "SELECT 48116515.166666664::DOUBLE AS mean")...)
		if csv != "mean\n48116515.166666664\n" {
			t.Errorf("%v csv mode %q: want every digit", src, csv)
		}
	}
}

// TestSQLEndpointLogsSayWhichServer: the real gtsm process, --log-format
// json, logs psql-wire's start and stop lines as the SQL endpoint's.
func TestSQLEndpointLogsSayWhichServer(t *testing.T) {
	bin := testutil.Binary(t)
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vars := map[string]string{"BOOTSTRAP_SERVERS": st.BootstrapServers, "SCHEMA_REGISTRY_URL": st.RegistryURL}
	if code, _, errs := runCmd(t, vars, "produce", "-q", filepath.Join(testutil.RepoRoot(t), "testdata", "hour")); code != 0 {
		t.Fatalf("produce: %d %s", code, errs)
	}
	cmd := exec.Command(bin, "process", "--log-format", "json", "--db", filepath.Join(t.TempDir(), "p.duckdb"),
		"--bootstrap-servers", st.BootstrapServers, "--registry", st.RegistryURL, "--sql-addr", "127.0.0.1:0", "--http-addr", "")
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stderr.String(), `"msg":"SQL endpoint: serving incoming connections"`) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no start line from the SQL endpoint:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("process: %v\n%s", err, stderr.String())
	}
	for _, r := range jsonLines(t, stderr.String()) {
		switch msg, _ := r["msg"].(string); {
		case strings.Contains(msg, "serving incoming connections"), strings.Contains(msg, "closing server"):
			if !strings.HasPrefix(msg, "SQL endpoint: ") {
				t.Errorf("record %v does not say which server", r)
			}
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"SQL endpoint: closing server"`) {
		t.Errorf("no stop line from the SQL endpoint:\n%s", stderr.String())
	}
}
