package compare_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/compare"
	"github.com/earthscope/gtsm-stream/compare/gatewaytest"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/flink"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestProcessorAgreesWithFlinkQueries is the comparison the compose stack
// runs, with everything that exists here: the testdata sets go through the
// real producer onto the in-process broker and registry; the real processor
// drains the topic into DuckDB. The Flink side is the fake gateway computing
// flink/queries (translated) over the topic as an independent consumer reads
// it (Confluent-framed Avro decoded by writer schema, session from the
// gtsm_session header, partition and offset). Every named query must agree.
func TestProcessorAgreesWithFlinkQueries(t *testing.T) {
	for _, lateGap := range []bool{false, true} {
		t.Run(fmt.Sprintf("lateGap=%v", lateGap), func(t *testing.T) {
			for _, d := range processorAgrees(t, lateGap, false) {
				if !d.Same() {
					t.Errorf("%s: the processor and Flink's query disagree", d.Query)
				}
				if d.LeftRows == 0 {
					t.Errorf("%s: no rows", d.Query)
				}
			}
		})
	}

	// Re-sent records: exactly the differences flink/README.md documents.
	// The processor stores a re-sent record once, Flink's seed and windows
	// count every copy; counters, gaps and latest agree.
	t.Run("resend", func(t *testing.T) {
		for _, d := range processorAgrees(t, false, true) {
			switch d.Query {
			case "seed":
				if len(d.OnlyLeft) != 3 || len(d.OnlyRight)+len(d.Changed) != 0 {
					t.Errorf("seed: %d rows only in flink (want the 3 copies), %d only in duckdb, %d changed", len(d.OnlyLeft), len(d.OnlyRight), len(d.Changed))
				}
			case "hourly", "daily":
				if len(d.Changed) == 0 || len(d.OnlyLeft)+len(d.OnlyRight) != 0 {
					t.Errorf("%s: %d changed, %d/%d only on one side", d.Query, len(d.Changed), len(d.OnlyLeft), len(d.OnlyRight))
				}
				for _, c := range d.Changed {
					if c.Left[0] != "X001" || c.Left[1] != "Hour" {
						t.Errorf("%s: changed row outside X001 Hour: %v", d.Query, c.Left)
					}
					if c.Left[5] == c.Right[5] { // n: Flink counts the copies
						t.Errorf("%s: changed row with the same n: %v vs %v", d.Query, c.Left, c.Right)
					}
				}
			default:
				if !d.Same() {
					t.Errorf("%s: differs with re-sent records", d.Query)
				}
			}
		}
	})
}

func processorAgrees(t *testing.T, lateGap, resend bool) []*compare.Diff {
	diffs, behind := processorAgreesWith(t, lateGap, resend, nil)
	// The fake gateway does not drop records behind Flink's watermark: the
	// comparison is faithful only if there are none.
	if len(behind) > 0 {
		t.Errorf("records Flink may drop behind its watermark: %v", behind)
	}
	return diffs
}

// processorAgreesWith also publishes more (when not nil) before the
// processor starts, and returns the diffs of every named query and the
// records Flink may drop as behind its watermark (behindWatermark).
func processorAgreesWith(t *testing.T, lateGap, resend bool, more func(ctx context.Context, st *embedded.Stack)) ([]*compare.Diff, []string) {
	root := testutil.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var paths []string
	for _, d := range []string{"day", "hour", "min"} {
		paths = append(paths, filepath.Join(root, "testdata", d))
	}
	sum, err := producer.Run(ctx, paths, producer.Options{
		Kafka: producer.Kafka{Brokers: []string{st.BootstrapServers}}, Registry: registry.Config{URL: st.RegistryURL}, Partitions: 3})
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	_ = sum
	// A second site, published directly: a gap in its Hour session, a gap
	// in Min, nulls; and (lateGap) a late block that fills a gap.
	extra := extraRecords(lateGap)
	if resend {
		extra = append(extra, extra[5], extra[6], extra[250])
	}
	publish(t, ctx, st, extra)
	if more != nil {
		more(ctx, st)
	}

	// The processor, until it has everything, then stopped (DuckDB closed
	// with a checkpoint).
	dbPath := filepath.Join(t.TempDir(), "gtsm.duckdb")
	pctx, pcancel := context.WithCancel(ctx)
	p, err := processor.New(pctx, processor.Config{
		Brokers: []string{st.BootstrapServers}, DBPath: dbPath, Registry: registry.Config{URL: st.RegistryURL},
		FlushInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		pcancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	if err := p.WaitCaughtUp(ctx); err != nil {
		pcancel()
		t.Fatalf("processor: %v", err)
	}
	pcancel()
	if err := <-done; err != nil {
		t.Fatalf("processor: %v", err)
	}

	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := loadTopic(t, ctx, db, st)
	t.Logf("%d messages on the topic", n)

	gw := gatewaytest.New(db, flinkToDuckDB, gatewaytest.Options{PageSize: 200, Changelog: true})
	defer gw.Close()
	fs := flinkSource(t, gw.URL, "v2")
	defer fs.Close(context.Background())
	var out bytes.Buffer
	diffs, err := compare.Run(ctx, fs, &compare.DBSource{DB: db}, namedQueries(t), compare.Options{Precision: 6}, &out, 10)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	return diffs, behindWatermark(t, ctx, db)
}

// behindWatermark lists the messages Flink may drop from its event-time
// operators (windows, gaps' LAG): those whose time is behind the watermark of
// flink/gtsm_etl.sql (the largest event time read before on the same Kafka
// partition, minus the DDL's delay). Flink combines the partitions'
// watermarks by their minimum, so this is the messages that can be dropped,
// a superset of the ones that are. The processor stores every one of them.
func behindWatermark(t *testing.T, ctx context.Context, db *sql.DB) []string {
	t.Helper()
	m := regexp.MustCompile("WATERMARK FOR `event_time` AS `event_time` - INTERVAL '(\\d+)' DAY\\b").FindStringSubmatch(flink.DDL())
	if m == nil {
		t.Fatal("flink/gtsm_etl.sql: no WATERMARK ... - INTERVAL 'n' DAY")
	}
	rows, err := db.QueryContext(ctx, `SELECT key_site, epoch_ms("time")::VARCHAR, kafka_partition, kafka_offset FROM (
		SELECT *, max("time") OVER (PARTITION BY kafka_partition ORDER BY kafka_offset
		                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seen
		FROM topic WHERE "time" IS NOT NULL)
		WHERE "time" < seen - `+m[1]+`::BIGINT * 86400000 ORDER BY kafka_partition, kafka_offset`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var site, tm string
		var p, o int64
		if err := rows.Scan(&site, &tm, &p, &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s partition %d offset %d", site, tm, p, o))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// loadTopic reads gtsm_etl from the beginning with its own client, decodes
// each message through the registry, and stores it as Flink's table would
// see it: table topic plus the flink_gtsm_etl view.
func loadTopic(t *testing.T, ctx context.Context, db *sql.DB, st *embedded.Stack) int {
	t.Helper()
	rc, err := registry.New(registry.Config{URL: st.RegistryURL})
	if err != nil {
		t.Fatal(err)
	}
	k, v, err := registry.LoadSchemas(ctx, rc, "", "gtsm_etl")
	if err != nil {
		t.Fatal(err)
	}
	serde, err := registry.NewSerde(ctx, rc, "gtsm_etl", k, v)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics("gtsm_etl"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "gtsm_etl")
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	ends.Each(func(o kadm.ListedOffset) { want += int(o.Offset) })

	ints := record.FieldNames[record.FirstInt:]
	var csv strings.Builder
	csv.WriteString("key_site,site,time,timestamp," + strings.Join(ints, ",") + ",header_session,kafka_partition,kafka_offset\n")
	got := 0
	for got < want {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatal(err)
		}
		fetches.EachRecord(func(m *kgo.Record) {
			got++
			site, err := serde.DecodeKey(ctx, m.Key)
			if err != nil {
				t.Fatalf("partition %d offset %d key: %v", m.Partition, m.Offset, err)
			}
			var r record.Record
			if err := serde.DecodeValue(ctx, m.Value, &r); err != nil {
				t.Fatalf("partition %d offset %d value: %v", m.Partition, m.Offset, err)
			}
			header := "\\N" // no header: NULL
			for _, h := range m.Headers {
				if h.Key == record.SessionHeader {
					header = string(h.Value)
				}
			}
			tm := ""
			if r.IsSet(record.FieldTime) {
				tm = fmt.Sprint(r.Time)
			}
			fmt.Fprintf(&csv, "%s,%s,%s,%s", site, r.Site, tm, r.Timestamp)
			for i := record.FirstInt; i < record.NumFields; i++ {
				if v, ok := r.Int(i); ok {
					fmt.Fprintf(&csv, ",%d", v)
				} else {
					csv.WriteString(",")
				}
			}
			fmt.Fprintf(&csv, ",%s,%d,%d\n", header, m.Partition, m.Offset)
		})
	}
	path := filepath.Join(t.TempDir(), "topic.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cols := "key_site VARCHAR, site VARCHAR, \"time\" BIGINT, \"timestamp\" VARCHAR, " +
		strings.Join(ints, " INTEGER, ") + " INTEGER, header_session VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT"
	for _, q := range []string{
		"CREATE TABLE topic (" + cols + ")",
		// Empty fields and \N (no header) are NULL.
		fmt.Sprintf("COPY topic FROM '%s' (HEADER, NULLSTR ['', '\\N'])", path),
		// The session as flink/gtsm_etl.sql computes it, translated.
		`CREATE VIEW flink_gtsm_etl AS SELECT *, ` + flinkSessionExpr(t) + ` AS session, epoch_ms("time") AS event_time, kafka_offset AS proc_time FROM topic`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return got
}

// extraRecords: site X001, Hour samples 0..299 without 100..119 (unless
// lateGap: then they come last, late), channel CH2 null every 7th sample; Min
// samples 0..199 without 50..52.
func extraRecords(lateGap bool) []record.Record {
	start := time.Date(2021, 7, 1, 0, 59, 0, 0, time.UTC).UnixMilli()
	var out, late []record.Record
	add := func(s bottle.Session, step int64, i int) record.Record {
		var r record.Record
		r.SetSite("X001")
		r.SetTime(start + int64(i)*step)
		r.Session = s
		for c, f := range record.StrainFields(s) {
			if c == 2 && i%7 == 0 {
				continue
			}
			r.SetInt(f, int32(48_000_000+c*1_000+i*(c+1)-150*c))
		}
		return r
	}
	for i := 0; i < 300; i++ {
		r := add(bottle.Hour, 1000, i)
		if i >= 100 && i < 120 {
			if lateGap {
				late = append(late, r)
			}
			continue
		}
		out = append(out, r)
	}
	for i := 0; i < 200; i++ {
		if i >= 50 && i < 53 {
			continue
		}
		out = append(out, add(bottle.Min, 50, i))
	}
	return append(out, late...)
}

// publish sends records as the producer does: murmur2 partition of the
// Confluent-framed key, the session header.
func publish(t *testing.T, ctx context.Context, st *embedded.Stack, recs []record.Record) {
	t.Helper()
	headers := make([]*string, len(recs))
	for i := range recs {
		h := recs[i].Session.String()
		headers[i] = &h
	}
	publishHeaders(t, ctx, st, recs, headers)
}

// publishHeaders is publish with the gtsm_session header of each record
// given (nil: none), as other writers may send it.
func publishHeaders(t *testing.T, ctx context.Context, st *embedded.Stack, recs []record.Record, headers []*string) {
	t.Helper()
	rc, err := registry.New(registry.Config{URL: st.RegistryURL})
	if err != nil {
		t.Fatal(err)
	}
	k, v, err := registry.LoadSchemas(ctx, rc, "", "gtsm_etl")
	if err != nil {
		t.Fatal(err)
	}
	serde, err := registry.NewSerde(ctx, rc, "gtsm_etl", k, v)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range recs {
		r := &recs[i]
		key := serde.AppendKey(nil, r.Site)
		kr := &kgo.Record{Topic: "gtsm_etl", Key: key, Value: serde.AppendValue(nil, r), Partition: partition.For(key, 3)}
		if headers[i] != nil {
			kr.Headers = []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte(*headers[i])}}
		}
		if err := cl.ProduceSync(ctx, kr).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// flinkSessionExpr is the DDL's computed column session (flink/gtsm_etl.sql)
// translated to DuckDB over table topic, whose header_session column holds
// the gtsm_session header.
func flinkSessionExpr(t *testing.T) string {
	t.Helper()
	ddl := flink.DDL()
	i := strings.Index(ddl, "`session` AS ")
	j := strings.Index(ddl[max(i, 0):], ",\n\n")
	if i < 0 || j < 0 {
		t.Fatal("flink/gtsm_etl.sql: no `session` AS ... computed column ending with a blank line")
	}
	e := ddl[i+len("`session` AS ") : i+j]
	e = strings.ReplaceAll(e, "`headers`['gtsm_session']", "header_session")
	e = strings.ReplaceAll(e, "AS STRING)", "AS VARCHAR)")
	e = strings.ReplaceAll(e, "`", `"`)
	e, err := replaceCall(e, "MOD(", func(args string) (string, error) {
		a, b, ok := cutLast(args, ",")
		if !ok {
			return "", fmt.Errorf("MOD(%s)", args)
		}
		return "((" + a + ") % (" + b + "))", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSessionAndGapsAgree: the session each record belongs to, and what
// counts as a gap, are decided the same way by the processor and by Flink's
// SQL (the DDL's session column and gaps.sql, run translated over the topic).
// Site X003 has one record per rule of processor.sessionOf, with headers
// that disagree with the fields, none, another case, an unknown one, and
// records the processor dead-letters (null time, no session); site X002 has
// Hour samples off the one-second grid (less than two steps apart: no gap;
// three: a gap of two missing samples).
func TestSessionAndGapsAgree(t *testing.T) {
	base := time.Date(2021, 7, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	str := func(s string) *string { return &s }
	var recs []record.Record
	var headers []*string
	add := func(site string, tm int64, header *string, fields ...string) {
		var r record.Record
		r.SetSite(site)
		if tm >= 0 {
			r.SetTime(tm)
		}
		for n, f := range fields {
			i, ok := record.FieldIndex(f)
			if !ok {
				t.Fatalf("no field %s", f)
			}
			r.SetInt(i, int32(1000+n))
		}
		recs, headers = append(recs, r), append(headers, header)
	}
	ls := []string{"ls1_t0", "ls2_t0", "ls3_t0", "ls4_t0"}
	add("X003", base, nil, "re1_t0", "rk1_t0")              // ancillary only, no header: Day
	add("X003", base+600_000, str("Hour"), "rs1_t0")        // header says Hour, fields Day: Day
	add("X003", base+1_000, str("Day"), ls...)              // header says Day, fields Hour: Hour
	add("X003", base+2_250, nil)                            // nothing set, milliseconds: Min
	add("X003", base+3_000, str("hour"))                    // nothing set, header in lower case: Hour
	add("X003", base+4_000, str("Week"))                    // unknown header, nothing set: dead letter
	add("X003", base+5_000, nil)                            // nothing set, whole second: dead letter
	add("X003", -1, str("Hour"), ls...)                     // null time: dead letter
	add("X003", base+6_000, str("Min"), "ls1_t0", "bs1_t0") // mixed fields: the header, Min
	for _, off := range []int64{0, 1_000, 2_500, 5_500, 6_000, 9_250} {
		add("X002", base+off, str("Hour"), ls...)
	}
	// A site backfilled more than the watermark's day behind what its
	// partition already carried: Flink may drop it from windows and gaps,
	// the processor stores it (flink/README.md). The fake gateway does not
	// drop, so the queries agree here; the watermark check finds it.
	add("X009", base-3*86_400_000, str("Hour"), ls...)
	diffs, behind := processorAgreesWith(t, false, false, func(ctx context.Context, st *embedded.Stack) {
		publishHeaders(t, ctx, st, recs, headers)
	})
	for _, d := range diffs {
		if !d.Same() {
			t.Errorf("%s: the processor and Flink's SQL disagree", d.Query)
		}
	}
	if len(behind) != 1 || !strings.HasPrefix(behind[0], "X009 2021-06-30 00:00:00 ") {
		t.Errorf("records behind Flink's watermark: %v, want X009's only", behind)
	}
}
