// Package embedded runs the no-Docker default stack in-process: a real
// Kafka-protocol broker (kfake) and a Confluent-compatible schema registry
// (srfake), both on loopback, both persistent in a data directory.
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Defaults match the original compose stack's host listeners.
const (
	DefaultKafkaAddr    = "127.0.0.1:19092"
	DefaultRegistryAddr = "127.0.0.1:8081"
)

// Config says where the stack listens and keeps its data.
type Config struct {
	KafkaAddr    string // host:port; port 0 picks a free one. Only 127.0.0.1 is served by kfake.
	RegistryAddr string // host:port; port 0 picks a free one
	DataDir      string // "" keeps everything in memory
	Partitions   int    // partitions of auto-created topics (default 1)
	// SyncWrites fsyncs every produced batch before it is acknowledged
	// (kfake.SyncWrites), so acknowledged records survive a machine crash
	// or power loss. Surviving kill -9 of the broker does not need it:
	// kfake writes every batch to its segment file before answering, and
	// the page cache outlives the process. Its cost is measured in
	// docs/performance.md.
	SyncWrites bool
}

// Stack is a running broker and registry.
type Stack struct {
	Cluster  *kfake.Cluster
	Registry *srfake.Registry

	BootstrapServers string // host:port of the broker
	RegistryURL      string // http://host:port of the registry

	srv      *http.Server
	ln       net.Listener
	regFile  string
	mu       sync.Mutex // guards saving the registry file
	closeErr error
	once     sync.Once
}

// Start brings up the broker and the registry. A port already in use is an
// error that names the address, so the caller can suggest another.
func Start(cfg Config) (*Stack, error) {
	if cfg.KafkaAddr == "" {
		cfg.KafkaAddr = DefaultKafkaAddr
	}
	if cfg.RegistryAddr == "" {
		cfg.RegistryAddr = DefaultRegistryAddr
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	host, portStr, err := net.SplitHostPort(cfg.KafkaAddr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: %w", cfg.KafkaAddr, err)
	}
	if host != "127.0.0.1" && host != "localhost" {
		return nil, fmt.Errorf("kafka address %q: the embedded broker listens on 127.0.0.1 only", cfg.KafkaAddr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: bad port", cfg.KafkaAddr)
	}
	// Probe the port first: kfake's own error does not say which address.
	if port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", portStr))
		if err != nil {
			return nil, fmt.Errorf("kafka address %s is in use (another broker or demo running?); choose another port: %w", cfg.KafkaAddr, err)
		}
		l.Close()
	}
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.ClusterID("gtsm-embedded"),
	}
	var regFile string
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		kdir := filepath.Join(cfg.DataDir, "kafka")
		// Before kfake loads the directory: after a kill the producers'
		// sequence windows on disk are stale (see seqwindows.go).
		if err := rebuildProducerState(kdir); err != nil {
			return nil, fmt.Errorf("recover broker producer state in %s: %w", kdir, err)
		}
		opts = append(opts, kfake.DataDir(kdir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
		regFile = filepath.Join(cfg.DataDir, "schemas.json")
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.KafkaAddr, err)
	}
	s := &Stack{Cluster: cluster, BootstrapServers: cluster.ListenAddrs()[0], regFile: regFile}

	s.Registry = srfake.NewRegistry()
	if err := s.loadSchemas(); err != nil {
		cluster.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.RegistryAddr)
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("schema registry address %s is in use or invalid; choose another port: %w", cfg.RegistryAddr, err)
	}
	s.ln = ln
	s.RegistryURL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.persisting(s.Registry.Handler()), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// persisted is one registered schema as saved in schemas.json.
type persisted struct {
	Subject string    `json:"subject"`
	Version int       `json:"version"`
	ID      int       `json:"id"`
	Schema  sr.Schema `json:"schema"`
}

// loadSchemas re-seeds the registry from the data directory, so schema ids
// stay the same across restarts (the ids are baked into every stored message).
func (s *Stack) loadSchemas() error {
	if s.regFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.regFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read registry state: %w", err)
	}
	var all []persisted
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("registry state %s: %w", s.regFile, err)
	}
	for _, p := range all {
		s.Registry.SeedSchema(p.Subject, p.Version, p.ID, p.Schema)
	}
	return nil
}

// persisting saves the registry's schemas after every successful write
// request. The registry is tiny (a handful of schemas), so rewriting the whole
// file is simpler than a log and atomic through rename.
func (s *Stack) persisting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if s.regFile != "" && r.Method != http.MethodGet {
			if err := s.saveSchemas(r.Context()); err != nil {
				fmt.Fprintf(os.Stderr, "embedded registry: saving %s: %v\n", s.regFile, err)
			}
		}
	})
}

func (s *Stack) saveSchemas(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := sr.NewClient(sr.URLs(s.RegistryURL))
	if err != nil {
		return err
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil {
		return err
	}
	var all []persisted
	for _, subj := range subjects {
		versions, err := cl.SubjectVersions(ctx, subj)
		if err != nil {
			return err
		}
		for _, v := range versions {
			ss, err := cl.SchemaByVersion(ctx, subj, v)
			if err != nil {
				return err
			}
			all = append(all, persisted{Subject: subj, Version: ss.Version, ID: ss.ID, Schema: ss.Schema})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].ID < all[j].ID || all[i].ID == all[j].ID && all[i].Subject < all[j].Subject
	})
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.regFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.regFile)
}

// Close stops the registry and the broker (which flushes its data directory).
func (s *Stack) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.closeErr = s.srv.Shutdown(ctx)
		s.Cluster.Close()
	})
	return s.closeErr
}
