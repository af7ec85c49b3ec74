package processor

import (
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/partition"
	"github.com/earthscope/gtsm-stream/record"
)

// TestSpreadTimesBoundedMemory: Min records of one site one day apart (the
// issue's 80 KB Min file whose 20,000 samples were spread over time) once
// took 216 KiB of duplicate index per record, a pass over every day and
// window per record, 1.2 GB RSS and 1,750 rec/s. With the production batch
// settings (50,000 rows, 1 s), the Go heap must stay within the per-site
// bound (Config.SiteStateBytes) plus a fixed allowance while the tables come
// out exact: every record stored, one gap between each two.
func TestSpreadTimesBoundedMemory(t *testing.T) {
	testutil.Long(t)
	for _, tc := range []struct {
		name   string
		step   int64 // ms between records
		n      int
		budget int // Config.SiteStateBytes; 0: the default, 8 MiB
	}{
		{"one day apart", dayMs, 12_000, 0},            // 1992-01-01 .. 2024-11
		{"one hour apart", 3_600_000, 12_000, 1 << 20}, // 500 days; relieved many times
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startStack(t, 1)
			start := time.Date(1992, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
			recs := make([]record.Record, tc.n)
			strain := record.StrainFields(bottle.Min)
			for i := range recs {
				r := &recs[i]
				r.SetSite("SPRD")
				r.SetTime(start + int64(i)*tc.step)
				r.Session = bottle.Min
				r.SetInt(strain[0], int32(i))
			}
			good := synth("GOOD", bottle.Min, 1625097600000, 2400)
			st.publish(t, append(recs, good...))

			runtime.GC()
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			// The live heap (after a GC), sampled every 50 ms: garbage
			// not yet collected would measure GOGC, not the state.
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var m runtime.MemStats
				for {
					runtime.GC()
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			dbPath := filepath.Join(t.TempDir(), "spread.duckdb")
			cfg := st.config(dbPath, "spread")
			cfg.BatchRows, cfg.FlushInterval, cfg.SiteStateBytes = 50000, time.Second, tc.budget
			var first atomic.Int64 // unix ns of the first commit: the rate leaves out the group join
			cfg.OnCommit = func(CommitInfo) { first.CompareAndSwap(0, time.Now().UnixNano()) }
			run := startProc(t, cfg)
			run.wait(t)
			el := time.Since(time.Unix(0, first.Load()))
			close(stop)
			<-sampled
			budget := int64(run.p.cfg.SiteStateBytes)
			a := run.p.acc(partition.For(st.serde.AppendKey(nil, "SPRD"), st.parts))
			a.mu.Lock()
			peakState := a.sites["SPRD"].sess[bottle.Min].peakMem
			a.mu.Unlock()
			run.stop(t)

			// The accounted state never passes the bound by more than one
			// record's growth (a day index turning into a bitmap, 216 KiB,
			// and three windows).
			if peakState > budget+256<<10 || peakState <= 0 {
				t.Errorf("site state peaked at %d bytes, bound %d (+256 KiB)", peakState, budget)
			}
			grew := int64(peak.Load()) - int64(ms0.HeapAlloc)
			// The bound: SiteStateBytes for the site's indexes and windows,
			// 16 bytes per gap, plus an allowance for batches in flight: a
			// 50,000-row batch's row slice alone is ~15 MiB, and the current,
			// queued and pooled ones are alive (plus window and gap rows,
			// goka and sarama buffers): 96 MiB. Before the fix: 1,640 MiB
			// (one day apart), 156-174 MiB (one hour apart).
			const allowance = 96 << 20
			bound := budget + int64(16*tc.n) + allowance
			t.Logf("%d records %s: %.0f rec/s from the first commit, site state peaked at %.2f MiB (bound %.2f MiB), live Go heap grew at most %.1f MiB (bound %.1f MiB)",
				tc.n+len(good), tc.name, float64(tc.n+len(good))/el.Seconds(), float64(peakState)/(1<<20), float64(budget)/(1<<20),
				float64(grew)/(1<<20), float64(bound)/(1<<20))
			if grew > bound {
				t.Errorf("Go heap grew by %.1f MiB, more than the bound %.1f MiB", float64(grew)/(1<<20), float64(bound)/(1<<20))
			}

			db := openRO(t, dbPath)
			defer db.Close()
			var rows, gaps, missing, good2 int64
			if err := db.QueryRow(`SELECT count(*) FROM gtsm_etl WHERE key_site = 'SPRD'`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(`SELECT count(*), sum(missing) FROM gaps WHERE site = 'SPRD'`).Scan(&gaps, &missing); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(`SELECT count(*) FROM gtsm_etl WHERE key_site = 'GOOD'`).Scan(&good2); err != nil {
				t.Fatal(err)
			}
			wantMissing := int64(tc.n-1) * (tc.step/50 - 1)
			if rows != int64(tc.n) || gaps != int64(tc.n-1) || missing != wantMissing || good2 != int64(len(good)) {
				t.Errorf("SPRD: %d rows, %d gaps, %d missing; GOOD %d rows; want %d, %d, %d, %d",
					rows, gaps, missing, good2, tc.n, tc.n-1, wantMissing, len(good))
			}
		})
	}
}
