package flink

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// mavenServer serves fake connector jars in Maven's layout and counts the
// requests per path. Each jar is sent slowly (half, a pause, the rest) so
// that concurrent installs overlap while one is downloading.
type mavenServer struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	files map[string][]byte
}

func newMavenServer(t *testing.T, jars map[string]string, serveSha1 bool) *mavenServer {
	s := &mavenServer{hits: map[string]int{}, files: map[string][]byte{}}
	for path, content := range jars {
		s.files[path] = []byte(content)
		if serveSha1 {
			h := sha1.Sum([]byte(content))
			s.files[path+".sha1"] = []byte(hex.EncodeToString(h[:]) + "\n")
		}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		b, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		time.Sleep(150 * time.Millisecond)
		w.Write(b[len(b)/2:])
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *mavenServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// toolsWithout returns a directory of links to the commands the script uses,
// minus the named ones, to run it as on an image that lacks them.
func toolsWithout(t *testing.T, missing ...string) string {
	dir := t.TempDir()
	for _, tool := range []string{"bash", "ls", "head", "basename", "sed", "curl", "mkdir", "mktemp", "cut",
		"sha1sum", "chmod", "mv", "rm", "cp", "id", "chown", "flock", "cat"} {
		if contains(missing, tool) {
			continue
		}
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestInstallConnectorsConcurrently is the compose start: the four Flink
// containers run install-connectors.sh at the same time over one shared
// cache volume, each with its own lib/. All must succeed with the right jars
// in lib/; with flock (the Flink images have it) each jar is downloaded and
// checksummed exactly once; without it each process still only ever renames
// a verified jar into place.
func TestInstallConnectorsConcurrently(t *testing.T) {
	root := testutil.RepoRoot(t)
	const (
		kafkaPath = "/maven2/org/apache/flink/flink-sql-connector-kafka/3.3.0-1.20/flink-sql-connector-kafka-3.3.0-1.20.jar"
		avroPath  = "/maven2/org/apache/flink/flink-sql-avro-confluent-registry/1.20.1/flink-sql-avro-confluent-registry-1.20.1.jar"
	)
	jars := map[string]string{
		kafkaPath: strings.Repeat("kafka connector jar ", 4096),
		avroPath:  strings.Repeat("avro confluent jar ", 4096),
	}
	sum := func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	pinned := "flink-sql-connector-kafka-3.3.0-1.20.jar=" + sum(jars[kafkaPath]) +
		" flink-sql-avro-confluent-registry-1.20.1.jar=" + sum(jars[avroPath])

	for _, tc := range []struct {
		name      string
		serveSha1 bool   // the server has Maven's .sha1 files
		pinned    string // CONNECTOR_SHA1S
		noFlock   bool
	}{
		{name: "maven sha1", serveSha1: true},
		{name: "pinned sha1", pinned: pinned},
		{name: "no flock", serveSha1: true, noFlock: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMavenServer(t, jars, tc.serveSha1)
			tmp := t.TempDir()
			cache := filepath.Join(tmp, "cache")
			path := os.Getenv("PATH")
			if tc.noFlock {
				path = toolsWithout(t, "flock")
			}
			const procs = 4
			outs := make([]string, procs)
			errs := make([]error, procs)
			var wg sync.WaitGroup
			for i := 0; i < procs; i++ {
				home := filepath.Join(tmp, fmt.Sprintf("flink%d", i))
				if err := os.MkdirAll(filepath.Join(home, "lib"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(home, "lib", "flink-dist-1.20.1.jar"), []byte("dist"), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command("bash", filepath.Join(root, "flink", "install-connectors.sh"))
				cmd.Env = []string{"PATH=" + path, "FLINK_HOME=" + home, "CONNECTOR_CACHE=" + cache,
					"MAVEN_REPO=" + srv.URL + "/maven2", "CONNECTOR_SHA1S=" + tc.pinned}
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					out, err := cmd.CombinedOutput()
					outs[i], errs[i] = string(out), err
				}(i)
			}
			wg.Wait()
			all := strings.Join(outs, "")
			for i := 0; i < procs; i++ {
				if errs[i] != nil {
					t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
				}
				for p, content := range jars {
					b, err := os.ReadFile(filepath.Join(tmp, fmt.Sprintf("flink%d", i), "lib", filepath.Base(p)))
					if err != nil || string(b) != content {
						t.Errorf("process %d: lib/%s: %d bytes, %v", i, filepath.Base(p), len(b), err)
					}
				}
			}
			for p := range jars {
				jar := filepath.Base(p)
				verified := strings.Count(all, jar+" sha1 ")
				switch {
				case tc.noFlock:
					if n := srv.count(p); n < 1 || n > procs || verified != n {
						t.Errorf("%s: fetched %d times, verified %d times", jar, n, verified)
					}
				default:
					if n := srv.count(p); n != 1 {
						t.Errorf("%s fetched %d times, want once", jar, n)
					}
					if verified != 1 {
						t.Errorf("%s checksummed %d times, want once:\n%s", jar, verified, all)
					}
				}
				wantSha1 := 0
				if tc.serveSha1 && !tc.noFlock {
					wantSha1 = 1
				}
				if n := srv.count(p + ".sha1"); !tc.noFlock && n != wantSha1 {
					t.Errorf("%s.sha1 fetched %d times, want %d", jar, n, wantSha1)
				}
			}
			// Nothing half-written is left in the shared cache.
			ents, _ := os.ReadDir(cache)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			want := "flink-sql-avro-confluent-registry-1.20.1.jar flink-sql-connector-kafka-3.3.0-1.20.jar"
			if got := strings.Join(filterOut(names, ".lock"), " "); got != want {
				t.Errorf("cache holds %s, want %s", got, want)
			}
		})
	}
}

func filterOut(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// A pinned checksum that the served jar does not match is refused, even
// though the server's own .sha1 would match it: the pin wins.
func TestInstallConnectorsPinnedMismatch(t *testing.T) {
	root := testutil.RepoRoot(t)
	kafkaPath := "/maven2/org/apache/flink/flink-sql-connector-kafka/3.3.0-1.20/flink-sql-connector-kafka-3.3.0-1.20.jar"
	srv := newMavenServer(t, map[string]string{kafkaPath: "tampered"}, true)
	tmp := t.TempDir()
	home := filepath.Join(tmp, "flink")
	if err := os.MkdirAll(filepath.Join(home, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "flink", "install-connectors.sh"))
	cmd.Env = append(os.Environ(), "FLINK_HOME="+home, "FLINK_VERSION=1.20.1", "CONNECTOR_CACHE="+filepath.Join(tmp, "cache"),
		"MAVEN_REPO="+srv.URL+"/maven2", "CONNECTOR_SHA1S=flink-sql-connector-kafka-3.3.0-1.20.jar="+strings.Repeat("ab", 20))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "checksum mismatch for flink-sql-connector-kafka-3.3.0-1.20.jar") {
		t.Fatalf("tampered jar accepted: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "lib", "flink-sql-connector-kafka-3.3.0-1.20.jar")); err == nil {
		t.Error("tampered jar installed")
	}
	if n := srv.count(kafkaPath + ".sha1"); n != 0 {
		t.Errorf("the .sha1 was fetched %d times although the sum is pinned", n)
	}
}

// TestFlinkServiceCommands starts the four Flink services' commands from
// docker-compose.yml at once, as `docker compose up -d` does: bash -c with
// the compose environment, the real install script (against a local Maven)
// and a stand-in for the image's /docker-entrypoint.sh that, like flink-docker's,
// writes FLINK_PROPERTIES into the configuration and then runs its arguments
// (recorded here instead). Every service must install both jars and hand its
// command to the entrypoint, so the sql-client's configuration has
// rest.address: jobmanager for `docker compose exec sql-client
// bin/sql-client.sh`.
func TestFlinkServiceCommands(t *testing.T) {
	root := testutil.RepoRoot(t)
	c := rawCompose(t, root)
	const (
		kafkaPath = "/maven2/org/apache/flink/flink-sql-connector-kafka/3.3.0-1.20/flink-sql-connector-kafka-3.3.0-1.20.jar"
		avroPath  = "/maven2/org/apache/flink/flink-sql-avro-confluent-registry/1.20.1/flink-sql-avro-confluent-registry-1.20.1.jar"
	)
	srv := newMavenServer(t, map[string]string{kafkaPath: "kafka jar", avroPath: "avro jar"}, true)
	tmp := t.TempDir()
	cache := filepath.Join(tmp, "connectors")
	entrypoint := filepath.Join(tmp, "docker-entrypoint.sh")
	if err := os.WriteFile(entrypoint, []byte(`#!/usr/bin/env bash
set -eu
mkdir -p "$FLINK_HOME/conf"
printf '%s\n' "${FLINK_PROPERTIES:-}" >> "$FLINK_HOME/conf/config.yaml"
printf '%s\n' "$*" > "$FLINK_HOME/entrypoint.args"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"jobmanager":  "jobmanager",
		"taskmanager": "taskmanager",
		"sql-gateway": "bin/sql-gateway.sh start-foreground",
		"sql-client":  "tail -f /dev/null",
	}
	type result struct {
		out string
		err error
	}
	results := map[string]*result{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for name := range want {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("service %s missing", name)
		}
		ep := command(s.Entrypoint)
		if ep != "/bin/bash -c" {
			t.Fatalf("%s: entrypoint %q, want /bin/bash -c", name, ep)
		}
		script := command(s.Command)
		script = strings.ReplaceAll(script, "/opt/gtsm/flink/install-connectors.sh", filepath.Join(root, "flink", "install-connectors.sh"))
		script = strings.ReplaceAll(script, "/docker-entrypoint.sh", entrypoint)
		home := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(home, "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "lib", "flink-dist-1.20.1.jar"), []byte("dist"), 0o644); err != nil {
			t.Fatal(err)
		}
		e := env(s.Environment)
		if e["CONNECTOR_CACHE"] != "/opt/flink/connectors" {
			t.Errorf("%s: CONNECTOR_CACHE=%q, the flink-connectors volume is /opt/flink/connectors", name, e["CONNECTOR_CACHE"])
		}
		// A command that bypasses the stand-in entrypoint would run the real
		// tail -f forever: bounded.
		cmd := exec.CommandContext(ctx, "/bin/bash", "-c", script)
		cmd.WaitDelay = time.Second
		cmd.Env = append(os.Environ(), "FLINK_HOME="+home, "CONNECTOR_CACHE="+cache,
			"MAVEN_REPO="+srv.URL+"/maven2", "FLINK_PROPERTIES="+e["FLINK_PROPERTIES"])
		r := &result{}
		results[name] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.CombinedOutput()
			r.out, r.err = string(out), err
		}()
	}
	wg.Wait()
	for name, args := range want {
		r := results[name]
		if r.err != nil {
			t.Errorf("%s: %v\n%s", name, r.err, r.out)
			continue
		}
		home := filepath.Join(tmp, name)
		got, err := os.ReadFile(filepath.Join(home, "entrypoint.args"))
		if err != nil || !strings.HasPrefix(string(got), args) {
			t.Errorf("%s: entrypoint ran with %q (%v), want %q...", name, got, err, args)
		}
		conf, _ := os.ReadFile(filepath.Join(home, "conf", "config.yaml"))
		for _, line := range []string{"rest.address: jobmanager", "table.local-time-zone: UTC"} {
			if !strings.Contains(string(conf), line) {
				t.Errorf("%s: configuration lacks %q:\n%s", name, line, conf)
			}
		}
		for _, jar := range []string{"flink-sql-connector-kafka-3.3.0-1.20.jar", "flink-sql-avro-confluent-registry-1.20.1.jar"} {
			if _, err := os.Stat(filepath.Join(home, "lib", jar)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if n := srv.count(kafkaPath); n != 1 {
		t.Errorf("the Kafka connector was downloaded %d times by four services, want once", n)
	}
}
