package export_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/export"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/level2"
	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/shell"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// gauge is one expected row of the export, from level2.Machine.
type gauge struct {
	ms, off, atmp, tide, trend, hpa float64 // NaN = missing
	interp                          bool
}

// l2fixture is what fillLevel2 stored: the expected gauge values by time,
// the station (its matrices) and the metadata version.
type l2fixture struct {
	want    map[int64][4]gauge
	st      *metadata.Station
	version string
}

// Fixture events, in seconds from the start.
const (
	fxHoleAt  = 8 * 3600 // 3 h of absent seconds: beyond the interpolation limit, gap epochs
	fxHoleLen = 3 * 3600
	fxFillAt  = 14 * 3600 // 20 s of fill values on gauge 2 from a 300 s time: an interpolated point
	fxPressAt = 24 * 3600 // 4 h without pressure: atmp_c missing there
	fxPressN  = 4 * 3600
)

// fillLevel2 runs level2.Machine over 1.5 days of generated 1 s counts for
// TSM5 (its test metadata), from 2021-12-31 12:00 UTC so the export spans two
// years: tides, a trend, a +3000 count step on CH1, a 3 h hole, 20 fill
// values on CH2; pressure every 30 min but for 4 h. It writes the contract
// tables as the processor would (gauge and regional rows, station_metadata)
// and returns the expected values by time and gauge.
func fillLevel2(t *testing.T, db *sql.DB) l2fixture {
	t.Helper()
	root := testutil.RepoRoot(t)
	sts, err := metadata.LoadFiles([]string{filepath.Join(root, "metadata", "testdata", "bsm_metadata.txt"),
		filepath.Join(root, "metadata", "testdata", "TSM5.README.txt")})
	if err != nil {
		t.Fatal(err)
	}
	var st *metadata.Station
	for i := range sts {
		if sts[i].Site == "TSM5" {
			st = &sts[i]
		}
	}
	codec, err := metadata.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	version, err := codec.Version(st)
	if err != nil {
		t.Fatal(err)
	}
	m := level2.New(level2.ConfigFrom(st))
	start := time.Date(2021, 12, 31, 12, 0, 0, 0, time.UTC).Unix()
	var pts []level2.Point
	var aps []level2.AtmpPoint
	for s := int64(0); s < 36*3600; s++ {
		tt := start + s
		if s%1800 == 0 && (s < fxPressAt || s >= fxPressAt+fxPressN) {
			if aps, err = m.PushPressure(tt, 1010+3*math.Sin(float64(s)/20000), aps); err != nil {
				t.Fatal(err)
			}
		}
		if s >= fxHoleAt && s < fxHoleAt+fxHoleLen {
			continue
		}
		var c [4]int32
		for g := range c {
			x := float64(st.Reference[g]) + 200*math.Sin(2*math.Pi*float64(tt)/44714+float64(g)) + 80*math.Sin(2*math.Pi*float64(tt)/86164) + 0.01*float64(s)
			if g == 1 && s > 20*3600 {
				x += 3000
			}
			c[g] = int32(math.Round(x))
		}
		if s >= fxFillAt && s < fxFillAt+20 {
			c[2] = level2.FillValue
		}
		if pts, err = m.PushStrain(tt, c, pts); err != nil {
			t.Fatal(err)
		}
	}
	atmp := map[int64]level2.AtmpPoint{}
	for _, a := range aps {
		atmp[a.Time] = a
	}
	want := map[int64][4]gauge{}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO station_metadata VALUES ('TSM5', ?, now(), ?)`, version, string(j)); err != nil {
		t.Fatal(err)
	}
	ins, err := tx.Prepare(`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version, trend_c, interpolated, atmp)
		VALUES (?, to_timestamp(?)::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	insR, err := tx.Prepare(`INSERT INTO level2_regional_data VALUES (?, to_timestamp(?)::TIMESTAMP, ?, ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	null := func(x float64) any {
		if math.IsNaN(x) {
			return nil
		}
		return x
	}
	for _, p := range pts {
		a, ok := atmp[p.Time]
		var row [4]gauge
		for g := 0; g < 4; g++ {
			ac, hpa := math.NaN(), math.NaN()
			if ok {
				ac, hpa = a.Correction[g], a.HPa
			}
			row[g] = gauge{p.Microstrain[g], p.Offset[g], ac, p.Tide[g], p.Trend[g], hpa, p.Interpolated&(1<<g) != 0}
			if _, err := ins.Exec("TSM5", p.Time, g, p.Counts[g], null(p.Microstrain[g]), null(ac), null(p.Tide[g]), null(p.Offset[g]), version,
				null(p.Trend[g]), row[g].interp, null(hpa)); err != nil {
				t.Fatal(err)
			}
		}
		for k, r := range p.Regional {
			if _, err := insR.Exec("TSM5", p.Time, st.Matrices[k].Name, r[0], r[1], r[2], version); err != nil {
				t.Fatal(err)
			}
		}
		want[p.Time] = row
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if len(want) < 400 {
		t.Fatalf("only %d Level-2 points from 36 h", len(want))
	}
	return l2fixture{want: want, st: st, version: version}
}

// readerScript runs EarthScope's own reader, ascii_tools.read_l2_ascii, on
// the exported directory, for gauge and regional strains. Its imports that
// are not part of this check are stubbed: requests (download only), and
// earthscopestraintools.timeseries, whose Timeseries here keeps the
// DataFrame and does remove_fill_values as the package documents it (999999
// -> NaN, no interpolation).
const readerScript = `
import sys, types, json, math
import numpy as np
sys.modules.setdefault('requests', types.ModuleType('requests'))
pkg = types.ModuleType('earthscopestraintools'); pkg.__path__ = []
ts = types.ModuleType('earthscopestraintools.timeseries')
class Timeseries:
    def __init__(self, data=None, quality_df=None, series='', units='', level='', name='', show_stats=False):
        self.data, self.quality_df = data, quality_df
    def remove_fill_values(self, fill_value=999999, interpolate=False, show_stats=False):
        self.data = self.data.replace(fill_value, np.nan)
        return self
ts.Timeseries = Timeseries
sys.modules['earthscopestraintools'] = pkg
sys.modules['earthscopestraintools.timeseries'] = ts
sys.path.insert(0, sys.argv[1])
import ascii_tools
out = {}
for kind in ('gauge', 'regional'):
    for year in sys.argv[3:]:
        l2 = ascii_tools.read_l2_ascii(sys.argv[2], int(year), strain_type=kind, show_stats=False)
        for name, t in l2.items():
            d = out.setdefault(kind + ' ' + name, {})
            for ix, row in t.data.iterrows():
                d[str(int(ix.timestamp()))] = [None if math.isnan(v) else v for v in row.tolist()]
        q = l2['microstrain'].quality_df
        out.setdefault(kind + ' quality', {}).update({str(int(ix.timestamp())): row.tolist() for ix, row in q.iterrows()})
print(json.dumps(out))
`

// regionalOracle is level2.ipynb's regional recipe (cells 22-24) with
// processing.py itself: apply_calibration_matrix on the gauge microstrain
// and on each gauge correction, then apply_corrections' subtraction of
// [tide_c, atmp_c, offset_c, trend_c]. Input: JSON {matrix, times, series:
// {name: [[4 gauges] per time]}} (null = NaN); output per time the 3
// components of microstrain, tide_c, atmp_c, offset_c, trend_c, corrected.
const regionalOracle = `
import importlib.util, json, sys
import numpy as np, pandas as pd
spec = importlib.util.spec_from_file_location("processing", sys.argv[1])
proc = importlib.util.module_from_spec(spec); spec.loader.exec_module(proc)
p = json.load(open(sys.argv[2]))
idx = pd.to_datetime(p["times"], unit="s")
M = np.array(p["matrix"])
reg = {}
for name, rows in p["series"].items():
    df = pd.DataFrame([[np.nan if v is None else v for v in r] for r in rows], index=idx, columns=["CH0", "CH1", "CH2", "CH3"])
    reg[name] = proc.apply_calibration_matrix(df, M, p["name"])
corr = reg["microstrain"].copy()
for name in ["tide_c", "atmp_c", "offset_c", "trend_c"]:
    corr -= reg[name]
reg["corrected"] = corr
out = {}
for i, t in enumerate(p["times"]):
    out[str(t)] = {k: [None if np.isnan(v) else float(v) for v in reg[k].iloc[i].values] for k in reg}
print(json.dumps(out))
`

func gunzip(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExportLevel2ReadByEarthScopeReader: the export of a day and a half
// across a year boundary, with a 3 h hole, interpolated samples and a 4 h
// pressure gap, is read back by EarthScope's read_l2_ascii for both strain
// types. Gauge values equal the machine's; regional ones (matrix CH2024, as
// level2.ipynb) equal processing.py's apply_calibration_matrix of the
// machine's gauge values and corrections; every 300 s epoch of the range is
// there (gap epochs fill, quality m); interpolated points are flagged i; the
// pressure column is the pressure. The regional view itself equals the
// recipe within 1e-6 µε, and corrected is NULL (not a step) where atmp_c is.
func TestExportLevel2ReadByEarthScopeReader(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "l2.duckdb")
	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	fx := fillLevel2(t, db)
	want := fx.want
	var times []int64
	for tm := range want {
		times = append(times, tm)
	}
	slices.Sort(times)
	first, last := times[0], times[len(times)-1]
	epochs := int((last-first)/300) + 1
	if epochs-len(times) < 20 {
		t.Fatalf("the fixture has only %d gap epochs", epochs-len(times))
	}
	db.Close()

	// 1. From the DuckDB file (read-only, locked down).
	local, err := shell.OpenLocal(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	outFile := t.TempDir()
	opts := export.Options{Site: "TSM5", Dir: outFile, Matrix: "CH2024"}
	files, err := export.Level2(ctx, local, opts)
	local.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	rows := 0
	for _, f := range files {
		rel, _ := filepath.Rel(outFile, f.Path)
		names = append(names, rel)
		rows += f.Rows
	}
	var wantNames []string
	for _, y := range []string{"2021", "2022"} {
		for _, s := range []string{"Gauge0", "Gauge1", "Gauge2", "Gauge3", "Eee+Enn", "Eee-Enn", "2Ene"} {
			wantNames = append(wantNames, "TSM5."+y+".bsm.level2/TSM5."+y+".xml."+s+".txt.gz")
		}
	}
	slices.Sort(wantNames)
	got := slices.Clone(names)
	slices.Sort(got)
	if !slices.Equal(got, wantNames) || rows != 7*epochs {
		t.Fatalf("files %v with %d rows; want %v and %d rows (7 strains × %d epochs)", names, rows, wantNames, 7*epochs, epochs)
	}
	g1 := gunzip(t, filepath.Join(outFile, "TSM5.2022.bsm.level2", "TSM5.2022.xml.Gauge1.txt.gz"))
	if !strings.HasPrefix(g1, export.Header(1)+"\n2022-01-01T00:00:00 ") {
		t.Errorf("Gauge1 2022 starts %q", g1[:min(len(g1), 200)])
	}
	r0 := gunzip(t, filepath.Join(outFile, "TSM5.2022.bsm.level2", "TSM5.2022.xml.Eee+Enn.txt.gz"))
	if !strings.HasPrefix(r0, export.RegionalHeader("Eee+Enn")+"\n2022-01-01T00:00:00 ") {
		t.Errorf("Eee+Enn 2022 starts %q", r0[:min(len(r0), 200)])
	}

	// 2. Through the SQL endpoint: the same bytes.
	db, err = gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx) }()
	defer func() { cancel(); <-errc }()
	pg, err := shell.DialPG(ctx, srv.Addr().String(), "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	outPG := t.TempDir()
	pfiles, err := export.Level2(ctx, pg, export.Options{Site: "TSM5", Dir: outPG, Matrix: "CH2024"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pfiles) != len(files) {
		t.Fatalf("endpoint: %d files, file: %d", len(pfiles), len(files))
	}
	for i := range files {
		if a, b := gunzip(t, files[i].Path), gunzip(t, pfiles[i].Path); a != b {
			t.Errorf("%s differs between the file and the endpoint", names[i])
		}
	}
	// --from/--to select [from, to).
	from := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	sub, err := export.Level2(ctx, pg, export.Options{Site: "TSM5", Dir: t.TempDir(), From: from, To: from.Add(time.Hour)})
	if err != nil || len(sub) != 7 || sub[0].Rows != 12 || sub[6].Rows != 12 {
		t.Errorf("one hour of 2022: %+v, %v; want 7 files of 12 rows", sub, err)
	}
	if _, err := export.Level2(ctx, pg, export.Options{Site: "NOPE", Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no Level-2 rows for site NOPE") {
		t.Errorf("unknown site: %v", err)
	}
	if _, err := export.Level2(ctx, pg, export.Options{Site: "TSM5", Dir: t.TempDir(), Matrix: "KH2013"}); err == nil ||
		!strings.Contains(err.Error(), "has no matrix KH2013; it has CH2024, EM2024, lab") {
		t.Errorf("a matrix the site lacks: %v", err)
	}
	pg.Close()

	// 3. The regional view against the notebook's recipe run by processing.py.
	ref := testutil.Shared(t, "reference/earthscopestraintools")
	mat := fx.st.Matrix("CH2024")
	in := map[string]any{"name": "CH2024", "matrix": mat.Values, "times": times, "series": map[string]any{}}
	series := in["series"].(map[string]any)
	pick := map[string]func(gauge) float64{
		"microstrain": func(g gauge) float64 { return g.ms }, "tide_c": func(g gauge) float64 { return g.tide },
		"atmp_c": func(g gauge) float64 { return g.atmp }, "offset_c": func(g gauge) float64 { return g.off },
		"trend_c": func(g gauge) float64 { return g.trend },
	}
	for name, f := range pick {
		var rs [][4]any
		for _, tm := range times {
			var r [4]any
			for g := 0; g < 4; g++ {
				if v := f(want[tm][g]); !math.IsNaN(v) {
					r[g] = v
				}
			}
			rs = append(rs, r)
		}
		series[name] = rs
	}
	inPath := filepath.Join(t.TempDir(), "regional.json")
	b, _ := json.Marshal(in)
	if err := os.WriteFile(inPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("/usr/bin/python3", "-c", regionalOracle, filepath.Join(ref, "processing.py"), inPath)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("regional oracle: %v\n%s", err, stderr.String())
	}
	var oracle map[string]map[string][3]*float64
	if err := json.Unmarshal(out, &oracle); err != nil {
		t.Fatal(err)
	}
	cols := []string{"microstrain", "tide_c", "atmp_c", "offset_c", "trend_c", "corrected"}
	vrows, err := db.Query(`SELECT epoch("time")::BIGINT, component, microstrain, tide_c, atmp_c, offset_c, trend_c, corrected
		FROM level2_regional_strain WHERE site = 'TSM5' AND matrix = 'CH2024'`)
	if err != nil {
		t.Fatal(err)
	}
	comp := map[string]int{"Eee+Enn": 0, "Eee-Enn": 1, "2Ene": 2}
	var maxView float64
	nView, nCorrNull := 0, 0
	for vrows.Next() {
		var tm int64
		var c string
		var v [6]sql.NullFloat64
		if err := vrows.Scan(&tm, &c, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]); err != nil {
			t.Fatal(err)
		}
		o := oracle[itoa(tm)]
		for k, col := range cols {
			w := o[col][comp[c]]
			if (w == nil) != !v[k].Valid {
				t.Fatalf("view %s %d %s: %v, recipe %v (NULL must match NaN)", col, tm, c, v[k], w)
			}
			if w != nil {
				maxView = max(maxView, math.Abs(v[k].Float64-*w))
			}
		}
		if !v[5].Valid {
			nCorrNull++
		}
		nView++
	}
	vrows.Close()
	t.Logf("level2_regional_strain: %d rows, max |view − notebook recipe| %.3g µε; corrected NULL in %d (the pressure gap)", nView, maxView, nCorrNull)
	if nView != 3*len(times) || maxView > 1e-6 || nCorrNull < 3*40 {
		t.Errorf("regional view: %d rows (want %d), max difference %g µε (tol 1e-6), %d NULL corrected (want the pressure gap's)", nView, 3*len(times), maxView, nCorrNull)
	}
	// The gauge view's corrected: microstrain minus all four, NULL where one is.
	var bad, nulls int64
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE corrected IS DISTINCT FROM microstrain - tide_c - atmp_c - offset_c - trend_c),
		count(*) FILTER (WHERE corrected IS NULL AND atmp_c IS NULL AND microstrain IS NOT NULL AND corrected_missing = 'atmp_c') FROM level2_gauge`).Scan(&bad, &nulls); err != nil {
		t.Fatal(err)
	}
	if bad != 0 || nulls < 4*40 {
		t.Errorf("level2_gauge corrected: %d rows differ from microstrain minus the corrections; %d NULL for want of atmp_c", bad, nulls)
	}

	// 4. EarthScope's reader reads both strain types.
	cmd = exec.Command("/usr/bin/python3", "-c", readerScript, ref, "TSM5", "2021", "2022")
	cmd.Dir = outFile
	stderr.Reset()
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("read_l2_ascii: %v\n%s", err, stderr.String())
	}
	var rd map[string]map[string][]any
	if err := json.Unmarshal(out, &rd); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"gauge", "regional"} {
		if n := len(rd[kind+" microstrain"]); n != epochs {
			t.Fatalf("reader returned %d %s epochs, want %d (gap epochs included)", n, kind, epochs)
		}
	}
	check := func(series string, tm int64, g int, v any, w float64, tol float64) {
		t.Helper()
		if math.IsNaN(w) {
			if v != nil {
				t.Errorf("%s %d column %d = %v, want NaN", series, tm, g, v)
			}
			return
		}
		f, ok := v.(float64)
		if !ok || math.Abs(f-w) > tol {
			t.Errorf("%s %d column %d = %v, want %.9f", series, tm, g, v, w)
		}
	}
	const tol = 5.000001e-7 // printed to 1e-6
	var nAtmp, nOffset, nTide, nTrend, nInterp, nGap int
	for tm := first; tm <= last; tm += 300 {
		k := itoa(tm)
		row, ok := want[tm]
		if !ok {
			// A gap epoch: every value fill, quality m, on both kinds.
			nGap++
			for _, kind := range []string{"gauge", "regional"} {
				for _, v := range rd[kind+" microstrain"][k] {
					if v != nil {
						t.Errorf("%s gap epoch %d: microstrain %v", kind, tm, v)
					}
				}
				for _, q := range rd[kind+" quality"][k] {
					if q != "m" {
						t.Errorf("%s gap epoch %d: quality %v, want m", kind, tm, q)
					}
				}
			}
			continue
		}
		for g := 0; g < 4; g++ {
			check("microstrain", tm, g, rd["gauge microstrain"][k][g], row[g].ms, tol)
			check("offset_c", tm, g, rd["gauge offset_c"][k][g], row[g].off, tol)
			check("atmp_c", tm, g, rd["gauge atmp_c"][k][g], row[g].atmp, tol)
			check("tide_c", tm, g, rd["gauge tide_c"][k][g], row[g].tide, tol)
			check("trend_c", tm, g, rd["gauge trend_c"][k][g], row[g].trend, tol)
			wq := "g"
			if row[g].interp {
				wq = "i"
				nInterp++
			}
			if q := rd["gauge quality"][k][g]; q != wq {
				t.Errorf("strain_quality %s gauge %d = %v, want %s", k, g, q, wq)
			}
			if !math.IsNaN(row[g].atmp) {
				nAtmp++
			}
			if math.Abs(row[g].tide) > 1e-3 {
				nTide++
			}
			if row[g].off != 0 {
				nOffset++
			}
			if math.Abs(row[g].trend) > 1e-3 {
				nTrend++
			}
		}
		check("atmp", tm, 0, rd["gauge atmp"][k][0], row[0].hpa, 5.000001e-4)
		check("regional atmp", tm, 0, rd["regional atmp"][k][0], row[0].hpa, 5.000001e-4)
		o := oracle[k]
		for c := 0; c < 3; c++ {
			for _, s := range []struct{ reader, col string }{{"microstrain", "microstrain"}, {"offset_c", "offset_c"},
				{"tide_c", "tide_c"}, {"atmp_c", "atmp_c"}, {"trend_c", "trend_c"}} {
				w := math.NaN()
				if p := o[s.col][c]; p != nil {
					w = *p
				}
				check("regional "+s.reader, tm, c, rd["regional "+s.reader][k][c], w, tol)
			}
			if q := rd["regional quality"][k][c]; q != "g" {
				t.Errorf("regional quality %s %d = %v, want g", k, c, q)
			}
		}
	}
	// The data must exercise what is compared.
	if nAtmp < 4*300 || nOffset == 0 || nTide < 4*300 || nTrend < 4*300 || nInterp == 0 || nGap < 20 || nAtmp == 4*len(times) {
		t.Errorf("fixture too weak: %d atmp values (of %d), %d nonzero offsets, %d tide and %d trend values over 1e-3, %d interpolated, %d gap epochs",
			nAtmp, 4*len(times), nOffset, nTide, nTrend, nInterp, nGap)
	}
}

// TestExportLevel2AllFill: a site whose rows carry no value (no metadata:
// decimated counts only) is refused with an error naming the cause, and no
// file is written: an export of nothing but 999999 must not look like
// success.
func TestExportLevel2AllFill(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "nomd.duckdb")
	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts)
		SELECT 'B009', TIMESTAMP '2021-07-01' + to_seconds(300 * (i // 4)), i % 4, 4.8e7 + i FROM range(48) r(i)`); err != nil {
		t.Fatal(err)
	}
	// B010: microstrain but no regional rows (written without matrices).
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain)
		SELECT 'B010', TIMESTAMP '2021-07-01' + to_seconds(300 * (i // 4)), i % 4, 4.8e7 + i, i FROM range(48) r(i)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	local, err := shell.OpenLocal(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	dir := t.TempDir()
	_, err = export.Level2(ctx, local, export.Options{Site: "B009", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "every value for site B009 in the range given would be the fill value 999999") ||
		!strings.Contains(err.Error(), "station metadata") {
		t.Errorf("all-fill export: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written: %v", ents)
	}
	dir = t.TempDir()
	if _, err := export.Level2(ctx, local, export.Options{Site: "B010", Dir: dir, Matrix: "lab"}); err == nil || !strings.Contains(err.Error(), "site B010 has no regional strains") {
		t.Errorf("a matrix for a site without regional strains: %v", err)
	}
	// Without --matrix such a site gets its gauge files only.
	files, err := export.Level2(ctx, local, export.Options{Site: "B010", Dir: dir})
	if err != nil || len(files) != 4 || files[0].Rows != 12 {
		t.Errorf("B010 without regional strains: %+v, %v; want 4 gauge files of 12 rows", files, err)
	}
}

func itoa(x int64) string {
	b, _ := json.Marshal(x)
	return string(b)
}
