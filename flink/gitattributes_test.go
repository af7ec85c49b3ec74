package flink

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// containerFiles lists the tracked files that containers read or run: every
// file under the directories docker-compose.yml bind-mounts (./flink,
// ./avro_schemas), every shell script, and the CI script.
func containerFiles(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "--", "flink", "avro_schemas", "*.sh", ".ci/run").Output()
	if err != nil {
		t.Skipf("not a git checkout (git ls-files: %v)", err)
	}
	files := strings.Fields(string(out))
	if len(files) < 5 {
		t.Fatalf("git ls-files found only %v", files)
	}
	return files
}

// TestScriptsLFInEveryCheckout: a Windows checkout (core.autocrlf=true)
// gets LF in every file a container reads, because .gitattributes pins them:
// a repository made of the real .gitattributes and those files is cloned
// with core.autocrlf=true and no file there holds a CR, while a text file
// the attributes do not pin does get CRLF (so the clone did convert).
func TestScriptsLFInEveryCheckout(t *testing.T) {
	root := testutil.RepoRoot(t)
	files := containerFiles(t, root)
	for _, want := range []string{"flink/install-connectors.sh", "flink/gtsm_etl.sql", "avro_schemas/gtsm_etl-value.avsc", ".ci/run"} {
		if !contains(files, want) {
			t.Errorf("%s is not among the container files %v", want, files)
		}
	}
	// What the attributes say for each, in this checkout.
	out, err := exec.Command("git", append([]string{"-C", root, "check-attr", "eol", "--"}, files...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasSuffix(l, ": eol: lf") {
			t.Errorf(".gitattributes does not pin %s", l)
		}
	}

	// A clone as Windows makes it.
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	src, clone := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "clone")
	for _, f := range append(files, ".gitattributes") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\r")) {
			t.Errorf("%s holds a CR in this checkout", f)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "control.txt"), []byte("not pinned\nsecond line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(src, "init", "-q")
	git(src, "add", "-A")
	git(src, "commit", "-q", "-m", "files")
	git(filepath.Dir(clone), "clone", "-q", "-c", "core.autocrlf=true", src, clone)
	if b, err := os.ReadFile(filepath.Join(clone, "control.txt")); err != nil || !bytes.Contains(b, []byte("\r\n")) {
		t.Fatalf("the core.autocrlf=true clone did not convert an unpinned file (%q, %v): the check below would prove nothing", b, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(clone, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\r")) {
			t.Errorf("%s has CRLF in a core.autocrlf=true checkout", f)
		}
	}
}
