package processor

import (
	"bytes"
	"context"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
)

// TestPoisonPolicy: each poison message of issue 12, item 2, alone between
// good records on a 3-partition topic. Each must be a dead letter (a row in
// dead_letters naming it, a copy or a reference in <topic>.dlq, counted in
// CommitInfo.DeadReasons), every good record of every partition stored,
// and a restart of the processor on the same file and group must work.
// Before: the tombstone's offset was committed by goka past DuckDB's and
// the restart refused the file; the time beyond DuckDB's TIMESTAMP range
// failed the commit (and every later one); 1970, 2100 and the site
// mismatch were stored; the 10 MiB value's DLQ copy was retried for ~47 s
// and the processor died.
func TestPoisonPolicy(t *testing.T) {
	testutil.Long(t)
	now := time.Now().UnixMilli()
	ls1 := record.StrainFields(bottle.Hour)[0]
	value := func(st *stack, site string, ms int64) []byte {
		var r record.Record
		r.SetSite(site)
		r.SetTime(ms)
		r.SetInt(ls1, 7)
		return st.serde.AppendValue(nil, &r)
	}
	for _, tc := range []struct {
		name, reason, errText string
		value                 func(st *stack) []byte
		reference             string // only a reference in the DLQ, saying this
		dlqMaxBytes           string // max.message.bytes of a pre-created dead-letter topic
	}{
		{"tombstone", "tombstone", "tombstone", func(*stack) []byte { return nil }, "", ""},
		{"beyond DuckDB TIMESTAMP", "time_out_of_range", "about year 296675",
			func(st *stack) []byte { return value(st, "PSN1", 9_300_000_000_000_000) }, "", ""},
		{"1970", "time_out_of_range", "1970-01-01T00:00:01Z", func(st *stack) []byte { return value(st, "PSN1", 1000) }, "", ""},
		{"2100", "time_out_of_range", "2100-01-01T00:00:00Z",
			func(st *stack) []byte {
				return value(st, "PSN1", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
			}, "", ""},
		{"two days ahead", "time_out_of_range", "now + 24h",
			func(st *stack) []byte { return value(st, "PSN1", now+2*dayMs) }, "", ""},
		{"1989", "time_out_of_range", "1989-12-31T23:59:59Z",
			func(st *stack) []byte {
				return value(st, "PSN1", time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()-1000)
			}, "", ""},
		{"site mismatch", "site_mismatch", `value's site "OTHR" is not the key's site "PSN1"`,
			func(st *stack) []byte { return value(st, "OTHR", 1625097600000+500_000) }, "", ""},
		{"10 MiB value", "value_bad_magic", "bad magic", func(*stack) []byte { return bytes.Repeat([]byte{1}, 10<<20) },
			"exceeds the dead-letter producer's maximum message size", ""},
		// Under sarama's limit, over the dead-letter topic's own even
		// compressed (snappy, goka's default): the broker refuses the
		// copy (MESSAGE_TOO_LARGE) on every try.
		{"copy refused by the broker", "value_bad_magic", "bad magic", func(*stack) []byte { return incompressible(20_000) },
			"the broker refused the copy", "4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startStack(t, 3)
			if tc.dlqMaxBytes != "" {
				cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, map[string]*string{"max.message.bytes": &tc.dlqMaxBytes}, testTopic+".dlq")
				cl.Close()
				if err == nil {
					err = resp.Err
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var good []record.Record
			for _, site := range []string{"PSN1", "PSN2", "PSN3", "PSN4"} {
				good = append(good, synth(site, bottle.Hour, 1625097600000, 600)...)
			}
			st.publish(t, good[:1200])
			key := st.serde.AppendKey(nil, "PSN1")
			cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerBatchMaxBytes(16<<20))
			if err != nil {
				t.Fatal(err)
			}
			v := tc.value(st)
			pr := &kgo.Record{Topic: testTopic, Key: key, Value: v, Partition: partition.For(key, st.parts),
				Headers: []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte("Hour")}}}
			err = cl.ProduceSync(context.Background(), pr).FirstErr()
			cl.Close()
			if err != nil {
				t.Fatal(err)
			}
			st.publish(t, good[1200:])

			dbPath := filepath.Join(t.TempDir(), "poison.duckdb")
			reasons := map[string]int{}
			cfg := st.config(dbPath, "poison")
			cfg.OnCommit = func(ci CommitInfo) {
				for r, n := range ci.DeadReasons {
					reasons[r] += n // the sink goroutine only; read after Run returned
				}
			}
			run := startProc(t, cfg)
			run.wait(t)
			run.stop(t)
			if len(reasons) != 1 || reasons[tc.reason] != 1 {
				t.Errorf("dead letters by reason %v, want %s: 1", reasons, tc.reason)
			}

			check := func(when string) {
				t.Helper()
				db := openRO(t, dbPath)
				defer db.Close()
				var rows, dead, valueNull int64
				var errText string
				if err := db.QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				if err := db.QueryRow(`SELECT count(*), coalesce(any_value(error), ''), count(*) FILTER (value IS NULL) FROM dead_letters
					WHERE kafka_partition = ? AND kafka_offset = ?`, pr.Partition, pr.Offset).Scan(&dead, &errText, &valueNull); err != nil {
					t.Fatal(err)
				}
				if rows != int64(len(good)) || dead != 1 || !strings.Contains(errText, tc.errText) || (valueNull == 1) != (v == nil) {
					t.Errorf("%s: %d rows (want %d), %d dead letters at %d@%d (want 1, error containing %q: %q, value null %v)",
						when, rows, len(good), dead, pr.Partition, pr.Offset, tc.errText, errText, valueNull == 1)
				}
			}
			check("first run")

			// The dead-letter topic.
			dl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics(testTopic+".dlq"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer dl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var got []*kgo.Record
			for len(got) == 0 && ctx.Err() == nil {
				dl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
			}
			if len(got) != 1 {
				t.Fatalf("%d records in the dead-letter topic, want 1", len(got))
			}
			h := map[string]string{}
			for _, x := range got[0].Headers {
				h[x.Key] = string(x.Value)
			}
			ref := h[HeaderDLQReference]
			if h[HeaderDLQReason] != tc.reason || (ref == "") != (tc.reference == "") || !strings.Contains(ref, tc.reference) ||
				(ref == "" && !bytes.Equal(got[0].Value, v)) || !bytes.Equal(got[0].Key, key) ||
				(ref != "" && (got[0].Value != nil || h[HeaderDLQValueSize] != strconv.Itoa(len(v)) || h[HeaderDLQOffset] != strconv.FormatInt(pr.Offset, 10))) {
				t.Errorf("dead-letter record: key %q, %d value bytes, headers %v; want reason %s, reference %q", got[0].Key, len(got[0].Value), h, tc.reason, tc.reference)
			}

			// A restart on the same file and group starts, and stays exact.
			run = startProc(t, st.config(dbPath, "poison"))
			run.wait(t)
			run.stop(t)
			check("after a restart")
		})
	}
}

// incompressible is n pseudo-random bytes starting with a byte that is not
// the Confluent magic byte.
func incompressible(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(b)
	b[0] = 1
	return b
}
