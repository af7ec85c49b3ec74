package producer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
	"github.com/twmb/franz-go/pkg/kgo"
)

// multiSiteInputs returns the repository fixtures (B009 Day, Hour, Min)
// plus generated Hour and Min files of three more sites in a temp dir, and
// the directories to compute the expectation from.
func multiSiteInputs(t *testing.T) (inputs []string, dirs []string) {
	gen := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	for _, site := range []string{"B001", "B204", "B921"} {
		writeStrain(t, gen, site, bottle.Hour, t0, 2)
		writeStrain(t, gen, site, bottle.Min, t0, 3)
	}
	dirs = []string{fixture(t, "day"), fixture(t, "hour"), fixture(t, "min"), gen}
	// The generated dir as a quoted glob, the fixtures as directories.
	return append(dirs[:3:3], filepath.Join(gen, "B*")), dirs
}

func TestProduceConsumeBack(t *testing.T) {
	st := startStack(t)
	inputs, dirs := multiSiteInputs(t)
	paths, err := Expand(inputs)
	if err != nil {
		t.Fatal(err)
	}
	want := expected(t, dirs...)
	var total int64
	for _, recs := range want {
		total += int64(len(recs))
	}

	const parts = 5
	sum, err := Run(context.Background(), paths, stackOptions(st, parts))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.Records != total || sum.Partitions != parts || !sum.Created || len(sum.Failed) != 0 {
		t.Fatalf("summary: %d records (want %d), %d partitions (want %d), created %v, failed %v",
			sum.Records, total, sum.Partitions, parts, sum.Created, sum.Failed)
	}
	for _, ss := range sum.Streams {
		if n := int64(len(want[stream{ss.Site, ss.Session}])); ss.Records != n {
			t.Errorf("summary %s %s: %d records, want %d", ss.Site, ss.Session, ss.Records, n)
		}
	}
	if len(sum.Streams) != len(want) {
		t.Errorf("summary has %d streams, want %d", len(sum.Streams), len(want))
	}

	serde := testSerde(t, st.RegistryURL)
	got := consumeAll(t, st.BootstrapServers, "gtsm_etl", total)
	if int64(len(got)) != total {
		t.Fatalf("consumed %d records, want %d", len(got), total)
	}
	ctx := context.Background()
	next := map[stream]int{} // index of the next expected record per stream
	usedParts := map[int32]bool{}
	for _, c := range got {
		site, err := serde.DecodeKey(ctx, c.key)
		if err != nil {
			t.Fatalf("partition %d offset %d: %v", c.partition, c.offset, err)
		}
		if p := partition.For(c.key, parts); c.partition != p {
			t.Fatalf("%s is on partition %d, Java murmur2 says %d", site, c.partition, p)
		}
		usedParts[c.partition] = true
		sess, err := bottle.ParseSession(c.session)
		if err != nil {
			t.Fatalf("partition %d offset %d: header %s: %v", c.partition, c.offset, record.SessionHeader, err)
		}
		var r record.Record
		if err := serde.DecodeValue(ctx, c.value, &r); err != nil {
			t.Fatal(err)
		}
		r.Session = sess
		s := stream{site, sess}
		i := next[s]
		exp := want[s]
		if i >= len(exp) {
			t.Fatalf("%s %s: more records than the %d expected (duplicate?): %s", site, sess, len(exp), r.Timestamp)
		}
		// Consumed per partition in offset order, so this checks the time
		// order of every stream as well as every field.
		if r != exp[i] {
			t.Fatalf("%s %s record %d (partition %d offset %d):\n got %+v\nwant %+v", site, sess, i, c.partition, c.offset, r, exp[i])
		}
		next[s] = i + 1
	}
	for s, exp := range want {
		if next[s] != len(exp) {
			t.Errorf("%s %s: consumed %d of %d records", s.site, s.session, next[s], len(exp))
		}
	}
	if len(usedParts) < 2 {
		t.Errorf("4 sites all landed on %d partition(s) of %d; the test wants a spread", len(usedParts), parts)
	}

	// A second run against the existing topic must not try to create it.
	sum2, err := Run(ctx, paths[:1], stackOptions(st, 99))
	if err != nil || sum2.Created || sum2.Partitions != parts {
		t.Fatalf("second run: err %v, created %v, partitions %d (want the existing %d)", err, sum2.Created, sum2.Partitions, parts)
	}
}

func testSerde(t testing.TB, url string) *registry.Serde {
	t.Helper()
	rc, err := registry.New(registry.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.NewSerde(context.Background(), rc, "gtsm_etl", avroschemas.Key, avroschemas.Value)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// kcat, an independent client (librdkafka), reads the topic: the count, the
// partitions, and the Confluent framing (magic 0 + the registry's ids).
func TestProduceKcatReadsBack(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install -y kcat); CI installs it")
	}
	st := startStack(t)
	gen := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	sites := []string{"B001", "B009", "B204", "B921"}
	for _, site := range sites {
		writeStrain(t, gen, site, bottle.Min, t0, 2)
	}
	const parts = 3
	sum, err := Run(context.Background(), []string{gen}, stackOptions(st, parts))
	if err != nil {
		t.Fatal(err)
	}
	const perSite = 2 * 1200
	if want := int64(len(sites) * perSite); sum.Records != want {
		t.Fatalf("delivered %d, want %d", sum.Records, want)
	}
	serde := testSerde(t, st.RegistryURL)

	// Lengths first, so binary key/value bytes can be cut out exactly.
	cmd := exec.Command(kcat, "-C", "-b", st.BootstrapServers, "-t", "gtsm_etl", "-o", "beginning", "-e", "-q",
		"-f", "%p %K %S|%k|%s\n")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	b := out.Bytes()
	perPart := map[int32]int{}
	sitesSeen := map[string]int{}
	n := 0
	for len(b) > 0 {
		bar := bytes.IndexByte(b, '|')
		var p int32
		var kl, vl int
		if _, err := fmt.Sscanf(string(b[:bar]), "%d %d %d", &p, &kl, &vl); err != nil {
			t.Fatalf("kcat line %d header %q: %v", n, b[:bar], err)
		}
		b = b[bar+1:]
		key, val := b[:kl], b[kl+1:kl+1+vl]
		b = b[kl+1+vl+1:]
		for what, m := range map[string][]byte{"key": key, "value": val} {
			id := serde.KeyID()
			if what == "value" {
				id = serde.ValueID()
			}
			if m[0] != 0 || int(binary.BigEndian.Uint32(m[1:5])) != id {
				t.Fatalf("kcat record %d %s starts % x, want 00 + id %d", n, what, m[:5], id)
			}
		}
		site, err := serde.DecodeKey(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if want := partition.For(key, parts); p != want {
			t.Fatalf("kcat sees %s on partition %d, murmur2 says %d", site, p, want)
		}
		perPart[p]++
		sitesSeen[site]++
		n++
	}
	if n != len(sites)*perSite {
		t.Fatalf("kcat read %d records, want %d", n, len(sites)*perSite)
	}
	for _, s := range sites {
		if sitesSeen[s] != perSite {
			t.Errorf("kcat: %s has %d records, want %d", s, sitesSeen[s], perSite)
		}
	}
	t.Logf("kcat: %d records, per partition %v", n, perPart)
}

// A damaged file among good ones: the good ones are delivered, the bad one
// is named, the run fails; --strict stops at it.
func TestProduceBadInput(t *testing.T) {
	st := startStack(t)
	dir := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	paths := writeStrain(t, dir, "B001", bottle.Hour, t0, 2)
	bad := filepath.Join(dir, strainName("B002", bottle.Hour, t0, 0))
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, data[:1000], 0o644); err != nil { // truncated body
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), []string{dir}, stackOptions(st, 3))
	if err == nil {
		t.Fatal("Run succeeded with a truncated file among the inputs")
	}
	if len(sum.Failed) != 1 || !strings.Contains(sum.Failed[0].Err.Error(), bad) ||
		!strings.Contains(sum.Failed[0].Err.Error(), "truncated") {
		t.Fatalf("failed inputs %v, want one naming %s as truncated", sum.Failed, bad)
	}
	if sum.Records != 2*3600 {
		t.Fatalf("delivered %d records of the good files, want %d", sum.Records, 2*3600)
	}
	var w strings.Builder
	sum.Write(&w)
	if !strings.Contains(w.String(), bad) {
		t.Errorf("summary does not name the bad file:\n%s", w.String())
	}

	// --strict: B001 sorts before B002, so with a buffer bigger than the
	// input nothing has been sent when the walk reaches the bad file.
	opt := stackOptions(st, 3)
	opt.Strict = true
	opt.Topic = "strict_test"
	sum, err = Run(context.Background(), []string{dir}, opt)
	if err == nil || !strings.Contains(err.Error(), "--strict") || sum.Records != 0 {
		t.Fatalf("strict: err %v, %d records delivered; want a --strict error and nothing sent", err, sum.Records)
	}
}

// Cancelling mid-run (Ctrl-C) stops reading, flushes, and the summary counts
// exactly the records that are on the topic.
func TestProduceCancelReportsDelivered(t *testing.T) {
	st := startStack(t)
	dir := t.TempDir()
	writeStrain(t, dir, "B001", bottle.Min, time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC), 120)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := stackOptions(st, 3)
	opt.BufferBytes = 1 << 20 // emit groups while still reading
	// At most 2000 unacknowledged records: the run cannot get far ahead of
	// the acknowledgements, so the cancel lands mid-run on any machine.
	opt.Kafka.MaxBufferedRecords = 2000
	opt.ProgressEvery = time.Millisecond
	opt.Progress = func(p Progress) {
		if p.Records > 0 {
			cancel()
		}
	}
	sum, err := Run(ctx, []string{dir}, opt)
	if err == nil || !sum.Interrupted {
		t.Fatalf("cancelled run: err %v, interrupted %v", err, sum.Interrupted)
	}
	all := int64(120 * 1200)
	if sum.Records == 0 || sum.Records >= all {
		t.Fatalf("cancelled run delivered %d of %d records; want a part", sum.Records, all)
	}
	if sum.Unacked != 0 || sum.RecordsFailed != 0 {
		t.Fatalf("unacked %d failed %d after the flush", sum.Unacked, sum.RecordsFailed)
	}
	got := consumeAll(t, st.BootstrapServers, "gtsm_etl", sum.Records)
	if int64(len(got)) != sum.Records {
		t.Fatalf("topic holds %d records, summary says %d", len(got), sum.Records)
	}
	// Nothing beyond: a short poll must find no more.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics("gtsm_etl"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	var n int64
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	for pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(*kgo.Record) { n++ })
	}
	if n != sum.Records {
		t.Fatalf("topic holds %d records, summary says %d", n, sum.Records)
	}
}

// The dry run needs no broker or registry; its first line for the Hour
// fixture is the README sample of the original producer.
func TestDryRunGolden(t *testing.T) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), []string{fixture(t, "hour")}, Options{DryRun: &out,
		Kafka: Kafka{Brokers: []string{"127.0.0.1:1"}}, Registry: registry.Config{URL: "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if int64(len(lines)) != sum.Records || sum.Records != 3600 {
		t.Fatalf("%d lines, summary %d records, want 3600 (one hour of 1 s)", len(lines), sum.Records)
	}
	const golden = `{"topic":"gtsm_etl","key":{"site":"B009"},"value":{"site":{"string":"B009"},"time":{"long":1625097600000},"timestamp":{"string":"2021-07-01 00:00:00"},"rs1_t0":null,"rs2_t0":null,"rs3_t0":null,"rs4_t0":null,"ls1_t0":{"int":48116355},"ls2_t0":{"int":49196540},"ls3_t0":{"int":47623871},"ls4_t0":{"int":50842119},"bs1_t0":null,"bs2_t0":null,"bs3_t0":null,"bs4_t0":null,"re1_t0":null,"rkd_t0":null,"rk1_t0":null,"rk2_t0":null,"rdo_ts":null,"rro_ts":null,"reo_t0":null,"re2_t0":null,"rca_t0":null,"rcb_t0":null,"rcc_t0":null,"rcd_t0":null,"rca_t1":null,"rca_t2":null,"rca_t3":null,"rcb_t1":null,"rcb_t2":null,"rcb_t3":null,"rcc_t1":null,"rcc_t2":null,"rcc_t3":null,"rcd_t1":null,"rcd_t2":null,"rcd_t3":null,"rca_t4":null,"rca_t5":null,"rca_t6":null,"rcb_t4":null,"rcb_t5":null,"rcb_t6":null,"rcc_t4":null,"rcc_t5":null,"rcc_t6":null,"rcd_t4":null,"rcd_t5":null,"rcd_t6":null,"rca_t7":null,"rcb_t7":null,"rcc_t7":null,"rcd_t7":null,"rca_t8":null,"rcb_t8":null,"rcc_t8":null,"rcd_t8":null}}`
	if lines[0] != golden {
		t.Fatalf("first dry-run line:\n got %s\nwant %s", lines[0], golden)
	}
	// In order: times strictly increase.
	var prev int64
	for i, l := range lines {
		j := strings.Index(l, `"time":{"long":`) + len(`"time":{"long":`)
		ms, err := strconv.ParseInt(l[j:j+13], 10, 64)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if ms <= prev {
			t.Fatalf("line %d: time %d after %d", i, ms, prev)
		}
		prev = ms
	}
}

func TestNoCreate(t *testing.T) {
	st := startStack(t)
	opt := stackOptions(st, 3)
	opt.NoCreate = true
	opt.Topic = "absent_topic"
	_, err := Run(context.Background(), []string{fixture(t, "hour")}, opt)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "absent_topic") {
		t.Fatalf("--no-create on a missing topic: %v", err)
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	paths := writeStrain(t, dir, "B001", bottle.Hour, time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC), 1)
	for _, c := range []struct {
		name    string
		in      []string
		want    int
		wantErr string
	}{
		{"file", paths[:1], 1, ""},
		{"dir", []string{dir}, 1, ""},
		{"glob", []string{filepath.Join(dir, "B001*CH[01]")}, 2, ""},
		{"glob+file", []string{filepath.Join(dir, "*CH3"), paths[0]}, 2, ""},
		{"glob matches nothing", []string{filepath.Join(dir, "B999*")}, 0, "matches no file"},
		{"missing file", []string{filepath.Join(dir, "nope")}, 0, "does not exist"},
		{"bad pattern", []string{filepath.Join(dir, "[")}, 0, "pattern"},
		{"nothing", nil, 0, "no input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Expand(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Expand(%q) = %v, %v; want error containing %q", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil || len(got) != c.want {
				t.Fatalf("Expand(%q) = %v, %v; want %d paths", c.in, got, err, c.want)
			}
		})
	}
}

// Inputs given newest first still go out in time order per stream; with a
// buffer too small for that, the out-of-order group is reported.
func TestGrouperOrder(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	paths := writeStrain(t, dir, "B001", bottle.Min, t0, 5)
	writeStrain(t, dir, "B002", bottle.Min, t0, 5)
	read := func(minutes ...int) []*bottle.File {
		var files []*bottle.File
		for _, m := range minutes {
			for _, p := range paths[4*m : 4*m+4] {
				f, err := bottle.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
		}
		return files
	}
	minute := sampleBytes(&bottle.File{Ints: make([]int32, 1200)}) * 4
	for _, c := range []struct {
		name  string
		files []*bottle.File
		limit int64
		late  int
	}{
		{"fits", read(4, 3, 2, 1, 0), 1 << 30, 0},
		{"tiny buffer", read(4, 3, 2, 1, 0), 1, 4}, // every later-read (older) minute is late
		// a window of 3 minutes puts a swapped neighbour back in order
		{"sliding window", read(1, 0, 2, 4, 3), 3 * minute, 0},
	} {
		files := c.files
		t.Run(c.name, func(t *testing.T) {
			var starts []int64
			g := newGrouper(c.limit, func(gr *group) error {
				if len(gr.files) != 4 && c.limit > 1 {
					t.Errorf("group %s has %d files, want 4", fmtMs(gr.start), len(gr.files))
				}
				starts = append(starts, gr.start)
				return nil
			})
			for _, f := range files {
				if err := g.add(f); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.flush(true); err != nil {
				t.Fatal(err)
			}
			sorted := true
			for i := 1; i < len(starts); i++ {
				sorted = sorted && starts[i] > starts[i-1]
			}
			if c.late == 0 && (!sorted || len(starts) != 5) {
				t.Errorf("emitted %v, want 5 groups in time order", starts)
			}
			if len(g.late) != c.late {
				t.Errorf("%d late groups reported (%q), want %d", len(g.late), g.late, c.late)
			}
		})
	}
}

// kgo's default partitioner (sticky key, murmur2) agrees with partition.For,
// so readers using either formula find sites where we put them. We set the
// partition ourselves anyway (ManualPartitioner) to not depend on it.
func TestKgoDefaultPartitionerIsJavaMurmur2(t *testing.T) {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("gtsm_etl")
	for i := 0; i < 2000; i++ {
		key := record.AppendKeyAvro([]byte{0, 0, 0, 0, byte(i % 7)}, fmt.Sprintf("B%03d", i%1000))
		for _, n := range []int{1, 3, 12, 64} {
			if got, want := tp.Partition(&kgo.Record{Key: key}, n), int(partition.For(key, int32(n))); got != want {
				t.Fatalf("key % x, %d partitions: kgo %d, partition.For %d", key, n, got, want)
			}
		}
	}
}

func TestKafkaOptsErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		k    Kafka
		want string
	}{
		{"no brokers", Kafka{}, "bootstrap"},
		{"bad compression", Kafka{Brokers: []string{"x:1"}, Compression: "brotli"}, "compression"},
		{"bad sasl", Kafka{Brokers: []string{"x:1"}, SASLMechanism: "GSSAPI"}, "SASL"},
		{"sasl without user", Kafka{Brokers: []string{"x:1"}, SASLMechanism: "PLAIN"}, "username"},
		{"cert without key", Kafka{Brokers: []string{"x:1"}, CertFile: "c.pem"}, "both"},
		{"missing CA", Kafka{Brokers: []string{"x:1"}, CAFile: "/nonexistent/ca.pem"}, "CA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.k.Opts()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Opts() error %v, want one mentioning %q", err, c.want)
			}
		})
	}
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "scram-sha-512"} {
		if _, err := (Kafka{Brokers: []string{"x:1"}, SASLMechanism: m, Username: "u", Password: "p", TLS: true}).Opts(); err != nil {
			t.Errorf("SASL %s: %v", m, err)
		}
	}
}

// An EarthScope-style hour archive (a tar of per-minute .tgz, each holding
// the four _20 files) mixed with plain files: the dry run gives exactly the
// records of the same files read plainly, in time order.
func TestProduceArchive(t *testing.T) {
	plain := t.TempDir()
	t0 := time.Date(2021, 7, 1, 5, 0, 0, 0, time.UTC)
	paths := writeStrain(t, plain, "B001", bottle.Min, t0, 3)
	hourFiles := writeStrain(t, t.TempDir(), "B002", bottle.Hour, t0, 1)
	want := expected(t, plain)

	var outer bytes.Buffer
	tw := tar.NewWriter(&outer)
	for m := 0; m < 3; m++ {
		var inner bytes.Buffer
		gz := gzip.NewWriter(&inner)
		itw := tar.NewWriter(gz)
		for _, p := range paths[4*m : 4*m+4] {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			itw.WriteHeader(&tar.Header{Name: filepath.Base(p), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
			itw.Write(data)
		}
		itw.Close()
		gz.Close()
		name := fmt.Sprintf("B00121182%02d%02d_20.tgz", 5, m)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(inner.Len()), Typeflag: tar.TypeReg})
		tw.Write(inner.Bytes())
	}
	tw.Close()
	arch := filepath.Join(t.TempDir(), "B0012118205_20.tar")
	if err := os.WriteFile(arch, outer.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	sum, err := Run(context.Background(), []string{hourFiles[0], arch}, Options{DryRun: &out})
	if err != nil {
		t.Fatal(err)
	}
	exp := want[stream{"B001", bottle.Min}]
	if sum.Files != 13 || sum.Records != int64(len(exp))+3600 {
		t.Fatalf("%d files, %d records; want 13 files, %d records", sum.Files, sum.Records, len(exp)+3600)
	}
	var buf []byte
	i := 0
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !strings.Contains(l, `"site":"B001"`) {
			continue
		}
		buf = record.AppendJSON(buf[:0], "gtsm_etl", &exp[i])
		if l != string(buf) {
			t.Fatalf("B001 record %d:\n got %s\nwant %s", i, l, buf)
		}
		i++
	}
	if i != len(exp) {
		t.Fatalf("%d B001 records in the output, want %d", i, len(exp))
	}
}

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		p    Progress
		want string
	}{
		{Progress{Files: 10, Records: 1000, Bytes: 2_500_000, Elapsed: 2 * time.Second, ETA: 6 * time.Second},
			"10 files, 1000 records, 2.5 MB, 500 rec/s, 2s, ETA 6s"},
		{Progress{Files: 3, BadFiles: 1, Elapsed: time.Second, ETA: -1},
			"3 files (1 bad), 0 records, 0.0 MB, 0 rec/s, 1s, ETA ?"},
	} {
		if got := c.p.Line(); got != c.want {
			t.Errorf("Line() = %q, want %q", got, c.want)
		}
	}
	// Half the input read (1000 samples, 4 per record), 100 records acked
	// in the 1 s since the first send: 500 expected, 400 left at 100/s.
	first := time.Now().Add(-time.Second).UnixNano()
	if got := eta(100, 50, 100, 1000, 400, 100, first); got < 3900*time.Millisecond || got > 4100*time.Millisecond {
		t.Errorf("eta = %v, want about 4s", got)
	}
	if got := eta(0, 50, 100, 1000, 400, 100, first); got != -1 {
		t.Errorf("eta with nothing acknowledged = %v, want -1 (unknown)", got)
	}
}

// The delivery guarantees are options that a later edit could drop; pin them.
func TestKafkaOptsDeliveryGuarantees(t *testing.T) {
	opts, err := Kafka{Brokers: []string{"127.0.0.1:1"}}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.RequiredAcks); got != kgo.AllISRAcks() {
		t.Errorf("acks = %v, want all", got)
	}
	if got := cl.OptValue(kgo.DisableIdempotentWrite); got != false {
		t.Errorf("idempotence disabled = %v", got)
	}
	if got := cl.OptValue(kgo.ProducerLinger); got != DefaultLinger {
		t.Errorf("linger = %v, want %v", got, DefaultLinger)
	}
	codecs, _ := cl.OptValue(kgo.ProducerBatchCompression).([]kgo.CompressionCodec)
	if len(codecs) == 0 || codecs[0] != kgo.SnappyCompression() {
		t.Errorf("compression = %v, want snappy first", codecs)
	}
}
