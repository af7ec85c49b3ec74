package producer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

// fixture returns testdata/<name> of the repository.
func fixture(t testing.TB, name string) string {
	p := filepath.Join(testutil.RepoRoot(t), "testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s missing: %v", p, err)
	}
	return p
}

// strainName is the bottle file name of channel ch of a site for the period
// starting at t (a minute for Min, an hour for Hour, a day for Day).
func strainName(site string, s bottle.Session, t time.Time, ch int) string {
	base := fmt.Sprintf("%s%02d%03d", site, t.Year()%100, t.YearDay())
	switch s {
	case bottle.Min:
		return fmt.Sprintf("%s%02d%02dCH%d_20", base, t.Hour(), t.Minute(), ch)
	case bottle.Hour:
		return fmt.Sprintf("%s%02dCH%d", base, t.Hour(), ch)
	}
	return fmt.Sprintf("%sCH%d", base, ch)
}

// writeStrain writes `periods` consecutive periods of the four strain
// channels of one site and session into dir, with values that differ per
// site, channel and sample (so a mix-up cannot go unnoticed), and returns the
// paths in the order written.
func writeStrain(t testing.TB, dir, site string, s bottle.Session, start time.Time, periods int) []string {
	t.Helper()
	var step time.Duration
	var n int
	var interval float32
	switch s {
	case bottle.Min:
		step, n, interval = time.Minute, 1200, 0.05
	case bottle.Hour:
		step, n, interval = time.Hour, 3600, 1
	default:
		step, n, interval = 24*time.Hour, 144, 600
	}
	var paths []string
	buf := []byte{}
	for p := 0; p < periods; p++ {
		ts := start.Add(time.Duration(p) * step)
		for ch := 0; ch < 4; ch++ {
			v := make([]int32, n)
			for i := range v {
				v[i] = int32(40_000_000 + int(site[3])*100_000 + ch*1_000_000 + (p*n+i)%50_000)
			}
			f := &bottle.File{Header: bottle.Header{Start: float64(ts.Unix()), Interval: interval,
				DataType: bottle.Int32, Missing: 999999}, Ints: v}
			var err error
			buf, err = bottle.Append(buf[:0], f)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, strainName(site, s, ts, ch))
			if err := os.WriteFile(path, buf, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, path)
		}
	}
	return paths
}

// expected computes, independently of the producer's pipeline, the records
// each stream must carry in order: every file read with bottle.ReadFile,
// grouped by site, session and the period in its name, Merged, concatenated
// in period order.
func expected(t testing.TB, dirs ...string) map[stream][]record.Record {
	t.Helper()
	type key struct {
		stream
		period int64
	}
	groups := map[key][]*bottle.File{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			if _, err := bottle.ParseName(de.Name()); err != nil {
				return nil // README etc.
			}
			f, err := bottle.ReadFile(p)
			if err != nil {
				return err
			}
			k := key{stream{f.Info.Site, f.Info.Session}, periodStart(f.Info)}
			groups[k] = append(groups[k], f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].period < keys[j].period })
	out := map[stream][]record.Record{}
	for _, k := range keys {
		recs, err := record.Merge(groups[k])
		if err != nil {
			t.Fatal(err)
		}
		out[k.stream] = append(out[k.stream], recs...)
	}
	return out
}

// startStack starts the embedded broker and registry for one test.
func startStack(t testing.TB) *embedded.Stack {
	t.Helper()
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func stackOptions(st *embedded.Stack, partitions int32) Options {
	return Options{
		Kafka:      Kafka{Brokers: []string{st.BootstrapServers}},
		Registry:   registry.Config{URL: st.RegistryURL},
		Partitions: partitions,
	}
}

// consumed is one record read back from the topic.
type consumed struct {
	partition int32
	offset    int64
	key       []byte
	value     []byte
	session   string
}

// consumeAll reads every record of topic from the beginning until n records
// have arrived (or the timeout), in partition/offset order per partition.
func consumeAll(t testing.TB, brokers, topic string, n int64) []consumed {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []consumed
	for int64(len(out)) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the timeout", len(out), n)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c := consumed{partition: r.Partition, offset: r.Offset, key: r.Key, value: r.Value}
			for _, h := range r.Headers {
				if h.Key == record.SessionHeader {
					c.session = string(h.Value)
				}
			}
			out = append(out, c)
		})
	}
	return out
}
