package lake

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/internal/lakecheck"
	"github.com/earthscope/gtsm-stream/internal/teststack"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/metadata/publish"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
)

const testTopic = "gtsm_etl"

// stack is an embedded Kafka and schema registry with gtsm_etl created.
type stack struct {
	*embedded.Stack
	serde *registry.Serde
	parts int32
}

func startStack(t testing.TB, partitions int) *stack {
	t.Helper()
	st, serde := teststack.KafkaStack(t, testTopic, partitions)
	t.Cleanup(func() { st.Close() })
	return &stack{Stack: st, serde: serde, parts: int32(partitions)}
}

// publish writes records keyed by site to the partition murmur2 gives, as
// the producer does, with the session header.
func (s *stack) publish(t testing.TB, recs []record.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var krs []*kgo.Record
	for i := range recs {
		r := &recs[i]
		key := s.serde.AppendKey(nil, r.Site)
		krs = append(krs, &kgo.Record{Topic: testTopic, Key: key, Value: s.serde.AppendValue(nil, r),
			Partition: partition.For(key, s.parts),
			Headers:   []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte(r.Session.String())}}})
	}
	if err := cl.ProduceSync(context.Background(), krs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// publishPoison writes an undecodable value under site's key: a dead letter.
func (s *stack) publishPoison(t testing.TB, site string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := s.serde.AppendKey(nil, site)
	r := &kgo.Record{Topic: testTopic, Key: key, Value: []byte("not avro"), Partition: partition.For(key, s.parts)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// publishMeta publishes station metadata (metadata/testdata) of the sites
// to the compacted gtsm_metadata topic, for Level-2.
func (s *stack) publishMeta(t testing.TB) map[string]*metadata.Station {
	t.Helper()
	td := "../metadata/testdata/"
	list, err := metadata.LoadFiles([]string{td + "bsm_metadata.txt", td + "TSM5.README.txt", td + "B004.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Publish(context.Background(), list, publish.Options{
		Kafka: producer.Kafka{Brokers: []string{s.BootstrapServers}}, Registry: registry.Config{URL: s.RegistryURL},
		Partitions: 3, Replication: 1,
	}); err != nil {
		t.Fatal(err)
	}
	m := map[string]*metadata.Station{}
	for i := range list {
		m[list[i].Site] = &list[i]
	}
	return m
}

// t0 is 2024-03-01 23:00:00 UTC: two hours of data cross a UTC day.
const t0 = int64(1709334000)

// siteData is secs seconds of 1-sps Hour records (gauge counts around ref,
// a tide-like wave and noise) from t0+start, skipping the seconds skip
// says, plus a Day record with pressure every 600 s.
func siteData(site string, ref [4]int64, start, secs int64, skip func(i int64) bool) []record.Record {
	var out []record.Record
	hour := record.StrainFields(bottle.Hour)
	for i := start; i < start+secs; i++ {
		if skip != nil && skip(i) {
			continue
		}
		t := t0 + i
		var r record.Record
		r.SetSite(site)
		r.SetTime(t * 1000)
		r.Session = bottle.Hour
		for g, f := range hour {
			v := float64(ref[g]) + 200*math.Sin(2*math.Pi*float64(t)/44714+float64(g)) + float64((i*7+int64(g)*13)%11)
			r.SetInt(f, int32(math.Round(v)))
		}
		out = append(out, r)
	}
	day := record.StrainFields(bottle.Day)
	for i := start - start%600; i < start+secs; i += 600 {
		if i < start || (skip != nil && skip(i)) {
			continue
		}
		var r record.Record
		r.SetSite(site)
		r.SetTime((t0 + i) * 1000)
		r.Session = bottle.Day
		r.SetInt(day[0], int32(1013250+i/60))
		out = append(out, r)
	}
	return out
}

func quietLogger() *slog.Logger {
	if os.Getenv("GTSM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// proc is a processor running in the test, with its *sql.DB.
type proc struct {
	p      *processor.Processor
	db     chan *sql.DB
	cancel context.CancelFunc
	done   chan error
}

func startProc(t testing.TB, s *stack, path string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &proc{db: make(chan *sql.DB, 1), cancel: cancel, done: make(chan error, 1)}
	cfg := processor.Config{
		Brokers: []string{s.BootstrapServers}, Topic: testTopic, Group: "lake-test", DBPath: path,
		Registry: registry.Config{URL: s.RegistryURL}, BatchRows: 700, FlushInterval: 50 * time.Millisecond,
		SessionTimeout: time.Second, RebalanceTimeout: 3 * time.Second, Logger: quietLogger(),
		OnDB: func(db *sql.DB) { r.db <- db },
	}
	p, err := processor.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r.p = p
	go func() { r.done <- p.Run(ctx) }()
	return r
}

func (r *proc) waitCaughtUp(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := r.p.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("wait caught up: %v", err)
	}
}

func (r *proc) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("processor: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("processor did not stop")
	}
}

// serve serves db over pgwire (with the lockdown) and returns a client.
func serve(t testing.TB, db *sql.DB, allow ...string) *pgx.Conn {
	t.Helper()
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", RowCap: 1_000_000, QueryTimeout: time.Minute,
		Logger: quietLogger(), AllowDirs: allow})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c, err := pgx.Connect(context.Background(), "postgres://gtsm@"+srv.Addr().String()+"/gtsm?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close(context.Background())
		cancel()
		srv.Close()
		<-done
	})
	return c
}

// pgLines runs a statement and returns its rows as sorted text lines.
func pgLines(t testing.TB, c *pgx.Conn, q string, args ...any) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vs, err := rows.Values()
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		parts := make([]string, len(vs))
		for i, v := range vs {
			parts[i] = fmt.Sprintf("%v", v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	sort.Strings(out)
	return out
}

// sqlLines is pgLines on a *sql.DB.
func sqlLines(t testing.TB, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	if len(args) > 0 {
		t.Fatalf("sqlLines takes no arguments: %s", q)
	}
	out, err := lakecheck.QueryLines(db, q)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diff reports the first differences of two sorted line lists.
func diff(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	g, w := map[string]int{}, map[string]int{}
	for _, l := range got {
		g[l]++
	}
	for _, l := range want {
		w[l]++
	}
	var msgs []string
	for l, n := range g {
		if w[l] != n {
			msgs = append(msgs, fmt.Sprintf("  lake %dx, file %dx: %s", n, w[l], l))
		}
	}
	for l, n := range w {
		if g[l] == 0 {
			msgs = append(msgs, fmt.Sprintf("  lake 0x, file %dx: %s", n, l))
		}
	}
	sort.Strings(msgs)
	if len(msgs) > 10 {
		msgs = append(msgs[:10], fmt.Sprintf("  ... %d more", len(msgs)-10))
	}
	t.Errorf("%s: lake has %d rows, the single file %d:\n%s", what, len(got), len(want), strings.Join(msgs, "\n"))
}

func sortLines(l []string) { sort.Strings(l) }

func mustInt32(t testing.TB, s string) int32 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}
