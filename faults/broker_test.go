package faults

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestBrokerRestart stops `gtsm broker` (its own process, persistent data
// directory) while `gtsm produce` and the processor are both running, and
// starts it again on the same ports and data directory. The producer must
// finish on its own with exit status 0, the topic must hold every record
// exactly once (idempotent producer state survives the restart), and the
// processor, never restarted, must end with tables equal to a clean run.
// Once with SIGTERM (kfake closes its files) and once with SIGKILL (kfake
// writes segments and group/producer-id logs as it goes, so the page cache
// has everything a killed process wrote; embedded rebuilds the producers'
// sequence windows, which kfake saves only on close, from those segments).
func TestBrokerRestart(t *testing.T) {
	testutil.Long(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) { brokerRestart(t, sig) })
	}
}

func brokerRestart(t *testing.T, sig syscall.Signal) {
	b := newBroker(t)
	in := t.TempDir()
	want := int64(writeMinSet(t, in, []string{"BR01", "BR02", "BR03"}, 60))
	dir := t.TempDir()
	liveDB := filepath.Join(dir, "live.duckdb")
	proc := startProcessor(t, b.processEnv(liveDB, "live", 2000))
	// The processor's start-up (topic check, group offsets, DLQ producer)
	// does not outlast a broker that is down; only the running processor
	// rides out a restart. So the broker goes down only once it runs: its
	// first "committed" line comes right after start-up.
	waitCommitted(t, proc, 0, 2*time.Minute)

	prod := start(t, nil, gtsm(t), "produce", "--bootstrap-servers", b.kafka, "--registry", b.registry, in)
	go func() {
		for range prod.lines {
		}
	}()
	// Stop the broker once a first part of the records is in the topic.
	deadline := time.Now().Add(60 * time.Second)
	var at int64
	for at = b.messages(t, topic); at < want/10; at = b.messages(t, topic) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records reached the topic in 60 s\n%s", at, want, prod.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.cmd.Process.Signal(sig)
	if err := b.wait(30 * time.Second); err != nil && sig == syscall.SIGTERM {
		t.Fatalf("broker after SIGTERM: %v\n%s", err, b.stderr)
	}
	select {
	case <-prod.done:
		t.Fatalf("producer ended before the broker restart (%d of %d in the topic at the %v): not mid-stream", at, want, sig)
	default:
	}
	t.Logf("%v to the broker at >= %d of %d records in the topic", sig, at, want)
	time.Sleep(time.Second) // down for a while: clients see refused connections
	b2 := startBroker(t, b.data, b.kafka, b.registry[len("http://"):])

	if err := prod.wait(3 * time.Minute); err != nil {
		t.Fatalf("producer did not recover from the broker restart: %v\n%s", err, prod.stderr)
	}
	if got := b2.messages(t, topic); got != want {
		t.Errorf("topic holds %d records after the restart, want %d (lost or duplicated)", got, want)
	}
	waitCommitted(t, proc, want, 2*time.Minute)
	proc.cmd.Process.Signal(syscall.SIGTERM)
	if err := proc.wait(time.Minute); err != nil {
		t.Fatalf("processor: %v\n%s", err, proc.stderr)
	}
	rows := queryInt(t, liveDB, `SELECT count(*) FROM gtsm_etl`)
	dups := queryInt(t, liveDB, `SELECT coalesce(sum(duplicates), 0) FROM site_state`)
	if rows != want || dups != 0 {
		t.Errorf("DuckDB: %d rows, %d duplicates, want %d rows and none", rows, dups, want)
	}
	t.Logf("broker %v mid-stream: %d records produced, %d in DuckDB, %d duplicates", sig, want, rows, dups)
	cleanDB := filepath.Join(dir, "clean.duckdb")
	env := b.processEnv(cleanDB, "clean", 2000)
	runUntilCaughtUp(t, env)
	sameTables(t, liveDB, cleanDB)
}
