package producer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// siteDay is a 20-sps site-day written once per test binary: 1440 minutes x
// 4 channels of 1200 samples = 1,728,000 records.
var siteDay struct {
	once sync.Once
	dir  string
	err  error
}

const siteDayRecords = 1440 * 1200

// TestMain removes the site-day directory shared by the benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	if siteDay.dir != "" {
		os.RemoveAll(siteDay.dir)
	}
	os.Exit(code)
}

func siteDayDir(b *testing.B) string {
	siteDay.once.Do(func() {
		siteDay.dir, siteDay.err = os.MkdirTemp("", "gtsm-siteday-")
		if siteDay.err == nil {
			writeStrain(b, siteDay.dir, "B009", bottle.Min, time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC), 1440)
		}
	})
	if siteDay.err != nil {
		b.Fatal(siteDay.err)
	}
	return siteDay.dir
}

// kcatInput writes the run's exact messages (same keys, same values, same
// order) as kcat -P input: key TAB value NEWLINE. Bytes 0x09 and 0x0A inside
// keys and values are replaced by 0x0B so the delimiters stay unambiguous;
// sizes stay identical and contents nearly so.
func kcatInput(b *testing.B, dir, registryURL, path string) int {
	serde := testSerde(b, registryURL)
	want := expected(b, dir)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	clean := func(p []byte) []byte {
		for i, c := range p {
			if c == '\t' || c == '\n' {
				p[i] = 0x0B
			}
		}
		return p
	}
	var buf []byte
	n := 0
	for s, recs := range want {
		key := clean(serde.AppendKey(nil, s.site))
		for i := range recs {
			buf = serde.AppendValue(buf[:0], &recs[i])
			w.Write(key)
			w.WriteByte('\t')
			w.Write(clean(buf))
			w.WriteByte('\n')
			n++
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkProduceSiteDay publishes a 20-sps site-day (1.73M records) from
// bottle files into the embedded broker (parse + merge + encode + send +
// acknowledged), and in the same iteration has kcat -P send the same
// pre-encoded messages to the same broker with the same settings (acks=all,
// idempotence, compression, linger). Metrics: records/s of both and their
// ratio. Per compression codec:
//
//	go test ./producer -run '^$' -bench ProduceSiteDay -benchtime 1x -count 3
func BenchmarkProduceSiteDay(b *testing.B) {
	dir := siteDayDir(b)
	st := startStack(b)
	kcat, kcatErr := exec.LookPath("kcat")
	kin := filepath.Join(b.TempDir(), "kcat.in")
	if kcatErr == nil {
		if n := kcatInput(b, dir, st.RegistryURL, kin); n != siteDayRecords {
			b.Fatalf("kcat input has %d messages, want %d", n, siteDayRecords)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	run := 0
	for _, codec := range []string{"none", "lz4", "snappy", "zstd"} {
		b.Run(codec, func(b *testing.B) {
			var ours, theirs float64
			for i := 0; i < b.N; i++ {
				run++
				topic := fmt.Sprintf("bench_%s_%d", codec, run)
				opt := stackOptions(st, 3)
				opt.Topic = topic
				opt.Kafka.Compression = codec
				sum, err := Run(context.Background(), []string{dir}, opt)
				if err != nil {
					b.Fatal(err)
				}
				if sum.Records != siteDayRecords {
					b.Fatalf("delivered %d, want %d", sum.Records, siteDayRecords)
				}
				ours += sum.Rate()
				adm.DeleteTopics(context.Background(), topic) // free the broker's memory

				if kcatErr != nil {
					continue
				}
				ktopic := topic + "_kcat"
				if _, err := adm.CreateTopic(context.Background(), 3, -1, nil, ktopic); err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command(kcat, "-P", "-b", st.BootstrapServers, "-t", ktopic, "-K", "\t",
					"-z", codec, "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "linger.ms=5",
					"-X", "topic.partitioner=murmur2_random")
				in, err := os.Open(kin) // stdin: a file argument would be one message
				if err != nil {
					b.Fatal(err)
				}
				cmd.Stdin = in
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("kcat -P: %v\n%s", err, out)
				}
				in.Close()
				theirs += float64(siteDayRecords) / time.Since(start).Seconds()
				hw, err := adm.ListEndOffsets(context.Background(), ktopic)
				if err != nil {
					b.Fatal(err)
				}
				var n int64
				hw.Each(func(o kadm.ListedOffset) { n += o.Offset })
				if n != siteDayRecords {
					b.Fatalf("kcat delivered %d, want %d", n, siteDayRecords)
				}
				adm.DeleteTopics(context.Background(), ktopic)
			}
			b.ReportMetric(ours/float64(b.N), "records/s")
			if kcatErr == nil {
				b.ReportMetric(theirs/float64(b.N), "kcat_records/s")
				b.ReportMetric(ours/theirs, "ratio")
			} else {
				b.Log("kcat not installed: no baseline")
			}
		})
	}
}
