package producer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkClients isolates the Kafka client choice: the site-day's
// pre-encoded messages (same keys and values as gtsm produce sends) go to
// the embedded broker through kgo (as the producer configures it) and
// through sarama's AsyncProducer (what goka uses), both acks=all,
// idempotent, snappy, murmur2 partitioning.
//
//	go test ./producer -run '^$' -bench Clients -benchtime 1x -count 3
func BenchmarkClients(b *testing.B) {
	dir := siteDayDir(b)
	st := startStack(b)
	serde := testSerde(b, st.RegistryURL)
	type msg struct{ key, value []byte }
	var msgs []msg
	for s, recs := range expected(b, dir) {
		key := serde.AppendKey(nil, s.site)
		for i := range recs {
			msgs = append(msgs, msg{key, serde.AppendValue(nil, &recs[i])})
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	run := 0
	topic := func(name string) string {
		run++
		t := fmt.Sprintf("clients_%s_%d", name, run)
		if _, err := adm.CreateTopic(context.Background(), 3, -1, nil, t); err != nil {
			b.Fatal(err)
		}
		return t
	}

	b.Run("kgo", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			t := topic("kgo")
			opts, err := Kafka{Brokers: []string{st.BootstrapServers}}.Opts()
			if err != nil {
				b.Fatal(err)
			}
			p, err := kgo.NewClient(opts...)
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]kgo.Record, len(msgs))
			var failed sync.Once
			var ferr error
			start := time.Now()
			for j, m := range msgs {
				r := &recs[j]
				r.Topic, r.Key, r.Value, r.Partition = t, m.key, m.value, partition.For(m.key, 3)
				p.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Do(func() { ferr = err })
					}
				})
			}
			if err := p.Flush(context.Background()); err != nil || ferr != nil {
				b.Fatal(err, ferr)
			}
			b.ReportMetric(float64(len(msgs))/time.Since(start).Seconds(), "records/s")
			p.Close()
			adm.DeleteTopics(context.Background(), t)
		}
	})

	b.Run("sarama", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			t := topic("sarama")
			cfg := sarama.NewConfig()
			cfg.Version = sarama.V3_0_0_0
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1 // sarama requires 1 with idempotence
			cfg.Producer.Compression = sarama.CompressionSnappy
			cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
			cfg.Producer.Flush.Frequency = 5 * time.Millisecond
			cfg.Producer.Flush.Bytes = 1 << 20
			cfg.Producer.Return.Successes = true
			p, err := sarama.NewAsyncProducer([]string{st.BootstrapServers}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			var n int
			var perr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				for n < len(msgs) {
					select {
					case <-p.Successes():
						n++
					case e := <-p.Errors():
						perr = e.Err
						n++
					}
				}
			}()
			for _, m := range msgs {
				p.Input() <- &sarama.ProducerMessage{Topic: t, Key: sarama.ByteEncoder(m.key), Value: sarama.ByteEncoder(m.value)}
			}
			<-done
			if perr != nil {
				b.Fatal(perr)
			}
			b.ReportMetric(float64(len(msgs))/time.Since(start).Seconds(), "records/s")
			p.Close()
			adm.DeleteTopics(context.Background(), t)
		}
	})
}
