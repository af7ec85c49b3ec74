package faults

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestMembersAgreeOnStart: two `gtsm process --state-dir` (the real CLI,
// two OS processes) in one group, with a setting that differs: --state-dir
// (two directories), or --no-level2 on one. Started at the same instant, or
// the second one while the first is consuming: the one that differs from
// the group's reference stops before it consumes anything, naming the flag;
// the other holds every partition, drains the topic and, killed with
// SIGTERM later, stops cleanly (before, both ran, and the survivor of a
// failover failed: "the state directory does not belong to this group").
func TestMembersAgreeOnStart(t *testing.T) {
	testutil.Long(t)
	root := testutil.RepoRoot(t)
	for _, tc := range []struct {
		name   string
		later  bool     // the second starts once the first consumes
		second []string // the second member's extra flags (with its own state dir unless it names one)
		flag   string   // the refusal names it
	}{
		{"different state-dir at once", false, nil, "--state-dir"},
		{"different state-dir later", true, nil, "--state-dir"},
		{"level2 off on one at once", false, []string{"--level2=false"}, "--level2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			if code, errOut := b.produce(t, "--quiet", filepath.Join(root, "testdata")); code != 0 {
				t.Fatalf("produce: exit %d\n%s", code, errOut)
			}
			dirs := []string{t.TempDir(), t.TempDir()}
			if tc.second != nil {
				dirs[1] = dirs[0] // the same directory: only the flag differs
			}
			group := "agree"
			args := func(i int) []string {
				a := []string{"process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--group", group, "--state-dir", dirs[i],
					"--flush-interval", "30ms", "--session-timeout", "10s", "--rebalance-timeout", "20s",
					"--http-addr", "", "--sql-addr", "", "--progress-interval", "0", "--log-format", "json"}
				if i == 1 {
					a = append(a, tc.second...)
				}
				return a
			}
			bin := gtsm(t)
			procs := make([]*proc, 2)
			if tc.later {
				procs[0] = start(t, nil, bin, args(0)...)
				b.waitDrained(t, group, 2*time.Minute, procs[0])
				procs[1] = start(t, nil, bin, args(1)...)
			} else {
				var ready, wg sync.WaitGroup
				ready.Add(1)
				for i := range procs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ready.Wait()
						procs[i] = start(t, nil, bin, args(i)...)
					}()
				}
				ready.Done() // both at once
				wg.Wait()
			}
			exits := make([]chan error, 2)
			for i, p := range procs {
				go func() {
					for range p.lines {
					}
				}()
				exits[i] = make(chan error, 1)
				go func() { exits[i] <- p.wait(time.Hour) }()
			}
			refused, kept := -1, -1
			select {
			case err := <-exits[0]:
				refused, kept = 0, 1
				checkRefusal(t, procs[0], err, tc.flag)
			case err := <-exits[1]:
				refused, kept = 1, 0
				checkRefusal(t, procs[1], err, tc.flag)
			case <-time.After(90 * time.Second):
				t.Fatalf("neither member stopped within 90 s: both run with different settings\n--- 0\n%s\n--- 1\n%s",
					tail(procs[0].stderr.String(), 30), tail(procs[1].stderr.String(), 30))
			}
			if tc.later && refused != 1 {
				t.Fatalf("the member consuming first was refused, not the late joiner:\n%s", tail(procs[refused].stderr.String(), 30))
			}
			// The refused member never held a partition.
			if a := assigned(procs[refused]); len(a) > 0 {
				t.Fatalf("the refused member was assigned %v before it stopped", a)
			}
			// The kept one holds every partition, drains the topic, runs
			// on past the other's exit, and stops cleanly.
			b.waitDrained(t, group, 2*time.Minute, procs[kept])
			deadline := time.Now().Add(30 * time.Second)
			for !slices.Equal(assigned(procs[kept]), []int32{0, 1, 2}) {
				if time.Now().After(deadline) {
					t.Fatalf("the member kept holds %v, want all of 0 1 2\n%s", assigned(procs[kept]), tail(procs[kept].stderr.String(), 30))
				}
				time.Sleep(100 * time.Millisecond)
			}
			select {
			case err := <-exits[kept]:
				t.Fatalf("the member kept stopped too: %v\n%s", err, tail(procs[kept].stderr.String(), 30))
			case <-time.After(3 * time.Second):
			}
			stopMember(t, procs[kept])
			files, _ := filepath.Glob(filepath.Join(dirs[refused], topic+"-p*.duckdb"))
			if dirs[refused] != dirs[kept] && len(files) > 0 {
				t.Fatalf("the refused member wrote partition files: %v", files)
			}
		})
	}
}

// checkRefusal requires a non-zero exit whose error names the flag that
// differs.
func checkRefusal(t *testing.T, p *proc, err error, flag string) {
	t.Helper()
	out := p.stderr.String()
	if err == nil {
		t.Fatalf("the refused member exited 0:\n%s", tail(out, 30))
	}
	// A late joiner whose --state-dir lacks the files of the partitions
	// the group has committed is refused earlier, by the state directory
	// check; otherwise by the members' agreement.
	if !strings.Contains(out, "configuration differs from the consumer group's") &&
		!(flag == "--state-dir" && strings.Contains(out, "the state directory does not belong to this group")) {
		t.Fatalf("the refused member's error does not say its configuration differs (exit %v):\n%s", err, tail(out, 30))
	}
	if !strings.Contains(out, flag) {
		t.Fatalf("the refused member's error does not name %s (exit %v):\n%s", flag, err, tail(out, 30))
	}
	t.Log("refused:", lastErrorLine(out))
}

func lastErrorLine(out string) string {
	for _, l := range slices.Backward(strings.Split(out, "\n")) {
		if strings.Contains(l, "differs") {
			return l
		}
	}
	return ""
}
