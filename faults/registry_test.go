package faults

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kgo"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// tcpProxy forwards a fixed loopback address to a target; down closes the
// listener and every connection (clients see refused connections), up
// listens on the same address again.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{addr: freeAddr(t), target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) url() string { return "http://" + p.addr }

func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *tcpProxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// waitFor waits until s() contains sub.
func waitFor(t *testing.T, what string, s func() string, sub string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s(), sub) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q from %s in %v:\n%s", sub, what, timeout, s())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRegistryDownProducer starts `gtsm produce` while the schema registry
// cannot be reached: it must say so, retry with backoff (not fail, not
// spin), and deliver everything once the registry is back.
func TestRegistryDownProducer(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	px := newProxy(t, strings.TrimPrefix(b.registry, "http://"))
	in := t.TempDir()
	want := int64(writeMinSet(t, in, []string{"RG01"}, 3))
	prod := start(t, nil, gtsm(t), "produce", "--bootstrap-servers", b.kafka, "--registry", px.url(), in)
	go func() {
		for range prod.lines {
		}
	}()
	waitFor(t, "gtsm produce", prod.stderr.String, "schema registry unreachable; retrying", 30*time.Second)
	time.Sleep(3 * time.Second)
	select {
	case <-prod.done:
		t.Fatalf("producer gave up while the registry was down: %v\n%s", prod.err, prod.stderr)
	default:
	}
	px.up(t)
	if err := prod.wait(time.Minute); err != nil {
		t.Fatalf("producer after the registry came back: %v\n%s", err, prod.stderr)
	}
	logs := prod.stderr.String()
	retries := strings.Count(logs, "schema registry unreachable; retrying")
	// Backoff 1 s, 2 s, 4 s after ~1.5 s of the client's own retries per
	// try: a few lines in these seconds, not a busy loop.
	if retries < 1 || retries > 4 {
		t.Errorf("%d retry lines while the registry was down ~5 s, want 1..4:\n%s", retries, logs)
	}
	if n := b.messages(t, topic); n != want {
		t.Errorf("%d records in the topic, want %d", n, want)
	}
	t.Logf("registry down at producer start: %d retry lines, then %d records delivered; first line: %s",
		retries, want, firstLine(logs, "unreachable"))
}

// TestRegistryDownProcessor makes the schema registry unreachable (a TCP
// proxy the test controls) when the processor starts, and again mid-run
// when a record written with a schema id the processor has not seen yet
// arrives. Both times the processor must log that it waits, retry with
// backoff without exiting, and continue once the registry is back: every
// record stored, no dead letter.
func TestRegistryDownProcessor(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	px := newProxy(t, strings.TrimPrefix(b.registry, "http://"))
	if code, out := b.produce(t, "--quiet", filepath.Join(testutil.RepoRoot(t), "testdata", "hour")); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, out)
	}
	db := filepath.Join(t.TempDir(), "reg.duckdb")
	p := startProcessor(t, append(b.processEnv(db, "reg", 500), "GTSM_REGISTRY="+px.url()))
	waitFor(t, "processor", p.stderr.String, "schema registry unreachable; retrying", 30*time.Second)
	time.Sleep(3 * time.Second)
	select {
	case <-p.done:
		t.Fatalf("processor exited while the registry was down at start: %v\n%s", p.err, p.stderr)
	default:
	}
	px.up(t)
	waitCommitted(t, p, 3600, time.Minute)
	atStart := strings.Count(p.stderr.String(), "schema registry unreachable; retrying")

	// Mid-run: a new version of the value schema (same fields, another
	// doc, so another id), and a record written with it while the registry
	// is down.
	var sch map[string]any
	if err := json.Unmarshal([]byte(avroschemas.Value), &sch); err != nil {
		t.Fatal(err)
	}
	sch["doc"] = "version 2 (fault test)"
	v2, err := json.Marshal(sch)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := registry.New(registry.Config{URL: b.registry})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := rc.Register(ctx, topic+"-value", string(v2))
	if err != nil {
		t.Fatal(err)
	}
	serde := b.serde(t)
	ls1, _ := record.FieldIndex("ls1_t0")
	var r record.Record
	r.SetSite("RG02")
	r.SetTime(1625097600000)
	r.SetInt(ls1, 7)
	value := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	value = record.AppendAvro(value, &r)
	px.down()
	rec := &kgo.Record{Topic: topic, Key: serde.AppendKey(nil, "RG02"), Value: value,
		Headers: []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte("Hour")}}}
	if err := b.client(t).ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.stderr.String(), "schema registry unreachable; retrying") == atStart {
		if time.Now().After(deadline) {
			t.Fatalf("no retry line for the new schema id %d:\n%s", id, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	select {
	case <-p.done:
		t.Fatalf("processor exited while the registry was down mid-run: %v\n%s", p.err, p.stderr)
	default:
	}
	px.up(t)
	waitCommitted(t, p, 3601, time.Minute)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(time.Minute); err != nil {
		t.Fatalf("processor: %v\n%s", err, p.stderr)
	}
	logs := p.stderr.String()
	if n := queryInt(t, db, `SELECT count(*) FROM gtsm_etl`); n != 3601 {
		t.Errorf("%d rows, want 3601", n)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("%d dead letters, want none (an unreachable registry is not a bad message)", n)
	}
	t.Logf("registry down at start and mid-run (schema id %d): %d retry lines, all 3601 records stored; e.g. %s",
		id, strings.Count(logs, "schema registry unreachable; retrying"), firstLine(logs, "unreachable"))
}
