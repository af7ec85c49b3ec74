package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"gopkg.in/yaml.v3"
)

// scaleOutService is what TestComposeScaleOut reads of a service in
// `docker-compose config` output.
type scaleOutService struct {
	Image       string         `yaml:"image"`
	Profiles    []string       `yaml:"profiles"`
	Deploy      map[string]any `yaml:"deploy"`
	Command     []string       `yaml:"command"`
	Ports       []any          `yaml:"ports"`
	Environment map[string]any `yaml:"environment"`
	Volumes     []any          `yaml:"volumes"`
}

// scaleOutComposeConfig runs `docker-compose config` (with args such as --profile)
// on the repository's compose file and returns its resolved output.
func scaleOutComposeConfig(t *testing.T, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not installed (Debian package docker-compose; .ci/run installs it)")
	}
	root := testutil.RepoRoot(t)
	cmd := exec.Command("docker-compose", append([]string{"-f", filepath.Join(root, "docker-compose.yml")}, append(args, "config")...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose %v config: %v\n%s", args, err, stderr.String())
	}
	return out
}

// scaleOutFlag returns the value of --name in a command line ("--name v" or
// "--name=v") and whether it is there.
func scaleOutFlag(cmd []string, name string) (string, bool) {
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(cmd) {
			return cmd[i+1], true
		}
	}
	return "", false
}

// scaleOutVolumeAt returns the named volume mounted over dir (the longest
// mount point that contains it) and whether that mount is read-only, or ""
// for a bind mount or no mount. It reads both the short syntax
// ("src:target[:mode]", what docker-compose 1.29 config prints) and the long.
func scaleOutVolumeAt(vols []any, dir string) (name string, readOnly bool) {
	best := ""
	for _, v := range vols {
		var src, target, typ string
		var ro bool
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				continue
			}
			src, target = parts[0], parts[1]
			ro = len(parts) > 2 && slices.Contains(strings.Split(parts[2], ","), "ro")
			typ = "volume"
			if strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") {
				typ = "bind"
			}
		case map[string]any:
			src, _ = v["source"].(string)
			target, _ = v["target"].(string)
			typ, _ = v["type"].(string)
			ro = v["read_only"] == true
		}
		if target != dir && !strings.HasPrefix(dir, strings.TrimSuffix(target, "/")+"/") || len(target) <= len(best) {
			continue
		}
		best, name, readOnly = target, "", ro
		if typ == "volume" {
			name = src
		}
	}
	return name, readOnly
}

// TestComposeScaleOut: docker-compose.yml's scale-out profile, as compose
// resolves it (docker-compose config, which also validates the file),
// runs three replicas of one processor service in their own goka group with
// --state-dir on a shared named volume, and a query service reading the same
// volume's lake directory the processors publish to; every flag those
// commands give is one the real CLI takes (gtsm CMD ... -h parses them and
// fails on an unknown one).
func TestComposeScaleOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"profile scale-out", []string{"--profile", "scale-out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := scaleOutComposeConfig(t, tc.args...)
			var c struct {
				Services map[string]scaleOutService `yaml:"services"`
				Volumes  map[string]any             `yaml:"volumes"`
			}
			if err := yaml.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			proc, ok := c.Services["gtsm-partition-processor"]
			if !ok {
				t.Fatalf("no service gtsm-partition-processor in:\n%s", raw)
			}
			qs, ok := c.Services["gtsm-query-service"]
			if !ok {
				t.Fatalf("no service gtsm-query-service")
			}
			// Off in a plain `docker compose up`: the single processor stays the default.
			for name, s := range map[string]scaleOutService{"gtsm-partition-processor": proc, "gtsm-query-service": qs} {
				if !slices.Equal(s.Profiles, []string{"scale-out"}) {
					t.Errorf("%s: profiles %v, want [scale-out]", name, s.Profiles)
				}
				if s.Image != c.Services["gtsm-processor"].Image {
					t.Errorf("%s: image %q, the processor's is %q", name, s.Image, c.Services["gtsm-processor"].Image)
				}
			}
			if r := fmt.Sprint(proc.Deploy["replicas"]); r != "3" {
				t.Errorf("gtsm-partition-processor: deploy.replicas %s, want 3", r)
			}
			if len(proc.Ports) > 0 {
				t.Errorf("gtsm-partition-processor publishes %v: replicas cannot share a host port", proc.Ports)
			}
			if len(proc.Command) == 0 || proc.Command[0] != "process" {
				t.Fatalf("gtsm-partition-processor command %q", proc.Command)
			}
			state, ok := scaleOutFlag(proc.Command, "state-dir")
			if !ok || !path.IsAbs(state) {
				t.Fatalf("gtsm-partition-processor: --state-dir %q", state)
			}
			vol, ro := scaleOutVolumeAt(proc.Volumes, state)
			if vol == "" || ro {
				t.Errorf("--state-dir %s is not on a writable named volume (volume %q, read-only %v)", state, vol, ro)
			}
			if _, ok := c.Volumes[vol]; !ok {
				t.Errorf("volume %q not declared", vol)
			}
			if g, _ := scaleOutFlag(proc.Command, "group"); g == "" || g == "gtsm-processor" {
				t.Errorf("gtsm-partition-processor group %q: must be its own, not the single processor's", g)
			}
			if a, ok := scaleOutFlag(proc.Command, "sql-addr"); !ok || a != "" {
				t.Errorf("gtsm-partition-processor --sql-addr %q, want off (\"\"): the query service is the one surface", a)
			}

			lake, ok := scaleOutFlag(proc.Command, "lake")
			if !ok || !path.IsAbs(lake) {
				t.Fatalf("gtsm-partition-processor: --lake %q", lake)
			}
			if len(qs.Command) == 0 || qs.Command[0] != "query-service" {
				t.Fatalf("gtsm-query-service command %q", qs.Command)
			}
			qlake, _ := scaleOutFlag(qs.Command, "lake")
			pv, _ := scaleOutVolumeAt(proc.Volumes, lake)
			qv, _ := scaleOutVolumeAt(qs.Volumes, qlake)
			if pv == "" || pv != qv || qlake != lake {
				t.Errorf("the query service reads --lake %s on volume %q, the processors write %s on volume %q", qlake, qv, lake, pv)
			}
			if a, _ := scaleOutFlag(qs.Command, "sql-addr"); !strings.HasPrefix(a, "0.0.0.0:") {
				t.Errorf("gtsm-query-service --sql-addr %q: not reachable from outside its container", a)
			}
			if pw := fmt.Sprint(qs.Environment["GTSM_SQL_PASSWORD"]); pw == "" || pw == "<nil>" {
				t.Errorf("gtsm-query-service: no GTSM_SQL_PASSWORD (a non-loopback endpoint needs one)")
			}
			if p := scaleOutPorts(qs.Ports); len(p) != 1 || !strings.HasPrefix(p[0], "127.0.0.1:") {
				t.Errorf("gtsm-query-service publishes %v, want one port on the host's loopback", p)
			}

			// The real CLI takes every flag of both commands.
			for _, cmd := range [][]string{proc.Command, qs.Command} {
				var out, errb bytes.Buffer
				env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
				if code := run(context.Background(), env, append(slices.Clone(cmd), "-h")); code != 0 {
					t.Errorf("gtsm %q -h: exit %d\n%s", cmd, code, errb.String())
				}
			}
		})
	}
}

// scaleOutPorts returns "host_ip:published:target" of both port syntaxes.
func scaleOutPorts(list []any) []string {
	var out []string
	for _, p := range list {
		switch p := p.(type) {
		case string:
			out = append(out, strings.TrimSuffix(p, "/tcp"))
		case map[string]any:
			out = append(out, fmt.Sprintf("%v:%v:%v", p["host_ip"], p["published"], p["target"]))
		}
	}
	return out
}
