package flink

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Version  any `yaml:"version"`
	Services map[string]struct {
		ContainerName string `yaml:"container_name"`
		Healthcheck   any    `yaml:"healthcheck"`
		Image         string `yaml:"image"`
		Build         any    `yaml:"build"`
		Hostname      string `yaml:"hostname"`
		Command       any    `yaml:"command"`
		Ports         []any  `yaml:"ports"`
		Environment   any    `yaml:"environment"`
		Volumes       []any  `yaml:"volumes"`
		Restart       string `yaml:"restart"`
		DependsOn     any    `yaml:"depends_on"`
		Entrypoint    any    `yaml:"entrypoint"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// ports returns "host:container" for short ("8083:8081") and long
// ({published, target}, what `docker-compose config` prints) port syntax.
func ports(list []any) []string {
	var out []string
	for _, p := range list {
		switch p := p.(type) {
		case string:
			out = append(out, strings.TrimSuffix(p, "/tcp"))
		case map[string]any:
			hp := yamlScalar(p["published"]) + ":" + yamlScalar(p["target"])
			if ip, ok := p["host_ip"].(string); ok && ip != "" {
				hp = ip + ":" + hp
			}
			out = append(out, strings.TrimSpace(hp))
		}
	}
	return out
}

func yamlScalar(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// env returns the environment as a map for both the map and "K=V" list forms.
func env(v any) map[string]string {
	out := map[string]string{}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out[k] = yamlScalar(x)
			if s, ok := x.(string); ok {
				out[k] = s
			}
		}
	case []any:
		for _, x := range v {
			k, val, _ := strings.Cut(yamlScalar(x), "=")
			out[k] = val
		}
	}
	return out
}

// volumes returns "source:target[:mode]" for short and long syntax; relative
// sources are made relative to root so raw and resolved files compare equal.
func volumes(list []any, root string) []string {
	var out []string
	for _, v := range list {
		switch v := v.(type) {
		case string:
			out = append(out, strings.TrimPrefix(v, root+"/"))
		case map[string]any:
			s := strings.TrimPrefix(yamlScalar(v["source"]), root+"/") + ":" + yamlScalar(v["target"])
			if ro, _ := v["read_only"].(bool); ro {
				s += ":ro"
			}
			out = append(out, s)
		}
	}
	for i, s := range out {
		out[i] = strings.TrimSuffix(s, ":rw")
		if strings.HasPrefix(out[i], "./") {
			out[i] = out[i][2:]
		}
	}
	return out
}

func command(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, yamlScalar(x))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}

// reporter is the part of *testing.T that checkStack uses, so a test can see
// that a broken file is reported.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type recorder struct{ msgs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// checkStack asserts what flink/README.md and the original's README promise.
// raw is false for the output of docker-compose config, which adds a
// version key of its own.
func checkStack(t reporter, c composeFile, root string, raw bool) {
	t.Helper()
	want := []struct {
		service, hostname string
		ports             []string
		env               map[string]string
		volumes           []string
	}{
		{"kafka-broker", "kafka-broker", []string{"19092:19092"}, map[string]string{
			"KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://kafka-broker:9092,PLAINTEXT_HOST://localhost:19092",
		}, nil},
		{"kafka-schema-registry", "kafka-schema-registry", []string{"8081:8081"}, map[string]string{
			"SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS": "PLAINTEXT://kafka-broker:9092",
		}, nil},
		{"kafka-rest-proxy", "kafka-rest-proxy", []string{"8082:8082"}, map[string]string{
			"KAFKA_REST_SCHEMA_REGISTRY_URL": "http://kafka-schema-registry:8081",
		}, nil},
		{"landoop-topics-ui", "landoop-topics-ui", []string{"8093:8000"}, map[string]string{
			"KAFKA_REST_PROXY_URL": "http://kafka-rest-proxy:8082",
		}, nil},
		{"landoop-schema-ui", "landoop-schema-ui", []string{"8094:8000"}, map[string]string{
			"SCHEMAREGISTRY_URL": "http://kafka-schema-registry:8081",
		}, nil},
		{"jobmanager", "flink-jobmanager", []string{"8083:8081"}, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"taskmanager", "flink-taskmanager", nil, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"sql-gateway", "flink-sql-gateway", []string{"8088:8088"}, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"sql-client", "flink-sql-client", nil, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"gtsm-producer", "", nil, map[string]string{
			"BOOTSTRAP_SERVERS":   "kafka-broker:9092",
			"SCHEMA_REGISTRY_URL": "http://kafka-schema-registry:8081",
			"AVRO_SCHEMAS_ROOT":   "/avro_schemas",
		}, []string{"avro_schemas:/avro_schemas:ro"}},
		{"gtsm-processor", "", []string{"127.0.0.1:5433:5433", "127.0.0.1:8080:8080"}, map[string]string{
			"BOOTSTRAP_SERVERS":   "kafka-broker:9092",
			"SCHEMA_REGISTRY_URL": "http://kafka-schema-registry:8081",
			"AVRO_SCHEMAS_ROOT":   "/avro_schemas",
		}, []string{"avro_schemas:/avro_schemas:ro", "gtsm-data:/data"}},
	}
	for _, w := range want {
		s, ok := c.Services[w.service]
		if !ok {
			t.Errorf("service %s missing", w.service)
			continue
		}
		if w.hostname != "" && s.Hostname != w.hostname {
			t.Errorf("%s: hostname %q, want %q", w.service, s.Hostname, w.hostname)
		}
		got := ports(s.Ports)
		for _, p := range w.ports {
			if !contains(got, p) {
				t.Errorf("%s: port %s not published (have %v)", w.service, p, got)
			}
		}
		e := env(s.Environment)
		for k, v := range w.env {
			if e[k] != v {
				t.Errorf("%s: %s=%q, want %q", w.service, k, e[k], v)
			}
		}
		vols := volumes(s.Volumes, root)
		for _, v := range w.volumes {
			if !contains(vols, v) {
				t.Errorf("%s: volume %s missing (have %v)", w.service, v, vols)
			}
		}
	}

	// Flink: one version everywhere, new enough for the SQL Gateway (1.16+)
	// and 'scan.bounded.mode' (Kafka connector for 1.17+).
	imgRe := regexp.MustCompile(`^flink:(\d+)\.(\d+)`)
	for _, name := range []string{"jobmanager", "taskmanager", "sql-gateway", "sql-client"} {
		s := c.Services[name]
		m := imgRe.FindStringSubmatch(s.Image)
		if m == nil || m[1] != "1" || len(m[2]) < 2 || m[2] < "17" {
			t.Errorf("%s: image %q is not Flink 1.17 or newer", name, s.Image)
		}
		if s.Image != c.Services["jobmanager"].Image {
			t.Errorf("%s: image %q differs from the jobmanager's %q", name, s.Image, c.Services["jobmanager"].Image)
		}
		if cmd := command(s.Command); !strings.Contains(cmd, "/opt/gtsm/flink/install-connectors.sh") {
			t.Errorf("%s: does not install the connectors first: %q", name, cmd)
		}
		// FLINK_PROPERTIES reaches the configuration only through the image's
		// entrypoint; the sql-client's SELECTs need its rest.address.
		if cmd := command(s.Command); !strings.Contains(cmd, "&& exec /docker-entrypoint.sh ") {
			t.Errorf("%s: command %q does not hand over to /docker-entrypoint.sh", name, cmd)
		}
		if s.Restart != "unless-stopped" && s.Restart != "on-failure" && s.Restart != "always" {
			t.Errorf("%s: restart %q: a failed start stays down", name, s.Restart)
		}
		if !strings.Contains(env(s.Environment)["FLINK_PROPERTIES"], "rest.address: flink-jobmanager") {
			t.Errorf("%s: FLINK_PROPERTIES lacks rest.address: flink-jobmanager", name)
		}
	}
	if raw && c.Version != nil {
		t.Errorf("obsolete top-level version: %v", c.Version)
	}
	for name, s := range c.Services {
		if s.ContainerName != "" {
			t.Errorf("%s: fixed container_name %q (two projects could not run side by side)", name, s.ContainerName)
		}
	}
	// (docker-compose config writes disable: true as test: [NONE])
	if hc, _ := c.Services["gtsm-producer"].Healthcheck.(map[string]any); hc["disable"] != true && fmt.Sprint(hc["test"]) != "[NONE]" {
		t.Errorf("gtsm-producer: the image's /healthz probe is not disabled for the one-shot producer: %v", hc)
	}
	// The install script knows a Kafka connector for the Flink in the images.
	if m := imgRe.FindStringSubmatch(c.Services["jobmanager"].Image); m != nil {
		script, err := os.ReadFile(filepath.Join(root, "flink", "install-connectors.sh"))
		if err != nil {
			t.Errorf("install script: %v", err)
		} else if minor := m[1] + "." + m[2]; !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(minor) + `\) kafka=\S+-` + regexp.QuoteMeta(minor) + ` ;;`).Match(script) {
			t.Errorf("install-connectors.sh has no Kafka connector for Flink %s", minor)
		}
	}
	if cmd := command(c.Services["sql-gateway"].Command); !strings.Contains(cmd, "sql-gateway.sh start-foreground") ||
		!strings.Contains(cmd, "sql-gateway.endpoint.rest.port=8088") {
		t.Errorf("sql-gateway command %q does not run the gateway on 8088", cmd)
	}

	// Our services: built from the Dockerfile, the documented commands.
	for _, name := range []string{"gtsm-producer", "gtsm-processor"} {
		if c.Services[name].Build == nil {
			t.Errorf("%s: not built from the Dockerfile", name)
		}
	}
	if cmd := command(c.Services["gtsm-producer"].Command); !strings.HasPrefix(cmd, "produce ") || !strings.Contains(cmd, "testdata/") {
		t.Errorf("gtsm-producer command %q, want produce testdata/...", cmd)
	}
	if r := c.Services["gtsm-producer"].Restart; r != "no" {
		t.Errorf("gtsm-producer restart %q, want no (one-shot)", r)
	}
	if cmd := command(c.Services["gtsm-processor"].Command); !strings.Contains(cmd, "process --db /data/gtsm.duckdb") ||
		!strings.Contains(cmd, "--sql-addr 0.0.0.0:5433") || !strings.Contains(cmd, "--http-addr 0.0.0.0:8080") {
		t.Errorf("gtsm-processor command %q", cmd)
	}
	for _, v := range []string{"gtsm-data", "kafka-data", "flink-connectors"} {
		if _, ok := c.Volumes[v]; !ok {
			t.Errorf("named volume %s not declared", v)
		}
	}
}

func TestComposeFile(t *testing.T) {
	root := testutil.RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("raw", func(t *testing.T) {
		var c composeFile
		if err := yaml.Unmarshal(raw, &c); err != nil { // resolves anchors and << merges
			t.Fatalf("docker-compose.yml: %v", err)
		}
		checkStack(t, c, root, true)
	})
	t.Run("docker-compose config", func(t *testing.T) {
		if _, err := exec.LookPath("docker-compose"); err != nil {
			t.Skip("docker-compose not installed (Debian package docker-compose; .ci/run installs it): checked the raw file only")
		}
		cmd := exec.Command("docker-compose", "-f", filepath.Join(root, "docker-compose.yml"), "config")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
		}
		var c composeFile
		if err := yaml.Unmarshal(out, &c); err != nil {
			t.Fatalf("docker-compose config output: %v", err)
		}
		checkStack(t, c, root, false)
	})
}

// TestComposeCheckCatchesBreakage makes sure the checks above can fail: a
// stack without the host listener or the read-only schema mount is reported.
func TestComposeCheckCatchesBreakage(t *testing.T) {
	root := testutil.RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to string }{
		{`"19092:19092"`, `"29092:19092"`},
		{"./avro_schemas:/avro_schemas:ro", "./avro_schemas:/avro_schemas"},
		{`"8088:8088"`, `"8089:8088"`},
		{"flink:1.20", "flink:1.15"},
		{"exec /docker-entrypoint.sh tail", "exec tail"},
		{"restart: unless-stopped\n", "\n"},
		{`"127.0.0.1:5433:5433"`, `"5433:5433"`},
		{"    hostname: flink-sql-client\n", "    hostname: flink-sql-client\n    container_name: flink-sql-client\n"},
		{"\nservices:\n", "\nversion: \"3.8\"\nservices:\n"},
	} {
		broken := strings.Replace(string(raw), tc.from, tc.to, 1)
		if broken == string(raw) {
			t.Fatalf("%q not in docker-compose.yml", tc.from)
		}
		var c composeFile
		if err := yaml.Unmarshal([]byte(broken), &c); err != nil {
			t.Fatal(err)
		}
		var r recorder
		checkStack(&r, c, root, true)
		if len(r.msgs) == 0 {
			t.Errorf("replacing %s with %s went unnoticed", tc.from, tc.to)
		}
	}
}
