package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"gopkg.in/yaml.v3"
)

// dockerOnly is the documented comparison for a machine with only Docker.
const dockerOnly = "docker compose up -d && docker compose run --rm gtsm-compare"

// TestComposeCompareService: `docker compose run --rm gtsm-compare` is
// gtsm compare from the image the producer builds, inside the compose
// network: as compose resolves the file (docker-compose config), its
// gateway, Kafka and SQL endpoint addresses are service names at the ports
// those services listen on inside the network, its password is the
// processor's, it is not started by a plain `up`, and the real CLI takes its
// command line and uses those addresses. Both READMEs give the line.
func TestComposeCompareService(t *testing.T) {
	root := testutil.RepoRoot(t)
	for _, doc := range []string{"README.md", "flink/README.md"} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dockerOnly) + `(\s+#.*)?$`).Match(b) {
			t.Errorf("%s does not give %q on a line of its own", doc, dockerOnly)
		}
	}
	var c struct {
		Services map[string]struct {
			scaleOutService `yaml:",inline"`
			Build           any `yaml:"build"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(scaleOutComposeConfig(t, "--profile", "compare"), &c); err != nil {
		t.Fatal(err)
	}
	cmp, ok := c.Services["gtsm-compare"]
	if !ok {
		t.Fatal("no service gtsm-compare")
	}
	// In a profile: a plain `docker compose up -d` does not start it (run
	// names it, which enables it).
	if !slices.Equal(cmp.Profiles, []string{"compare"}) {
		t.Errorf("gtsm-compare profiles %v, want [compare]", cmp.Profiles)
	}
	if cmp.Image != c.Services["gtsm-producer"].Image || cmp.Build != nil || c.Services["gtsm-producer"].Build == nil {
		t.Errorf("gtsm-compare: image %q, build %v: want the image gtsm-producer builds, not built again", cmp.Image, cmp.Build)
	}
	if len(cmp.Command) == 0 || cmp.Command[0] != "compare" {
		t.Fatalf("gtsm-compare command %q", cmp.Command)
	}
	env := map[string]string{}
	for k, v := range cmp.Environment {
		env[k] = fmt.Sprint(v)
	}
	hostPort := func(name, addr string) (string, string) {
		t.Helper()
		h, p, err := net.SplitHostPort(strings.TrimPrefix(addr, "http://"))
		if err != nil {
			t.Fatalf("gtsm-compare %s=%q: %v", name, addr, err)
		}
		if _, ok := c.Services[h]; !ok {
			t.Errorf("gtsm-compare %s=%q: %s is not a service", name, addr, h)
		}
		return h, p
	}
	// The gateway: sql-gateway's REST port.
	if h, p := hostPort("FLINK_SQL_GATEWAY", env["FLINK_SQL_GATEWAY"]); h != "sql-gateway" ||
		!strings.Contains(strings.Join(c.Services["sql-gateway"].Command, " "), "-Dsql-gateway.endpoint.rest.port="+p) {
		t.Errorf("FLINK_SQL_GATEWAY %s is not where sql-gateway listens: %q", env["FLINK_SQL_GATEWAY"], c.Services["sql-gateway"].Command)
	}
	// The SQL endpoint: the processor's --sql-addr port, and its password.
	proc := c.Services["gtsm-processor"]
	if h, p := hostPort("GTSM_SQL_ADDR", env["GTSM_SQL_ADDR"]); h != "gtsm-processor" {
		t.Errorf("GTSM_SQL_ADDR %s", env["GTSM_SQL_ADDR"])
	} else if a, _ := scaleOutFlag(proc.Command, "sql-addr"); a != "0.0.0.0:"+p {
		t.Errorf("GTSM_SQL_ADDR port %s, the processor listens on --sql-addr %s", p, a)
	}
	if pw := env["GTSM_SQL_PASSWORD"]; pw == "" || pw != fmt.Sprint(proc.Environment["GTSM_SQL_PASSWORD"]) {
		t.Errorf("gtsm-compare password %q, the processor's %v", pw, proc.Environment["GTSM_SQL_PASSWORD"])
	}
	// Kafka: the broker's in-network listener.
	if _, p := hostPort("BOOTSTRAP_SERVERS", env["BOOTSTRAP_SERVERS"]); !strings.Contains(fmt.Sprint(c.Services["kafka-broker"].Environment["KAFKA_ADVERTISED_LISTENERS"]), "PLAINTEXT://"+env["BOOTSTRAP_SERVERS"]) {
		t.Errorf("BOOTSTRAP_SERVERS %s (port %s) is not the broker's advertised in-network listener", env["BOOTSTRAP_SERVERS"], p)
	}
	// The waits a just-started stack needs.
	if w, _ := scaleOutFlag(cmp.Command, "wait"); w != "10m" {
		t.Errorf("gtsm-compare --wait %q, want 10m (a fresh stack downloads connectors)", w)
	}

	// The real CLI with that environment: -h parses the command line and
	// shows the service addresses as defaults; run (for one second), it
	// asks the gateway by its service name.
	getenv := func(k string) string { return env[k] }
	var out, errb bytes.Buffer
	e := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: getenv}
	if code := run(context.Background(), e, append(slices.Clone(cmp.Command), "-h")); code != 0 {
		t.Fatalf("gtsm %q -h: exit %d\n%s", cmp.Command, code, errb.String())
	}
	if !strings.Contains(out.String(), `(default "http://sql-gateway:8088")`) || !strings.Contains(out.String(), `(default "kafka-broker:9092")`) {
		t.Errorf("gtsm compare -h with gtsm-compare's environment does not default to the services:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), e, append(slices.Clone(cmp.Command), "--wait", "1s", "latest")); code != 1 ||
		!strings.Contains(errb.String(), "http://sql-gateway:8088/v1/info") {
		t.Errorf("gtsm %q --wait 1s latest: exit %d, stderr:\n%s", cmp.Command, code, errb.String())
	}
}
