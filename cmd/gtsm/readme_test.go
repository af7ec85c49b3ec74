package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

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
	for _, l := range strings.Split(errb.String(), "\n") {
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
		if words[0] == "bottle" && len(words) > 1 {
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
