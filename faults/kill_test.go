package faults

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/record"
)

// TestKillNineBackfill SIGKILLs the processor, a separate OS process, at
// least 20 times at random moments while it backfills the topic (the
// testdata fixtures, three poison messages and a generated 20-sps set),
// with 100-message batches so that most kills land between two DuckDB
// commits. Every restart joins
// the same consumer group. Afterwards the DuckDB file must hold every
// record exactly once and equal, table by table, a crash-free run.
func TestKillNineBackfill(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	in := t.TempDir()
	generated := writeMinSet(t, in, []string{"KL01", "KL02"}, 12)
	root := testutil.RepoRoot(t)
	if code, errOut := b.produce(t, "--quiet", filepath.Join(root, "testdata")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errOut)
	}
	// Three poison messages between the fixtures and the generated set:
	// dead letters must survive the kills exactly once in DuckDB.
	serde := b.serde(t)
	var r record.Record
	r.SetSite("KLPZ")
	r.SetTime(1625097600000)
	value := serde.AppendValue(nil, &r)
	cl := b.client(t)
	origin := map[string]bool{}
	for _, v := range [][]byte{append([]byte{9}, value[1:]...), value[:len(value)-3], {0, 0, 0}} {
		rec := &kgo.Record{Topic: topic, Key: serde.AppendKey(nil, "KLPZ"), Value: v}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		origin[fmt.Sprintf("%d@%d", rec.Partition, rec.Offset)] = true
	}
	if code, errOut := b.produce(t, "--quiet", in); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errOut)
	}
	total := b.messages(t, topic)
	const poison = 3
	t.Logf("backfill: %d messages in %s (%d generated Min records + fixtures)", total, topic, generated)

	dir := t.TempDir()
	killedDB := filepath.Join(dir, "killed.duckdb")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	const wantKills = 20
	kills := 0
	var last int64
	for kills < wantKills {
		p := startProcessor(t, b.processEnv(killedDB, "killed", 100))
		// A random target between one message past what the previous
		// run reached and a share of what is left, so the kills are
		// spread over the whole backfill.
		left := total - last
		step := max(left/int64(wantKills-kills+2), 2)
		target := last + 1 + rng.Int63n(step)
		got := waitCommitted(t, p, target, 90*time.Second)
		if rng.Intn(2) == 0 {
			time.Sleep(time.Duration(rng.Intn(30)) * time.Millisecond)
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
		kills++
		last = got
		if last >= total {
			t.Fatalf("kill %d came after the backfill ended (%d of %d): not a mid-backfill kill", kills, last, total)
		}
	}
	t.Logf("%d SIGKILLs, the last at >= %d of %d messages committed", kills, last, total)
	runUntilCaughtUp(t, b.processEnv(killedDB, "killed", 100))

	cleanDB := filepath.Join(dir, "clean.duckdb")
	runUntilCaughtUp(t, b.processEnv(cleanDB, "clean", 100))

	rows := queryInt(t, killedDB, `SELECT count(*) FROM gtsm_etl`)
	dups := queryInt(t, killedDB, `SELECT count(*) - count(DISTINCT (key_site, session, "time")) FROM gtsm_etl`)
	dead := queryInt(t, killedDB, `SELECT count(*) FROM dead_letters`)
	if rows != total-poison || dups != 0 || dead != poison {
		t.Errorf("DuckDB after kills: %d rows with %d duplicates and %d dead letters, want %d rows (every good message once) and %d dead letters",
			rows, dups, dead, total-poison, poison)
	}
	// The dead-letter topic has each poison message at least once (the
	// killed and the clean run each sent them; a kill between the send and
	// the DuckDB commit sends one again), and nothing else.
	dlq := b.messages(t, topic+".dlq")
	seen := map[string]bool{}
	for _, d := range b.consumeAll(t, topic+".dlq", int(dlq)) {
		o := header(d, "dlq.partition") + "@" + header(d, "dlq.offset")
		if !origin[o] {
			t.Errorf("dead letter from %s: not a poison message", o)
		}
		seen[o] = true
	}
	if len(seen) != poison {
		t.Errorf("dead-letter topic has %d of the %d poison messages", len(seen), poison)
	}
	t.Logf("after %d kills: %d messages produced (%d poison), %d rows in DuckDB, %d duplicates, %d lost, %d dead letters (%d copies in %s.dlq)",
		kills, total, poison, rows, dups, total-poison-rows+dups, dead, dlq, topic)
	sameTables(t, killedDB, cleanDB)
}
