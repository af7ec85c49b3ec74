package faults

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
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
