package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Precedence flag > environment > config file > default, seen end to end:
// gtsm sql names the DuckDB file it tried (none exists, and no endpoint
// answers at 127.0.0.1:1), so stderr tells which --db value won.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	section := write("section.yaml", "sql:\n  db: file.duckdb\n  addr: 127.0.0.1:1\n")
	top := write("top.yaml", "db: top.duckdb\naddr: 127.0.0.1:1\nsql:\n  mode: csv\n")
	both := write("both.yaml", "db: top.duckdb\naddr: 127.0.0.1:1\nsql:\n  db: section.duckdb\n")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default", nil, []string{"--addr", "127.0.0.1:1"}, "gtsm.duckdb"},
		{"file", nil, []string{"--config", section}, "file.duckdb"},
		{"file from GTSM_CONFIG", map[string]string{"GTSM_CONFIG": section}, nil, "file.duckdb"},
		{"--config over GTSM_CONFIG", map[string]string{"GTSM_CONFIG": "/nonexistent.yaml"}, []string{"--config", section}, "file.duckdb"},
		{"top level", nil, []string{"--config", top}, "top.duckdb"},
		{"section over top level", nil, []string{"--config", both}, "section.duckdb"},
		{"env over file", map[string]string{"GTSM_DB": "env.duckdb"}, []string{"--config", section}, "env.duckdb"},
		{"flag over env and file", map[string]string{"GTSM_DB": "env.duckdb"}, []string{"--config", section, "--db", "flag.duckdb"}, "flag.duckdb"},
		{"flag after the others", map[string]string{"GTSM_CONFIG": section}, []string{"--db=flag.duckdb"}, "flag.duckdb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tc.env, append([]string{"sql", "-c", "SELECT 1"}, tc.args...)...)
			if code != 1 || !strings.Contains(errs, `open DuckDB `+tc.want+`:`) {
				t.Errorf("exit %d, stderr %q; want 1 and a try of %s", code, errs, tc.want)
			}
		})
	}
}

// A config file's mistakes are usage errors that name the file and the key.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		body, want string
	}{
		{"fo: 1\n", "fo: no command has a flag --fo"},
		{"sql:\n  dbb: x\n", "sql: gtsm sql has no flag --dbb"},
		{"bottle inspect:\n  samples: many\n", `samples: invalid argument "many"`},
		{"config: other.yaml\n", "config: no command has a flag --config"},
		{"sql: [1, 2]\n", "sql: want a map of flag names to values"},
		{"sql:\n  mode: {a: {b: c}}\n", "nested too deep"},
		{"sql: {\n", "yaml"},
	} {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(tc.body), 0o600)
		code, _, errs := runCmd(t, nil, "bottle", "inspect", "--config", p, "../../testdata/hour/B0092118200CH0")
		if code != 2 || !strings.Contains(errs, "config "+p) || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming %s and %q", tc.body, code, errs, p, tc.want)
		}
	}
	code, _, errs := runCmd(t, nil, "bottle", "inspect", "--config", filepath.Join(dir, "none.yaml"), "x")
	if code != 2 || !strings.Contains(errs, "none.yaml") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
	// A good file: a section's value, a list and a map for repeatable flags.
	os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("bottle inspect:\n  samples: 1\n  json: true\n"), 0o600)
	code, out, errs := runCmd(t, nil, "bottle", "inspect", "--config", filepath.Join(dir, "ok.yaml"), "../../testdata/hour/B0092118200CH0")
	if code != 0 || !strings.HasPrefix(out, "{") || strings.Count(out, `"time_ms"`) != 1 {
		t.Errorf("samples 1, json true from the file: exit %d, %s %s", code, out, errs)
	}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{[]any{"a=1", "b=2"}, "a=1|b=2"},
		{map[string]any{"linger.ms": 20, "client.id": "x"}, "client.id=x|linger.ms=20"},
		{true, "true"},
		{"500ms", "500ms"},
	} {
		got, err := configValues(tc.v)
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("configValues(%v) = %q, %v; want %s", tc.v, got, err, tc.want)
		}
	}
}

// Flags after arguments, short flags, --version, help with --flag names,
// "gtsm bottle -h" listing inspect's flags, completion scripts.
func TestCommandLine(t *testing.T) {
	hour := "../../testdata/hour"
	code, out, errs := runCmd(t, nil, "produce", hour, "--dry-run", "-q")
	if code != 0 || strings.Count(out, "\n") != 3600 {
		t.Errorf("produce DIR --dry-run -q: exit %d, %d lines, %s", code, strings.Count(out, "\n"), errs)
	}
	code, out, _ = runCmd(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "gtsm ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	code, out, errs = runCmd(t, nil, "bottle", "-h")
	for _, want := range []string{"Usage: gtsm bottle inspect", "-n, --samples int", "--json", "--log-format string", "--config file"} {
		if code != 0 || !strings.Contains(out, want) || errs != "" {
			t.Errorf("bottle -h: exit %d, stdout lacks %q:\n%s\nstderr %q", code, want, out, errs)
		}
	}
	code, out, errs = runCmd(t, nil, "help", "produce")
	if code != 0 || !strings.Contains(out, "  -q, --quiet") || !strings.Contains(out, "-X, --kafka-prop key=value") || errs != "" {
		t.Errorf("help produce: exit %d:\n%s\nstderr %q", code, out, errs)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errs := runCmd(t, nil, "completion", sh)
		if code != 0 || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes, %s", sh, code, len(out), errs)
		}
	}
	// What the shell asks the completion script to run: flag names of a
	// subcommand, and the values of --log-format.
	_, out, _ = runCmd(t, nil, "__complete", "produce", "--dr")
	if !strings.Contains(out, "--dry-run") {
		t.Errorf("completing produce --dr: %q", out)
	}
	_, out, _ = runCmd(t, nil, "__complete", "process", "--log-format", "")
	if !strings.Contains(out, "json") || !strings.Contains(out, "text") {
		t.Errorf("completing --log-format: %q", out)
	}
	// --log-format json: stderr is JSON lines only, the summary and the
	// error included.
	for _, tc := range []struct {
		args []string
		code int
		want map[string]any
	}{
		{[]string{"produce", "--dry-run", hour, "--log-format", "json"}, 0, map[string]any{"msg": "produced", "records": float64(3600), "dry_run": true}},
		{[]string{"produce", "--dry-run", "--log-format=json", hour, "/nonexistent"}, 1, map[string]any{"level": "ERROR", "msg": "gtsm produce failed"}},
	} {
		code, _, errs := runCmd(t, nil, tc.args...)
		var found bool
		for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Errorf("%v: stderr line %q is not JSON", tc.args, l)
				continue
			}
			match := true
			for k, v := range tc.want {
				match = match && m[k] == v
			}
			found = found || match
		}
		if code != tc.code || !found {
			t.Errorf("%v: exit %d (want %d), no line with %v:\n%s", tc.args, code, tc.code, tc.want, errs)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"produce", "--bogus", hour}, "unknown flag: --bogus"},
		{[]string{"produce", "--log-format", "xml", hour}, `--log-format "xml"`},
	} {
		code, _, errs := runCmd(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}
