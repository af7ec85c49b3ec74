package flink

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Version  any `yaml:"version"`
	Services map[string]struct {
		ContainerName string   `yaml:"container_name"`
		Healthcheck   any      `yaml:"healthcheck"`
		Image         string   `yaml:"image"`
		Build         any      `yaml:"build"`
		Hostname      string   `yaml:"hostname"`
		Command       any      `yaml:"command"`
		Ports         []any    `yaml:"ports"`
		Environment   any      `yaml:"environment"`
		Volumes       []any    `yaml:"volumes"`
		Restart       string   `yaml:"restart"`
		DependsOn     any      `yaml:"depends_on"`
		Entrypoint    any      `yaml:"entrypoint"`
		Profiles      []string `yaml:"profiles"`
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

// volumes returns "source:target[:ro]" for short and long syntax; relative
// sources are made relative to root so raw and resolved files compare equal.
// The SELinux label option (z) is checked by selinuxLabelled, not here.
func volumes(list []any, root string) []string {
	var out []string
	for _, v := range list {
		switch v := v.(type) {
		case string:
			src, rest, _ := strings.Cut(strings.TrimPrefix(v, root+"/"), ":")
			target, mode, _ := strings.Cut(rest, ":")
			s := src + ":" + target
			if slicesContains(strings.Split(mode, ","), "ro") {
				s += ":ro"
			}
			out = append(out, s)
		case map[string]any:
			s := strings.TrimPrefix(yamlScalar(v["source"]), root+"/") + ":" + yamlScalar(v["target"])
			if ro, _ := v["read_only"].(bool); ro {
				s += ":ro"
			}
			out = append(out, s)
		}
	}
	for i, s := range out {
		if strings.HasPrefix(out[i], "./") {
			out[i] = s[2:]
		}
	}
	return out
}

// selinuxLabelled says whether a bind mount (short "src:dst:...z" or long
// syntax with bind.selinux) asks for the SELinux relabel z or Z.
func selinuxLabelled(v any) (bind, labelled bool) {
	switch v := v.(type) {
	case string:
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
			return false, false
		}
		if len(parts) < 3 {
			return true, false
		}
		modes := strings.Split(parts[2], ",")
		return true, slicesContains(modes, "z") || slicesContains(modes, "Z")
	case map[string]any:
		if v["type"] != "bind" {
			return false, false
		}
		b, _ := v["bind"].(map[string]any)
		return true, b["selinux"] == "z" || b["selinux"] == "Z"
	}
	return false, false
}

func slicesContains(list []string, s string) bool { return contains(list, s) }

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
		service string
		ports   []string
		env     map[string]string
		volumes []string
	}{
		{"kafka-broker", []string{"19092:19092"}, map[string]string{
			"KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://kafka-broker:9092,PLAINTEXT_HOST://localhost:19092",
		}, nil},
		{"kafka-schema-registry", []string{"8081:8081"}, map[string]string{
			"SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS": "PLAINTEXT://kafka-broker:9092",
		}, nil},
		{"kafka-rest-proxy", []string{"8082:8082"}, map[string]string{
			"KAFKA_REST_SCHEMA_REGISTRY_URL": "http://kafka-schema-registry:8081",
		}, nil},
		{"landoop-topics-ui", []string{"8093:8000"}, map[string]string{
			"KAFKA_REST_PROXY_URL": "http://kafka-rest-proxy:8082",
		}, nil},
		{"landoop-schema-ui", []string{"8094:8000"}, map[string]string{
			"SCHEMAREGISTRY_URL": "http://kafka-schema-registry:8081",
		}, nil},
		{"jobmanager", []string{"8083:8081"}, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"taskmanager", nil, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"sql-gateway", []string{"8088:8088"}, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"sql-client", nil, nil, []string{"flink:/opt/gtsm/flink:ro"}},
		{"gtsm-producer", nil, map[string]string{
			"BOOTSTRAP_SERVERS":   "kafka-broker:9092",
			"SCHEMA_REGISTRY_URL": "http://kafka-schema-registry:8081",
			"AVRO_SCHEMAS_ROOT":   "/avro_schemas",
		}, []string{"avro_schemas:/avro_schemas:ro"}},
		{"gtsm-processor", []string{"127.0.0.1:5433:5433", "127.0.0.1:8080:8080"}, map[string]string{
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
		if !strings.Contains(env(s.Environment)["FLINK_PROPERTIES"], "rest.address: jobmanager") {
			t.Errorf("%s: FLINK_PROPERTIES lacks rest.address: jobmanager (the JobManager's service name)", name)
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

	// Our image is built once: by exactly one service, which the others
	// name. (Compose bakes one target per service with build:, each tagged
	// with the image; on the containerd image store the second export of
	// the same tag fails with "already exists".)
	builders := map[string][]string{}
	for name, s := range c.Services {
		if s.Build != nil {
			builders[s.Image] = append(builders[s.Image], name)
		}
	}
	if b := builders["gtsm-stream:latest"]; len(b) != 1 || b[0] != "gtsm-producer" {
		t.Errorf("gtsm-stream:latest is built by %v, want only gtsm-producer", b)
	}
	for img, b := range builders {
		if len(b) > 1 {
			t.Errorf("image %s is built by %d services %v: build it in one, name it in the others", img, len(b), b)
		}
	}
	for name, s := range c.Services {
		if strings.HasPrefix(name, "gtsm-") && s.Image != "gtsm-stream:latest" {
			t.Errorf("%s: image %q, want gtsm-stream:latest (the one gtsm-producer builds)", name, s.Image)
		}
		// Containers find each other by service name, on any engine.
		if s.Hostname != "" {
			t.Errorf("%s: hostname %q: use the service name", name, s.Hostname)
		}
		for _, v := range s.Volumes {
			if bind, z := selinuxLabelled(v); bind && !z {
				t.Errorf("%s: bind mount %v without :z (SELinux hosts refuse the container access)", name, v)
			}
		}
	}
	// Every address a service is given names a service of the file.
	for name, s := range c.Services {
		var addrs []string
		for k, v := range env(s.Environment) {
			switch {
			case k == "FLINK_PROPERTIES":
				for _, l := range strings.Split(v, "\n") {
					if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, ".address") {
						addrs = append(addrs, strings.TrimSpace(v))
					}
				}
			case strings.HasSuffix(k, "_URL") || strings.HasSuffix(k, "BOOTSTRAP_SERVERS") || k == "FLINK_SQL_GATEWAY" || k == "GTSM_SQL_ADDR":
				for _, a := range strings.Split(v, ",") {
					if m := regexp.MustCompile(`^(?:\w+://)?([^:/]+)`).FindStringSubmatch(a); m != nil {
						addrs = append(addrs, m[1])
					}
				}
			}
		}
		for _, m := range regexp.MustCompile(`-D[\w.-]*\.address=([^\s]+)`).FindAllStringSubmatch(command(s.Command), -1) {
			addrs = append(addrs, m[1])
		}
		for _, a := range addrs {
			if _, ok := c.Services[a]; !ok && a != "localhost" && a != "0.0.0.0" {
				t.Errorf("%s: address %q is not a service name", name, a)
			}
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
		{"./avro_schemas:/avro_schemas:ro,z", "./avro_schemas:/avro_schemas:z"},
		{`"8088:8088"`, `"8089:8088"`},
		{"flink:1.20", "flink:1.15"},
		{"exec /docker-entrypoint.sh tail", "exec tail"},
		{"restart: unless-stopped\n", "\n"},
		{`"127.0.0.1:5433:5433"`, `"5433:5433"`},
		{"  sql-client:\n", "  sql-client:\n    container_name: flink-sql-client\n"},
		// What a fresh Docker trips on: the image built twice, a hostname: instead of
		// the service name, an address no service has, a bind mount without :z.
		{"  gtsm-processor:\n    image: gtsm-stream:latest\n", "  gtsm-processor:\n    build: .\n    image: gtsm-stream:latest\n"},
		{"  sql-client:\n", "  sql-client:\n    hostname: flink-sql-client\n"},
		{"rest.address: jobmanager\n", "rest.address: flink-jobmanager\n"},
		{"-Dsql-gateway.endpoint.rest.address=sql-gateway", "-Dsql-gateway.endpoint.rest.address=flink-sql-gateway"},
		{"FLINK_SQL_GATEWAY: http://sql-gateway:8088", "FLINK_SQL_GATEWAY: http://flink-sql-gateway:8088"},
		{"./flink:/opt/gtsm/flink:ro,z", "./flink:/opt/gtsm/flink:ro"},
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

// TestComposeMemory adds up the memory docker-compose.yml sets for its JVMs
// (Flink's process sizes in FLINK_PROPERTIES, the Confluent images' heap
// options) and requires README.md and flink/README.md to state that sum, and
// the 6 GiB a Docker VM needs, so neither drifts from the file.
func TestComposeMemory(t *testing.T) {
	root := testutil.RepoRoot(t)
	c := rawCompose(t, root)
	mib := func(v string) float64 {
		m := regexp.MustCompile(`^(\d+)([mgMG])$`).FindStringSubmatch(strings.TrimSpace(v))
		if m == nil {
			t.Fatalf("memory size %q", v)
		}
		n, _ := strconv.ParseFloat(m[1], 64)
		if strings.EqualFold(m[2], "g") {
			n *= 1024
		}
		return n
	}
	var total float64
	props := env(c.Services["jobmanager"].Environment)["FLINK_PROPERTIES"]
	for _, key := range []string{"jobmanager.memory.process.size", "taskmanager.memory.process.size"} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:\s*(\S+)$`).FindStringSubmatch(props)
		if m == nil {
			t.Fatalf("FLINK_PROPERTIES does not set %s", key)
		}
		total += mib(m[1])
	}
	for _, h := range []struct{ service, key string }{
		{"kafka-broker", "KAFKA_HEAP_OPTS"},
		{"kafka-schema-registry", "SCHEMA_REGISTRY_HEAP_OPTS"},
		{"kafka-rest-proxy", "KAFKA_REST_HEAP_OPTS"},
	} {
		m := regexp.MustCompile(`-Xmx(\S+)`).FindStringSubmatch(env(c.Services[h.service].Environment)[h.key])
		if m == nil {
			t.Fatalf("%s: %s sets no -Xmx", h.service, h.key)
		}
		total += mib(m[1])
	}
	sum := fmt.Sprintf("%.1f GiB", total/1024)
	for _, doc := range []string{"README.md", "flink/README.md", "docker-compose.yml"} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "#", " ")), " ")
		if !strings.Contains(text, sum) || !strings.Contains(text, "6 GiB") {
			t.Errorf("%s does not state the JVMs' %s and the 6 GiB Docker needs", doc, sum)
		}
	}
	if total/1024 > 5.5 {
		t.Errorf("the JVMs are set to %s: 6 GiB for Docker is no longer enough headroom; say more", sum)
	}
}

// rawCompose reads docker-compose.yml as written (yaml.v3 resolves its
// anchors and << merges), for checks that need no docker-compose.
func rawCompose(t *testing.T, root string) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}
