package processor

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand"
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
	"github.com/earthscope/gtsm-stream/registry"
)

// l2Start is 2022-06-01 00:00:07 UTC: not on a 300 s boundary, so the
// first segment's alignment drops 293 s.
const l2Start = 1654041607

// l2Stations loads the test metadata (metadata/testdata): TSM5 (lab, CH2024
// and EM2024 matrices, barometric response) and B004.
func l2Stations(t testing.TB) map[string]*metadata.Station {
	t.Helper()
	td := "../metadata/testdata/"
	st, err := metadata.LoadFiles([]string{td + "bsm_metadata.txt", td + "TSM5.README.txt", td + "B004.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*metadata.Station{}
	for i := range st {
		m[st[i].Site] = &st[i]
	}
	return m
}

// l2Site is one site's generated data: hours of 1-sps gauge counts (Hour
// records) around the references, with tides, a trend, noise, fill-value
// runs of 5 s and of 4000 s (more than the 3600 s interpolation limit, so
// a new segment), 600 absent seconds, a step offset on CH1; and pressure
// every 30 min (Day records) with one fill value.
func l2SiteData(site string, ref [4]int64, hours int, seed int64) []record.Record {
	rng := rand.New(rand.NewSource(seed))
	n := hours * 3600
	var out []record.Record
	hour, day := record.StrainFields(bottle.Hour), record.StrainFields(bottle.Day)
	_ = day
	for i := 0; i < n; i++ {
		if i >= 9000 && i < 9600 {
			continue // absent seconds
		}
		t := int64(l2Start + i)
		var r record.Record
		r.SetSite(site)
		r.SetTime(t * 1000)
		r.Session = bottle.Hour
		for g, f := range hour {
			v := float64(ref[g]) + 200*math.Sin(2*math.Pi*float64(t)/44714+float64(g)) + 60*math.Sin(2*math.Pi*float64(t)/86164) +
				0.01*float64(i)*float64(g+1) + rng.Float64()*3
			if g == 1 && i >= 4*3600+123 {
				v += 3000
			}
			c := int32(math.Round(v))
			switch {
			case i >= 1000 && i < 1005, g == 2 && i >= 2000 && i < 2003:
				c = level2.FillValue
			case i >= 12000 && i < 16000:
				c = level2.FillValue
			case (i+g)%1013 == 0:
				continue // a null channel now and then: missing on that gauge
			}
			r.SetInt(f, c)
		}
		out = append(out, r)
	}
	for t := int64(l2Start - l2Start%1800); t < int64(l2Start+n+1800); t += 1800 {
		var r record.Record
		r.SetSite(site)
		r.SetTime(t * 1000)
		r.Session = bottle.Day
		v := int32(math.Round((1013.25 + 3*math.Sin(2*math.Pi*float64(t)/86400) + float64(t-l2Start)/50000) * 1000))
		if t == int64(l2Start-l2Start%1800)+5*1800 {
			v = level2.FillValue
		}
		r.SetInt(pressureField, v)
		out = append(out, r)
	}
	return out
}

// l2Lines is q's rows with exact floats (shortest round-trip form) and
// blobs in full, sorted.
func l2Lines(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	return sortedLines(t, db, q, exactCell)
}

func exactCell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return fmt.Sprintf("%d bytes %x", len(x), x)
	}
	return fmt.Sprint(v)
}

const (
	qL2Gauge = `SELECT site, epoch("time")::BIGINT, gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version, trend_c, interpolated, atmp FROM level2_gauge_data`
	qL2Reg   = `SELECT site, epoch("time")::BIGINT, matrix, eee_plus_enn, eee_minus_enn, two_ene, metadata_version FROM level2_regional_data`
	// The state and checkpoints by content (md5), and what the views show.
	qL2State = `SELECT site, md5(state::VARCHAR), metadata_version, last_second FROM level2_state`
	qL2Ck    = `SELECT site, "time", md5(state::VARCHAR) FROM level2_checkpoint`
	qL2Meta  = `SELECT site, version FROM station_metadata`
)

func fl(v float64) string {
	if math.IsNaN(v) {
		return "NULL"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// l2Oracle runs level2.Machine directly on each site's samples in time
// order (no processor code): the gauge and regional rows the tables must
// hold. switchAt[site] > 0: the metadata changes to after[site] from that
// second on.
type l2Meta2 struct {
	st      *metadata.Station
	version string
}

func l2Oracle(t testing.TB, recs []record.Record, meta map[string]l2Meta2, switchAt map[string]int64, after map[string]l2Meta2) (gauge, regional []string) {
	t.Helper()
	type sec struct {
		t int64
		c [4]int32
	}
	strain := map[string][]sec{}
	press := map[string][][2]float64{}
	for i := range recs {
		r := &recs[i]
		switch r.Session {
		case bottle.Hour:
			s := sec{t: r.Time / 1000}
			for g, f := range record.StrainFields(bottle.Hour) {
				if v, ok := r.Int(f); ok {
					s.c[g] = v
				} else {
					s.c[g] = level2.FillValue
				}
			}
			strain[r.Site] = append(strain[r.Site], s)
		case bottle.Day:
			v, _ := r.Int(pressureField)
			hPa := float64(v) * 0.001
			if v == level2.FillValue {
				hPa = math.NaN()
			}
			press[r.Site] = append(press[r.Site], [2]float64{float64(r.Time / 1000), hPa})
		}
	}
	for site, ss := range strain {
		sort.Slice(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
		ss = dedupSecs(ss, func(x sec) int64 { return x.t })
		md := meta[site]
		cfgOf := func(md l2Meta2) level2.Config { return level2.ConfigFrom(md.st) }
		m := level2.New(cfgOf(md))
		ver := md.version
		var pts []level2.Point
		var vers []string
		for _, s := range ss {
			if sw := switchAt[site]; sw > 0 && s.t >= sw && ver != after[site].version {
				m.SetConfig(cfgOf(after[site]))
				ver = after[site].version
			}
			n := len(pts)
			var err error
			if pts, err = m.PushStrain(s.t, s.c, pts); err != nil {
				t.Fatal(err)
			}
			for range pts[n:] {
				vers = append(vers, ver)
			}
		}
		ps := press[site]
		sort.Slice(ps, func(i, j int) bool { return ps[i][0] < ps[j][0] })
		ps = dedupSecs(ps, func(x [2]float64) int64 { return int64(x[0]) })
		atmp := map[int64][4]float64{}
		hpa := map[int64]float64{}
		pm := level2.New(cfgOf(md))
		if switchAt[site] > 0 {
			pm = level2.New(cfgOf(after[site])) // the processor uses the site's latest metadata
		}
		var ap []level2.AtmpPoint
		for _, p := range ps {
			var err error
			if ap, err = pm.PushPressure(int64(p[0]), p[1], ap); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range ap {
			atmp[a.Time] = a.Correction
			hpa[a.Time] = a.HPa
		}
		for i, p := range pts {
			v := "NULL"
			if vers[i] != "" {
				v = vers[i]
			}
			for g := range p.Counts {
				a, h := "NULL", "NULL"
				if c, ok := atmp[p.Time]; ok {
					a, h = fl(c[g]), fl(hpa[p.Time])
				}
				gauge = append(gauge, fmt.Sprintf("%s|%d|%d|%s|%s|%s|%s|%s|%s|%s|%t|%s", site, p.Time, g, fl(p.Counts[g]), fl(p.Microstrain[g]), a, fl(p.Tide[g]), fl(p.Offset[g]), v,
					fl(p.Trend[g]), p.Interpolated&(1<<g) != 0, h))
			}
			cfg := cfgOf(meta[site])
			if vers[i] != md.version {
				cfg = cfgOf(after[site])
			}
			for k, r := range p.Regional {
				regional = append(regional, fmt.Sprintf("%s|%d|%s|%s|%s|%s|%s", site, p.Time, cfg.Matrices[k].Name, fl(r[0]), fl(r[1]), fl(r[2]), v))
			}
		}
	}
	sort.Strings(gauge)
	sort.Strings(regional)
	return gauge, regional
}

// dedupSecs keeps the first of equal seconds of a sorted slice (the
// processor stores a resent record once).
func dedupSecs[T any](s []T, t func(T) int64) []T {
	out := s[:0]
	for i, x := range s {
		if i > 0 && t(x) == t(s[i-1]) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// publishMeta writes station records to the gtsm_metadata topic exactly as
// `gtsm metadata load` does (metadata/publish: plain site keys on partition
// murmur2(site), Confluent-framed values, the schema registered), creating the
// compacted topic with 3 partitions when missing, so the processor's Lookup
// has to find each site on its own partition.
func publishMeta(t testing.TB, st *stack, stations ...*metadata.Station) map[string]string {
	t.Helper()
	list := make([]metadata.Station, 0, len(stations))
	for _, s := range stations {
		list = append(list, *s)
	}
	sum, err := publish.Publish(context.Background(), list, publish.Options{
		Kafka:       producer.Kafka{Brokers: []string{st.BootstrapServers}},
		Registry:    registry.Config{URL: st.RegistryURL},
		Partitions:  3,
		Replication: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	vers := map[string]string{}
	for _, r := range sum.Records {
		vers[r.Site] = r.Version
	}
	return vers
}

// l2Streams is the data of the Level-2 tests: TSM5 and B004 with metadata,
// NOMD without.
func l2Streams(t testing.TB, hours int) (recs []record.Record, meta map[string]l2Meta2, stations map[string]*metadata.Station) {
	stations = l2Stations(t)
	for i, site := range []string{"TSM5", "B004", "NOMD"} {
		ref := [4]int64{50_000_000, 51_000_000, 52_000_000, 49_000_000}
		if s := stations[site]; s != nil {
			ref = s.Reference
		}
		recs = append(recs, l2SiteData(site, ref, hours, int64(i+1))...)
	}
	return recs, nil, stations
}

// hourChunks splits records into (site, session, UTC hour) chunks: the
// "hour files" of the shuffled test.
func hourChunks(recs []record.Record) [][]record.Record {
	idx := map[string]int{}
	var out [][]record.Record
	for _, r := range recs {
		k := fmt.Sprintf("%s/%d/%d", r.Site, r.Session, r.Time/3600000)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], r)
	}
	return out
}

// l2Config: batches of up to 5000 messages (the tests' usual 700 makes
// every part of a late hour file its own recompute).
func l2Config(st *stack, path, group string) Config {
	cfg := st.config(path, group)
	cfg.BatchRows = 5000
	return cfg
}

// waitL2 waits for the processor to catch up; the bound is generous
// because the shared test machine runs at load 15-20.
func waitL2(t testing.TB, r *running) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.p.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("wait caught up: %v", err)
	}
}

func runL2(t *testing.T, st *stack, chunks [][]record.Record, group string) *sql.DB {
	t.Helper()
	for _, c := range chunks {
		st.publish(t, c)
	}
	path := filepath.Join(t.TempDir(), group+".duckdb")
	run := startProc(t, l2Config(st, path, group))
	waitL2(t, run)
	run.stop(t)
	db := openRO(t, path)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestLevel2Oracle: the processor's Level-2 tables for 6 hours of generated
// 1-sps data of three sites (two with metadata, one without) equal running
// level2.Machine directly on the same samples; then the same data as hour
// files in a random order (each a late arrival for the machine) give the
// same tables again.
func TestLevel2Oracle(t *testing.T) {
	testutil.Long(t)
	recs, _, stations := l2Streams(t, 6)
	st := startStack(t, 3)
	vers := publishMeta(t, st, stations["TSM5"], stations["B004"])
	meta := map[string]l2Meta2{"TSM5": {stations["TSM5"], vers["TSM5"]}, "B004": {stations["B004"], vers["B004"]}, "NOMD": {}}
	wantG, wantR := l2Oracle(t, recs, meta, nil, nil)
	if len(wantG) < 3*4*60 || len(wantR) < 2*3*60 {
		t.Fatalf("oracle: only %d gauge and %d regional rows", len(wantG), len(wantR))
	}
	var withAtmp, nomd int
	for _, l := range wantG {
		if strings.HasPrefix(l, "NOMD|") {
			nomd++
			// microstrain, atmp_c, tide_c, offset_c, version, trend_c, atmp
			f := strings.Split(l, "|")
			if f[4]+f[5]+f[6]+f[7]+f[8]+f[9]+f[11] != strings.Repeat("NULL", 7) {
				t.Fatalf("site without metadata: %s", l)
			}
		} else if !strings.Contains(l, "NULL") {
			withAtmp++ // atmp_c, tide_c and offset_c all present
		}
	}
	t.Logf("oracle: %d gauge rows (%d with every correction, %d without metadata), %d regional rows", len(wantG), withAtmp, nomd, len(wantR))
	if withAtmp < 2*4*55 || nomd < 4*60 {
		t.Fatalf("oracle: %d rows with every correction, %d rows of the site without metadata", withAtmp, nomd)
	}

	db := runL2(t, st, [][]record.Record{recs}, "inorder")
	gotG, gotR := l2Lines(t, db, qL2Gauge), l2Lines(t, db, qL2Reg)
	testutil.DiffLines(t, "level2_gauge_data (in order vs oracle)", gotG, wantG)
	testutil.DiffLines(t, "level2_regional_data (in order vs oracle)", gotR, wantR)
	testutil.DiffLines(t, "station_metadata", l2Lines(t, db, qL2Meta), []string{"B004|" + vers["B004"], "TSM5|" + vers["TSM5"]})
	// corrected (the level2_gauge view) is microstrain minus all four
	// corrections, NULL where one is missing (here only the site without
	// metadata: its pressure covers the rows of the others).
	var wrong, corrected int
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE corrected IS DISTINCT FROM microstrain - tide_c - atmp_c - offset_c - trend_c),
		count(corrected) FROM level2_gauge`).Scan(&wrong, &corrected); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || corrected != withAtmp {
		t.Errorf("level2_gauge corrected: %d rows not microstrain minus all four corrections; %d with a value, want %d", wrong, corrected, withAtmp)
	}
	inState, inCk := l2Lines(t, db, qL2State), l2Lines(t, db, qL2Ck)
	if len(inState) != 3 {
		t.Fatalf("level2_state: %q", inState)
	}

	// The same records as shuffled hour files, through a new topic.
	st2 := startStack(t, 3)
	publishMeta(t, st2, stations["TSM5"], stations["B004"])
	chunks := hourChunks(recs)
	seed := time.Now().UnixNano()
	t.Logf("shuffle seed %d, %d hour files", seed, len(chunks))
	rng := rand.New(rand.NewSource(seed))
	rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	db2 := runL2(t, st2, chunks, "shuffled")
	testutil.DiffLines(t, "level2_gauge_data (shuffled vs oracle)", l2Lines(t, db2, qL2Gauge), wantG)
	testutil.DiffLines(t, "level2_regional_data (shuffled vs oracle)", l2Lines(t, db2, qL2Reg), wantR)
	testutil.DiffLines(t, "level2_state (shuffled vs in order)", l2Lines(t, db2, qL2State), inState)
	testutil.DiffLines(t, "level2_checkpoint (shuffled vs in order)", l2Lines(t, db2, qL2Ck), inCk)
}

// l2KillStream: the Level-2 test data as hour files, mostly in order, with
// some hour files held back and sent hours later (late: recomputed from
// checkpoints) and one sent twice (duplicates).
func l2KillStream(t testing.TB) ([]record.Record, map[string]*metadata.Station) {
	recs, _, stations := l2Streams(t, 4)
	chunks := hourChunks(recs)
	var out []record.Record
	var held [][]record.Record
	for i, c := range chunks {
		switch {
		case i%7 == 3:
			held = append(held, c)
		case i%11 == 5:
			out = append(out, c...)
			out = append(out, c[:len(c)/2]...)
		default:
			out = append(out, c...)
		}
		if i%9 == 8 && len(held) > 0 {
			out = append(out, held[0]...)
			held = held[1:]
		}
	}
	for _, c := range held {
		out = append(out, c...)
	}
	return out, stations
}

// TestLevel2KillNine SIGKILLs the processor (a real child process) 10 times
// while it computes Level-2 from a stream with late hour files and
// duplicates, and requires every table, Level-2 ones included, to equal a
// crash-free run's, and the Level-2 rows to equal the oracle's.
func TestLevel2KillNine(t *testing.T) {
	testutil.Long(t)
	if testing.Short() {
		t.Skip("kill test")
	}
	t.Setenv("GTSM_PROC_BATCH_ROWS", "1000")
	st := startStack(t, 3)
	stream, stations := l2KillStream(t)
	vers := publishMeta(t, st, stations["TSM5"], stations["B004"])
	dir := t.TempDir()
	killedDB := filepath.Join(dir, "killed.duckdb")
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; i < len(stream); i += 3000 {
			if err := st.publishErr(stream[i:min(i+3000, len(stream))]); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	const want = 10
	seed := time.Now().UnixNano()
	t.Logf("seed %d, %d messages", seed, len(stream))
	rng := rand.New(rand.NewSource(seed))
	step := int64(len(stream) / (3 * want))
	kills, last := 0, int64(0)
	for kills < want {
		cmd, lines := startHelper(t, st, killedDB, "l2kill", false)
		target := last + 1 + rng.Int63n(step)
		deadline := time.After(4 * time.Minute)
		for killed := false; !killed; {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("helper exited before being killed (run %d)", kills+1)
				}
				if n, ok := parseCommitted(l); ok && n >= target {
					time.Sleep(time.Duration(rng.Intn(30)) * time.Millisecond)
					cmd.Process.Signal(syscall.SIGKILL)
					cmd.Wait()
					killed, last = true, n
				}
			case <-deadline:
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: no progress to %d", kills+1, target)
			}
		}
		kills++
		if last >= int64(len(stream))-1000 {
			break
		}
	}
	if kills < want {
		t.Fatalf("only %d mid-stream kills before the end", kills)
	}
	<-published
	cmd, lines := startHelper(t, st, killedDB, "l2kill", false)
	stopped := false
	for l := range lines {
		if n, ok := parseCommitted(l); ok && n == int64(len(stream)) && !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			stopped = true
		}
	}
	if err := cmd.Wait(); err != nil || !stopped {
		t.Fatalf("final run: %v (SIGTERM sent: %v)", err, stopped)
	}
	cleanDB := filepath.Join(dir, "clean.duckdb")
	run := startProc(t, l2Config(st, cleanDB, "l2clean"))
	waitL2(t, run)
	run.stop(t)
	k, c := openRO(t, killedDB), openRO(t, cleanDB)
	defer k.Close()
	defer c.Close()
	for name, q := range map[string]string{"level2_gauge_data": qL2Gauge, "level2_regional_data": qL2Reg, "level2_state": qL2State,
		"level2_checkpoint": qL2Ck, "station_metadata": qL2Meta} {
		testutil.DiffLines(t, name+" (killed vs clean)", l2Lines(t, k, q), l2Lines(t, c, q))
	}
	kd, cd := dumpAll(t, k), dumpAll(t, c)
	for _, table := range []string{"gtsm_etl", "windows", "gaps", "site_state"} {
		testutil.DiffLines(t, table+" (killed vs clean)", kd[table], cd[table])
	}
	meta := map[string]l2Meta2{"TSM5": {stations["TSM5"], vers["TSM5"]}, "B004": {stations["B004"], vers["B004"]}, "NOMD": {}}
	wantG, wantR := l2Oracle(t, stream, meta, nil, nil)
	testutil.DiffLines(t, "level2_gauge_data (killed vs oracle)", l2Lines(t, k, qL2Gauge), wantG)
	testutil.DiffLines(t, "level2_regional_data (killed vs oracle)", l2Lines(t, k, qL2Reg), wantR)
}

// TestLevel2RestartPressureOnly: after a restart, a site whose first
// transaction holds only pressure samples stores the same level2_state
// (machine and metadata version) as a run without the restart. Before the
// fix the restarted machine's version was still unknown and level2_state
// got a placeholder version (found by TestLevel2KillNine, 1 run in 4).
func TestLevel2RestartPressureOnly(t *testing.T) {
	stations := l2Stations(t)
	s := stations["TSM5"]
	recs := l2SiteData("TSM5", s.Reference, 2, 3)
	var first, second []record.Record
	for _, r := range recs {
		if r.Session == bottle.Day && r.Time/1000 > l2Start+2*3600-1800 {
			second = append(second, r)
		} else {
			first = append(first, r)
		}
	}
	if len(second) == 0 {
		t.Fatal("no pressure-only tail")
	}
	st := startStack(t, 1)
	publishMeta(t, st, s)
	st.publish(t, first)
	path := filepath.Join(t.TempDir(), "restart.duckdb")
	run := startProc(t, l2Config(st, path, "restart"))
	waitL2(t, run)
	run.stop(t)
	st.publish(t, second)
	run = startProc(t, l2Config(st, path, "restart"))
	waitL2(t, run)
	run.stop(t)
	cleanPath := filepath.Join(t.TempDir(), "clean.duckdb")
	run = startProc(t, l2Config(st, cleanPath, "clean"))
	waitL2(t, run)
	run.stop(t)
	a, b := openRO(t, path), openRO(t, cleanPath)
	defer a.Close()
	defer b.Close()
	for _, q := range []string{qL2State, qL2Gauge, qL2Reg, qL2Ck} {
		testutil.DiffLines(t, q, l2Lines(t, a, q), l2Lines(t, b, q))
	}
}
