package faults

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestSecondInstanceRefused (issue 12, item 3): two processors with the
// same group and different DuckDB files used to split the topic between
// the files without an error (the offsets check cannot see it while the
// group has committed nothing yet: here the topic is still empty). A second
// `gtsm process` (the real CLI) in a group that has a live member must exit
// non-zero with a message saying so, before it consumes anything (its file
// stays empty), while the first, a separate OS process, keeps running and
// lands every record of every partition, produced after the second was
// refused.
func TestSecondInstanceRefused(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	root := testutil.RepoRoot(t)
	dir := t.TempDir()
	db1, db2 := filepath.Join(dir, "first.duckdb"), filepath.Join(dir, "second.duckdb")
	first := startProcessor(t, b.processEnv(db1, "shared", 500))
	// Wait until the first is the group's member.
	for deadline := time.Now().Add(time.Minute); ; {
		gs, err := b.admin(t).DescribeGroups(context.Background(), "shared")
		if err == nil && gs["shared"].State == "Stable" && len(gs["shared"].Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first processor never joined group shared: %v %+v\n%s", err, gs, first.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t0 := time.Now()
	second := start(t, nil, gtsm(t), "process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--db", db2,
		"--group", "shared", "--http-addr", "", "--sql-addr", "", "--session-timeout", "1500ms")
	go func() {
		for range second.lines {
		}
	}()
	err := second.wait(30 * time.Second)
	took := time.Since(t0)
	const want = "another gtsm process is consuming this group"
	if code := exitCode(err); code == 0 || code == -1 || !strings.Contains(second.stderr.String(), want) {
		t.Fatalf("second gtsm process in the group: exit %d (%v) after %v, want non-zero with %q:\n%s", code, err, took, want, second.stderr)
	}
	t.Logf("second instance refused after %v: %s", took.Round(time.Millisecond), lastLine(second.stderr.String()))

	// The first instance still runs and takes everything that comes.
	if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", "hour")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", "min")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	total := b.messages(t, topic)
	waitCommitted(t, first, total, time.Minute)
	first.cmd.Process.Signal(syscall.SIGTERM)
	if err := first.wait(time.Minute); err != nil {
		t.Fatalf("first processor: %v\n%s", err, first.stderr)
	}
	if n := queryInt(t, db1, `SELECT count(*) FROM gtsm_etl`); n != total {
		t.Errorf("first file: %d rows, want %d (every record of every partition)", n, total)
	}
	if n := queryInt(t, db2, `SELECT count(*) FROM gtsm_etl`) + queryInt(t, db2, `SELECT count(*) FROM kafka_offsets`); n != 0 {
		t.Errorf("second file: %d rows or offsets, want none (refused before consuming)", n)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
