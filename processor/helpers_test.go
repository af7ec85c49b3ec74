package processor

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/teststack"
	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/earthscope/gtsm-stream/registry"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

const testTopic = "gtsm_etl"

// fixtures merges testdata/<dir> (one site, one session) into records.
func fixtures(t testing.TB, dir string) []record.Record {
	t.Helper()
	root := filepath.Join(testutil.RepoRoot(t), "testdata", dir)
	es, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var files []*bottle.File
	for _, e := range es {
		f, err := bottle.ReadFile(filepath.Join(root, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	recs, err := record.Merge(files)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// synth makes n records of one site and session from start, every
// interval, with strain values that vary per channel and sample and a null
// now and then (channel c of sample i is null when (i+c)%97 == 0).
func synth(site string, s bottle.Session, start int64, n int) []record.Record {
	iv := intervalMs[s]
	out := make([]record.Record, n)
	strain := record.StrainFields(s)
	for i := range out {
		r := &out[i]
		r.SetSite(site)
		r.SetTime(start + int64(i)*iv)
		r.Session = s
		for c, f := range strain {
			if (i+c)%97 == 0 {
				continue
			}
			r.SetInt(f, int32(48_000_000+c*1_000_000+int(50*math.Sin(float64(i)/300))+(i*7+c*13)%11))
		}
	}
	return out
}

type stack struct {
	*embedded.Stack
	serde *registry.Serde
	parts int32
}

func startStack(t testing.TB, partitions int) *stack {
	t.Helper()
	s := startStackKeep(t, partitions)
	t.Cleanup(func() { s.Close() })
	return s
}

// startStackKeep starts a stack that lives until the test binary exits.
func startStackKeep(t testing.TB, partitions int) *stack {
	t.Helper()
	st, serde := teststack.KafkaStack(t, testTopic, partitions)
	return &stack{Stack: st, serde: serde, parts: int32(partitions)}
}

// publish writes records keyed by site to the partition murmur2 gives
// (like the producer), with the session header.
func (s *stack) publish(t testing.TB, recs []record.Record) {
	t.Helper()
	if err := s.publishErr(recs); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) publishErr(recs []record.Record) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var perr error
	for i := range recs {
		r := &recs[i]
		key := s.serde.AppendKey(nil, r.Site)
		kr := &kgo.Record{Topic: testTopic, Key: key, Value: s.serde.AppendValue(nil, r),
			Partition: partition.For(key, s.parts),
			Headers:   []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte(r.Session.String())}}}
		cl.Produce(ctx, kr, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && perr == nil {
				perr = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return perr
}

// publishRaw writes one message as is, to the key's partition.
func (s *stack) publishRaw(t testing.TB, key, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.BootstrapServers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := &kgo.Record{Topic: testTopic, Key: key, Value: value, Partition: partition.For(key, s.parts)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func quietLogger() *slog.Logger {
	if os.Getenv("GTSM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (s *stack) config(dbPath, group string) Config {
	return Config{
		Brokers: []string{s.BootstrapServers}, Topic: testTopic, Group: group, DBPath: dbPath,
		Registry: registry.Config{URL: s.RegistryURL}, BatchRows: 700, FlushInterval: 50 * time.Millisecond,
		SessionTimeout: time.Second, RebalanceTimeout: 3 * time.Second, Logger: quietLogger(),
	}
}

// running is a processor in a goroutine of the test.
type running struct {
	p      *Processor
	cancel context.CancelFunc
	done   chan error
}

func startProc(t testing.TB, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	return r
}

func (r *running) wait(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.p.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("wait caught up: %v", err)
	}
}

func (r *running) stop(t testing.TB) {
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

// ---- the independent model: what the tables must hold, computed from the
// sequence of records in arrival order, with none of the processor's code.

type ssKey struct {
	site    string
	session bottle.Session
}

type model struct {
	lateness int64
	rows     map[ssKey]map[int64]*modelRow
	dups     map[ssKey]int64
	late     map[ssKey]int64
	maxT     map[ssKey]int64
	lateUpd  map[string]int64 // window key -> late updates
	refs     map[string][4]float64
}

type modelRow struct {
	rec  record.Record
	late bool
}

func newModel(lateness time.Duration) *model {
	return &model{lateness: lateness.Milliseconds(), rows: map[ssKey]map[int64]*modelRow{}, dups: map[ssKey]int64{},
		late: map[ssKey]int64{}, maxT: map[ssKey]int64{}, lateUpd: map[string]int64{}, refs: map[string][4]float64{}}
}

var modelWidths = []struct {
	name string
	d    int64
}{{"10m", 600_000}, {"1h", 3_600_000}, {"1d", 86_400_000}}

func (m *model) add(recs []record.Record) {
	for _, r := range recs {
		k := ssKey{r.Site, r.Session}
		if m.rows[k] == nil {
			m.rows[k] = map[int64]*modelRow{}
		}
		if m.rows[k][r.Time] != nil {
			m.dups[k]++
			continue
		}
		mx, seen := m.maxT[k]
		late := seen && r.Time < mx
		m.rows[k][r.Time] = &modelRow{rec: r, late: late}
		if late {
			m.late[k]++
		}
		for _, w := range modelWidths {
			start := r.Time / w.d * w.d
			if seen && start+w.d+m.lateness <= mx {
				m.lateUpd[fmt.Sprintf("%s|%s|%s|%d", r.Site, r.Session, w.name, start)]++
			}
		}
		if !seen || r.Time > mx {
			m.maxT[k] = r.Time
		}
	}
}

func (m *model) totalDups() int64 {
	var n int64
	for _, d := range m.dups {
		n += d
	}
	return n
}

func sortedTimes(rows map[int64]*modelRow) []int64 {
	ts := make([]int64, 0, len(rows))
	for t := range rows {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

func fmtTS(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000") }

func fmtF(f float64) string { return fmt.Sprintf("%.6g", f) }

// The expected contents of each table as sorted text lines, in the same
// format the dump functions below produce from DuckDB.

func (m *model) expectRows() []string {
	var out []string
	for k, rows := range m.rows {
		for _, t := range sortedTimes(rows) {
			mr := rows[t]
			out = append(out, rowLine(k.site, &mr.rec, k.session.String(), mr.late))
		}
	}
	sort.Strings(out)
	return out
}

func rowLine(keySite string, r *record.Record, session string, late bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%d|%s|%s|%v", keySite, r.Site, r.Time, r.Timestamp, session, late)
	for i := record.FirstInt; i < record.NumFields; i++ {
		if v, ok := r.Int(i); ok {
			fmt.Fprintf(&b, "|%d", v)
		} else {
			b.WriteString("|-")
		}
	}
	return b.String()
}

func (m *model) expectGapsAndState() (gaps, states []string) {
	for k, rows := range m.rows {
		iv := intervalMs[k.session]
		ts := sortedTimes(rows)
		var n, missing int64
		for i := 1; i < len(ts); i++ {
			if d := ts[i] - ts[i-1]; d >= 2*iv {
				n++
				missing += d/iv - 1
				gaps = append(gaps, fmt.Sprintf("%s|%s|%s|%s|%d", k.site, k.session, fmtTS(ts[i-1]+iv), fmtTS(ts[i]-iv), d/iv-1))
			}
		}
		states = append(states, fmt.Sprintf("%s|%s|%s|%s|%d|%d|%d|%d|%d", k.site, k.session, fmtTS(ts[0]), fmtTS(ts[len(ts)-1]),
			len(ts), m.dups[k], m.late[k], n, missing))
	}
	sort.Strings(gaps)
	sort.Strings(states)
	return gaps, states
}

func (m *model) expectWindows() []string {
	var out []string
	for k, rows := range m.rows {
		ts := sortedTimes(rows)
		strain := record.StrainFields(k.session)
		for _, w := range modelWidths {
			groups := map[int64][]int64{}
			for _, t := range ts {
				groups[t/w.d*w.d] = append(groups[t/w.d*w.d], t)
			}
			for start, gts := range groups {
				for ci, f := range strain {
					var n, nNull int64
					var sum, micro float64
					var nMicro int64
					var mn, mx, first, last int32
					var have bool
					for _, t := range gts { // in event-time order
						n++
						v, ok := rows[t].rec.Int(f)
						if !ok {
							nNull++
							continue
						}
						if !have {
							mn, mx, first, have = v, v, v, true
						}
						mn, mx, last = min(mn, v), max(mx, v), v
						sum += float64(v)
						if ref, ok := m.refs[k.site]; ok && ref[ci] != 0 {
							x, x0 := float64(v)/1e8, ref[ci]/1e8
							micro += (x/(1-x) - x0/(1-x0)) * (0.0001 / 0.087) * 1e6
							nMicro++
						}
					}
					line := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%d|%d", k.site, k.session, w.name, fmtTS(start), fmtTS(start+w.d),
						record.FieldNames[f], n, nNull)
					if have {
						line += fmt.Sprintf("|%d|%d|%s|%d|%d", mn, mx, fmtF(sum/float64(n-nNull)), first, last)
					} else {
						line += "|-|-|-|-|-"
					}
					if nMicro > 0 {
						line += "|" + fmtF(micro/float64(nMicro))
					} else {
						line += "|-"
					}
					final := start+w.d+m.lateness <= m.maxT[k]
					line += fmt.Sprintf("|%v|%d", final, m.lateUpd[fmt.Sprintf("%s|%s|%s|%d", k.site, k.session, w.name, start)])
					out = append(out, line)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ---- dumps of the DuckDB tables in the model's format.

// sortedLines is q's rows as lines (testutil.QueryLines), sorted.
func sortedLines(t testing.TB, db *sql.DB, q string, cell func(any) string) []string {
	t.Helper()
	out := testutil.QueryLines(t, db, q, cell)
	sort.Strings(out)
	return out
}

// queryLines is q's rows in the model's format (NULL as "-", times in
// milliseconds UTC, floats by fmtF), sorted.
func queryLines(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	return sortedLines(t, db, q, modelCell)
}

func modelCell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.000")
	case float64:
		return fmtF(x)
	}
	return fmt.Sprint(v)
}

func dumpRows(t testing.TB, db *sql.DB) []string {
	cols := []string{"key_site", "site", `"time"`, `"timestamp"`, "session", "late"}
	for _, f := range record.FieldNames[record.FirstInt:] {
		cols = append(cols, f)
	}
	return queryLines(t, db, "SELECT "+strings.Join(cols, ", ")+" FROM gtsm_etl")
}

func dumpGaps(t testing.TB, db *sql.DB) []string {
	return queryLines(t, db, `SELECT site, session, gap_start, gap_end, missing FROM gaps`)
}

func dumpStates(t testing.TB, db *sql.DB) []string {
	return queryLines(t, db, `SELECT site, session, first_time, last_time, records, duplicates, late, gaps, missing FROM site_state`)
}

func dumpWindows(t testing.TB, db *sql.DB) []string {
	return queryLines(t, db, `SELECT site, session, width, window_start, window_end, channel, n, n_null, min, max, mean, first, last,
		microstrain_mean, final, late_updates FROM windows`)
}

func dumpAll(t testing.TB, db *sql.DB) map[string][]string {
	return map[string][]string{
		"gtsm_etl": dumpRows(t, db), "gaps": dumpGaps(t, db), "site_state": dumpStates(t, db), "windows": dumpWindows(t, db),
		"dead_letters": queryLines(t, db, `SELECT kafka_partition, kafka_offset, error FROM dead_letters`),
	}
}

func openRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := gtsmsql.Open(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestLineCells: the cell formats of queryLines and l2Lines, on values read
// back from DuckDB. Two different blobs of one length must give different
// lines (l2Lines printed only their length).
func TestLineCells(t *testing.T) {
	db, err := gtsmsql.Open(context.Background(), filepath.Join(t.TempDir(), "cells.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const q = `SELECT * FROM (VALUES (NULL, 0.1::DOUBLE, '\x01\x02'::BLOB, TIMESTAMP '2021-07-01 00:00:01.25', 7),
	                                 (NULL, 1e300::DOUBLE, '\x01\x03'::BLOB, TIMESTAMP '2021-07-01 00:00:02', 8))`
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"model", queryLines(t, db, q), []string{
			"-|0.1|[1 2]|2021-07-01 00:00:01.250|7", "-|1e+300|[1 3]|2021-07-01 00:00:02.000|8"}},
		{"exact", l2Lines(t, db, q), []string{
			"NULL|0.1|2 bytes 0102|2021-07-01 00:00:01.25 +0000 UTC|7", "NULL|1e+300|2 bytes 0103|2021-07-01 00:00:02 +0000 UTC|8"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testutil.DiffLines(t, tc.name, tc.got, tc.want) })
	}
}
