package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// groupOffsets is what the consumer group has committed to Kafka, summed
// over the partitions.
func (b *broker) groupOffsets(t testing.TB, group string) int64 {
	t.Helper()
	res, err := b.admin(t).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	res.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// TestDiskFull runs the processor with RLIMIT_FSIZE set (a file may not
// grow past the limit: writes fail with EFBIG, as on a full disk) so that a
// DuckDB write fails part-way through the backfill. The processor must stop
// with a non-zero status and a log line saying why, Kafka's committed
// offsets must not pass what DuckDB holds, and after the limit is lifted a
// restart must complete with tables equal to a clean run.
func TestDiskFull(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	in := t.TempDir()
	want := int64(writeMinSet(t, in, []string{"DF01", "DF02"}, 30))
	if code, out := b.produce(t, "--quiet", in); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "full.duckdb")
	const limit = 3 << 20
	p := startProcessor(t, b.processEnv(db, "full", 1000, "GTSM_FSIZE="+itoa(limit)))
	var last int64
	for l := range p.lines {
		if c, ok := parseCommitted(l); ok {
			last = c
		}
	}
	err := p.wait(time.Minute)
	logs := p.stderr.String()
	if exitCode(err) != 1 {
		t.Fatalf("processor with a %d-byte file size limit: %v, want exit 1 (write failure)\n%s", limit, err, logs)
	}
	if !strings.Contains(logs, "processor failed") || !strings.Contains(strings.ToLower(logs), "file too large") {
		t.Errorf("no log line saying the DuckDB write failed for lack of space:\n%s", logs)
	}
	if last == 0 || last >= want {
		t.Errorf("the write failure came at %d of %d committed messages: want it mid-backfill", last, want)
	}
	kafka := b.groupOffsets(t, "full")
	stored := queryInt(t, db, `SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets`)
	rows := queryInt(t, db, `SELECT count(*) FROM gtsm_etl`)
	t.Logf("disk full at %d of %d messages: DuckDB has %d rows and next offsets summing to %d; Kafka group committed %d", last, want, rows, stored, kafka)
	if kafka > stored {
		t.Errorf("Kafka offsets committed up to %d messages but DuckDB holds only %d: rows lost", kafka, stored)
	}
	if rows != stored {
		t.Errorf("DuckDB holds %d rows but its offsets say %d messages were applied", rows, stored)
	}

	runUntilCaughtUp(t, b.processEnv(db, "full", 1000))
	clean := filepath.Join(dir, "clean.duckdb")
	runUntilCaughtUp(t, b.processEnv(clean, "clean", 1000))
	sameTables(t, db, clean)
}

// TestLockedDB holds the DuckDB file open in this (another) process while
// the processor starts: it must exit non-zero naming the lock, commit no
// Kafka offsets, and once the lock is released a restart must catch up to
// tables equal to a clean run.
func TestLockedDB(t *testing.T) {
	b := newBroker(t)
	in := t.TempDir()
	writeMinSet(t, in, []string{"LK01"}, 4)
	if code, out := b.produce(t, "--quiet", in); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "locked.duckdb")
	runUntilCaughtUp(t, b.processEnv(db, "locked", 500))
	before := b.groupOffsets(t, "locked")

	more := t.TempDir()
	writeMinSet(t, more, []string{"LK02"}, 4)
	if code, out := b.produce(t, "--quiet", more); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	holder, err := gtsmsql.Open(context.Background(), db, false)
	if err != nil {
		t.Fatal(err)
	}
	p := startProcessor(t, b.processEnv(db, "locked", 500))
	for range p.lines {
	}
	err = p.wait(time.Minute)
	holder.Close()
	logs := p.stderr.String()
	if exitCode(err) != 1 || !strings.Contains(logs, "lock") || !strings.Contains(logs, db) {
		t.Errorf("processor on a locked file: %v, want exit 1 and an error naming the file and the lock\n%s", err, logs)
	}
	if after := b.groupOffsets(t, "locked"); after != before {
		t.Errorf("Kafka offsets moved from %d to %d while DuckDB was locked", before, after)
	}
	t.Logf("locked file: %s", firstLine(logs, "lock"))
	runUntilCaughtUp(t, b.processEnv(db, "locked", 500))
	clean := filepath.Join(dir, "clean.duckdb")
	runUntilCaughtUp(t, b.processEnv(clean, "clean", 500))
	sameTables(t, db, clean)
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
