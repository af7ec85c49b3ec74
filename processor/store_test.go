package processor

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
)

// recPublisher records Config.Publisher calls: per partition, how often, the
// gtsm_etl rows the database held at the last call, and whether two calls
// for one partition ever overlapped.
type recPublisher struct {
	mu      sync.Mutex
	busy    map[int32]bool
	calls   map[int32]int
	rows    map[int32]int64
	overlap bool
}

func (r *recPublisher) Publish(ctx context.Context, db *sql.DB, part int32) error {
	r.mu.Lock()
	if r.busy[part] {
		r.overlap = true
	}
	r.busy[part] = true
	r.mu.Unlock()
	var n int64
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM gtsm_etl`).Scan(&n)
	time.Sleep(20 * time.Millisecond) // widen the window an overlap would need
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy[part] = false
	r.calls[part]++
	r.rows[part] = n
	return err
}

// unionDump is dumpAll over every partition file of a state directory.
func unionDump(t *testing.T, dir string) (map[string][]string, map[int32]int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, testTopic+"-p*.duckdb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no partition files in %s (%v)", dir, err)
	}
	out := map[string][]string{}
	rows := map[int32]int64{}
	for _, f := range files {
		db := openRO(t, f)
		for k, v := range dumpAll(t, db) {
			out[k] = append(out[k], v...)
		}
		var part int32
		var n int64
		if err := db.QueryRow(`SELECT (SELECT kafka_partition FROM kafka_offsets), (SELECT count(*) FROM gtsm_etl)`).Scan(&part, &n); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := PartitionFile(dir, testTopic, part); want != f {
			t.Errorf("file %s holds partition %d, whose file is %s", f, part, want)
		}
		rows[part] = n
		db.Close()
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out, rows
}

// TestStateDirMatchesModel runs the processor in StateDir mode over a
// 3-partition topic, in two phases with a restart between (state reloaded
// from the partition files), and checks the union of the files against the
// independent model, and the Publisher contract: called per partition,
// never twice at once for one partition, the last call after the last
// commit (it sees every row of the file).
func TestStateDirMatchesModel(t *testing.T) {
	st := startStack(t, 3)
	hour := fixtures(t, "hour")
	sites := []string{"B010", "B011", "B012", "B013", "B014"}
	phase1 := append(cut(hour, 0, 2000), fixtures(t, "day")...)
	phase2 := cut(hour, 1500, 3600) // 500 duplicates across the restart
	for i, s := range sites {
		recs := synth(s, bottle.Hour, hour[0].Time+int64(i)*1000, 1500)
		phase1 = append(phase1, cut(recs, 0, 1000)...)
		phase2 = append(phase2, cut(recs, 1100, 1500)...) // a gap of 100
	}
	m := newModel(0)
	dir := filepath.Join(t.TempDir(), "state")
	pub := &recPublisher{busy: map[int32]bool{}, calls: map[int32]int{}, rows: map[int32]int64{}}
	cfg := st.config("", "statedir")
	cfg.StateDir, cfg.Publisher, cfg.PublishInterval = dir, pub, 100*time.Millisecond

	for i, phase := range [][]record.Record{phase1, phase2} {
		st.publish(t, phase)
		m.add(phase)
		run := startProc(t, cfg)
		if run.p.DB() != nil {
			t.Error("StateDir mode: DB() is not nil")
		}
		run.wait(t)
		// Lag is the group's (Kafka's committed offsets follow the files).
		lag, err := run.p.Lag(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for part, l := range lag {
			if l != 0 {
				t.Errorf("caught up, but Lag says partition %d lags by %d", part, l)
			}
		}
		run.stop(t)
		got, rows := unionDump(t, dir)
		testutil.DiffLines(t, "gtsm_etl", got["gtsm_etl"], m.expectRows())
		gaps, states := m.expectGapsAndState()
		testutil.DiffLines(t, "gaps", got["gaps"], gaps)
		testutil.DiffLines(t, "site_state", got["site_state"], states)
		testutil.DiffLines(t, "windows", got["windows"], m.expectWindows())
		pub.mu.Lock()
		if pub.overlap {
			t.Error("Publisher called twice at once for one partition")
		}
		for part, n := range rows {
			if pub.calls[part] == 0 || pub.rows[part] != n {
				t.Errorf("phase %d partition %d: %d Publish calls, the last saw %d rows; the file has %d", i+1, part, pub.calls[part], pub.rows[part], n)
			}
		}
		t.Logf("phase %d: %d partition files, Publish calls per partition %v", i+1, len(rows), pub.calls)
		pub.mu.Unlock()
	}
	if b, err := os.ReadFile(filepath.Join(dir, testTopic+".partitions")); err != nil || strings.TrimSpace(string(b)) != "3" {
		t.Errorf("partition count file: %q, %v; want 3", b, err)
	}
}

// TestStateDirPartitionCountChanged: a state directory written for another
// partition count is refused (sites would hash to other files).
func TestStateDirPartitionCountChanged(t *testing.T) {
	st := startStack(t, 3)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, testTopic+".partitions"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := st.config("", "countchange")
	cfg.StateDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "has 3 partitions but the state directory") {
		t.Fatalf("Run = %v, want the partition count refusal", err)
	}
}

func TestStoreMemLimit(t *testing.T) {
	for _, c := range []struct {
		total string
		open  int
		want  string
	}{
		{"256MB", 1, "250000KiB"},
		{"256MB", 2, "131072KiB"}, // the floor (125,000 KiB below it)
		{"256MB", 12, "131072KiB"},
		{"1GiB", 4, "262144KiB"},
		{"1GiB", 8, "131072KiB"},
		{"1.5GB", 0, "1464843KiB"},
	} {
		p := &Processor{cfg: Config{MemoryLimit: c.total}}
		if got := p.storeMemLimit(c.open); got != c.want {
			t.Errorf("storeMemLimit(%s, %d files) = %s, want %s", c.total, c.open, got, c.want)
		}
	}
	for _, bad := range []string{"", "lots", "12XB"} {
		if _, err := sizeBytes(bad); err == nil {
			t.Errorf("sizeBytes(%q): no error", bad)
		}
	}
}

// TestStateDirRefusesForeignFiles: a partition file is refused when it is
// not the partition's (it holds another partition's offsets) or not the
// group's (the group has committed past it: a new directory with an old
// group would silently miss what lies between).
func TestStateDirRefusesForeignFiles(t *testing.T) {
	st := startStack(t, 2)
	recs := synth("B020", bottle.Hour, 1625097600000, 300)
	st.publish(t, recs)
	part := partitionOf(st, "B020")
	for _, c := range []struct {
		name, want string
		prepare    func(t *testing.T, dir string, cfg Config)
	}{
		{"another partition's file", "not this partition's file", func(t *testing.T, dir string, cfg Config) {
			db, err := openRW(PartitionFile(dir, testTopic, part))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`INSERT INTO kafka_offsets VALUES (?, ?, 5)`, testTopic, 1-part); err != nil {
				t.Fatal(err)
			}
		}},
		{"a new directory for a group that has committed", "does not belong to this group", func(t *testing.T, dir string, cfg Config) {
			cfg.StateDir = filepath.Join(t.TempDir(), "first")
			run := startProc(t, cfg)
			run.wait(t)
			run.stop(t)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := st.config("", "foreign-"+strings.ReplaceAll(c.name, " ", "-"))
			cfg.StateDir = dir
			c.prepare(t, dir, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := Run(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want an error saying %q", err, c.want)
			}
		})
	}
}

func partitionOf(st *stack, site string) int32 {
	return partition.For(st.serde.AppendKey(nil, site), st.parts)
}
