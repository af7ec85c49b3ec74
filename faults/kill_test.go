package faults

import (
	"math/rand"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKillNineBackfill SIGKILLs the processor, a separate OS process, at
// least 20 times at random moments while it backfills the topic (the
// testdata fixtures plus a generated 20-sps set), with 100-message batches
// so that most kills land between two DuckDB commits. Every restart joins
// the same consumer group. Afterwards the DuckDB file must hold every
// record exactly once and equal, table by table, a crash-free run.
func TestKillNineBackfill(t *testing.T) {
	b := newBroker(t)
	in := t.TempDir()
	generated := writeMinSet(t, in, []string{"KL01", "KL02"}, 12)
	root := repoRoot(t)
	if code, errOut := b.produce(t, "--quiet", filepath.Join(root, "testdata"), in); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errOut)
	}
	total := b.messages(t, topic)
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
	if rows != total || dups != 0 {
		t.Errorf("DuckDB after kills: %d rows with %d duplicates, want %d rows (every message once)", rows, dups, total)
	}
	t.Logf("after %d kills: %d messages produced, %d rows in DuckDB, %d duplicates, %d lost", kills, total, rows, dups, total-rows+dups)
	sameTables(t, killedDB, cleanDB)
}
