// Package testutil holds what many packages' tests need to find: the
// repository root (testdata/ and README.md live there) and the real bottle
// files in ../shared/real-bottle, which tests use when present and skip,
// saying so, when absent.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// RepoRoot walks up from the test's directory to the one holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Testdata is testdata/<name> of the repository (the project's own fixtures).
func Testdata(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "testdata", name)
}

// RealBottleDir is ../shared/real-bottle beside the repository root (see
// Shared for what happens when it is absent).
func RealBottleDir(t testing.TB) string {
	t.Helper()
	return Shared(t, "real-bottle")
}

// Shared is ../shared/<rel> beside the repository root: the oracles and real
// data that a fresh clone does not have. When it is absent the test is
// skipped, naming what it needs; under CI (CI=true), where ../shared is always
// laid beside the clone, it fails instead, so a missing oracle can never turn
// into a silently skipped check.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "..", "shared", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs %s (../shared beside the clone): %v", p, err)
		}
		t.Skipf("needs %s, which a fresh clone does not have: put the project's shared/ material at ../shared beside the repository (%v)", p, err)
	}
	return p
}

// LongEnv is the environment variable that turns on the long tests (soak,
// kill loops, large backfills): .ci/run sets it, the README's quick test
// command does not.
const LongEnv = "GTSM_LONG"

// Long skips a test that takes more than a few seconds of a 2-core machine
// unless GTSM_LONG=1; CI runs them all.
func Long(t testing.TB) {
	t.Helper()
	if os.Getenv(LongEnv) != "1" {
		t.Skipf("long test: set %s=1 to run it (.ci/run does)", LongEnv)
	}
}

// DiffLines requires got and want to hold the same lines as multisets (row
// order in a table is not part of its contents), reporting the first few
// missing and extra lines of what (a table name), shortened to 300 bytes.
func DiffLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	shown := 0
	for _, w := range want {
		if count[w] > 0 {
			count[w]--
			continue
		}
		if shown < 5 {
			t.Errorf("%s: missing %s", what, trunc(w))
			shown++
		}
	}
	for g, n := range count {
		if n > 0 && shown < 10 {
			t.Errorf("%s: extra %s (x%d)", what, trunc(g), n)
			shown++
		}
	}
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// SyncBuffer is a bytes.Buffer that a child process's output goroutine can
// write while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// binary is the gtsm command built once per test process (Binary).
var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds ./cmd/gtsm once per test process and returns its path, for
// tests that check what a person gets from the real command (exit status,
// which stream carries what). The directory is left in the system's temp
// directory: it outlives every test of the process, and t.TempDir would be
// removed after the first.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "gtsm-bin")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "gtsm")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/gtsm")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build ./cmd/gtsm: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}
