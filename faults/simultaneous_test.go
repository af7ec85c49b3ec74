package faults

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestSameFileSimultaneousStart: two `gtsm process` (the real CLI, two OS
// processes) started at the same instant in one group on the same DuckDB
// file, named by the same path or by a symlink: DuckDB's file lock lets one
// open it; the other exits non-zero naming the lock before it reaches
// Kafka, and the one left lands every record of every partition. (Different
// files started at the same instant: processor's TestSimultaneousInstances.)
func TestSameFileSimultaneousStart(t *testing.T) {
	testutil.Long(t)
	for _, tc := range []struct {
		name    string
		symlink bool // the second names the file through a symlink
	}{
		{"same path", false},
		{"symlink", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			root := testutil.RepoRoot(t)
			dir := t.TempDir()
			db := filepath.Join(dir, "a.duckdb")
			dbs := []string{db, db}
			if tc.symlink {
				dbs[1] = filepath.Join(dir, "link.duckdb")
				if err := os.Symlink(db, dbs[1]); err != nil {
					t.Fatal(err)
				}
			}
			bin := gtsm(t) // built before the start, not by one of the two
			procs := make([]*proc, 2)
			exits := make([]chan error, 2)
			var ready, wg sync.WaitGroup
			ready.Add(1)
			for i := range procs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ready.Wait()
					procs[i] = start(t, nil, bin, "process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--db", dbs[i],
						"--group", "same-instant", "--http-addr", "", "--sql-addr", "", "--session-timeout", "1500ms")
				}()
			}
			ready.Done() // both at once
			wg.Wait()
			for i, p := range procs {
				go func() {
					for range p.lines {
					}
				}()
				exits[i] = make(chan error, 1)
				go func() { exits[i] <- p.wait(time.Hour) }()
			}

			keep := -1
			select {
			case err := <-exits[0]:
				keep = 1
				checkLockRefusal(t, procs[0], err)
			case err := <-exits[1]:
				keep = 0
				checkLockRefusal(t, procs[1], err)
			case <-time.After(time.Minute):
				t.Fatal("neither instance exited within a minute: both opened one DuckDB file")
			}
			for _, set := range []string{"hour", "min"} {
				if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", set)); code != 0 {
					t.Fatalf("produce: exit %d\n%s", code, out)
				}
			}
			total := b.messages(t, topic)
			for deadline := time.Now().Add(2 * time.Minute); b.committedSoFar(t, "same-instant") < total; {
				select {
				case err := <-exits[keep]:
					t.Fatalf("instance %d, holding the lock, exited: %v\n%s", keep, err, procs[keep].stderr)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("instance %d: group committed %d of %d offsets after 2 min\n%s", keep, b.committedSoFar(t, "same-instant"), total, procs[keep].stderr)
				}
				time.Sleep(200 * time.Millisecond)
			}
			procs[keep].cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exits[keep]:
				if err != nil {
					t.Fatalf("instance %d: %v\n%s", keep, err, procs[keep].stderr)
				}
			case <-time.After(time.Minute):
				t.Fatalf("instance %d did not stop after SIGTERM", keep)
			}
			if n := queryInt(t, db, `SELECT count(*) FROM gtsm_etl`); n != total {
				t.Errorf("%d rows, want %d (every record of every partition)", n, total)
			}
		})
	}
}

// checkLockRefusal: the instance that did not get the file exited non-zero
// with DuckDB's lock error, before joining the group.
func checkLockRefusal(t *testing.T, p *proc, err error) {
	t.Helper()
	out := p.stderr.String()
	if code := exitCode(err); code == 0 || !strings.Contains(out, "database file is locked by another process") {
		t.Fatalf("instance exited %d (%v), want non-zero with DuckDB's lock error:\n%s", code, err, out)
	}
	if strings.Contains(out, "processor started") {
		t.Errorf("the refused instance started processing:\n%s", out)
	}
	t.Logf("refused: %s", lastLine(out))
}

// committedSoFar is groupOffsets, 0 while the group does not exist yet
// (nothing joined or committed).
func (b *broker) committedSoFar(t testing.TB, group string) int64 {
	t.Helper()
	if _, err := b.admin(t).FetchOffsets(context.Background(), group); errors.Is(err, kerr.GroupIDNotFound) {
		return 0
	}
	return b.groupOffsets(t, group)
}
