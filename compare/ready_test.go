package compare_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/compare"
	"github.com/earthscope/gtsm-stream/compare/gatewaytest"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/flink"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// While a job runs the gateway answers PAYLOAD pages without rows: the
// client waits before asking again, doubling from PollMin to PollMax, and the
// result is still complete.
func TestFetchBacksOffOnEmptyPages(t *testing.T) {
	db, _ := newDB(t)
	gw := gatewaytest.New(db, func(string) (string, error) {
		return "SELECT i::BIGINT AS i FROM range(5) t(i)", nil
	}, gatewaytest.Options{PageSize: 5, EmptyPages: 4})
	defer gw.Close()
	g, err := compare.NewGateway(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	g.PollMin, g.PollMax = 20*time.Millisecond, 80*time.Millisecond
	ctx := context.Background()
	h, err := g.OpenSession(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Execute(ctx, h, "SELECT ...")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Table.Rows) != 5 || res.EmptyPages != 4 {
		t.Fatalf("%d rows after %d empty pages, want 5 after 4", len(res.Table.Rows), res.EmptyPages)
	}
	log := gw.FetchLog()
	if len(log) != 5 {
		t.Fatalf("%d payload fetches, want 5", len(log))
	}
	// The pause after each empty page: at least 20, 40, 80, 80 ms.
	for i, want := range []time.Duration{20, 40, 80, 80} {
		if gap := log[i+1].At.Sub(log[i].At); gap < want*time.Millisecond {
			t.Errorf("fetch %d came %v after an empty page, want >= %v", i+1, gap, want*time.Millisecond)
		}
	}
}

// The readiness wait, state by state: each poll's state is printed as
// progress, and it returns only when the processor has applied exactly the
// topic's end offsets and those did not change between two polls.
func TestReadinessStates(t *testing.T) {
	type step struct {
		end     compare.Offsets
		endErr  error
		applied compare.Offsets
		appErr  error
	}
	e := compare.Offsets{0: 10, 1: 0, 2: 7}
	for _, tc := range []struct {
		name     string
		down     bool // the gateway answers 503 until the first progress line
		steps    []step
		progress []string // substrings, in order
		err      string
	}{
		{"ready after the gateway, topic and processor settle", true, []step{
			{endErr: errors.New("UNKNOWN_TOPIC_OR_PARTITION")},
			{end: compare.Offsets{0: 0, 1: 0, 2: 0}, appErr: errors.New("dial tcp 127.0.0.1:5433: connection refused")},
			{end: compare.Offsets{0: 0, 1: 0, 2: 0}, applied: compare.Offsets{}},
			{end: compare.Offsets{0: 4, 1: 0, 2: 7}, applied: compare.Offsets{2: 7}},
			{end: e, applied: compare.Offsets{0: 4, 2: 7}},
			{end: e, applied: e},
		}, []string{"Flink SQL Gateway: ", "503", "topic end offsets: UNKNOWN_TOPIC_OR_PARTITION",
			"processor: dial tcp 127.0.0.1:5433: connection refused", "topic is empty",
			"processor applied 7 of 11 messages (partition:applied/end 0:0/4)",
			"processor applied 11 of 17 messages (partition:applied/end 0:4/10)"}, ""},
		{"topic still growing", false, []step{
			{end: compare.Offsets{0: 5}, applied: compare.Offsets{0: 5}},
			{end: compare.Offsets{0: 6}, applied: compare.Offsets{0: 6}},
			{end: compare.Offsets{0: 6}, applied: compare.Offsets{0: 6}},
		}, []string{"caught up at 5 messages; checking the topic stopped growing", "caught up at 6"}, ""},
		{"processor ahead of the topic", false, []step{
			{end: compare.Offsets{0: 5}, applied: compare.Offsets{0: 9}},
		}, nil, "partition 0: applied 9, topic ends at 5"},
		{"bounded", false, []step{
			{end: e, applied: compare.Offsets{0: 1}},
		}, []string{"processor applied 1 of 17"}, "not ready after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := gatewaytest.New(nil, func(string) (string, error) { return "", nil }, gatewaytest.Options{})
			defer gw.Close()
			gw.Down.Store(tc.down)
			g, err := compare.NewGateway(gw.URL)
			if err != nil {
				t.Fatal(err)
			}
			i := 0 // polls that reached End; the last step repeats
			var last step
			var progress bytes.Buffer
			r := &compare.Readiness{
				Gateway: g,
				End: func(context.Context) (compare.Offsets, error) {
					last = tc.steps[min(i, len(tc.steps)-1)]
					i++
					return last.end, last.endErr
				},
				Applied: func(context.Context) (compare.Offsets, error) {
					return last.applied, last.appErr
				},
				Poll: time.Millisecond,
				// The gateway comes up once it was reported down.
				Progress: writerFunc(func(b []byte) (int, error) {
					gw.Down.Store(false)
					return progress.Write(b)
				}),
			}
			timeout := 2 * time.Second
			if tc.err == "not ready after" {
				timeout = 50 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			got, err := r.Wait(ctx)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatalf("%v\n%s", err, progress.String())
			} else if want := tc.steps[len(tc.steps)-1].end; !got.Equal(want) {
				t.Errorf("ready at %v, want %v", got, want)
			}
			out := progress.String()
			pos := 0
			for _, want := range tc.progress {
				j := strings.Index(out[pos:], want)
				if j < 0 {
					t.Fatalf("progress lacks %q (in order):\n%s", want, out)
				}
				pos += j
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestReadinessEndToEnd is `docker compose up -d && gtsm compare` in
// process: the producer is still publishing (each poll of the topic's end
// offsets lets it publish one more chunk) while the real processor consumes;
// the wait returns only when the topic stopped growing and the processor
// has applied all of it, the Flink DDL is pinned to those offsets, and the
// comparison agrees.
func TestReadinessEndToEnd(t *testing.T) {
	root := testutil.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := producer.Run(ctx, []string{filepath.Join(root, "testdata", "hour")}, producer.Options{
		Kafka: producer.Kafka{Brokers: []string{st.BootstrapServers}}, Registry: registry.Config{URL: st.RegistryURL}, Partitions: 3}); err != nil {
		t.Fatalf("produce: %v", err)
	}
	extra := extraRecords(true)
	var chunks [][]int
	for i := 0; i < len(extra); i += 100 {
		chunks = append(chunks, []int{i, min(i+100, len(extra))})
	}

	dbPath := filepath.Join(t.TempDir(), "gtsm.duckdb")
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	p, err := processor.New(pctx, processor.Config{
		Brokers: []string{st.BootstrapServers}, DBPath: dbPath, Registry: registry.Config{URL: st.RegistryURL},
		FlushInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	polls := 0
	var progress bytes.Buffer
	r := &compare.Readiness{
		End: func(ctx context.Context) (compare.Offsets, error) {
			if polls < len(chunks) { // the producer is not done yet
				c := chunks[polls]
				publish(t, ctx, st, extra[c[0]:c[1]])
			}
			polls++
			ends, err := adm.ListEndOffsets(ctx, "gtsm_etl")
			if err != nil {
				return nil, err
			}
			o := compare.Offsets{}
			ends.Each(func(l kadm.ListedOffset) { o[l.Partition] = l.Offset })
			return o, nil
		},
		Applied: func(ctx context.Context) (compare.Offsets, error) {
			return compare.AppliedOffsets(ctx, &compare.DBSource{DB: p.DB()}, "gtsm_etl")
		},
		Poll:     20 * time.Millisecond,
		Progress: &progress,
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	ready, err := r.Wait(wctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("after %d polls:\n%s", polls, progress.String())
	if polls <= len(chunks) {
		t.Errorf("ready after %d polls while the producer published %d chunks", polls, len(chunks))
	}
	// The progress shows the topic growing while the processor catches up.
	totals := map[string]bool{}
	for _, m := range regexp.MustCompile(`of (\d+) messages`).FindAllStringSubmatch(progress.String(), -1) {
		totals[m[1]] = true
	}
	if len(totals) < 2 {
		t.Errorf("progress does not show the topic growing:\n%s", progress.String())
	}
	ends, err := adm.ListEndOffsets(ctx, "gtsm_etl")
	if err != nil {
		t.Fatal(err)
	}
	final := compare.Offsets{}
	ends.Each(func(l kadm.ListedOffset) { final[l.Partition] = l.Offset })
	applied, err := compare.AppliedOffsets(ctx, &compare.DBSource{DB: p.DB()}, "gtsm_etl")
	if err != nil {
		t.Fatal(err)
	}
	if !ready.Equal(final) || !applied.Equal(final) {
		t.Fatalf("ready at %v; topic ends at %v, processor applied %v", ready, final, applied)
	}
	pcancel()
	if err := <-done; err != nil {
		t.Fatalf("processor: %v", err)
	}

	// Flink's scan is pinned to the offsets the processor applied.
	ddl, err := flink.PinOffsets(flink.DDL(), ready.Flink())
	if err != nil {
		t.Fatal(err)
	}
	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := loadTopic(t, ctx, db, st); int64(n) != ready.Total() {
		t.Fatalf("topic has %d messages, ready at %d", n, ready.Total())
	}
	var pinned []string
	gw := gatewaytest.New(db, func(stmt string) (string, error) {
		if m := regexp.MustCompile(`'scan\.bounded\.specific-offsets' = '([^']*)'`).FindStringSubmatch(stmt); m != nil {
			pinned = append(pinned, m[1])
		}
		return flinkToDuckDB(stmt)
	}, gatewaytest.Options{PageSize: 200, EmptyPages: 1})
	defer gw.Close()
	fs := flinkSource(t, gw.URL, "v3")
	fs.DDL = flink.Statements(ddl)
	defer fs.Close(context.Background())
	var out bytes.Buffer
	diffs, err := compare.Run(ctx, fs, &compare.DBSource{DB: db}, namedQueries(t), compare.Options{Precision: 6}, &out, 10)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, d := range diffs {
		if !d.Same() {
			t.Errorf("%s differs:\n%s", d.Query, out.String())
		}
	}
	want := fmt.Sprintf("partition:0,offset:%d;partition:1,offset:%d;partition:2,offset:%d", final[0], final[1], final[2])
	if len(pinned) != 1 || pinned[0] != want {
		t.Errorf("Flink DDL pinned to %q, want once %q", pinned, want)
	}
}
