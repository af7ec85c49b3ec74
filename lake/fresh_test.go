package lake

import (
	"context"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestReadersDuringPublish: readers query the lake in a loop while the
// owner keeps committing late rows into an already-published day and
// publishing, the query views following every commit: no statement fails
// (replaced files outlive the retention of the slowest query) and none
// sees a window or an offset twice, or a 1-day window whose n is not one
// the owner committed (half a span).
func TestReadersDuringPublish(t *testing.T) {
	testutil.Long(t)
	ctx := context.Background()
	o := newFakeOwner(t)
	dir := filepath.Join(t.TempDir(), "lake")
	pub, err := New(dir, Logger(quietLogger()), Retention(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	o.commit("A", 0, 10, day1+100)
	if err := pub.Publish(ctx, o.db, 0); err != nil {
		t.Fatal(err)
	}
	q, err := OpenQuery(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go q.Run(rctx, 20*time.Millisecond) // the views follow the commits
	committed := sync.Map{}             // n of A's day-1 window the owner ever committed
	committed.Store(int64(10), true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	reads := make([]int, 2)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var dupW, dupO int
				var n int64
				err := q.DB().QueryRow(`SELECT
					(SELECT count(*) - count(DISTINCT (site, session, width, window_start, channel)) FROM windows),
					(SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset)) FROM gtsm_etl),
					(SELECT n FROM windows WHERE site = 'A' AND window_start = TIMESTAMP '2024-03-01')`).Scan(&dupW, &dupO, &n)
				switch {
				case err != nil:
					errs <- err.Error()
				case dupW != 0 || dupO != 0:
					errs <- "duplicates seen"
				default:
					if _, ok := committed.Load(n); !ok {
						errs <- "a 1-day window n never committed"
					}
				}
				reads[r]++
			}
		}(r)
	}
	for i := 0; i < 15; i++ {
		o.commit("A", 0, 3, day1+200+int64(i))
		var n int64
		if err := o.db.QueryRow(`SELECT n FROM windows WHERE site = 'A' AND window_start = TIMESTAMP '2024-03-01'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		committed.Store(n, true)
		if err := pub.Publish(ctx, o.db, 0); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	seen := map[string]int{}
	for e := range errs {
		seen[e]++
	}
	for e, n := range seen {
		t.Errorf("%d reads: %s", n, e)
	}
	t.Logf("reads during 15 publishes: %v", reads)
	if reads[0] == 0 {
		t.Fatal("no read ran during the publishes")
	}
	checkLake(t, dir, o.db, "at the end")
}

// TestFreshness measures how long a record takes from being produced to
// being returned by the query service, with the real processor committing
// every 50 ms and the owner publishing every second (a ticker, as a
// partition owner would). Logged for docs/scale-out-query.md; the bound is
// loose for the shared test machine.
func TestFreshness(t *testing.T) {
	testutil.Long(t)
	if testing.Short() {
		t.Skip("measurement")
	}
	ctx := context.Background()
	st := startStack(t, 2)
	ref := [4]int64{50_000_000, 51_000_000, 52_000_000, 49_000_000}
	st.publish(t, siteData("B009", ref, 0, 600, nil))
	dir := t.TempDir()
	run := startProc(t, st, filepath.Join(dir, "single.duckdb"))
	defer run.stop(t)
	db := <-run.db
	run.waitCaughtUp(t)
	pub, err := New(filepath.Join(dir, "lake"), Logger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	const every = time.Second
	stop := make(chan struct{})
	done := make(chan struct{})
	var pubTimes []time.Duration
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for p := int32(0); p < st.parts; p++ {
				s := time.Now()
				if err := pub.Publish(ctx, db, p); err != nil {
					t.Error(err)
					return
				}
				pubTimes = append(pubTimes, time.Since(s))
			}
		}
	}()
	q, err := OpenQuery(ctx, pub.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var lat []time.Duration
	for i := int64(0); i < 8; i++ {
		sec := 600 + i
		sent := time.Now()
		st.publish(t, siteData("B009", ref, sec, 1, nil))
		for {
			if err := q.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := q.DB().QueryRow(`SELECT count(*) FROM gtsm_etl WHERE key_site = 'B009' AND session = 'Hour' AND "time" = ?`, (t0+sec)*1000).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				break
			}
			if time.Since(sent) > 30*time.Second {
				t.Fatalf("record %d not in the lake after 30 s", sec)
			}
			time.Sleep(10 * time.Millisecond)
		}
		lat = append(lat, time.Since(sent))
		time.Sleep(time.Duration(i%3) * 300 * time.Millisecond) // spread over the publish interval
	}
	close(stop)
	<-done
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(pubTimes, func(i, j int) bool { return pubTimes[i] < pubTimes[j] })
	t.Logf("produce -> visible in the query service (publish every %v, processor flush 50 ms): min %v median %v max %v",
		every, lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	t.Logf("Publish of one partition (a round or nothing new): median %v max %v over %d calls",
		pubTimes[len(pubTimes)/2].Round(time.Millisecond), pubTimes[len(pubTimes)-1].Round(time.Millisecond), len(pubTimes))
	if lat[len(lat)-1] > 15*time.Second {
		t.Errorf("freshness %v: want well under 15 s with a 1 s publish interval", lat[len(lat)-1])
	}
}
