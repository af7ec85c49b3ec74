package processor

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

// TestSimultaneousInstances: two processors with different DuckDB files
// started at the same instant in one group. The broker holds each JoinGroup
// until both have arrived, so both have passed the single-instance check
// on an empty group (the race, made certain). Before watchSoleInstance both
// then ran, each storing only its partitions; now both stop with
// ErrGroupInUse before the topic has data, and a restart of one lands every
// record of every partition.
func TestSimultaneousInstances(t *testing.T) {
	st := startStack(t, 4)
	const group = "same-instant"
	var mu sync.Mutex
	joins := 0
	both := make(chan struct{})
	st.Cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		st.Cluster.KeepControl()
		if req.(*kmsg.JoinGroupRequest).Group != group {
			return nil, nil, false
		}
		mu.Lock()
		joins++
		switch {
		case joins == 2:
			close(both)
		case joins > 2:
			mu.Unlock()
			return nil, nil, false
		}
		mu.Unlock()
		st.Cluster.SleepControl(func() {
			select {
			case <-both:
			case <-time.After(30 * time.Second):
			}
		})
		return nil, nil, false
	})

	dir := t.TempDir()
	cfgs := []Config{st.config(filepath.Join(dir, "a.duckdb"), group), st.config(filepath.Join(dir, "b.duckdb"), group)}
	procs := make([]*running, len(cfgs))
	for i, cfg := range cfgs {
		procs[i] = startProc(t, cfg)
	}
	select {
	case <-both:
	case <-time.After(30 * time.Second):
		t.Fatal("the two processors did not both send a JoinGroup within 30 s")
	}
	// Both are members now. Each must stop on its own, well within its
	// watch window (10 s + 2 session timeouts).
	for i, r := range procs {
		select {
		case err := <-r.done:
			if !errors.Is(err, ErrGroupInUse) {
				t.Errorf("processor %d: %v, want ErrGroupInUse", i, err)
			} else {
				t.Logf("processor %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			r.cancel()
			<-r.done
			t.Fatalf("processor %d still runs 30 s after both joined group %s: the two files would split the topic", i, group)
		}
	}

	var recs []record.Record
	for i := range 8 {
		recs = append(recs, synth(fmt.Sprintf("B%03d", i+1), bottle.Hour, 1625097600000, 150)...)
	}
	st.publish(t, recs)
	r := startProc(t, cfgs[0])
	r.wait(t)
	var n int
	if err := r.p.DB().QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
	if n != len(recs) {
		t.Errorf("restarted processor stored %d rows, want %d (every record of every partition)", n, len(recs))
	}
}
