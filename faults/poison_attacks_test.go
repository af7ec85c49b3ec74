package faults

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/record"
)

// kcatProduce pipes input to `kcat -P` on the broker (issue 12 used kcat
// for the tombstone: -K: splits key and value, -Z sends an empty value as
// null).
func (b *broker) kcatProduce(t *testing.T, input string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is not installed (.ci/run installs it)")
	}
	cmd := exec.Command("kcat", append([]string{"-P", "-b", b.kafka, "-t", topic}, args...)...)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
}

// TestPoisonAttacks: the poison of issue 12, item 2, between the hour and
// min fixtures (4,800 good records on 3 partitions): a tombstone sent with
// kcat, records whose time is beyond DuckDB's TIMESTAMP range (9.3e15 ms),
// in 1970 and in 2100, a record whose value names another site than its
// key, and a 10 MB value sent zstd-compressed. Each one used to stop the
// processor for good (refused restart, a crash on every replay, a DLQ write
// retried until the processor died) or to be stored silently. Now each must
// be a dead letter: a row in dead_letters, a copy (or, for the 10 MB value,
// a reference) in gtsm_etl.dlq, counted on /metrics of the real `gtsm
// process` by reason; every good record is stored; a processor SIGKILLed
// mid-stream and restarted lands the same tables; and the processor is
// SIGKILLed and restarted twice on the same file and group, which must
// work.
func TestPoisonAttacks(t *testing.T) {
	b := newBroker(t)
	root := testutil.RepoRoot(t)
	if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", "hour")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	b.kcatProduce(t, "B009:\n", "-K:", "-Z")

	serde := b.serde(t)
	ls1, _ := record.FieldIndex("ls1_t0")
	rec := func(site string, ms int64) []byte {
		var r record.Record
		r.SetSite(site)
		r.SetTime(ms)
		r.SetInt(ls1, 42)
		return serde.AppendValue(nil, &r)
	}
	hourHdr := []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte("Hour")}}
	key := serde.AppendKey(nil, "B009")
	big := bytes.Repeat([]byte("gtsm"), 10<<20/4) // 10 MiB, compresses to a few KiB
	poison := []struct {
		reason string
		value  []byte
	}{
		{"time_out_of_range", rec("B009", 9_300_000_000_000_000)},                                   // beyond DuckDB's TIMESTAMP
		{"time_out_of_range", rec("B009", 1000)},                                                    // 1970-01-01T00:00:01Z
		{"time_out_of_range", rec("B009", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())}, // 2100
		{"site_mismatch", rec("X999", time.Date(2021, 6, 30, 12, 0, 0, 0, time.UTC).UnixMilli())},   // key B009
		{"value_bad_magic", big}, // 10 MiB
	}
	cl := b.client(t, kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerBatchMaxBytes(16<<20))
	for _, p := range poison {
		r := &kgo.Record{Topic: topic, Key: key, Value: p.value, Headers: hourHdr}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatalf("produce %s poison: %v", p.reason, err)
		}
	}
	if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", "min")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	const good = 3600 + 1200
	total := b.messages(t, topic)
	if total != good+1+int64(len(poison)) {
		t.Fatalf("%d messages in %s, want %d", total, topic, good+1+len(poison))
	}

	// The real `gtsm process`: every poison message counted by reason.
	dir := t.TempDir()
	db := filepath.Join(dir, "poison.duckdb")
	httpAddr := freeAddr(t)
	gp := start(t, nil, gtsm(t), "process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--db", db,
		"--group", "attacks", "--http-addr", httpAddr, "--sql-addr", "", "--session-timeout", "1500ms")
	go func() {
		for range gp.lines {
		}
	}()
	// Not gtsm_records_in_total: it also counts redeliveries after a
	// rebalance (skipped by offset), which a loaded machine can cause.
	want := []string{
		"gtsm_rows_written_total " + itoa(good),
		`gtsm_dead_letters_total{reason="tombstone"} 1`, `gtsm_dead_letters_total{reason="time_out_of_range"} 3`,
		`gtsm_dead_letters_total{reason="site_mismatch"} 1`, `gtsm_dead_letters_total{reason="value_bad_magic"} 1`,
	}
	var body string
	for deadline := time.Now().Add(90 * time.Second); ; {
		body = httpGet("http://" + httpAddr + "/metrics")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(body, w+"\n")
		}
		if ok {
			break
		}
		if time.Now().After(deadline) || exited(gp) {
			t.Fatalf("/metrics of gtsm process never showed %q:\n%s\n%s", want, grepLines(body, "gtsm_"), gp.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	gp.cmd.Process.Signal(syscall.SIGTERM)
	if err := gp.wait(time.Minute); err != nil {
		t.Fatalf("gtsm process: %v\n%s", err, gp.stderr)
	}

	// The dead-letter topic: a copy of each, a reference for the 10 MiB one.
	dead := b.consumeAll(t, topic+".dlq", 1+len(poison))
	reasons := map[string]int{}
	for _, d := range dead {
		reason := header(d, "dlq.reason")
		reasons[reason]++
		switch reason {
		case "tombstone":
			if d.Value != nil || string(d.Key) != "B009" {
				t.Errorf("tombstone dead letter: key %q, value %d bytes; want key B009 and a null value", d.Key, len(d.Value))
			}
		case "value_bad_magic":
			size, _ := strconv.Atoi(header(d, "dlq.value_size"))
			if d.Value != nil || size != len(big) || !strings.Contains(header(d, "dlq.reference"), "exceeds") ||
				string(d.Key) != string(key) || header(d, "dlq.offset") == "" {
				t.Errorf("10 MiB dead letter: value %d bytes, headers %s; want a reference (no value, dlq.value_size %d, dlq.reference, key, offset)",
					len(d.Value), headerText(d), len(big))
			}
		default:
			if d.Value == nil || string(d.Key) != string(key) {
				t.Errorf("%s dead letter: key %q, value %d bytes; want the original", reason, d.Key, len(d.Value))
			}
		}
		t.Logf("dead letter %-18s %s/%s@%s %d bytes: %s %s", reason, header(d, "dlq.topic"), header(d, "dlq.partition"),
			header(d, "dlq.offset"), len(d.Value), header(d, "dlq.error"), header(d, "dlq.reference"))
	}
	if fmt.Sprint(reasons) != "map[site_mismatch:1 time_out_of_range:3 tombstone:1 value_bad_magic:1]" {
		t.Errorf("dead letters by reason %v", reasons)
	}
	checkGood := func(when string) {
		t.Helper()
		if n := queryInt(t, db, `SELECT count(*) FROM dead_letters`); n != int64(1+len(poison)) {
			t.Errorf("%s: dead_letters has %d rows, want %d", when, n, 1+len(poison))
		}
		if n := queryInt(t, db, `SELECT count(*) FROM dead_letters WHERE error LIKE '%tombstone%' AND value IS NULL`); n != 1 {
			t.Errorf("%s: %d tombstone rows in dead_letters, want 1", when, n)
		}
		if n := queryInt(t, db, `SELECT count(*) FROM gtsm_etl`); n != good {
			t.Errorf("%s: gtsm_etl has %d rows, want %d (every good record)", when, n, good)
		}
		if n := queryInt(t, db, `SELECT count(*) FROM gtsm_etl WHERE site <> key_site OR "time" < 1577836800000 OR "time" > 1735689600000`); n != 0 {
			t.Errorf("%s: %d poison rows stored", when, n)
		}
		// The gaps are those of the fixtures alone: nothing of 1970/2100.
		if n := queryInt(t, db, `SELECT coalesce(max(missing), 0) FROM gaps`); n > 100_000 {
			t.Errorf("%s: a gap of %d missing samples", when, n)
		}
		if n := queryInt(t, db, `SELECT sum(next_offset) FROM kafka_offsets`); n != total {
			t.Errorf("%s: kafka_offsets sum to %d, want %d (every message applied)", when, n, total)
		}
	}
	checkGood("first run")

	// The same stream into another file by a processor SIGKILLed mid-way
	// with 100-message batches (the tombstone is the first message of its
	// partition: its commit was pending), then restarted: the same tables.
	killedDB := filepath.Join(dir, "killed.duckdb")
	k := startProcessor(t, b.processEnv(killedDB, "killed", 100))
	waitCommitted(t, k, 2000, time.Minute)
	k.cmd.Process.Signal(syscall.SIGKILL)
	k.wait(10 * time.Second)
	runUntilCaughtUp(t, b.processEnv(killedDB, "killed", 100))
	sameTables(t, killedDB, db)

	// Restarts on the same file and group: after a SIGKILL (nothing new
	// to do, so the kill lands in a running, caught-up processor) and
	// after a clean stop. The tombstone's offset used to be committed to
	// Kafka past DuckDB's, and the next start refused the file.
	p := startProcessor(t, b.processEnv(db, "attacks", 500))
	waitCommitted(t, p, total, time.Minute)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
	runUntilCaughtUp(t, b.processEnv(db, "attacks", 500))
	runUntilCaughtUp(t, b.processEnv(db, "attacks", 500))
	checkGood("after the restarts")
}

func exited(p *proc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func headerText(r *kgo.Record) string {
	var sb strings.Builder
	for _, h := range r.Headers {
		fmt.Fprintf(&sb, "%s=%q ", h.Key, h.Value)
	}
	return sb.String()
}
