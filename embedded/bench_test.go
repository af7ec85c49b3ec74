package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkSyncWritesCost measures what Config.SyncWrites (fsync of every
// produced batch before its acknowledgement) costs the producer: the same
// records, produced the way `gtsm produce` does (acks=all, idempotent,
// snappy, linger 5 ms, 3 partitions, ~125-byte key+value), into a
// persistent embedded broker with and without it. The two modes alternate
// within one run so that the shared machine's load hits both alike; each
// reports records/s (median of its rounds) and the fsync'd batch size.
//
//	go test ./embedded -run '^$' -bench SyncWritesCost -benchtime 1x
func BenchmarkSyncWritesCost(b *testing.B) {
	const records, rounds = 200_000, 3
	// Values as varied as the Avro records' (which snappy shrinks ~4x):
	// random bytes over a 16-letter alphabet, one value per record.
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([][]byte, records)
	for i := range values {
		v := make([]byte, 110)
		for j := range v {
			v[j] = byte('a' + rng.IntN(16))
		}
		values[i] = v
	}
	rates := map[bool][]float64{}
	for range b.N {
		for r := range rounds {
			for _, sync := range []bool{r%2 == 1, r%2 == 0} {
				rates[sync] = append(rates[sync], produceRate(b, sync, values))
			}
		}
	}
	for _, sync := range []bool{false, true} {
		name := "rec/s-pagecache"
		if sync {
			name = "rec/s-syncwrites"
		}
		b.ReportMetric(median(rates[sync]), name)
		b.Logf("%s: %v", name, rates[sync])
	}
	b.ReportMetric(0, "ns/op")
}

func produceRate(b *testing.B, syncWrites bool, values [][]byte) float64 {
	records := len(values)
	b.Helper()
	s, err := Start(Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: b.TempDir(), Partitions: 3, SyncWrites: syncWrites})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.SnappyCompression()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	// Create the topic before the clock starts.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "bench", Value: values[0]}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	wg.Add(records)
	start := time.Now()
	for i := range records {
		key := fmt.Appendf(nil, "B%03d", i%50)
		cl.Produce(ctx, &kgo.Record{Topic: "bench", Key: key, Value: values[i]}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				ferr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	el := time.Since(start)
	if ferr != nil {
		b.Fatal(ferr)
	}
	return float64(records) / el.Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkRebuildProducerState measures what the producer-state rebuild adds
// to a start: it reads every segment once more than kfake's own load. One op
// is one rebuild over a data directory holding the given records; the
// whole Start (kfake's load included) is reported alongside.
//
//	go test ./embedded -run '^$' -bench RebuildProducerState -benchtime 3x
func BenchmarkRebuildProducerState(b *testing.B) {
	const records = 500_000
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([][]byte, records)
	for i := range values {
		v := make([]byte, 110)
		for j := range v {
			v[j] = byte('a' + rng.IntN(16))
		}
		values[i] = v
	}
	dir := b.TempDir()
	cfg := Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: dir, Partitions: 3}
	s, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.AllowAutoTopicCreation(),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(records)
	for i := range records {
		cl.Produce(ctx, &kgo.Record{Topic: "bench", Key: fmt.Appendf(nil, "B%03d", i%50), Value: values[i]}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	cl.Close()
	s.Close()

	b.ResetTimer()
	for range b.N {
		if err := rebuildProducerState(filepath.Join(dir, "kafka")); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	start := time.Now()
	s2, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "s/Start")
	s2.Close()
}
