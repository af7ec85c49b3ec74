package processor

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/level2"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/metadata/publish"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/record"
)

// waitReprocessed waits until the processor has finished a Level-2
// reprocess of every site in want with the version given (and the reason,
// when not empty).
func waitReprocessed(t testing.TB, p *Processor, want map[string]string, reason string) []ReprocessStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got := p.Level2Reprocess()
		n := 0
		for _, s := range got {
			if v, ok := want[s.Site]; ok && s.Version == v && !s.Finished.IsZero() && (reason == "" || s.Reason == reason) {
				n++
			}
		}
		if n == len(want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("reprocess of %v not finished: %+v", want, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// splitAt splits records at second t (records before, records at or after).
func splitAt(recs []record.Record, t int64) (before, after []record.Record) {
	for _, r := range recs {
		if r.Time/1000 < t {
			before = append(before, r)
		} else {
			after = append(after, r)
		}
	}
	return before, after
}

// l2Files opens the Level-2 tables of a run: the file, or every partition
// file of a state directory; q's lines of all of them.
func l2Files(t testing.TB, path, stateDir string) func(q string) []string {
	t.Helper()
	files := []string{path}
	if stateDir != "" {
		var err error
		if files, err = filepath.Glob(filepath.Join(stateDir, testTopic+"-p*.duckdb")); err != nil || len(files) == 0 {
			t.Fatalf("no partition files in %s (%v)", stateDir, err)
		}
	}
	var dbs []*sql.DB
	for _, f := range files {
		db := openRO(t, f)
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	return func(q string) []string {
		var out []string
		for _, db := range dbs {
			out = append(out, l2Lines(t, db, q)...)
		}
		sort.Strings(out)
		return out
	}
}

// TestLevel2ReprocessMetadataAfterData: two sites' data are processed
// without metadata; their metadata is then loaded while the rest of the
// data arrives (as shuffled hour files, so some arrive behind the
// reprocess's cursor). Every 300 s point of the whole series ends up
// computed with the metadata, equal to level2.Machine run over the whole
// series with it (bit for bit) and to EarthScope's processing.py within
// 1e-6 microstrain, in single-file and state-directory modes.
func TestLevel2ReprocessMetadataAfterData(t *testing.T) {
	for _, mode := range []string{"file", "statedir"} {
		t.Run(mode, func(t *testing.T) {
			stations := l2Stations(t)
			var recs []record.Record
			for i, site := range []string{"TSM5", "B004"} {
				recs = append(recs, l2SiteData(site, stations[site].Reference, 8, int64(i+11))...)
			}
			before, after := splitAt(recs, l2Start+5*3600)
			st := startStack(t, 3)
			st.publish(t, before)
			dir := t.TempDir()
			path := filepath.Join(dir, "after.duckdb")
			cfg := l2Config(st, path, "after-"+mode)
			cfg.Level2ReprocessChunk = 40 * time.Minute
			if mode == "statedir" {
				cfg.DBPath, cfg.StateDir = "", filepath.Join(dir, "state")
			}
			run := startProc(t, cfg)
			waitL2(t, run)
			vers := publishMeta(t, st, stations["TSM5"], stations["B004"])
			chunks := hourChunks(after)
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
			for _, c := range chunks {
				st.publish(t, c)
			}
			waitL2(t, run)
			got := waitReprocessed(t, run.p, vers, "metadata first arrived")
			// The job covers what was stored when it caught up (at least the
			// 5 h before the metadata; the rest may have come live after).
			for _, s := range got {
				if s.Done != s.Total || s.Total < 5*3600-1 || s.Points < 50 {
					t.Errorf("progress of a finished reprocess: %+v", s)
				}
			}
			run.stop(t)
			lines := l2Files(t, cfg.DBPath, cfg.StateDir)
			meta := map[string]l2Meta2{"TSM5": {stations["TSM5"], vers["TSM5"]}, "B004": {stations["B004"], vers["B004"]}}
			wantG, wantR := l2Oracle(t, recs, meta, nil, nil)
			testutil.DiffLines(t, "level2_gauge_data (vs the machine over the whole series)", lines(qL2Gauge), wantG)
			testutil.DiffLines(t, "level2_regional_data (vs the machine over the whole series)", lines(qL2Reg), wantR)
			want := []string{"B004|" + vers["B004"], "TSM5|" + vers["TSM5"]}
			testutil.DiffLines(t, "station_metadata", lines(qL2Meta), want)
			for _, site := range []string{"TSM5", "B004"} {
				checkProcessingPy(t, recs, stations[site], lines)
			}
		})
	}
}

// TestLevel2ReprocessVersionChange: a new metadata version (other
// references, barometric response) published mid-stream: the site's whole
// series is recomputed with it, every row carries it, and the rows equal
// the machine and processing.py over the whole series with the new version:
// no step at the change, no row with the old version's atmp_c.
func TestLevel2ReprocessVersionChange(t *testing.T) {
	stations := l2Stations(t)
	a := stations["TSM5"]
	b := *a
	b.Reference = [4]int64{a.Reference[0] + 2500, a.Reference[1] - 700, a.Reference[2], a.Reference[3] + 90}
	resp := *a.Atmp
	for g := range resp {
		resp[g] *= 1.3
	}
	b.Atmp = &resp
	recs := l2SiteData("TSM5", a.Reference, 8, 9)
	before, after := splitAt(recs, l2Start+4*3600)
	st := startStack(t, 3)
	va := publishMeta(t, st, a)["TSM5"]
	st.publish(t, before)
	path := filepath.Join(t.TempDir(), "change.duckdb")
	cfg := l2Config(st, path, "change")
	cfg.Level2ReprocessChunk = 30 * time.Minute
	run := startProc(t, cfg)
	waitL2(t, run)
	var n int
	if err := run.p.DB().QueryRow(`SELECT count(*) FROM level2_gauge_data WHERE metadata_version = ?`, va).Scan(&n); err != nil || n < 4*40 {
		t.Fatalf("before the change: %d rows of version %s (%v)", n, va, err)
	}
	vb := publishMeta(t, st, &b)["TSM5"]
	if va == vb {
		t.Fatal("same version for different metadata")
	}
	st.publish(t, after)
	waitL2(t, run)
	waitReprocessed(t, run.p, map[string]string{"TSM5": vb}, "metadata version changed")
	run.stop(t)
	db := openRO(t, path)
	defer db.Close()
	wantG, wantR := l2Oracle(t, recs, map[string]l2Meta2{"TSM5": {&b, vb}}, nil, nil)
	gotG := l2Lines(t, db, qL2Gauge)
	testutil.DiffLines(t, "level2_gauge_data (vs the machine over the whole series with the new version)", gotG, wantG)
	testutil.DiffLines(t, "level2_regional_data", l2Lines(t, db, qL2Reg), wantR)
	for _, l := range gotG {
		// metadata_version is qL2Gauge's ninth column.
		if strings.Split(l, "|")[8] != vb {
			t.Fatalf("a row not of the new version: %s", l)
		}
	}
	want := []string{"TSM5|" + va, "TSM5|" + vb}
	sort.Strings(want)
	testutil.DiffLines(t, "station_metadata", l2Lines(t, db, qL2Meta), want)
	checkProcessingPy(t, recs, &b, func(q string) []string { return l2Lines(t, db, q) })
}

// TestLevel2ReprocessRequest: `gtsm level2 reprocess --site S --from T`'s
// request (publish.RequestReprocess) rewrites the site's rows from T on and
// leaves the earlier ones; the request is handled once (a restart does not
// run it again); a site without metadata cannot be requested.
func TestLevel2ReprocessRequest(t *testing.T) {
	stations := l2Stations(t)
	s := stations["TSM5"]
	recs := l2SiteData("TSM5", s.Reference, 6, 5)
	st := startStack(t, 3)
	ver := publishMeta(t, st, s)["TSM5"]
	st.publish(t, recs)
	path := filepath.Join(t.TempDir(), "request.duckdb")
	cfg := l2Config(st, path, "request")
	run := startProc(t, cfg)
	waitL2(t, run)
	// Spoil every row: what the request recomputes comes back right.
	if _, err := run.p.DB().Exec(`UPDATE level2_gauge_data SET microstrain = 0, atmp_c = 0`); err != nil {
		t.Fatal(err)
	}
	from := time.Unix(l2Start+3*3600+93, 0).UTC() // 03:01:40: the first point from is 03:05
	k := producer.Kafka{Brokers: []string{st.BootstrapServers}}
	req, err := publish.RequestReprocess(context.Background(), k, "", "TSM5", from)
	if err != nil {
		t.Fatal(err)
	}
	if req.Version != ver || req.ID == "" {
		t.Fatalf("request %+v, want version %s", req, ver)
	}
	if _, err := publish.RequestReprocess(context.Background(), k, "", "NOMD", time.Time{}); !errors.Is(err, publish.ErrNoMetadata) {
		t.Errorf("request for a site without metadata: %v", err)
	}
	waitReprocessed(t, run.p, map[string]string{"TSM5": ver}, "request")
	run.stop(t)
	run = startProc(t, cfg) // the request is the topic's newest record of TSM5: it must not run again
	waitL2(t, run)
	time.Sleep(500 * time.Millisecond)
	run.stop(t)
	db := openRO(t, path)
	defer db.Close()
	wantG, _ := l2Oracle(t, recs, map[string]l2Meta2{"TSM5": {s, ver}}, nil, nil)
	var want []string
	for _, l := range wantG {
		f := strings.Split(l, "|")
		if ts, _ := strconv.ParseInt(f[1], 10, 64); ts < from.Unix() {
			f[4], f[5] = "0", "0"
		}
		want = append(want, strings.Join(f, "|"))
	}
	sort.Strings(want)
	testutil.DiffLines(t, "level2_gauge_data (rows from the request's time recomputed)", l2Lines(t, db, qL2Gauge), want)
	jobs := l2Lines(t, db, `SELECT site, target_version, from_time, request_id, reason, chunks, finished_at IS NOT NULL FROM level2_reprocess`)
	wantJob := fmt.Sprintf("TSM5|%s|%d|%s|request|1|true", ver, from.Unix(), req.ID)
	testutil.DiffLines(t, "level2_reprocess (handled once)", jobs, []string{wantJob})
}

// checkProcessingPy runs EarthScope's processing.py (level2/oracle.py) over
// the site's whole series with the station's metadata and requires every
// one of its 300 s points in the tables (and no other) with microstrain,
// regional strains, offsets and atmp_c within 1e-6 microstrain.
func checkProcessingPy(t *testing.T, recs []record.Record, s *metadata.Station, lines func(string) []string) {
	t.Helper()
	proc := testutil.Shared(t, "reference/earthscopestraintools/processing.py")
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy, scipy, pandas").Run(); err != nil {
		t.Fatalf("%s with numpy, scipy and pandas is required: %v", py, err)
	}
	dir := t.TempDir()
	counts := map[int64][4]int32{}
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	type ps struct {
		t int64
		c int32
	}
	var press []ps
	for _, r := range recs {
		if r.Site != s.Site {
			continue
		}
		switch r.Session {
		case bottle.Hour:
			var c [4]int32
			for g, f := range record.StrainFields(bottle.Hour) {
				v, ok := r.Int(f)
				if !ok {
					v = level2.FillValue
				}
				c[g] = v
			}
			tt := r.Time / 1000
			counts[tt] = c
			first, last = min(first, tt), max(last, tt)
		case bottle.Day:
			v, _ := r.Int(pressureField)
			press = append(press, ps{r.Time / 1000, v})
		}
	}
	sort.Slice(press, func(i, j int) bool { return press[i].t < press[j].t })
	writeCSV := func(name string, rows [][]string) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w := csv.NewWriter(f)
		w.WriteAll(rows)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rows := [][]string{{"time", "ch0", "ch1", "ch2", "ch3"}}
	for tt := first; tt <= last; tt++ {
		r := []string{strconv.FormatInt(tt, 10), "", "", "", ""}
		if c, ok := counts[tt]; ok {
			for g := range c {
				r[g+1] = strconv.Itoa(int(c[g]))
			}
		}
		rows = append(rows, r)
	}
	writeCSV("strain.csv", rows)
	rows = [][]string{{"time", "counts"}}
	for _, p := range press {
		rows = append(rows, []string{strconv.FormatInt(p.t, 10), strconv.Itoa(int(p.c))})
	}
	writeCSV("pressure.csv", rows)
	var mats [][2]any
	for _, m := range s.Matrices {
		mats = append(mats, [2]any{m.Name, m.Values})
	}
	// oracle.py finds offsets on microstrain − tide_c − trend_c (level2.ipynb)
	// and takes the tide and trend on the 300 s grid as input: here the
	// tables' own tide_c and trend_c, which level2's tests hold to
	// tide_oracle.py, SPOTL hartid and calculate_linear_trend_correction
	// (B004's README trend model is a function of time alone). NULL tide, a
	// gauge without constituents: no tide to remove.
	tides, trends := map[int64]*[4]string{}, map[int64]*[4]string{}
	for _, l := range lines(qL2Gauge) {
		f := strings.Split(l, "|") // site, time, gauge, counts, microstrain, atmp_c, tide_c, ...
		if f[0] != s.Site {
			continue
		}
		ts, _ := strconv.ParseInt(f[1], 10, 64)
		g, _ := strconv.Atoi(f[2])
		if tides[ts] == nil {
			tides[ts], trends[ts] = &[4]string{"0", "0", "0", "0"}, &[4]string{"", "", "", ""}
		}
		if f[6] != "NULL" {
			tides[ts][g] = f[6]
		}
		if f[9] != "NULL" {
			trends[ts][g] = f[9]
		}
	}
	for name, m := range map[string]map[int64]*[4]string{"tide.csv": tides, "trend.csv": trends} {
		rows = [][]string{{"time", "CH0", "CH1", "CH2", "CH3"}}
		for ts, v := range m {
			rows = append(rows, append([]string{strconv.FormatInt(ts, 10)}, v[:]...))
		}
		writeCSV(name, rows)
	}
	params, _ := json.Marshal(map[string]any{
		"reference": s.Reference, "gap": s.Gap, "matrices": mats, "atmp": s.Atmp,
		"offset_window": level2.DefaultOffsetWindow, "offset_multiplier": level2.DefaultOffsetMultiplier,
		"offset_percentile": level2.DefaultOffsetPercentile, "max_pressure_gap": level2.DefaultMaxPressureGap,
		"tide_csv": filepath.Join(dir, "tide.csv"), "trend_csv": filepath.Join(dir, "trend.csv"),
	})
	if err := os.WriteFile(filepath.Join(dir, "params.json"), params, 0o644); err != nil {
		t.Fatal(err)
	}
	oracle := filepath.Join(testutil.RepoRoot(t), "level2", "oracle.py")
	if out, err := exec.Command(py, oracle, proc, dir).CombinedOutput(); err != nil {
		t.Fatalf("oracle.py: %v\n%s", err, out)
	}
	// The tables' rows of the site by time.
	type row struct {
		micro, off, atmp [4]float64
		reg              map[string][3]float64
	}
	got := map[int64]*row{}
	parse := func(x string) float64 {
		if x == "NULL" {
			return math.NaN()
		}
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	at := func(ts int64) *row {
		if got[ts] == nil {
			got[ts] = &row{reg: map[string][3]float64{}}
		}
		return got[ts]
	}
	for _, l := range lines(qL2Gauge) {
		f := strings.Split(l, "|") // site, time, gauge, counts, microstrain, atmp_c, tide_c, offset_c, version
		if f[0] != s.Site {
			continue
		}
		ts, _ := strconv.ParseInt(f[1], 10, 64)
		g, _ := strconv.Atoi(f[2])
		r := at(ts)
		r.micro[g], r.atmp[g], r.off[g] = parse(f[4]), parse(f[5]), parse(f[7])
	}
	for _, l := range lines(qL2Reg) {
		f := strings.Split(l, "|") // site, time, matrix, 3 values, version
		if f[0] != s.Site {
			continue
		}
		ts, _ := strconv.ParseInt(f[1], 10, 64)
		at(ts).reg[f[2]] = [3]float64{parse(f[3]), parse(f[4]), parse(f[5])}
	}
	head, orows := testutil.ReadFloatCSV(t, filepath.Join(dir, "gauge.csv"))
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	var maxMicro, maxReg, maxOff float64
	points := 0
	for _, r := range orows {
		ts := int64(r[col["time"]])
		if math.IsNaN(r[col["counts_CH0"]]) {
			if got[ts] != nil {
				t.Errorf("%s %d: a point the tables have and processing.py not", s.Site, ts)
			}
			continue
		}
		points++
		g := got[ts]
		if g == nil {
			t.Errorf("%s %d: processing.py has a point, the tables none", s.Site, ts)
			continue
		}
		delete(got, ts)
		for k := 0; k < 4; k++ {
			ch := fmt.Sprintf("CH%d", k)
			maxMicro = max(maxMicro, math.Abs(g.micro[k]-r[col["micro_"+ch]]))
			maxOff = max(maxOff, math.Abs(g.off[k]-r[col["off_"+ch]]))
		}
		for _, m := range s.Matrices {
			v, ok := g.reg[m.Name]
			if !ok {
				t.Fatalf("%s %d: no %s regional row", s.Site, ts, m.Name)
			}
			for j := 0; j < 3; j++ {
				maxReg = max(maxReg, math.Abs(v[j]-r[col[fmt.Sprintf("reg_%s_%d", m.Name, j)]]))
			}
		}
		g.reg = nil // compared
		got[-ts] = g
	}
	for ts := range got {
		if ts > 0 {
			t.Errorf("%s %d: a point outside processing.py's index", s.Site, ts)
		}
	}
	var maxAtmp float64
	nAtmp := 0
	if s.Atmp != nil {
		_, arows := testutil.ReadFloatCSV(t, filepath.Join(dir, "atmp.csv"))
		for _, a := range arows {
			g := got[-int64(a[0])]
			if g == nil {
				continue // no strain point at that time
			}
			nAtmp++
			for k := 0; k < 4; k++ {
				maxAtmp = max(maxAtmp, math.Abs(g.atmp[k]-a[2+k]))
			}
		}
	}
	t.Logf("%s vs processing.py: %d points (all present), max |difference| microstrain %.3g, regional %.3g, offsets %.3g, atmp_c %.3g (%d points)",
		s.Site, points, maxMicro, maxReg, maxOff, maxAtmp, nAtmp)
	if points < 70 || (s.Atmp != nil && nAtmp < points/2) {
		t.Errorf("only %d points (%d with atmp_c) compared", points, nAtmp)
	}
	if maxMicro > 1e-6 || maxReg > 1e-6 || maxOff > 1e-6 || maxAtmp > 1e-6 || math.IsNaN(maxMicro+maxReg+maxOff+maxAtmp) {
		t.Errorf("%s: differences from processing.py above 1e-6 microstrain", s.Site)
	}
}

// TestLevel2ReprocessKillNine SIGKILLs the processor (a child process)
// again and again in the middle of reprocessing two sites whose metadata
// arrived after their data, restarting it each time, and requires the
// Level-2 tables to equal those of a processor that had the metadata from
// the start (which is what an uninterrupted reprocess gives).
func TestLevel2ReprocessKillNine(t *testing.T) {
	testutil.Long(t)
	stations := l2Stations(t)
	var recs []record.Record
	for i, site := range []string{"TSM5", "B004"} {
		recs = append(recs, l2SiteData(site, stations[site].Reference, 16, int64(i+21))...)
	}
	st := startStack(t, 3)
	st.publish(t, recs)
	t.Setenv("GTSM_PROC_BATCH_ROWS", "5000")
	t.Setenv("GTSM_PROC_L2_CHUNK", "1200") // 48 transactions per site
	dir := t.TempDir()
	killedDB := filepath.Join(dir, "killed.duckdb")
	cmd, lines := startHelper(t, st, killedDB, "rpkill", true)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first run (no metadata yet): %v", err)
	}
	vers := publishMeta(t, st, stations["TSM5"], stations["B004"])
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	kills := 0
	for finished := false; kills < 6 && !finished; {
		cmd, lines := startHelper(t, st, killedDB, "rpkill", false)
		deadline := time.After(4 * time.Minute)
		done := map[string]bool{}
		seen := map[string]int64{} // progress of each site when this run started
		now := map[string]int64{}
		target := int64(1+rng.Intn(12)) * 1200 // seconds of data this run reprocesses before its kill
	run:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("helper exited before being killed (run %d)", kills+1)
				}
				var site string
				var d, tot int64
				var fin bool
				if n, _ := fmt.Sscanf(l, "reprocess %s %d %d %t", &site, &d, &tot, &fin); n != 4 {
					continue
				}
				done[site] = fin
				if done["TSM5"] && done["B004"] {
					finished = true
				}
				if _, ok := seen[site]; !ok {
					seen[site] = d
				}
				now[site] = d
				var progress int64
				for s, d := range now {
					progress += d - seen[s]
				}
				// Killed once this run has committed chunks of its own.
				if progress >= target && !fin || finished {
					time.Sleep(time.Duration(rng.Intn(40)) * time.Millisecond)
					cmd.Process.Signal(syscall.SIGKILL)
					cmd.Wait()
					if !finished {
						kills++
						t.Logf("kill %d at %s %d/%d", kills, site, d, tot)
					}
					break run
				}
			case <-deadline:
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: no reprocess progress", kills+1)
			}
		}
	}
	if kills < 4 {
		t.Fatalf("only %d kills in the middle of the reprocess", kills)
	}
	t.Setenv("GTSM_PROC_REPROCESSED", "2")
	cmd, lines = startHelper(t, st, killedDB, "rpkill", true)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final run: %v", err)
	}
	cleanDB := filepath.Join(dir, "clean.duckdb")
	run := startProc(t, l2Config(st, cleanDB, "rpclean"))
	waitL2(t, run)
	run.stop(t)
	k, c := openRO(t, killedDB), openRO(t, cleanDB)
	defer k.Close()
	defer c.Close()
	for name, q := range map[string]string{"level2_gauge_data": qL2Gauge, "level2_regional_data": qL2Reg, "level2_state": qL2State,
		"level2_checkpoint": qL2Ck, "station_metadata": qL2Meta} {
		testutil.DiffLines(t, name+" (killed mid-reprocess vs metadata from the start)", l2Lines(t, k, q), l2Lines(t, c, q))
	}
	want := []string{"B004|" + vers["B004"] + "|metadata first arrived|true", "TSM5|" + vers["TSM5"] + "|metadata first arrived|true"}
	testutil.DiffLines(t, "level2_reprocess", l2Lines(t, k, `SELECT site, target_version, reason, finished_at IS NOT NULL FROM level2_reprocess`), want)
	meta := map[string]l2Meta2{"TSM5": {stations["TSM5"], vers["TSM5"]}, "B004": {stations["B004"], vers["B004"]}}
	wantG, wantR := l2Oracle(t, recs, meta, nil, nil)
	testutil.DiffLines(t, "level2_gauge_data (killed vs oracle)", l2Lines(t, k, qL2Gauge), wantG)
	testutil.DiffLines(t, "level2_regional_data (killed vs oracle)", l2Lines(t, k, qL2Reg), wantR)
}

// TestLevel2AtmpAtNewestPressureSample: the 300 s row at the newest
// pressure sample's own time has its atmp_c (the sample times the
// station's response) without waiting for the next sample.
func TestLevel2AtmpAtNewestPressureSample(t *testing.T) {
	stations := l2Stations(t)
	s := stations["TSM5"]
	newest := int64(l2Start - 7 + 2*3600) // 02:00:00, inside the strain data
	var recs []record.Record
	var hPa float64
	for _, r := range l2SiteData("TSM5", s.Reference, 3, 7) {
		if r.Session == bottle.Day {
			if r.Time/1000 > newest {
				continue
			}
			if r.Time/1000 == newest {
				v, _ := r.Int(pressureField)
				hPa = float64(v) * 0.001
			}
		}
		recs = append(recs, r)
	}
	st := startStack(t, 1)
	publishMeta(t, st, s)
	db := runL2(t, st, [][]record.Record{recs}, "newest")
	rows := l2Lines(t, db, fmt.Sprintf(`SELECT gauge, atmp_c FROM level2_gauge_data WHERE epoch("time") = %d ORDER BY gauge`, newest))
	var want []string
	for g := range s.Atmp {
		want = append(want, fmt.Sprintf("%d|%s", g, fl(hPa*s.Atmp[g])))
	}
	testutil.DiffLines(t, "atmp_c at the newest pressure sample's time", rows, want)
	var later int
	if err := db.QueryRow(`SELECT count(*) FROM level2_gauge_data WHERE epoch("time") > ? AND atmp_c IS NOT NULL`, newest).Scan(&later); err != nil || later != 0 {
		t.Errorf("%d rows after the newest pressure sample have atmp_c (%v)", later, err)
	}
}
