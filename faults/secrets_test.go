package faults

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// secretRun is one way a secret reaches the real binary, and what the run
// must show that the secret was used (so the test cannot pass by never
// reaching the code that would print it).
type secretRun struct {
	name   string
	env    []string
	args   []string
	files  map[string]string // written to the run's directory first; "$DIR" in args/env/files is that directory
	until  string            // stop (SIGTERM) once the output has this, twice; "" waits for the exit
	expect string            // the output must contain this (the run reached the path)
}

// TestSecretsNeverPrinted: the secrets given to `gtsm produce`, `gtsm
// process` and `gtsm metadata load` in every way the CLI takes them (URL
// user-info in --registry, SCHEMA_REGISTRY_URL or the config file; -X and
// --kafka-properties sasl.password and ssl key passwords, a malformed -X
// line holding a password; --sasl-password and KAFKA_SASL_PASSWORD;
// --registry-password and SCHEMA_REGISTRY_PASSWORD) appear in none of the
// binary's output: retry warnings, the final error, --help, and for a
// running processor its /metrics, status page and /api answers.
func TestSecretsNeverPrinted(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	bin := gtsm(t)
	dead := "127.0.0.1:" + strings.Split(freeAddr(t), ":")[1] // nobody listens
	root := testutil.RepoRoot(t)
	hour := filepath.Join(root, "testdata", "hour")
	const (
		user = "alice"
		pw   = "S3cretPW"
	)
	credURL := "http://" + user + ":" + pw + "@" + dead
	runs := []secretRun{
		{name: "produce --registry user-info", args: []string{"produce", "--bootstrap-servers", b.kafka, "--registry", credURL, hour},
			until: "schema registry unreachable; retrying", expect: "***@" + dead},
		{name: "process --registry user-info", args: []string{"process", "--bootstrap-servers", b.kafka, "--registry", credURL,
			"--db", "$DIR/p.duckdb", "--http-addr", "", "--sql-addr", ""},
			until: "schema registry unreachable; retrying", expect: "***@" + dead},
		{name: "process SCHEMA_REGISTRY_URL", env: []string{"SCHEMA_REGISTRY_URL=" + credURL},
			args:  []string{"process", "--bootstrap-servers", b.kafka, "--db", "$DIR/p.duckdb", "--http-addr", "", "--sql-addr", ""},
			until: "schema registry unreachable; retrying", expect: "***@" + dead},
		{name: "metadata load SCHEMA_REGISTRY_URL", env: []string{"SCHEMA_REGISTRY_URL=" + credURL},
			args:   []string{"metadata", "load", "--bootstrap-servers", b.kafka, filepath.Join(root, "metadata", "testdata", "bsm_metadata.txt")},
			expect: "***@" + dead},
		{name: "produce --registry malformed user-info", args: []string{"produce", "--bootstrap-servers", b.kafka, "--registry", "http://" + user + ":" + pw + " x@" + dead, hour},
			expect: "schema registry URL"},
		{name: "produce config file registry", files: map[string]string{"gtsm.yaml": "registry: " + credURL + "\n"},
			args:  []string{"produce", "--config", "$DIR/gtsm.yaml", "--bootstrap-servers", b.kafka, hour},
			until: "schema registry unreachable; retrying", expect: "***@" + dead},
		{name: "process config file registry", files: map[string]string{"gtsm.yaml": "registry: " + credURL + "\n"},
			args:  []string{"process", "--config", "$DIR/gtsm.yaml", "--bootstrap-servers", b.kafka, "--db", "$DIR/p.duckdb", "--http-addr", "", "--sql-addr", ""},
			until: "schema registry unreachable; retrying", expect: "***@" + dead},
		{name: "process --help with SCHEMA_REGISTRY_URL", env: []string{"SCHEMA_REGISTRY_URL=" + credURL}, args: []string{"process", "--help"}, expect: "--registry"},
		{name: "produce --help with SCHEMA_REGISTRY_URL", env: []string{"SCHEMA_REGISTRY_URL=" + credURL}, args: []string{"produce", "--help"}, expect: "--registry"},
		{name: "metadata load --help with SCHEMA_REGISTRY_URL", env: []string{"SCHEMA_REGISTRY_URL=" + credURL}, args: []string{"metadata", "load", "--help"}, expect: "--registry"},
		{name: "produce -X sasl.password, plaintext broker", args: []string{"produce", "--bootstrap-servers", b.kafka, "--registry", b.registry,
			"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=" + user, "-X", "sasl.password=" + pw, hour}, expect: "gtsm produce"},
		{name: "process -X sasl.password, plaintext broker", args: []string{"process", "--bootstrap-servers", b.kafka, "--registry", b.registry,
			"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-256", "-X", "sasl.username=" + user, "-X", "sasl.password=" + pw,
			"--db", "$DIR/p.duckdb", "--http-addr", "", "--sql-addr", ""}, until: "", expect: "gtsm process"},
		{name: "-X password without '='", args: []string{"produce", "--bootstrap-servers", b.kafka, "-X", "sasl.password " + pw, hour}, expect: "want key=value"},
		{name: "-X ssl.key.password, invalid ssl setup", args: []string{"produce", "--bootstrap-servers", b.kafka, "--registry", b.registry,
			"-X", "security.protocol=PLAINTEXT", "-X", "ssl.key.password=" + pw, hour}, expect: "gtsm produce"},
		{name: "--kafka-properties sasl.password", files: map[string]string{"k.properties": "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=" + user + "\nsasl.password=" + pw + "\n"},
			args: []string{"produce", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--kafka-properties", "$DIR/k.properties", hour}, expect: "gtsm produce"},
		{name: "--kafka-properties line that is a password", files: map[string]string{"k.properties": "=" + pw + "\n"},
			args: []string{"produce", "--bootstrap-servers", b.kafka, "--kafka-properties", "$DIR/k.properties", hour}, expect: "k.properties:1"},
		{name: "config file kafka-prop sasl.password", files: map[string]string{"gtsm.yaml": "kafka-prop: {security.protocol: PLAINTEXT, sasl.password: " + pw + "}\n"},
			args: []string{"produce", "--config", "$DIR/gtsm.yaml", "--bootstrap-servers", b.kafka, "--registry", b.registry, hour}, expect: "gtsm produce"},
		{name: "--sasl-password flag", args: []string{"process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--sasl-mechanism", "PLAIN",
			"--sasl-username", user, "--sasl-password", pw, "--db", "$DIR/p.duckdb", "--http-addr", "", "--sql-addr", ""}, expect: "gtsm process"},
		{name: "KAFKA_SASL_PASSWORD env", env: []string{"KAFKA_SASL_PASSWORD=" + pw}, args: []string{"metadata", "load", "--bootstrap-servers", b.kafka,
			"--registry", b.registry, "--sasl-mechanism", "PLAIN", "--sasl-username", user, filepath.Join(root, "metadata", "testdata", "bsm_metadata.txt")}, expect: "gtsm metadata"},
		{name: "--registry-password, registry unreachable", args: []string{"produce", "--bootstrap-servers", b.kafka, "--registry", "http://" + dead,
			"--registry-username", user, "--registry-password", pw, hour}, until: "schema registry unreachable; retrying", expect: "unreachable"},
		{name: "SCHEMA_REGISTRY_PASSWORD, --help", env: []string{"SCHEMA_REGISTRY_PASSWORD=" + pw, "KAFKA_SASL_PASSWORD=" + pw}, args: []string{"process", "--help"}, expect: "--registry-password"},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			out := runForSecrets(t, bin, r)
			assertNoSecret(t, out, pw, user+":")
			if !strings.Contains(out, r.expect) {
				t.Fatalf("the run did not reach the path under test (no %q in its output):\n%s", r.expect, tail(out, 3000))
			}
		})
	}

	// A running processor given the registry with user-info: its
	// /metrics, status page and /api answers.
	t.Run("running processor pages", func(t *testing.T) {
		if code, stderr := b.produce(t, hour); code != 0 {
			t.Fatalf("produce: exit %d\n%s", code, stderr)
		}
		reg := strings.Replace(b.registry, "http://", "http://"+user+":"+pw+"@", 1)
		http := freeAddr(t)
		dir := t.TempDir()
		p := start(t, nil, bin, "process", "--bootstrap-servers", b.kafka, "--registry", reg, "--db", filepath.Join(dir, "p.duckdb"),
			"--http-addr", http, "--sql-addr", "", "--group", "secrets-pages")
		go func() {
			for range p.lines {
			}
		}()
		var pages strings.Builder
		deadline := time.Now().Add(time.Minute)
		for _, path := range []string{"/metrics", "/", "/api/series?site=B009&session=Hour", "/api/level2?site=B009", "/healthz"} {
			for {
				body, code := get(t, "http://"+http+path)
				if code != 0 && (path != "/metrics" || strings.Contains(body, "gtsm_records")) || time.Now().After(deadline) {
					pages.WriteString(path + "\n" + body + "\n")
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.wait(time.Minute)
		out := pages.String() + p.stderr.String()
		if !strings.Contains(out, "gtsm_") {
			t.Fatalf("no metrics served:\n%s", tail(out, 3000))
		}
		assertNoSecret(t, out, pw, user+":")
	})
}

func get(t *testing.T, url string) (string, int) {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// runForSecrets runs the binary for r and returns stdout and stderr.
func runForSecrets(t *testing.T, bin string, r secretRun) string {
	t.Helper()
	dir := t.TempDir()
	sub := func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
	for name, body := range r.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sub(body)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var args, env []string
	for _, a := range r.args {
		args = append(args, sub(a))
	}
	for _, e := range r.env {
		env = append(env, sub(e))
	}
	p := start(t, env, bin, args...)
	var stdout strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range p.lines {
			stdout.WriteString(l + "\n")
		}
	}()
	if r.until != "" {
		deadline := time.Now().Add(90 * time.Second)
		for strings.Count(p.stderr.String(), r.until) < 2 && time.Now().Before(deadline) {
			select {
			case <-p.done:
				deadline = time.Now()
			case <-time.After(100 * time.Millisecond):
			}
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	p.wait(2 * time.Minute)
	<-done
	return stdout.String() + p.stderr.String()
}

func assertNoSecret(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if i := strings.Index(out, s); i >= 0 {
			t.Errorf("output shows %q:\n...%s...", s, out[max(0, i-300):min(len(out), i+100)])
		}
	}
}
