package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// readmeCommands returns every gtsm command line in README.md's sh code blocks
// (after "gtsm " or "go run ./cmd/gtsm "), comments and shell plumbing removed.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			// Only shell blocks hold commands (the data-flow diagram does not).
			inCode = !inCode && strings.TrimPrefix(line, "```") == "sh"
			continue
		}
		if !inCode {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "\\"))
		for _, prefix := range []string{"go run ./cmd/gtsm ", "gtsm "} {
			if strings.HasPrefix(line, prefix) {
				cmds = append(cmds, strings.TrimPrefix(line, prefix))
			}
		}
	}
	return cmds
}

var flagLine = regexp.MustCompile(`^  (?:-([a-zA-Z0-9]), )?\s*--([a-zA-Z0-9-]+)`)

// definedFlags runs "gtsm <sub> -h" and reads the flag names it lists.
func definedFlags(t *testing.T, sub []string) map[string]bool {
	t.Helper()
	var out, errb strings.Builder
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := run(context.Background(), env, append(slices.Clip(sub), "-h")); code != 0 {
		t.Fatalf("gtsm %s -h: exit %d: %s", strings.Join(sub, " "), code, errb.String())
	}
	flags := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		if m := flagLine.FindStringSubmatch(l); m != nil {
			flags[m[2]] = true
			if m[1] != "" {
				flags[m[1]] = true
			}
		}
	}
	if len(flags) == 0 {
		t.Fatalf("gtsm %s -h lists no flags", strings.Join(sub, " "))
	}
	return flags
}

// Every command the README shows names a real subcommand and real flags, so
// the README cannot drift from the binary.
func TestREADMECommandsExist(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("found only %d gtsm commands in README.md code blocks", len(cmds))
	}
	known := map[string]bool{}
	for _, c := range commands() {
		name, _, _ := strings.Cut(c.name, " ")
		known[name] = true
	}
	for _, c := range cmds {
		words := strings.Fields(c)
		// Stop at shell plumbing: what follows is another program.
		for i, w := range words {
			if w == "|" || w == ">" || w == "&" || w == "&&" {
				words = words[:i]
				break
			}
		}
		if len(words) == 0 || !known[words[0]] {
			t.Errorf("README: %q: unknown subcommand", c)
			continue
		}
		sub := words[:1]
		if (words[0] == "bottle" || words[0] == "metadata" || words[0] == "export" || words[0] == "level2") && len(words) > 1 { // nested commands
			sub = words[:2]
		}
		flags := definedFlags(t, sub)
		for _, w := range words[len(sub):] {
			if !strings.HasPrefix(w, "-") || w == "-" {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if !flags[name] {
				t.Errorf("README: %q: gtsm %s has no flag -%s", c, strings.Join(sub, " "), name)
			}
		}
	}
}

// The README's offline examples do what the README says they do.
func TestREADMEOfflineExamples(t *testing.T) {
	t.Chdir(testutil.RepoRoot(t))
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"produce", "--dry-run", "testdata/hour"}, []string{
			`{"topic":"gtsm_etl","key":{"site":"B009"},"value":{"site":{"string":"B009"},"time":{"long":1625097600000},"timestamp":{"string":"2021-07-01 00:00:00"}`,
			`"ls1_t0":{"int":48116355},"ls2_t0":{"int":49196540}`}},
		{[]string{"bottle", "inspect", "-n", "3", "testdata/hour/B0092118200CH0"}, []string{"B009", "Hour", "ls1_t0", "48116355", "2021-07-01T00:00:02.000Z  48116355"}},
	}
	for _, tc := range tests {
		var out, errb strings.Builder
		env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := run(context.Background(), env, tc.args); code != 0 {
			t.Fatalf("gtsm %s: exit %d: %s", strings.Join(tc.args, " "), code, errb.String())
		}
		first, _, _ := strings.Cut(out.String(), "\n")
		if tc.args[0] != "produce" {
			first = out.String()
		}
		for _, w := range tc.want {
			if !strings.Contains(first, w) {
				t.Errorf("gtsm %s: output lacks %q\n%s", strings.Join(tc.args, " "), w, first)
			}
		}
	}
}

// readmeBlocks returns README.md's code blocks of a language, in order.
func readmeBlocks(t *testing.T, lang string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, cur)
				cur, in = nil, false
			} else if strings.TrimPrefix(line, "```") == lang {
				in = true
			}
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return blocks
}

// readmePorts are the default ports the README's commands use.
var readmePorts = regexp.MustCompile(`\b(19092|8081|5433|8080)\b`)

// TestREADMEFlow runs every sh block of README.md, in order, as one bash
// script in a fresh directory holding only testdata/ and the binary, the way
// a new user pastes them into one shell: the default ports are mapped to free
// ones (a GTSM_CONFIG file gives them to every command, and the literal
// numbers in the lines are replaced); "go run ./cmd/gtsm" becomes the built
// binary, "go install"/"go build" of it are done already and "go test ./..."
// is this very test suite. A block whose first line begins with
// "# illustration" (it needs a real cluster) is not run, and neither is one
// that calls docker (no Docker engine in CI). After a line ending in "&" the
// script waits, as the README tells a user to, for the command's "running"
// log line. Any failing line fails the test.
// callsDocker matches a line that runs docker or docker-compose anywhere in
// it, also after "&&", ";" or "|" (the compose one-liner exports first).
var callsDocker = regexp.MustCompile(`(^|&&|;|\|)\s*docker(-compose)?(\s|$)`)

func TestREADMEFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole README")
	}
	root := testutil.RepoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "gtsm"), "./cmd/gtsm")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := filepath.Join(dir, "work")
	if err := os.CopyFS(filepath.Join(work, "testdata"), os.DirFS(filepath.Join(root, "testdata"))); err != nil {
		t.Fatal(err)
	}

	ports := map[string]string{}
	for _, p := range []string{"19092", "8081", "5433", "8080"} {
		_, ports[p], _ = strings.Cut(freeAddr(t), ":")
	}
	cfg := fmt.Sprintf(`kafka-addr: 127.0.0.1:%[1]s
registry-addr: 127.0.0.1:%[2]s
bootstrap-servers: 127.0.0.1:%[1]s
registry: http://127.0.0.1:%[2]s
sql-addr: 127.0.0.1:%[3]s
addr: 127.0.0.1:%[3]s
http-addr: 127.0.0.1:%[4]s
`, ports["19092"], ports["8081"], ports["5433"], ports["8080"])
	if err := os.WriteFile(filepath.Join(dir, "ports.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	var script strings.Builder
	// Whatever the README left running is stopped at the end, and so is
	// everything when a line fails.
	script.WriteString("set -eu\ntrap 'for p in $(jobs -p); do kill $p 2>/dev/null; done; wait' EXIT\n")
	ran, bg := 0, 0
	for _, block := range readmeBlocks(t, "sh") {
		if len(block) > 0 && strings.HasPrefix(block[0], "# illustration") || slices.ContainsFunc(block, callsDocker.MatchString) {
			continue
		}
		for _, line := range block {
			cmd := strings.TrimSpace(line)
			if i := strings.Index(cmd, " #"); i >= 0 {
				cmd = strings.TrimSpace(cmd[:i])
			}
			switch {
			case cmd == "" || strings.HasPrefix(cmd, "#"):
				continue
			case cmd == "go test ./..." || strings.HasPrefix(cmd, "go install ./cmd/gtsm") || strings.HasPrefix(cmd, "go build -o gtsm ./cmd/gtsm"):
				continue
			}
			cmd = strings.Replace(cmd, "go run ./cmd/gtsm ", "gtsm ", 1)
			cmd = readmePorts.ReplaceAllStringFunc(cmd, func(p string) string { return ports[p] })
			ran++
			fmt.Fprintf(&script, "echo %q >&2\n", "$ "+cmd)
			if c, ok := strings.CutSuffix(cmd, "&"); ok {
				bg++
				fmt.Fprintf(&script, "%s 2> >(tee bg%d.log >&2) &\n", strings.TrimSpace(c), bg)
				fmt.Fprintf(&script, "until grep -q running bg%[1]d.log 2>/dev/null; do kill -0 $! || { echo \"background job %[1]d died\" >&2; exit 1; }; sleep 0.1; done\n", bg)
				continue
			}
			script.WriteString(cmd + "\n")
		}
	}
	if ran < 15 {
		t.Fatalf("only %d README lines to run:\n%s", ran, script.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Dir = work
	sh.WaitDelay = 10 * time.Second
	// Its own process group, so that a timeout kills the background
	// commands too, not only bash.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(readmeEnv, k) {
			env = append(env, kv)
		}
	}
	sh.Env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+dir,
		"GTSM_CONFIG="+filepath.Join(dir, "ports.yaml"), "PGCONNECT_TIMEOUT=10", "PGUSER=gtsm")
	var stdout, stderr strings.Builder
	sh.Stdout, sh.Stderr = &stdout, &stderr
	err := sh.Run()
	if err != nil {
		t.Fatalf("README flow failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	// What the README says its lines do.
	for _, want := range []string{
		"Daily mean of each strain channel",                   // the demo's summary
		`"ls1_t0":{"int":48116355},"ls2_t0":{"int":49196540}`, // produce --dry-run | head -1
		"B009 | Hour    | ls1_t0  | 2021-07-01 00:00:00 |",    // .q hourly B009 from the file
		" B009     | 2021-07-01 00:00:00",                     // psql through the endpoint
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("README flow output lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, want := range []string{"4944 records delivered", "caught up", "using the processor's SQL endpoint"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("README flow stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	for _, f := range []string{"gtsm.duckdb", "etl.parquet", "daily.csv", ".gtsm/gtsm.duckdb"} {
		if st, err := os.Stat(filepath.Join(work, f)); err != nil || st.Size() == 0 {
			t.Errorf("README flow did not make %s: %v", f, err)
		}
	}
	checkREADMELevel2(t, work, stderr.String())
}

// checkREADMELevel2: the README's Level-2 example, on the shipped B009 data
// and metadata, exports the hour of 1 s data as 12 300 s epochs per gauge
// and regional strain, every one with microstrain and all four
// corrections, the gauge sample CH1 lacks at 00:30:00 flagged i.
func checkREADMELevel2(t *testing.T, work, stderr string) {
	t.Helper()
	dir := filepath.Join(work, "l2", "B009.2021.bsm.level2")
	for _, s := range []string{"Gauge0", "Gauge1", "Gauge2", "Gauge3", "Eee+Enn", "Eee-Enn", "2Ene"} {
		name := "B009.2021.xml." + s + ".txt.gz"
		if !strings.Contains(stderr, name+": 12 rows") {
			t.Errorf("README flow stderr lacks %q", name+": 12 rows")
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 13 {
			t.Errorf("%s: %d lines, want a header and 12 rows", name, len(lines))
			continue
		}
		for _, l := range lines[1:] {
			// date value quality s_offset tide_c detrend_c atmp_c atmp_c_quality version level atmp
			f := strings.Fields(l)
			if len(f) != 11 || slices.Contains(f, "999999") {
				t.Errorf("%s: row %q has a fill value or the wrong columns", name, l)
				continue
			}
			want := "g"
			if s == "Gauge1" && f[0] == "2021-07-01T00:30:00" {
				want = "i"
			}
			if f[2] != want {
				t.Errorf("%s: row %q quality %s, want %s", name, l, f[2], want)
			}
		}
	}
}

// readmeEnv are the variables a user may have set that would change what
// the README's commands do; the flow runs without them.
var readmeEnv = []string{"BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "AVRO_SCHEMAS_ROOT", "GTSM_DB", "GTSM_SQL_ADDR",
	"GTSM_SQL_PASSWORD", "GTSM_CONFIG", "GTSM_LOG_FORMAT", "GTSM_LOG_LEVEL", "KAFKA_SASL_PASSWORD", "SCHEMA_REGISTRY_PASSWORD"}

// The README's config example is a valid config file.
func TestREADMEConfigExample(t *testing.T) {
	blocks := readmeBlocks(t, "yaml")
	if len(blocks) == 0 {
		t.Fatal("no yaml block in README.md")
	}
	p := filepath.Join(t.TempDir(), "gtsm.yaml")
	os.WriteFile(p, []byte(strings.Join(blocks[0], "\n")), 0o600)
	env := &environ{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	newRoot(context.Background(), env, false)
	got, err := loadConfig(p, "produce", env.commandFlags)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got["kafka-prop"], " ") != "compression.type=zstd linger.ms=20" || got["log-format"][0] != "json" {
		t.Errorf("produce's values from the README example: %v", got)
	}
}
