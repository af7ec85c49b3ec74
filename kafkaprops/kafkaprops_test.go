package kafkaprops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func props(t *testing.T, kvs ...string) *Props {
	t.Helper()
	p := &Props{}
	for _, kv := range kvs {
		if err := p.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestSetFileMerge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "client.properties")
	os.WriteFile(path, []byte(`# a comment
! another
client.id = from-file
linger.ms: 20
compression.type zstd
sasl.password=long\
er
`), 0o600)
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := props(t, "client.id=from-flag", "batch.size=1000")
	m := f.Merge(x)
	for k, want := range map[string]string{"client.id": "from-flag", "linger.ms": "20", "compression.type": "zstd",
		"sasl.password": "longer", "batch.size": "1000"} {
		if got, _ := m.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if s := m.String(); strings.Contains(s, "longer") || !strings.Contains(s, "sasl.password=***") {
		t.Errorf("String shows the password: %s", s)
	}
	for _, bad := range []string{"novalue", "=x", ""} {
		if err := (&Props{}).Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
	os.WriteFile(path, []byte("good=1\n=bad\n"), 0o600)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "client.properties:2") {
		t.Errorf("bad line: %v, want the file and line", err)
	}
}

// Unknown and unsupported properties are refused by name, for each client.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		kv, client, want string
	}{
		{"client.idd=x", "franz", `unknown Kafka client property "client.idd" for gtsm produce`},
		{"client.idd=x", "sarama", `unknown Kafka client property "client.idd" for gtsm process`},
		{"session.timeout.ms=6000", "franz", `"session.timeout.ms"`},                   // a consumer's
		{"queue.buffering.max.messages=5", "sarama", `"queue.buffering.max.messages"`}, // franz only
		{"acks=1", "franz", "needs acks=all"},
		{"enable.idempotence=false", "franz", "always idempotent"},
		{"compression.type=brotli", "franz", `compression.type: "brotli"`},
		{"compression.type=brotli", "sarama", `compression.type: "brotli"`},
		{"linger.ms=soon", "franz", "want milliseconds"},
		{"security.protocol=SASL_SSL", "franz", "needs sasl.mechanism"},
		{"sasl.mechanism=GSSAPI", "sarama", `sasl.mechanism "GSSAPI"`},
		{"sasl.mechanism=PLAIN", "franz", "needs sasl.username"},
		{"ssl.certificate.location=a.pem", "franz", "go together"},
		{"ssl.ca.location=/nonexistent/ca.pem", "franz", "/nonexistent/ca.pem"},
	} {
		p := props(t, tc.kv)
		var err error
		if tc.client == "franz" {
			_, err = p.Franz()
		} else {
			_, _, err = p.Sarama()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s on %s: %v, want %q", tc.kv, tc.client, err, tc.want)
		}
	}
}

// clientIDs wraps a listener and records the client id of every request it
// carries (Kafka request header v1+: size, api key, version, correlation
// id, then the client id as an int16-length string).
type clientIDs struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (c *clientIDs) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id := range c.ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

type sniffConn struct {
	net.Conn
	c   *clientIDs
	buf []byte
}

func (s *sniffConn) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	s.buf = append(s.buf, p[:n]...)
	for len(s.buf) >= 4 {
		size := int(binary.BigEndian.Uint32(s.buf))
		if len(s.buf) < 4+size {
			break
		}
		req := s.buf[4 : 4+size]
		if len(req) >= 10 {
			l := int(int16(binary.BigEndian.Uint16(req[8:])))
			if l >= 0 && 10+l <= len(req) {
				s.c.mu.Lock()
				s.c.ids[string(req[10:10+l])] = true
				s.c.mu.Unlock()
			}
		}
		s.buf = s.buf[4+size:]
	}
	return n, err
}

type sniffListener struct {
	net.Listener
	c *clientIDs
}

func (l sniffListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: conn, c: l.c}, nil
}

func sniffingCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, *clientIDs) {
	t.Helper()
	ids := &clientIDs{ids: map[string]bool{}}
	opts = append(opts, kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "t"),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			l, err := net.Listen(network, addr)
			return sniffListener{l, ids}, err
		}))
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, ids
}

// produce sends one record with the properties' options after base ones and
// reads it back; it returns the record's batch compression codec.
func produce(t *testing.T, c *kfake.Cluster, p *Props, base ...kgo.Opt) (int8, error) {
	t.Helper()
	extra, err := p.Franz()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("t"),
		kgo.RecordRetries(2), kgo.RequestRetries(1)}, base...), extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strings.Repeat("strain ", 100))}).FirstErr(); err != nil {
		return 0, err
	}
	read, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return 0, err
	}
	defer read.Close()
	for {
		fs := read.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		if recs := fs.Records(); len(recs) > 0 {
			return int8(recs[len(recs)-1].Attrs.CompressionType()), nil
		}
	}
}

// probe makes one metadata request with the properties' options and
// returns its error (a connection or authentication failure).
func probe(t *testing.T, c *kfake.Cluster, p *Props) error {
	t.Helper()
	extra, err := p.Franz()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequestRetries(0)}, extra...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	return err
}

// The franz-go mapping, checked against a real (kfake) broker: the client id
// the broker sees, the compression of the stored batch, SASL and TLS.
func TestFranzAgainstBroker(t *testing.T) {
	t.Run("client.id and compression", func(t *testing.T) {
		c, ids := sniffingCluster(t)
		for _, tc := range []struct {
			codec string
			want  int8 // Kafka's attribute bits: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
		}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
			got, err := produce(t, c, props(t, "client.id=gtsm-x-"+tc.codec, "compression.type="+tc.codec, "linger.ms=1"),
				kgo.ClientID("from-flags"), kgo.ProducerBatchCompression(kgo.SnappyCompression()))
			if err != nil {
				t.Fatalf("%s: %v", tc.codec, err)
			}
			if got != tc.want {
				t.Errorf("compression.type=%s: stored batch has codec %d, want %d", tc.codec, got, tc.want)
			}
			if !slices.Contains(ids.seen(), "gtsm-x-"+tc.codec) {
				t.Errorf("client.id=gtsm-x-%s: broker saw %v", tc.codec, ids.seen())
			}
		}
		if slices.Contains(ids.seen(), "from-flags") {
			t.Errorf("-X client.id did not win over the flag's: broker saw %v", ids.seen())
		}
	})
	serverTLS, ca := selfSigned(t)
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run("SASL_SSL "+m, func(t *testing.T) {
			c, _ := sniffingCluster(t, kfake.EnableSASL(), kfake.Superuser(m, "gtsm", "s3cret"), kfake.TLS(serverTLS))
			good := []string{"security.protocol=SASL_SSL", "sasl.mechanisms=" + m, "sasl.username=gtsm", "ssl.ca.location=" + ca}
			if _, err := produce(t, c, props(t, append(good, "sasl.password=s3cret")...)); err != nil {
				t.Fatalf("right password: %v", err)
			}
			// kfake closes the connection on a failed authentication (EOF).
			if err := probe(t, c, props(t, append(good, "sasl.password=wrong")...)); err == nil {
				t.Fatal("wrong password: the broker answered")
			}
			if err := probe(t, c, props(t, append(good, "sasl.password=s3cret")...)); err != nil {
				t.Fatalf("right password, metadata: %v", err)
			}
			// TLS without the CA: the broker's certificate is refused...
			if err := probe(t, c, props(t, "security.protocol=SASL_SSL", "sasl.mechanism="+m, "sasl.username=gtsm", "sasl.password=s3cret")); err == nil ||
				!strings.Contains(err.Error(), "certificate") {
				t.Fatalf("unknown CA: %v, want a certificate error", err)
			}
			// ...unless verification is off.
			if _, err := produce(t, c, props(t, "security.protocol=SASL_SSL", "sasl.mechanism="+m, "sasl.username=gtsm", "sasl.password=s3cret",
				"enable.ssl.certificate.verification=false")); err != nil {
				t.Fatalf("verification off: %v", err)
			}
		})
	}
}

// The sarama mapping, checked against a real (kfake) broker: the client id
// it sees and the session timeout a consumer group joins with.
func TestSaramaAgainstBroker(t *testing.T) {
	c, ids := sniffingCluster(t)
	joins := make(chan *kmsg.JoinGroupRequest, 10)
	c.ControlKey(int16(kmsg.JoinGroup), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case joins <- r.(*kmsg.JoinGroupRequest):
		default:
		}
		return nil, nil, false
	})
	sec, apply, err := props(t, "client.id=gtsm-sarama-x", "session.timeout.ms=7000", "heartbeat.interval.ms=2000",
		"max.poll.interval.ms=9000", "fetch.wait.max.ms=50", "compression.type=lz4").Sarama()
	if err != nil {
		t.Fatal(err)
	}
	if sec.TLSSet || sec.SASLSet {
		t.Errorf("security %+v from no security property", sec)
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.ClientID = "from-flags"
	if err := apply(sc); err != nil {
		t.Fatal(err)
	}
	if sc.Consumer.MaxWaitTime != 50*time.Millisecond || sc.Producer.Compression != sarama.CompressionLZ4 {
		t.Errorf("fetch wait %v, compression %v", sc.Consumer.MaxWaitTime, sc.Producer.Compression)
	}
	g, err := sarama.NewConsumerGroup(c.ListenAddrs(), "g", sc)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go g.Consume(ctx, []string{"t"}, handler{cancel})
	select {
	case j := <-joins:
		if j.SessionTimeoutMillis != 7000 || j.RebalanceTimeoutMillis != 9000 {
			t.Errorf("join: session timeout %d ms, rebalance %d ms; want 7000, 9000", j.SessionTimeoutMillis, j.RebalanceTimeoutMillis)
		}
	case <-ctx.Done():
		t.Fatal("no JoinGroup")
	}
	if !slices.Contains(ids.seen(), "gtsm-sarama-x") || slices.Contains(ids.seen(), "from-flags") {
		t.Errorf("client.id: broker saw %v, want gtsm-sarama-x only", ids.seen())
	}

	sec, _, err = props(t, "security.protocol=SASL_PLAINTEXT", "sasl.mechanism=scram-sha-512", "sasl.username=u", "sasl.password=p").Sarama()
	if err != nil || !sec.SASLSet || sec.TLS != nil || sec.SASLMechanism != "SCRAM-SHA-512" || sec.User != "u" || sec.Password != "p" {
		t.Errorf("SASL security %+v, %v", sec, err)
	}
}

type handler struct{ done func() }

func (handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	h.done()
	return nil
}

// selfSigned returns a server TLS config for 127.0.0.1 and the path of its
// certificate as a PEM CA file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gtsm test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, ca
}

// docs/cli.md's table lists exactly the properties each client takes.
func TestDocsTable(t *testing.T) {
	b, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		cells := strings.Split(l, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		key := strings.Trim(strings.Fields(cells[1])[0], "`")
		got[key] = [2]bool{strings.TrimSpace(cells[2]) == "yes", strings.TrimSpace(cells[3]) == "yes"}
	}
	franz, sar := Known("franz"), Known("sarama")
	for k := range table {
		_, f := franz[k]
		_, s := sar[k]
		if g, ok := got[k]; !ok || g != [2]bool{f, s} {
			t.Errorf("docs/cli.md: %s listed %v (%v), want produce %v, process %v", k, g, ok, f, s)
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("docs/cli.md lists %s, which no client takes", k)
	}
}
