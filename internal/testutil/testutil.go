// Package testutil holds what many packages' tests need to find: the
// repository root (testdata/ and README.md live there) and the real bottle
// files in ../shared/real-bottle, which tests use when present and skip,
// saying so, when absent.
package testutil

import (
	"bytes"
	"os"
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

// RealBottleDir is ../shared/real-bottle beside the repository root; the test
// is skipped, with the reason, when it is absent.
func RealBottleDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "..", "shared", "real-bottle")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real bottle files not available (%s): %v", dir, err)
	}
	return dir
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
