package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helperEnv makes this test binary, run again as a child, execute only the
// Shared call of TestSharedChild in the directory it is given.
const helperEnv = "GTSM_TESTUTIL_SHARED_CHILD"

// TestSharedChild is the child's half of TestShared: a test whose oracle is
// in ../shared, run in a repository that has none beside it.
func TestSharedChild(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestShared as a child process")
	}
	p := Shared(t, "reference/earthscopestraintools/processing.py")
	t.Logf("oracle at %s", p)
}

// TestShared: on a clone without ../shared a test needing it skips, naming
// the file; under CI=true it fails instead; with ../shared present it gets
// the path. Each case runs this test binary again in a made-up repository.
func TestShared(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ci      string
		present bool
		fail    bool
		want    string
	}{
		{"fresh clone skips", "", false, false, "--- SKIP: TestSharedChild"},
		{"CI fails", "true", false, true, "--- FAIL: TestSharedChild"},
		{"present", "true", true, false, "--- PASS: TestSharedChild"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repo := filepath.Join(dir, "repo")
			if err := os.MkdirAll(repo, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			oracle := filepath.Join(dir, "shared", "reference", "earthscopestraintools", "processing.py")
			if tc.present {
				if err := os.MkdirAll(filepath.Dir(oracle), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(oracle, []byte("# oracle\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestSharedChild$", "-test.v")
			cmd.Dir = repo
			cmd.Env = append(os.Environ(), helperEnv+"=1", "CI="+tc.ci)
			out, err := cmd.CombinedOutput()
			if (err != nil) != tc.fail || !strings.Contains(string(out), tc.want) {
				t.Fatalf("CI=%q: %v, want failure %v and %q:\n%s", tc.ci, err, tc.fail, tc.want, out)
			}
			// What a person reads: the missing file, and where to put shared/.
			if !tc.present && !strings.Contains(string(out), oracle) {
				t.Errorf("the message does not name %s:\n%s", oracle, out)
			}
			if tc.present && !strings.Contains(string(out), "oracle at "+oracle) {
				t.Errorf("want the path %s:\n%s", oracle, out)
			}
		})
	}
}
