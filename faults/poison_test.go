package faults

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// serde registers the topic's schemas on the broker's registry.
func (b *broker) serde(t testing.TB) *registry.Serde {
	t.Helper()
	ctx := context.Background()
	rc, err := registry.New(registry.Config{URL: b.registry})
	if err != nil {
		t.Fatal(err)
	}
	k, v, err := registry.LoadSchemas(ctx, rc, "", topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.NewSerde(ctx, rc, topic, k, v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (b *broker) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.kafka)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeAll reads n records of a topic from the start.
func (b *broker) consumeAll(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := b.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d records in 30 s, want %d", topic, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestPoisonMessages puts five poison messages on gtsm_etl between good
// records: a wrong magic byte, an unknown schema id, truncated Avro, a key
// that is not the Avro {site} record, and a record with no time. Each must
// land in gtsm_etl.dlq with its key and value unchanged and headers saying
// why (dlq.reason, dlq.error) and where from (dlq.topic, dlq.partition,
// dlq.offset), be counted in DuckDB's dead_letters, and the processor must
// store every good record, before and after them.
func TestPoisonMessages(t *testing.T) {
	b := newBroker(t)
	root := testutil.RepoRoot(t)
	if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", "hour")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	serde := b.serde(t)
	ls1, ok := record.FieldIndex("ls1_t0")
	if !ok {
		t.Fatal("no field ls1_t0")
	}
	good := record.Record{}
	good.SetSite("PZ01")
	good.SetTime(1625097600000)
	good.SetInt(ls1, 42)
	key := serde.AppendKey(nil, "PZ01")
	value := serde.AppendValue(nil, &good)
	wrongMagic := append([]byte{7}, value[1:]...)
	unknownID := append([]byte(nil), value...)
	binary.BigEndian.PutUint32(unknownID[1:5], 99999)
	noTime := record.Record{}
	noTime.SetSite("PZ01")
	noTime.SetInt(ls1, 42)
	poison := []struct {
		reason     string
		key, value []byte
	}{
		{"value_bad_magic", key, wrongMagic},
		{"value_unknown_schema_id", key, unknownID},
		{"value_truncated", key, value[:len(value)-20]},
		{"key_bad_magic", []byte("PZ01"), value},
		{"no_time", key, serde.AppendValue(nil, &noTime)},
	}
	cl := b.client(t)
	sent := map[string]*kgo.Record{}
	for _, p := range poison {
		r := &kgo.Record{Topic: topic, Key: p.key, Value: p.value,
			Headers: []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte("Hour")}}}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		sent[p.reason] = r
	}
	if code, out := b.produce(t, "--quiet", filepath.Join(root, "testdata", "min")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	db := filepath.Join(dir, "poison.duckdb")
	p := runUntilCaughtUp(t, b.processEnv(db, "poison", 500))
	if n := strings.Count(p.stderr.String(), `msg="dead letter"`); n != len(poison) {
		t.Errorf("%d dead-letter log lines, want %d:\n%s", n, len(poison), p.stderr)
	}
	// Created by the processor at start (1 partition), not auto-created
	// by the broker on the first dead letter (3 here).
	td, err := b.admin(t).ListTopics(context.Background(), topic+".dlq")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td[topic+".dlq"].Partitions); n != 1 {
		t.Errorf("%s.dlq has %d partitions, want 1 (created by the processor)", topic, n)
	}
	dead := b.consumeAll(t, topic+".dlq", len(poison))
	if len(dead) != len(poison) {
		t.Errorf("%d records in %s.dlq, want %d", len(dead), topic, len(poison))
	}
	for _, d := range dead {
		reason := header(d, "dlq.reason")
		src := sent[reason]
		if src == nil {
			t.Errorf("dead letter with dlq.reason %q (error %q): not one of the poison messages", reason, header(d, "dlq.error"))
			continue
		}
		if header(d, "dlq.topic") != topic || header(d, "dlq.partition") != strconv.Itoa(int(src.Partition)) ||
			header(d, "dlq.offset") != strconv.FormatInt(src.Offset, 10) || header(d, "dlq.error") == "" ||
			string(d.Key) != string(src.Key) || string(d.Value) != string(src.Value) || header(d, record.SessionHeader) != "Hour" {
			t.Errorf("dead letter %s: headers %v, key %q; want it from %s/%d@%d with its key, value and headers", reason, d.Headers, d.Key, topic, src.Partition, src.Offset)
		}
		t.Logf("dead letter %-24s from %s/%d@%d: %s", reason, header(d, "dlq.topic"), src.Partition, src.Offset, header(d, "dlq.error"))
	}
	// The real `gtsm process` on a fresh file counts them on /metrics.
	metricsDB := filepath.Join(dir, "metrics.duckdb")
	httpAddr := freeAddr(t)
	gp := start(t, nil, gtsm(t), "process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--db", metricsDB,
		"--group", "metrics", "--http-addr", httpAddr, "--sql-addr", "", "--session-timeout", "1500ms")
	go func() {
		for range gp.lines {
		}
	}()
	want := []string{"gtsm_records_in_total 4805", "gtsm_rows_written_total 4800"}
	for reason := range sent { // one dead letter of each of the 5 reasons
		want = append(want, fmt.Sprintf(`gtsm_dead_letters_total{reason=%q} 1`, reason))
	}
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; {
		body = httpGet("http://" + httpAddr + "/metrics")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(body, w+"\n")
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics of gtsm process never showed %q:\n%s\n%s", want, grepLines(body, "gtsm_"), gp.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	gp.cmd.Process.Signal(syscall.SIGTERM)
	if err := gp.wait(time.Minute); err != nil {
		t.Errorf("gtsm process: %v\n%s", err, gp.stderr)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM dead_letters`); n != int64(len(poison)) {
		t.Errorf("dead_letters has %d rows, want %d", n, len(poison))
	}
	if n := queryInt(t, db, `SELECT count(*) FROM gtsm_etl`); n != 3600+1200 {
		t.Errorf("gtsm_etl has %d rows, want %d (every good record before and after the poison)", n, 3600+1200)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM gtsm_etl WHERE key_site = 'PZ01'`); n != 0 {
		t.Errorf("%d rows of the poison site stored", n)
	}
}

func httpGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
