// Package kafkaprops owns Kafka client properties as kcat, librdkafka and the
// Kafka console tools take them (-X key=value, and a properties file), and
// their mapping onto the two clients gtsm uses: franz-go for gtsm produce
// (Franz) and sarama for gtsm process, through goka (Sarama).
//
// Property names are librdkafka's, with the Java client's names as aliases
// where they differ (linger.ms / queue.buffering.max.ms, sasl.mechanism /
// sasl.mechanisms, ...). A property that the client in question does not
// take is refused by name, never ignored: a mistyped or unsupported key
// would otherwise leave a user believing a setting is in force. Properties
// are applied after the options gtsm derives from its own flags, so a
// property wins over the dedicated flag (as a later -X wins over an earlier
// one, and -X over the file).
package kafkaprops

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/earthscope/gtsm-stream/internal/tlsconfig"
)

// Props is an ordered set of client properties; setting a key again
// replaces its value. The zero value is empty and ready to use. It is a
// pflag.Value (and a flag.Value), so "-X key=value" can fill it.
type Props struct {
	keys []string
	vals map[string]string
	from map[string]string // where each value came from, for errors
}

// Set adds one "key=value" (the form of -X).
func (p *Props) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		// Quoted only if it cannot hold a secret ("sasl.password secret"
		// with a space for the '=').
		shown := strconv.Quote(kv)
		if Secret(kv) {
			shown = "a value naming a secret"
		}
		return fmt.Errorf("%s: want key=value (a Kafka client property, e.g. client.id=gtsm)", shown)
	}
	p.put(k, strings.TrimSpace(v), "-X "+k)
	return nil
}

func (p *Props) put(k, v, from string) {
	if p.vals == nil {
		p.vals, p.from = map[string]string{}, map[string]string{}
	}
	if _, ok := p.vals[k]; !ok {
		p.keys = append(p.keys, k)
	}
	p.vals[k], p.from[k] = v, from
}

// String lists the properties as key=value, comma separated.
func (p *Props) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for i, k := range p.keys {
		if i > 0 {
			b.WriteString(",")
		}
		v := p.vals[k]
		if Secret(k) {
			v = "***"
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// valueError is a refused value's error, naming where the property came
// from; a secret's value (which the error may quote) is left out.
func (p *Props) valueError(k string, err error) error {
	if Secret(k) {
		return fmt.Errorf("%s: %s: the value is not valid (not shown: it is a secret)", p.from[k], k)
	}
	return fmt.Errorf("%s: %s: %w", p.from[k], k, err)
}

// Secret reports whether a property key (or a string that may hold one)
// names a secret whose value must never be shown: passwords, secrets,
// tokens, JAAS configurations and inline private keys.
func Secret(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "secret", "token", "jaas", "credential", "key.pem", "private"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Type names the value in pflag's help.
func (p *Props) Type() string { return "key=value" }

// Len is the number of properties.
func (p *Props) Len() int { return len(p.keys) }

// Get returns a property's value.
func (p *Props) Get(k string) (string, bool) { v, ok := p.vals[k]; return v, ok }

// Merge returns the properties of p overridden by those of q.
func (p *Props) Merge(q *Props) *Props {
	out := &Props{}
	for _, src := range []*Props{p, q} {
		if src == nil {
			continue
		}
		for _, k := range src.keys {
			out.put(k, src.vals[k], src.from[k])
		}
	}
	return out
}

// ReadFile reads a Java-style properties file (what kcat -F and the Kafka
// console tools' --command-config read): "key=value", "key: value" or
// "key value" per line, '#' and '!' comment lines, a trailing backslash
// continues a line.
func ReadFile(path string) (*Props, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("Kafka properties: %w", err)
	}
	defer f.Close()
	p := &Props{}
	sc := bufio.NewScanner(f)
	var cont strings.Builder
	n, start := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 {
			start = n
			if line == "" || line[0] == '#' || line[0] == '!' {
				continue
			}
		}
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		cont.WriteString(line)
		line = cont.String()
		cont.Reset()
		i := strings.IndexAny(line, "=: \t")
		if i <= 0 {
			// Not quoted: the line may be a password.
			return nil, fmt.Errorf("%s:%d: want key=value (a line starting with '=', ':' or a blank)", path, start)
		}
		k := line[:i]
		v := strings.TrimSpace(line[i+1:])
		if line[i] == ' ' || line[i] == '\t' {
			v = strings.TrimSpace(strings.TrimLeft(v, "=:"))
		}
		p.put(k, v, fmt.Sprintf("%s:%d", path, start))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("Kafka properties %s: %w", path, err)
	}
	return p, nil
}

// A property's meaning: how it applies to each client. A nil func means the
// client does not take it.
type property struct {
	franz  func(v string, s *franzState) error
	sarama func(v string, c *sarama.Config, s *saramaState) error
	help   string
}

// franzState gathers what several properties build together (TLS, SASL).
type franzState struct {
	opts []kgo.Opt
	sec  security
}

type saramaState struct{ sec security }

// security is what security.protocol, sasl.* and ssl.* describe together.
type security struct {
	protocol                    string // PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL ("" = not set)
	mechanism, user, password   string
	caFile, certFile, keyFile   string
	verify                      *bool
	anyTLS, anySASL, anyTLSFile bool
}

func (s *security) tls() bool {
	switch s.protocol {
	case "SSL", "SASL_SSL":
		return true
	case "":
		return s.anyTLSFile
	}
	return false
}

func (s *security) sasl() bool {
	switch s.protocol {
	case "SASL_PLAINTEXT", "SASL_SSL":
		return true
	case "":
		return s.mechanism != ""
	}
	return false
}

func (s *security) check() error {
	switch s.protocol {
	case "", "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
	default:
		return fmt.Errorf("security.protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s.protocol)
	}
	if s.protocol != "" && !s.tls() && s.anyTLS {
		return fmt.Errorf("ssl.* properties with security.protocol=%s: want SSL or SASL_SSL", s.protocol)
	}
	if s.protocol != "" && !s.sasl() && s.anySASL {
		return fmt.Errorf("sasl.* properties with security.protocol=%s: want SASL_PLAINTEXT or SASL_SSL", s.protocol)
	}
	if s.sasl() {
		switch s.mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		case "":
			return fmt.Errorf("security.protocol=%s needs sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.protocol)
		default:
			return fmt.Errorf("sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.mechanism)
		}
		if s.user == "" {
			return fmt.Errorf("sasl.mechanism %s needs sasl.username", s.mechanism)
		}
	}
	if (s.certFile == "") != (s.keyFile == "") {
		return fmt.Errorf("ssl.certificate.location and ssl.key.location go together")
	}
	return nil
}

func (s *security) tlsConfig() (*tls.Config, error) {
	insecure := s.verify != nil && !*s.verify
	return tlsconfig.FromFiles("Kafka TLS (-X ssl.*)", s.caFile, s.certFile, s.keyFile, insecure)
}

// Sets reports whether the properties configure TLS or SASL, so a caller
// can refuse doing the same with its own flags as well.
func (p *Props) Sets() (tlsSet, saslSet bool) {
	for _, k := range p.keys {
		k = canonical(k)
		tlsSet = tlsSet || strings.HasPrefix(k, "ssl.") || k == "enable.ssl.certificate.verification" ||
			(k == "security.protocol" && strings.Contains(strings.ToUpper(p.vals[k]), "SSL"))
		saslSet = saslSet || strings.HasPrefix(k, "sasl.") ||
			(k == "security.protocol" && strings.HasPrefix(strings.ToUpper(p.vals[k]), "SASL"))
	}
	return tlsSet, saslSet
}

// aliases maps the Java client's or librdkafka's other names of a property
// to the name used in the table.
var aliases = map[string]string{
	"sasl.mechanisms":                       "sasl.mechanism",
	"compression.codec":                     "compression.type",
	"queue.buffering.max.ms":                "linger.ms",
	"request.required.acks":                 "acks",
	"delivery.timeout.ms":                   "message.timeout.ms",
	"max.in.flight.requests.per.connection": "max.in.flight",
	"fetch.max.wait.ms":                     "fetch.wait.max.ms",
}

func canonical(k string) string {
	if a, ok := aliases[k]; ok {
		return a
	}
	return k
}

func ms(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want milliseconds, a non-negative integer", v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func positive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive integer", v)
	}
	return n, nil
}

func boolean(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q: want true or false", v)
	}
	return b, nil
}

// both applies the same setter to both clients' security state.
func secFranz(f func(string, *security) error) func(string, *franzState) error {
	return func(v string, s *franzState) error { return f(v, &s.sec) }
}

func secSarama(f func(string, *security) error) func(string, *sarama.Config, *saramaState) error {
	return func(v string, _ *sarama.Config, s *saramaState) error { return f(v, &s.sec) }
}

func secProp(help string, f func(string, *security) error) property {
	return property{franz: secFranz(f), sarama: secSarama(f), help: help}
}

// durProp is a milliseconds property with a franz-go option and a sarama field.
func durProp(help string, franz func(time.Duration) kgo.Opt, sar func(time.Duration, *sarama.Config)) property {
	p := property{help: help}
	if franz != nil {
		p.franz = func(v string, s *franzState) error {
			d, err := ms(v)
			if err != nil {
				return err
			}
			s.opts = append(s.opts, franz(d))
			return nil
		}
	}
	if sar != nil {
		p.sarama = func(v string, c *sarama.Config, _ *saramaState) error {
			d, err := ms(v)
			if err != nil {
				return err
			}
			sar(d, c)
			return nil
		}
	}
	return p
}

var table = map[string]property{
	"client.id": {
		help:   "client id the brokers see (logs, quotas)",
		franz:  func(v string, s *franzState) error { s.opts = append(s.opts, kgo.ClientID(v)); return nil },
		sarama: func(v string, c *sarama.Config, _ *saramaState) error { c.ClientID = v; return nil },
	},
	"security.protocol": secProp("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", func(v string, s *security) error {
		s.protocol = strings.ToUpper(v)
		return nil
	}),
	"sasl.mechanism": secProp("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", func(v string, s *security) error {
		s.mechanism, s.anySASL = strings.ToUpper(v), true
		return nil
	}),
	"sasl.username": secProp("SASL user", func(v string, s *security) error { s.user, s.anySASL = v, true; return nil }),
	"sasl.password": secProp("SASL password", func(v string, s *security) error { s.password, s.anySASL = v, true; return nil }),
	"ssl.ca.location": secProp("PEM CA bundle (default: system roots)", func(v string, s *security) error {
		s.caFile, s.anyTLS, s.anyTLSFile = v, true, true
		return nil
	}),
	"ssl.certificate.location": secProp("PEM client certificate", func(v string, s *security) error {
		s.certFile, s.anyTLS, s.anyTLSFile = v, true, true
		return nil
	}),
	"ssl.key.location": secProp("PEM client key", func(v string, s *security) error {
		s.keyFile, s.anyTLS, s.anyTLSFile = v, true, true
		return nil
	}),
	"enable.ssl.certificate.verification": secProp("false: do not verify the broker certificate (testing only)", func(v string, s *security) error {
		b, err := boolean(v)
		s.verify, s.anyTLS = &b, true
		return err
	}),
	"socket.connection.setup.timeout.ms": durProp("TCP (and TLS) connect timeout", kgo.DialTimeout,
		func(d time.Duration, c *sarama.Config) { c.Net.DialTimeout = d }),
	"metadata.max.age.ms": durProp("refresh metadata at least this often", kgo.MetadataMaxAge,
		func(d time.Duration, c *sarama.Config) { c.Metadata.RefreshFrequency = d }),
	"retry.backoff.ms": durProp("wait between retries",
		func(d time.Duration) kgo.Opt { return kgo.RetryBackoffFn(func(int) time.Duration { return d }) },
		func(d time.Duration, c *sarama.Config) {
			c.Metadata.Retry.Backoff, c.Producer.Retry.Backoff, c.Consumer.Retry.Backoff = d, d, d
		}),
	"socket.timeout.ms": durProp("network read/write timeout of a request", nil,
		func(d time.Duration, c *sarama.Config) { c.Net.ReadTimeout, c.Net.WriteTimeout = d, d }),
	"compression.type": {
		help: "none, gzip, snappy, lz4 or zstd",
		franz: func(v string, s *franzState) error {
			codec, err := franzCodec(v)
			if err != nil {
				return err
			}
			s.opts = append(s.opts, kgo.ProducerBatchCompression(codec))
			return nil
		},
		sarama: func(v string, c *sarama.Config, _ *saramaState) error {
			var cc sarama.CompressionCodec
			if err := cc.UnmarshalText([]byte(strings.ToLower(v))); err != nil {
				return fmt.Errorf("%q: want none, gzip, snappy, lz4 or zstd", v)
			}
			c.Producer.Compression = cc
			return nil
		},
	},
	"linger.ms": durProp("how long a partition waits to fill a batch", func(d time.Duration) kgo.Opt { return kgo.ProducerLinger(d) },
		func(d time.Duration, c *sarama.Config) { c.Producer.Flush.Frequency = d }),
	"batch.size": {
		help: "most bytes in one record batch",
		franz: func(v string, s *franzState) error {
			n, err := positive(v)
			if err != nil {
				return err
			}
			s.opts = append(s.opts, kgo.ProducerBatchMaxBytes(int32(min(n, 1<<30))))
			return nil
		},
		sarama: func(v string, c *sarama.Config, _ *saramaState) error {
			n, err := positive(v)
			c.Producer.Flush.Bytes = n
			return err
		},
	},
	"queue.buffering.max.messages": {
		help: "most records waiting for acknowledgement (producing blocks beyond)",
		franz: func(v string, s *franzState) error {
			n, err := positive(v)
			s.opts = append(s.opts, kgo.MaxBufferedRecords(n))
			return err
		},
	},
	"message.timeout.ms": durProp("give up delivering a record after this long (0: never)",
		func(d time.Duration) kgo.Opt { return kgo.RecordDeliveryTimeout(d) }, nil),
	"max.in.flight": {
		help: "produce requests in flight per broker (order is kept by idempotence)",
		franz: func(v string, s *franzState) error {
			n, err := positive(v)
			s.opts = append(s.opts, kgo.MaxProduceRequestsInflightPerBroker(n))
			return err
		},
	},
	"acks": {
		help: "only all (-1): idempotent, exactly-once delivery needs every in-sync replica",
		franz: func(v string, s *franzState) error {
			if v != "all" && v != "-1" {
				return fmt.Errorf("%q: gtsm produce is idempotent, which needs acks=all (-1)", v)
			}
			return nil
		},
	},
	"enable.idempotence": {
		help: "only true: gtsm produce relies on it for order and no duplicates",
		franz: func(v string, s *franzState) error {
			if b, err := boolean(v); err != nil || !b {
				return fmt.Errorf("%q: gtsm produce is always idempotent", v)
			}
			return nil
		},
	},
	"session.timeout.ms": durProp("consumer group session timeout", nil,
		func(d time.Duration, c *sarama.Config) { c.Consumer.Group.Session.Timeout = d }),
	"heartbeat.interval.ms": durProp("consumer group heartbeat interval", nil,
		func(d time.Duration, c *sarama.Config) { c.Consumer.Group.Heartbeat.Interval = d }),
	"max.poll.interval.ms": durProp("the group's rebalance timeout (Java's meaning)", nil,
		func(d time.Duration, c *sarama.Config) { c.Consumer.Group.Rebalance.Timeout = d }),
	"fetch.wait.max.ms": durProp("longest a fetch waits for fetch.min.bytes", nil,
		func(d time.Duration, c *sarama.Config) { c.Consumer.MaxWaitTime = d }),
	"fetch.min.bytes": {
		help: "bytes a fetch waits for (up to fetch.wait.max.ms)",
		sarama: func(v string, c *sarama.Config, _ *saramaState) error {
			n, err := positive(v)
			c.Consumer.Fetch.Min = int32(min(n, 1<<30))
			return err
		},
	},
	"max.partition.fetch.bytes": {
		help: "bytes fetched per partition per request",
		sarama: func(v string, c *sarama.Config, _ *saramaState) error {
			n, err := positive(v)
			c.Consumer.Fetch.Default = int32(min(n, 1<<30))
			return err
		},
	},
}

func franzCodec(v string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(v) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("%q: want none, gzip, snappy, lz4 or zstd", v)
}

// Known lists the properties a client takes ("franz" or "sarama"), sorted,
// with their help, for documentation and error messages.
func Known(client string) map[string]string {
	out := map[string]string{}
	for k, p := range table {
		if (client == "franz" && p.franz != nil) || (client == "sarama" && p.sarama != nil) {
			out[k] = p.help
		}
	}
	return out
}

func unknown(k, client, cmd string) error {
	return fmt.Errorf("unknown Kafka client property %q for %s (known: %s)", k, cmd,
		strings.Join(slices.Sorted(maps.Keys(Known(client))), ", "))
}

// Franz returns the franz-go options the properties ask for, to be applied
// after gtsm produce's own (later options win). An unknown or unsupported
// property is an error naming it and where it came from.
func (p *Props) Franz() ([]kgo.Opt, error) {
	if p == nil {
		return nil, nil
	}
	var s franzState
	for _, k := range p.keys {
		prop, ok := table[canonical(k)]
		if !ok || prop.franz == nil {
			return nil, fmt.Errorf("%s: %w", p.from[k], unknown(k, "franz", "gtsm produce (franz-go)"))
		}
		if err := prop.franz(p.vals[k], &s); err != nil {
			return nil, p.valueError(k, err)
		}
	}
	if err := s.sec.check(); err != nil {
		return nil, err
	}
	if s.sec.tls() {
		c, err := s.sec.tlsConfig()
		if err != nil {
			return nil, err
		}
		s.opts = append(s.opts, kgo.DialTLSConfig(c))
	}
	if s.sec.sasl() {
		u, pw := s.sec.user, s.sec.password
		switch s.sec.mechanism {
		case "PLAIN":
			s.opts = append(s.opts, kgo.SASL(plain.Auth{User: u, Pass: pw}.AsMechanism()))
		case "SCRAM-SHA-256":
			s.opts = append(s.opts, kgo.SASL(scram.Auth{User: u, Pass: pw}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			s.opts = append(s.opts, kgo.SASL(scram.Auth{User: u, Pass: pw}.AsSha512Mechanism()))
		}
	}
	return s.opts, nil
}

// Security is what security.protocol, sasl.* and ssl.* ask of a client that
// is configured by fields (the processor builds its own sarama SASL and TLS
// settings, SCRAM client included, from these).
type Security struct {
	TLSSet  bool        // the properties say whether to use TLS
	TLS     *tls.Config // nil: plaintext
	SASLSet bool        // the properties say whether to use SASL
	// SASLMechanism is "" (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism, User, Password string
}

// Sarama returns what the properties ask of gtsm process: its security
// settings, and a function that applies the rest to a sarama config (after
// the processor's own settings). Every property is checked first: an
// unknown or unsupported one is an error naming it.
func (p *Props) Sarama() (Security, func(*sarama.Config) error, error) {
	var sec Security
	if p == nil || p.Len() == 0 {
		return sec, nil, nil
	}
	apply := func(c *sarama.Config, s *saramaState) error {
		for _, k := range p.keys {
			prop, ok := table[canonical(k)]
			if !ok || prop.sarama == nil {
				return fmt.Errorf("%s: %w", p.from[k], unknown(k, "sarama", "gtsm process (sarama)"))
			}
			if err := prop.sarama(p.vals[k], c, s); err != nil {
				return p.valueError(k, err)
			}
		}
		return s.sec.check()
	}
	// A throwaway config: errors come now, before any connection.
	var s saramaState
	if err := apply(sarama.NewConfig(), &s); err != nil {
		return sec, nil, err
	}
	tlsSet, saslSet := p.Sets()
	sec.TLSSet, sec.SASLSet = tlsSet, saslSet
	if s.sec.tls() {
		tc, err := s.sec.tlsConfig()
		if err != nil {
			return sec, nil, err
		}
		sec.TLS = tc
	}
	if s.sec.sasl() {
		sec.SASLMechanism, sec.User, sec.Password = s.sec.mechanism, s.sec.user, s.sec.password
	}
	return sec, func(c *sarama.Config) error { return apply(c, &saramaState{}) }, nil
}
