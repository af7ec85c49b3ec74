package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Issue 14: three `gtsm process --state-dir` (the real binary) on one group
// and directory over a 12-partition topic. Every table, taken over all the
// partition files, must equal a crash-free single-instance run's file.

const stateParts = 12

// stateTables are every table the processor writes, with the columns that
// differ between identical runs left out: wall-clock times.
// level2_state.updated_offset is compared: it is the site's own last
// record's offset, not (as before) the batch's last message's, which
// depended on where batches were cut.
var stateTables = []struct{ name, exclude string }{
	{"gtsm_etl", ""}, {"windows", ""}, {"gaps", ""}, {"site_state", "updated_at"}, {"kafka_offsets", ""},
	{"dead_letters", "received_at"}, {"level2_gauge_data", ""}, {"level2_regional_data", ""}, {"level2_state", ""},
	{"level2_checkpoint", ""}, {"station_metadata", "received_at"},
}

// stateBackfill is a broker with a 12-partition topic holding the testdata
// fixtures, three poison messages and a generated 20-sps set of 8 sites.
func stateBackfill(t *testing.T, minutes int) (*broker, int64) {
	t.Helper()
	b := newPartitionedBroker(t, stateParts)
	ctx := context.Background()
	in := t.TempDir()
	sites := []string{"SD01", "SD02", "SD03", "SD04", "SD05", "SD06", "SD07", "SD08"}
	writeMinSet(t, in, sites, minutes)
	if code, errOut := b.produce(t, "--quiet", filepath.Join(testutil.RepoRoot(t), "testdata")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errOut)
	}
	serde := b.serde(t)
	var r record.Record
	r.SetSite("KLPZ")
	r.SetTime(1625097600000)
	value := serde.AppendValue(nil, &r)
	cl := b.client(t)
	for _, v := range [][]byte{append([]byte{9}, value[1:]...), value[:len(value)-3], {0, 0, 0}} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: serde.AppendKey(nil, "KLPZ"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if code, errOut := b.produce(t, "--quiet", in); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errOut)
	}
	return b, b.messages(t, topic)
}

// member is one `gtsm process --state-dir` process.
func (b *broker) member(t *testing.T, dir, group string, batch int, extra ...string) *proc {
	t.Helper()
	args := []string{"process", "--bootstrap-servers", b.kafka, "--registry", b.registry,
		"--group", group, "--state-dir", dir, "--batch-rows", strconv.Itoa(batch), "--flush-interval", "30ms",
		"--session-timeout", "1500ms", "--rebalance-timeout", "8s", "--partitions", strconv.Itoa(stateParts),
		"--http-addr", "", "--sql-addr", "", "--progress-interval", "0", "--log-format", "json"}
	return start(t, nil, gtsm(t), append(args, extra...)...)
}

// cleanRun is the crash-free single-instance reference: `gtsm process --db`
// to the end of the topic.
func (b *broker) cleanRun(t *testing.T, db string) {
	t.Helper()
	p := start(t, nil, gtsm(t), "process", "--bootstrap-servers", b.kafka, "--registry", b.registry,
		"--group", "clean", "--db", db, "--batch-rows", "5000", "--flush-interval", "30ms", "--exit-at-end",
		"--http-addr", "", "--sql-addr", "", "--progress-interval", "0")
	for range p.lines {
	}
	if err := p.wait(3 * time.Minute); err != nil {
		t.Fatalf("single-instance run: %v\n%s", err, p.stderr)
	}
}

// groupState returns the group's committed offset and the end offset of
// every partition of the topic.
func (b *broker) groupState(t testing.TB, group string) (committed, end map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	end = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	committed = map[int32]int64{}
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return committed, end // not joined yet
	}
	if err != nil {
		t.Fatalf("offsets of group %s: %v", group, err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			committed[o.Partition] = o.At
		}
	})
	return committed, end
}

func drained(committed, end map[int32]int64) bool {
	for p, e := range end {
		if committed[p] < e {
			return false
		}
	}
	return true
}

// waitDrained waits until the group has committed every message.
func (b *broker) waitDrained(t *testing.T, group string, timeout time.Duration, ps ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, e := b.groupState(t, group)
		if drained(c, e) {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i, p := range ps {
				fmt.Fprintf(&logs, "--- member %d\n%s\n", i, tail(p.stderr.String(), 40))
			}
			t.Fatalf("group %s not drained after %v: committed %v, end %v\n%s", group, timeout, c, e, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(len(l)-n, 0):], "\n")
}

// assigned is a member's last logged partition assignment.
func assigned(p *proc) []int32 {
	var last []int32
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if !strings.Contains(l, `"partitions assigned"`) {
			continue
		}
		var v struct{ Partitions string }
		if json.Unmarshal([]byte(l), &v) != nil {
			continue
		}
		last = last[:0:0]
		for _, f := range strings.Fields(strings.Trim(v.Partitions, "[]")) {
			n, _ := strconv.Atoi(f)
			last = append(last, int32(n))
		}
	}
	return last
}

// stop sends SIGTERM and requires a clean exit.
func stopMember(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(60 * time.Second); err != nil {
		t.Fatalf("member did not stop cleanly: %v\n%s", err, tail(p.stderr.String(), 60))
	}
}

// unionTables dumps every table of every partition file in dir, as one
// sorted list of lines per table.
func unionTables(t *testing.T, dir string) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, topic+"-p*.duckdb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no partition files in %s (%v)", dir, err)
	}
	out := map[string][]string{}
	for _, f := range files {
		for k, v := range dumpAll(t, f) {
			out[k] = append(out[k], v...)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

func dumpAll(t *testing.T, path string) map[string][]string {
	t.Helper()
	db, err := gtsmsql.Open(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	for _, tb := range stateTables {
		q := "SELECT * FROM " + tb.name
		if tb.exclude != "" {
			q = "SELECT * EXCLUDE (" + tb.exclude + ") FROM " + tb.name
		}
		out[tb.name] = queryLines(t, db, q+" ORDER BY ALL")
	}
	return out
}

// sameAsClean compares the union of the partition files with the clean file.
func sameAsClean(t *testing.T, dir, clean string) {
	t.Helper()
	got, want := unionTables(t, dir), dumpAll(t, clean)
	for _, tb := range stateTables {
		testutil.DiffLines(t, tb.name, got[tb.name], want[tb.name])
	}
	t.Logf("union of the partition files equals the single-instance file: %d gtsm_etl rows, %d windows, %d level2_gauge_data rows, %d dead letters",
		len(want["gtsm_etl"]), len(want["windows"]), len(want["level2_gauge_data"]), len(want["dead_letters"]))
}

// committedFraction is the share of the topic's messages below the group's
// committed offsets.
func committedFraction(committed, end map[int32]int64) float64 {
	var c, e int64
	for p, n := range end {
		c += max(0, min(committed[p], n))
		e += n
	}
	if e == 0 {
		return 1
	}
	return float64(c) / float64(e)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestStateDirKillFailover kills -9 a random member of three, 10 times
// during the backfill, measures how long its partitions take to resume on
// the others (the group's committed offsets of each of them move again),
// restarts it, and compares the drained result with a crash-free run. The
// members publish to an Iceberg lake all along, so kills land in publishes.
func TestStateDirKillFailover(t *testing.T) {
	testutil.Long(t)
	stateKillFailover(t, false)
}

// TestStateDirKillFailoverLake is the same, and also checks the lake: every
// lake table, read by an independent Iceberg reader, must catch up with the
// committed offsets and equal the crash-free run. It reproduces a defect not
// yet found (docs/reliability.md, "Found, not fixed": after failovers one to
// three partitions' lake tables stayed behind the committed offsets for
// minutes), so it runs only when GTSM_LAKE_KILL=1 asks for it, not in CI.
func TestStateDirKillFailoverLake(t *testing.T) {
	testutil.Long(t)
	if os.Getenv("GTSM_LAKE_KILL") != "1" {
		t.Skip("reproduces the lake's lag after failover (a known defect): set GTSM_LAKE_KILL=1 to run it")
	}
	stateKillFailover(t, true)
}

func stateKillFailover(t *testing.T, withLake bool) {
	// 240 minutes of 8 sites: an idle 2-core machine drained 90 (863,091
	// messages) in about 40 s, before the tenth kill.
	b, total := stateBackfill(t, envInt("GTSM_STATE_MINUTES", 240))
	dir := filepath.Join(t.TempDir(), "state")
	// The members publish to an Iceberg lake all along in both variants,
	// so kills land in publishes too; only the lake variant checks the lake.
	lakeDir := filepath.Join(t.TempDir(), "lake")
	lakeArgs := []string{"--lake", lakeDir, "--publish-interval", "5s"}
	const group = "members"
	batch := 500
	ms := make([]*proc, 3)
	for i := range ms {
		ms[i] = b.member(t, dir, group, batch, lakeArgs...)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills := envInt("GTSM_STATE_KILLS", 10)
	var failovers []time.Duration
	for k := 0; k < kills; k++ {
		// Space the kills by progress, not only by time: kill k comes once
		// about (k+1)/(kills+1) of the backlog is committed, so all of them
		// land mid-backfill however fast the machine drains it (on an idle
		// CI machine fixed sleeps ran out of backlog before the tenth).
		time.Sleep(time.Duration(200+rng.Intn(800)) * time.Millisecond)
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			c, end := b.groupState(t, group)
			if committedFraction(c, end) >= float64(k+1)/float64(kills+1) {
				break
			}
		}
		// A member that owns partitions (a restarted one may not have
		// joined yet).
		var owners []int
		for deadline := time.Now().Add(60 * time.Second); len(owners) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for j := range ms {
				if len(assigned(ms[j])) > 0 {
					owners = append(owners, j)
				}
			}
		}
		if len(owners) == 0 {
			t.Fatalf("kill %d: no member owns a partition after 60s", k+1)
		}
		i := owners[rng.Intn(len(owners))]
		parts := assigned(ms[i])
		c0, end := b.groupState(t, group)
		if drained(c0, end) {
			t.Fatalf("kill %d: the backfill is over already (%d messages): not a mid-backfill kill; make it longer", k+1, total)
		}
		ms[i].cmd.Process.Signal(syscall.SIGKILL)
		ms[i].wait(10 * time.Second)
		killed := time.Now()
		// Its partitions that still had messages to do must move again.
		var pending []int32
		for _, p := range parts {
			if c0[p] < end[p] {
				pending = append(pending, p)
			}
		}
		for len(pending) > 0 {
			if time.Since(killed) > 90*time.Second {
				var logs strings.Builder
				for j, p := range ms {
					fmt.Fprintf(&logs, "--- member %d\n%s\n", j, tail(p.stderr.String(), 60))
				}
				t.Fatalf("kill %d: partitions %v of member %d did not resume in 90s\n%s", k+1, pending, i, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
			c, _ := b.groupState(t, group)
			pending = slices.DeleteFunc(pending, func(p int32) bool { return c[p] > c0[p] })
		}
		if len(parts) > 0 {
			failovers = append(failovers, time.Since(killed))
		}
		t.Logf("kill %d: member %d (partitions %v) SIGKILLed; its partitions resumed elsewhere after %v", k+1, i, parts, time.Since(killed).Round(10*time.Millisecond))
		ms[i] = b.member(t, dir, group, batch, lakeArgs...)
	}
	b.waitDrained(t, group, 3*time.Minute, ms...)
	if withLake {
		b.waitLakeCaught(t, lakeDir, group, 3*time.Minute, ms...)
	}
	for i, p := range ms {
		t.Logf("member %d: peak RSS %s", i, peakRSS(p))
		stopMember(t, p)
	}
	slices.Sort(failovers)
	if len(failovers) > 0 {
		t.Logf("failover (kill -9 -> partitions resume on another member), %d kills: min %v, median %v, max %v",
			len(failovers), failovers[0].Round(10*time.Millisecond), failovers[len(failovers)/2].Round(10*time.Millisecond),
			failovers[len(failovers)-1].Round(10*time.Millisecond))
	}
	clean := filepath.Join(t.TempDir(), "clean.duckdb")
	b.cleanRun(t, clean)
	sameAsClean(t, dir, clean)
	if withLake {
		sameLakeAsClean(t, lakeDir, clean)
	}
}

// TestStateDirRollingRestart stops (SIGTERM) and restarts each of three
// members in turn during the backfill; the result must equal a crash-free
// run.
func TestStateDirRollingRestart(t *testing.T) {
	testutil.Long(t)
	b, total := stateBackfill(t, envInt("GTSM_STATE_MINUTES", 45))
	dir := filepath.Join(t.TempDir(), "state")
	const group = "members"
	ms := make([]*proc, 3)
	for i := range ms {
		ms[i] = b.member(t, dir, group, 500)
	}
	for i := range ms {
		time.Sleep(time.Second)
		c, end := b.groupState(t, group)
		if drained(c, end) {
			t.Fatalf("restart %d: the backfill is over already (%d messages); make it longer", i+1, total)
		}
		stopMember(t, ms[i])
		ms[i] = b.member(t, dir, group, 500)
		t.Logf("member %d restarted", i)
	}
	b.waitDrained(t, group, 3*time.Minute, ms...)
	for _, p := range ms {
		stopMember(t, p)
	}
	clean := filepath.Join(t.TempDir(), "clean.duckdb")
	b.cleanRun(t, clean)
	sameAsClean(t, dir, clean)
}

// fileEvents returns, per partition, the times a member logged having
// opened the partition's file and starting to close it.
func fileEvents(t *testing.T, p *proc) (opened, closed map[int32][]time.Time) {
	t.Helper()
	opened, closed = map[int32][]time.Time{}, map[int32][]time.Time{}
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		var v struct {
			Time      time.Time
			Msg       string
			Partition int32
		}
		if json.Unmarshal([]byte(l), &v) != nil {
			continue
		}
		switch v.Msg {
		case "partition file opened":
			opened[v.Partition] = append(opened[v.Partition], v.Time)
		case "partition file closing":
			// Logged before the file is closed: the lock goes at the end
			// of the close, so the next owner may log its open before
			// the old owner logs "closed" (seen: 26 ms before, under load).
			closed[v.Partition] = append(closed[v.Partition], v.Time)
		}
	}
	return opened, closed
}

// TestStateDirZombieFenced stalls a member (SIGSTOP) that holds partition
// files: the group gives its partitions to a second member, which must not
// open any of them (DuckDB's lock) while the stalled one holds it. Woken up
// (SIGCONT), the old owner finds its session gone, commits what it had
// applied into its files and closes them; only then does the new owner
// open them, and the result equals a crash-free run.
func TestStateDirZombieFenced(t *testing.T) {
	testutil.Long(t)
	b, _ := stateBackfill(t, envInt("GTSM_STATE_MINUTES", 45)/3)
	dir := filepath.Join(t.TempDir(), "state")
	const group = "members"
	a := b.member(t, dir, group, 500)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, _ := b.groupState(t, group)
		var n int64
		for _, o := range c {
			n += o
		}
		if n > 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first member committed nothing in 60s\n%s", tail(a.stderr.String(), 40))
		}
	}
	a.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	c0, end := b.groupState(t, group)
	if drained(c0, end) {
		t.Fatal("the backfill is over already; make it longer")
	}
	nb := b.member(t, dir, group, 500)
	// The new member joins, gets the stalled member's partitions once its
	// session expires, and must wait for their locks.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(nb.stderr.String(), "partition file locked by another process"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("second member never waited for a lock\n%s", tail(nb.stderr.String(), 40))
		}
	}
	time.Sleep(2 * time.Second)
	if opened, _ := fileEvents(t, nb); len(opened) > 0 {
		t.Fatalf("second member opened partition files %v while the stalled member held them", opened)
	}
	if c, _ := b.groupState(t, group); !maps.Equal(c, c0) {
		t.Errorf("group offsets moved while the only owner was stalled and the other fenced: %v -> %v", c0, c)
	}
	t.Logf("stalled member fenced the new one for %v", time.Since(stopped).Round(10*time.Millisecond))
	a.cmd.Process.Signal(syscall.SIGCONT)
	b.waitDrained(t, group, 3*time.Minute, a, nb)
	stopMember(t, a)
	stopMember(t, nb)
	// Every open by the new member came after the stalled member's last
	// close of that file (one machine, one clock).
	aOpen, aClosed := fileEvents(t, a)
	bOpen, _ := fileEvents(t, nb)
	fenced := 0
	for part, ts := range bOpen {
		first := ts[0]
		var lastOpen time.Time // the stalled member's last open before it
		for _, o := range aOpen[part] {
			if o.Before(first) {
				lastOpen = o
			}
		}
		if lastOpen.IsZero() {
			continue
		}
		closedBetween := false
		for _, c := range aClosed[part] {
			if c.After(lastOpen) && c.Before(first) {
				closedBetween = true
			}
		}
		if !closedBetween {
			t.Errorf("partition %d: the new member opened it at %v before the stalled member began closing it (open since %v, closing at %v)",
				part, first, lastOpen, aClosed[part])
		}
		fenced++
	}
	if fenced == 0 {
		t.Error("the new member opened none of the stalled member's files")
	}
	t.Logf("%d partition files passed from the stalled member to the new one, each opened only after the old owner began closing it", fenced)
	clean := filepath.Join(t.TempDir(), "clean.duckdb")
	b.cleanRun(t, clean)
	sameAsClean(t, dir, clean)
}

// peakRSS is a process's VmHWM from /proc.
func peakRSS(p *proc) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
