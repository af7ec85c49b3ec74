package processor

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
)

// partPublisher records, per partition, the calls and the partition's
// gtsm_etl rows at the last call, and whether two calls ever overlapped.
type partPublisher struct {
	mu      sync.Mutex
	busy    bool
	calls   map[int32]int
	rows    map[int32]int64
	overlap bool
}

func (r *partPublisher) Publish(ctx context.Context, db *sql.DB, part int32) error {
	r.mu.Lock()
	r.overlap = r.overlap || r.busy
	r.busy = true
	r.mu.Unlock()
	var n int64
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM gtsm_etl WHERE kafka_partition = ?`, part).Scan(&n)
	time.Sleep(10 * time.Millisecond) // widen the window an overlap would need
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy = false
	r.calls[part]++
	r.rows[part] = n
	return err
}

// TestFilePublisher: in single-file mode a Publisher gets every partition
// of the file after its commits (checked while the processor runs: each
// partition's last publish saw all its rows), never two calls at once, and
// each partition once more at shutdown.
func TestFilePublisher(t *testing.T) {
	st := startStack(t, 3)
	recs := fixtures(t, "hour")
	for i, site := range []string{"B010", "B011", "B012", "B013", "B014"} {
		recs = append(recs, synth(site, bottle.Hour, recs[0].Time+int64(i)*1000, 300)...)
	}
	pub := &partPublisher{calls: map[int32]int{}, rows: map[int32]int64{}}
	cfg := st.config(filepath.Join(t.TempDir(), "one.duckdb"), "filepub")
	cfg.Publisher, cfg.PublishInterval = pub, 100*time.Millisecond
	st.publish(t, recs)
	run := startProc(t, cfg)
	run.wait(t)
	want := map[int32]int64{}
	rows, err := run.p.DB().Query(`SELECT kafka_partition, count(*) FROM gtsm_etl GROUP BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		want[p] = n
	}
	rows.Close()
	if len(want) < 2 {
		t.Fatalf("rows on partitions %v: want at least 2", want)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pub.mu.Lock()
		done := len(pub.calls) == len(want)
		for part, n := range want {
			done = done && pub.rows[part] == n
		}
		pub.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			pub.mu.Lock()
			t.Fatalf("5 s after catching up, the last publish of each partition saw %v rows (calls %v); want %v", pub.rows, pub.calls, want)
		}
	}
	pub.mu.Lock()
	before := map[int32]int{}
	for k, v := range pub.calls {
		before[k] = v
	}
	pub.mu.Unlock()
	run.stop(t)
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.overlap {
		t.Error("Publisher called twice at once")
	}
	for part, n := range want {
		if pub.calls[part] <= before[part] || pub.rows[part] != n {
			t.Errorf("partition %d: %d calls before stop, %d after, the last saw %d rows; want a publish at shutdown seeing %d",
				part, before[part], pub.calls[part], pub.rows[part], n)
		}
	}
}
