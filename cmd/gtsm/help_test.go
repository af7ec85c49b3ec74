package main

import (
	"bytes"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// issueRef is an issue number in text meant for users.
var issueRef = regexp.MustCompile(`(?i)\bissues? #?\d+`)

// TestHelpOnceOnStdout asks for the help of every command the three ways a
// person does (-h, --help, gtsm help X): printed once, on stdout (so `gtsm
// produce -h | less` shows it), nothing on stderr, exit 0, and no issue
// numbers. -h goes through the real binary (os.Stdout), the others through
// run with separate stdout and stderr buffers.
func TestHelpOnceOnStdout(t *testing.T) {
	bin := testutil.Binary(t)
	type result struct {
		code        int
		out, errOut string
	}
	viaBinary := func(args []string) result {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := 0
		if err := cmd.Run(); err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return result{code, stdout.String(), stderr.String()}
	}
	inProcess := func(args []string) result {
		code, out, errOut := runCmd(t, nil, args...)
		return result{code, out, errOut}
	}
	type tc struct {
		args []string
		how  func([]string) result
	}
	cases := []tc{{[]string{"--help"}, viaBinary}, {[]string{"help"}, inProcess}, {[]string{"bottle", "-h"}, viaBinary},
		{[]string{"bottle", "--help"}, inProcess}, {[]string{"help", "bottle", "inspect"}, inProcess}}
	for _, c := range commands() {
		name := strings.Fields(c.name)
		cases = append(cases,
			tc{append(append([]string{}, name...), "-h"), viaBinary},
			tc{append(append([]string{}, name...), "--help"), inProcess},
			tc{append([]string{"help"}, name...), inProcess})
	}
	for _, c := range cases {
		r := c.how(c.args)
		if r.code != 0 || r.errOut != "" {
			t.Errorf("gtsm %s: exit %d, stderr %q", strings.Join(c.args, " "), r.code, r.errOut)
		}
		// The root's help is cobra's ("Usage:\n  gtsm ..."), a command's ours.
		if n := strings.Count(r.out, "Usage:"); n != 1 {
			t.Errorf("gtsm %s: help printed %d times on stdout:\n%s", strings.Join(c.args, " "), n, r.out)
		}
		if m := issueRef.FindString(r.out); m != "" {
			t.Errorf("gtsm %s: help names %q", strings.Join(c.args, " "), m)
		}
	}
	// A usage error stays on stderr, with exit status 2.
	cmd := exec.Command(bin, "produce", "--no-such-flag")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || stdout.Len() > 0 || !strings.Contains(stderr.String(), "--no-such-flag") {
		t.Errorf("produce --no-such-flag: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}

// TestNoIssueNumbersForUsers: the string literals of the program (help,
// errors, log messages) and the documents a user reads first (the READMEs,
// docs/cli.md, the compose file and Dockerfile) speak of the product, never
// of issue numbers.
func TestNoIssueNumbersForUsers(t *testing.T) {
	root := testutil.RepoRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go"):
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var s scanner.Scanner
			fset := token.NewFileSet()
			s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0) // comments skipped: they are for developers
			for {
				pos, tok, lit := s.Scan()
				if tok == token.EOF {
					break
				}
				if tok == token.STRING {
					if m := issueRef.FindString(lit); m != "" {
						t.Errorf("%s: string literal names %q", fset.Position(pos), m)
					}
				}
			}
		case filepath.Base(path) == "README.md", rel == filepath.Join("docs", "cli.md"), strings.HasSuffix(path, ".yml"), filepath.Base(path) == "Dockerfile":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(b), "\n") {
				if m := issueRef.FindString(line); m != "" {
					t.Errorf("%s:%d: names %q", rel, i+1, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
