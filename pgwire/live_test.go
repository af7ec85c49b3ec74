package pgwire_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// TestPsqlAgainstLiveProcessor: the real processor consumes gtsm_etl from
// the embedded broker (kfake + srfake) into DuckDB and serves it; psql
// queries it while records keep arriving and must only ever see committed
// batches: the stored rows and the Kafka offsets (committed in the same
// transaction) always agree.
func TestPsqlAgainstLiveProcessor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and the processor")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const topic = "gtsm_etl"
	rc, err := registry.New(registry.Config{URL: st.RegistryURL})
	if err != nil {
		t.Fatal(err)
	}
	k, v, err := registry.LoadSchemas(ctx, rc, "", topic)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := registry.NewSerde(ctx, rc, topic, k, v)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	p, err := processor.New(ctx, processor.Config{
		Brokers: []string{st.BootstrapServers}, Topic: topic, DBPath: filepath.Join(t.TempDir(), "live.duckdb"),
		Registry: registry.Config{URL: st.RegistryURL}, BatchRows: 2000, FlushInterval: 50 * time.Millisecond,
		Logger: pgwire.Quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgwire.Listen(p.DB(), pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()
	defer func() {
		srv.Close() // before Run closes the database
		cancel()
		if err := <-runErr; err != nil && ctx.Err() == nil {
			t.Errorf("processor: %v", err)
		}
	}()
	e := &endpoint{addr: srv.Addr().String()}

	// Publish 40 chunks of 1,000 Hour records (1 sps) of B009, paced, so
	// the processor commits many batches while psql reads.
	const chunks, per = 40, 1000
	pubErr := make(chan error, 1)
	go func() {
		t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		strain := record.StrainFields(bottle.Hour)
		for c := 0; c < chunks; c++ {
			for i := 0; i < per; i++ {
				var r record.Record
				r.SetSite("B009")
				r.SetTime(t0 + int64(c*per+i)*1000)
				r.Session = bottle.Hour
				for j, f := range strain {
					r.SetInt(f, int32(48000000+j+i))
				}
				key := serde.AppendKey(nil, r.Site)
				cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: serde.AppendValue(nil, &r), Partition: partition.For(key, 1),
					Headers: []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte(r.Session.String())}}}, nil)
			}
			if err := cl.Flush(ctx); err != nil {
				pubErr <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		pubErr <- nil
	}()

	q := `SELECT (SELECT count(*) FROM gtsm_etl) AS stored,
	             (SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets) AS applied`
	partial := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := psql(t, e, nil, "-F", " ", "-c", q)
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		var stored, applied int
		if _, err := fmt.Sscanf(strings.TrimSpace(out), "%d %d", &stored, &applied); err != nil {
			t.Fatalf("psql output %q: %v", out, err)
		}
		if stored != applied {
			t.Fatalf("psql saw %d stored rows but Kafka offsets for %d messages: a half-committed batch", stored, applied)
		}
		if stored > 0 && stored < chunks*per {
			partial++
		}
		if stored == chunks*per {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s the processor has stored %d of %d records", stored, chunks*per)
		}
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	if partial == 0 {
		t.Log("psql never caught the processor mid-ingest (it was faster than psql); the consistency check still ran on the final state")
	}
	out, err := psql(t, e, nil, "-c", "SELECT records FROM site_state WHERE site = 'B009' AND session = 'Hour'")
	if err != nil || strings.TrimSpace(out) != fmt.Sprint(chunks*per) {
		t.Errorf("site_state records through psql: %q, %v; want %d", out, err, chunks*per)
	}
	t.Logf("psql saw %d intermediate states", partial)
}
