package embedded

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

const keySchema = `{"type":"record","name":"gtsm_etl","namespace":"gtsm_etl","fields":[{"name":"site","type":"string"}]}`

// The broker speaks real Kafka and the registry keeps its ids across a restart
// from the same data directory.
func TestStackPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: dir}

	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := sr.NewClient(sr.URLs(s.RegistryURL))
	ss, err := reg.CreateSchema(ctx, "gtsm_etl-key", sr.Schema{Schema: keySchema})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Key: []byte("B009"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	s.Close()

	s2, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	reg2, _ := sr.NewClient(sr.URLs(s2.RegistryURL))
	got, err := reg2.SchemaByID(ctx, ss.ID)
	if err != nil {
		t.Fatalf("schema id %d lost across restart: %v", ss.ID, err)
	}
	if got.Schema != keySchema {
		t.Fatalf("schema %d after restart = %s", ss.ID, got.Schema)
	}
	cl2, _ := kgo.NewClient(kgo.SeedBrokers(s2.BootstrapServers), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl2.Close()
	fs := cl2.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "v1" {
		t.Fatalf("records after restart: %d, want the 1 produced", len(recs))
	}
}

func TestPortInUseNamesAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	_, err = Start(Config{KafkaAddr: addr, RegistryAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Start on busy %s: err = %v, want an 'in use' error naming it", addr, err)
	}
}
