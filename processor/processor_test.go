package processor

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// checkTables compares every table with the model.
func checkTables(t *testing.T, dbPath string, m *model) {
	t.Helper()
	db := openRO(t, dbPath)
	defer db.Close()
	testutil.DiffLines(t, "gtsm_etl", dumpRows(t, db), m.expectRows())
	gaps, states := m.expectGapsAndState()
	testutil.DiffLines(t, "gaps", dumpGaps(t, db), gaps)
	testutil.DiffLines(t, "site_state", dumpStates(t, db), states)
	testutil.DiffLines(t, "windows", dumpWindows(t, db), m.expectWindows())
}

func cut(recs []record.Record, from, to int) []record.Record {
	return append([]record.Record(nil), recs[from:to]...)
}

// TestFixturesEndToEnd sends the testdata fixtures (Day, Hour, Min of B009)
// plus a synthetic second site through Kafka into DuckDB in phases, with
// dropped records (gaps), re-sent batches (duplicates), late records that
// fill gaps, a window updated after it became final, and a graceful restart,
// and checks every table against the independent model after each phase.
func TestFixturesEndToEnd(t *testing.T) {
	st := startStack(t, 3)
	day, hour, min := fixtures(t, "day"), fixtures(t, "hour"), fixtures(t, "min")
	if len(day) != 144 || len(hour) != 3600 || len(min) != 1200 {
		t.Fatalf("fixtures: %d day, %d hour, %d min records", len(day), len(hour), len(min))
	}
	other := synth("B010", bottle.Hour, hour[0].Time, 3000)
	dbPath := filepath.Join(t.TempDir(), "gtsm.duckdb")
	m := newModel(0)

	// Reference counts for two gauges of B009 (gauges 3, 4 stay NULL).
	m.refs["B009"] = [4]float64{4.8e7, 4.9e7, 0, 0}
	{
		db, err := openRW(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO site_reference (site, gauge, reference_counts) VALUES ('B009', 1, 4.8e7), ('B009', 2, 4.9e7)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}

	// Phase 1: everything but hour records 1000..1599 and min 300..399 (gaps).
	phase1 := append(cut(day, 0, 144), cut(hour, 0, 1000)...)
	phase1 = append(phase1, cut(hour, 1600, 3600)...)
	phase1 = append(phase1, cut(min, 0, 300)...)
	phase1 = append(phase1, cut(min, 400, 1200)...)
	phase1 = append(phase1, other...)
	st.publish(t, phase1)
	m.add(phase1)

	run := startProc(t, st.config(dbPath, "e2e"))
	run.wait(t)
	t.Run("phase1", func(t *testing.T) {
		// Readers can query the same *sql.DB while the processor runs.
		var n int
		if err := run.p.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&n); err != nil || n != len(phase1) {
			t.Fatalf("rows = %d, %v; want %d", n, err, len(phase1))
		}
	})

	// Phase 2 while running: re-send 500 hour records (duplicates), send
	// hour 1200..1299 late (splits the gap, updates final 10m windows), min
	// 350 alone (splits the min gap inside a window still open), and
	// re-send some of B010.
	phase2 := append(cut(hour, 0, 500), cut(hour, 1200, 1300)...)
	phase2 = append(phase2, cut(min, 350, 351)...)
	phase2 = append(phase2, cut(other, 100, 200)...)
	st.publish(t, phase2)
	m.add(phase2)
	run.wait(t)
	run.stop(t)
	t.Run("phase2", func(t *testing.T) { checkTables(t, dbPath, m) })

	// Phase 3 after a graceful restart: the rest of the hour gap, more
	// duplicates; the replay of nothing must not count anything twice.
	cfg3 := st.config(dbPath, "e2e")
	cfg3.TableEvery = 1 // the group table then equals site_state at the end
	var commits struct {
		sync.Mutex
		CommitInfo
	}
	cfg3.OnCommit = func(c CommitInfo) {
		commits.Lock()
		defer commits.Unlock()
		commits.Messages += c.Messages
		commits.Rows += c.Rows
		commits.Duplicates += c.Duplicates
		commits.DeadLetters += c.DeadLetters
	}
	rowsBefore, dupsBefore := len(m.expectRows()), m.totalDups()
	run = startProc(t, cfg3)
	phase3 := append(cut(hour, 1000, 1200), cut(hour, 1300, 1600)...)
	phase3 = append(phase3, cut(min, 0, 50)...)
	phase3 = append(phase3, cut(day, 10, 20)...)
	// An all-null Hour record at a whole second: only the gtsm_session
	// header tells its session (a Min one would have milliseconds).
	var allNull record.Record
	allNull.SetSite("B009")
	allNull.SetTime(hour[len(hour)-1].Time + 1000)
	allNull.Session = bottle.Hour
	phase3 = append(phase3, allNull)
	st.publish(t, phase3)
	m.add(phase3)
	// A message that is not Confluent wire format: a dead letter, not a
	// crash, not a silent skip.
	st.publishRaw(t, st.serde.AppendKey(nil, "B009"), []byte("not avro"))
	run.wait(t)
	run.stop(t)
	t.Run("phase3 OnCommit", func(t *testing.T) {
		commits.Lock()
		defer commits.Unlock()
		if commits.Messages != len(phase3)+1 || commits.Rows != len(m.expectRows())-rowsBefore ||
			commits.Duplicates != int(m.totalDups()-dupsBefore) || commits.DeadLetters != 1 {
			t.Errorf("OnCommit totals %+v; want %d messages, %d rows, %d duplicates, 1 dead letter",
				commits.CommitInfo, len(phase3)+1, len(m.expectRows())-rowsBefore, m.totalDups()-dupsBefore)
		}
	})
	t.Run("phase3", func(t *testing.T) {
		checkTables(t, dbPath, m)
		db := openRO(t, dbPath)
		defer db.Close()
		// Hour gap fully filled; min gap split around 350.
		var hourGaps, minGaps int
		db.QueryRow(`SELECT count(*) FILTER (session = 'Hour'), count(*) FILTER (session = 'Min') FROM gaps WHERE site = 'B009'`).Scan(&hourGaps, &minGaps)
		if hourGaps != 0 || minGaps != 2 {
			t.Errorf("gaps: hour %d (want 0), min %d (want 2)", hourGaps, minGaps)
		}
		var lateUpd int64
		db.QueryRow(`SELECT sum(late_updates) FROM windows WHERE site = 'B009' AND session = 'Hour' AND width = '10m'`).Scan(&lateUpd)
		if lateUpd == 0 {
			t.Error("no late updates of final Hour 10m windows")
		}
		var micro1, micro3 any
		db.QueryRow(`SELECT microstrain_mean FROM windows WHERE site = 'B009' AND session = 'Hour' AND width = '1h' AND channel = 'ls1_t0'`).Scan(&micro1)
		db.QueryRow(`SELECT microstrain_mean FROM windows WHERE site = 'B009' AND session = 'Hour' AND width = '1h' AND channel = 'ls3_t0'`).Scan(&micro3)
		if micro1 == nil || micro3 != nil {
			t.Errorf("microstrain_mean: gauge 1 %v (want a value), gauge 3 %v (want NULL)", micro1, micro3)
		}
		// The goka group table, read through a view with the murmur2 hasher,
		// holds the same counters as site_state.
		view, err := NewView(cfg3)
		if err != nil {
			t.Fatal(err)
		}
		vctx, vcancel := context.WithCancel(context.Background())
		vdone := make(chan error, 1)
		go func() { vdone <- view.Run(vctx) }()
		defer func() { vcancel(); <-vdone }()
		for i := 0; !view.Recovered() && i < 500; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		for _, site := range []string{"B009"} { // B010 has no message in phase 3: its value is from TableEvery=1000
			v, err := view.Get(string(st.serde.AppendKey(nil, site)))
			if err != nil || v == nil {
				t.Fatalf("view get %s: %v, %v", site, v, err)
			}
			for _, s := range v.(*TableValue).Sessions {
				var records, dups, late, gaps, missing int64
				if err := db.QueryRow(`SELECT records, duplicates, late, gaps, missing FROM site_state WHERE site = ? AND session = ?`,
					site, s.Session).Scan(&records, &dups, &late, &gaps, &missing); err != nil {
					t.Fatal(err)
				}
				if s.Records != records || s.Duplicates != dups || s.Late != late || s.Gaps != gaps || s.Missing != missing {
					t.Errorf("group table %s/%s = %+v; site_state %d %d %d %d %d", site, s.Session, s, records, dups, late, gaps, missing)
				}
			}
		}
		var next int64
		db.QueryRow(`SELECT sum(next_offset) FROM kafka_offsets`).Scan(&next)
		var dead int
		var deadErr string
		if err := db.QueryRow(`SELECT count(*), any_value(error) FROM dead_letters`).Scan(&dead, &deadErr); err != nil || dead != 1 ||
			!strings.Contains(deadErr, "magic") || !strings.Contains(deadErr, "offset") {
			t.Errorf("dead_letters: %d rows, error %q, %v; want 1 naming the offset and the bad magic byte", dead, deadErr, err)
		}
		if want := int64(len(phase1) + len(phase2) + len(phase3) + 1); next != want {
			t.Errorf("kafka_offsets sum %d, want %d (every message)", next, want)
		}
	})
}

func openRW(path string) (*sql.DB, error) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		return nil, err
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// TestAllowedLateness runs the Hour fixture with records held back and sent
// later, with 3 minutes of allowed lateness: windows must be final (and late
// updates counted) exactly as the model says.
func TestAllowedLateness(t *testing.T) {
	st := startStack(t, 2)
	hour := fixtures(t, "hour")
	var stream []record.Record
	stream = append(stream, cut(hour, 0, 100)...)
	stream = append(stream, cut(hour, 120, 700)...) // 100..119 held back
	stream = append(stream, cut(hour, 100, 110)...) // 10m window 0 not final yet (site at 699 s < 600+180)
	stream = append(stream, cut(hour, 700, 1000)...)
	stream = append(stream, cut(hour, 110, 120)...)   // now final (site at 999 s): 10 late updates
	stream = append(stream, cut(hour, 2000, 2100)...) // a gap, and the 1h window stays open
	m := newModel(3 * time.Minute)
	m.add(stream)
	st.publish(t, stream)
	dbPath := filepath.Join(t.TempDir(), "late.duckdb")
	cfg := st.config(dbPath, "lateness")
	cfg.AllowedLateness = 3 * time.Minute
	run := startProc(t, cfg)
	run.wait(t)
	run.stop(t)
	checkTables(t, dbPath, m)

	// The same group on another (new) file: refused, the group would
	// resume after everything this file never got.
	p2, err := New(context.Background(), st.config(filepath.Join(t.TempDir(), "other.duckdb"), "lateness"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "does not belong to this group") {
		t.Errorf("new file, old group: %v", err)
	}

	db := openRO(t, dbPath)
	defer db.Close()
	var lu int64
	var final bool
	if err := db.QueryRow(`SELECT late_updates, final FROM windows WHERE width = '10m' AND channel = 'ls1_t0' AND window_start = '2021-07-01 00:00:00'`).Scan(&lu, &final); err != nil {
		t.Fatal(err)
	}
	if lu != 10 || !final {
		t.Errorf("first 10m window: late_updates %d final %v; want 10, true", lu, final)
	}
}
