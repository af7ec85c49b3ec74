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
	ms, off, atmp, tide float64 // NaN = missing
}

// fillLevel2 runs level2.Machine over 1.5 days of generated 1 s counts for
// TSM5 (its test metadata), from 2021-12-31 12:00 UTC so the export spans two
// years: tides, a trend, a +3000 count step on CH1, noise-free; pressure every
// 30 min. It writes the contract tables as the processor would and returns
// the expected values by time and gauge.
func fillLevel2(t *testing.T, db *sql.DB) map[int64][4]gauge {
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
		var c [4]int32
		for g := range c {
			x := float64(st.Reference[g]) + 200*math.Sin(2*math.Pi*float64(tt)/44714+float64(g)) + 80*math.Sin(2*math.Pi*float64(tt)/86164) + 0.01*float64(s)
			if g == 1 && s > 20*3600 {
				x += 3000
			}
			c[g] = int32(math.Round(x))
		}
		if pts, err = m.PushStrain(tt, c, pts); err != nil {
			t.Fatal(err)
		}
		if s%1800 == 0 {
			if aps, err = m.PushPressure(tt, 1010+3*math.Sin(float64(s)/20000), aps); err != nil {
				t.Fatal(err)
			}
		}
	}
	atmp := map[int64][4]float64{}
	for _, a := range aps {
		atmp[a.Time] = a.Correction
	}
	want := map[int64][4]gauge{}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	ins, err := tx.Prepare(`INSERT INTO level2_gauge_data VALUES (?, to_timestamp(?)::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?)`)
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
			ac := math.NaN()
			if ok {
				ac = a[g]
			}
			row[g] = gauge{p.Microstrain[g], p.Offset[g], ac, p.Tide[g]}
			if _, err := ins.Exec("TSM5", p.Time, g, p.Counts[g], null(p.Microstrain[g]), null(ac), null(p.Tide[g]), null(p.Offset[g]), version); err != nil {
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
	return want
}

// readerScript runs EarthScope's own reader, ascii_tools.read_l2_ascii, on
// the exported directory. Its imports that are not part of this check are
// stubbed: requests (download only), and earthscopestraintools.timeseries,
// whose Timeseries here keeps the DataFrame and does remove_fill_values as
// the package documents it (999999 -> NaN, no interpolation).
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
for year in sys.argv[3:]:
    l2 = ascii_tools.read_l2_ascii(sys.argv[2], int(year), strain_type='gauge', show_stats=False)
    for name, t in l2.items():
        d = out.setdefault(name, {})
        for ix, row in t.data.iterrows():
            d[str(int(ix.timestamp()))] = [None if math.isnan(v) else v for v in row.tolist()]
    q = l2['microstrain'].quality_df
    out.setdefault('quality', {}).update({str(int(ix.timestamp())): row.tolist() for ix, row in q.iterrows()})
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
	want := fillLevel2(t, db)
	db.Close()

	// 1. From the DuckDB file (read-only, locked down).
	local, err := shell.OpenLocal(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	outFile := t.TempDir()
	files, err := export.Level2(ctx, local, export.Options{Site: "TSM5", Dir: outFile})
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
	wantNames := "TSM5.2021.bsm.level2/TSM5.2021.xml.Gauge0.txt.gz TSM5.2021.bsm.level2/TSM5.2021.xml.Gauge1.txt.gz " +
		"TSM5.2021.bsm.level2/TSM5.2021.xml.Gauge2.txt.gz TSM5.2021.bsm.level2/TSM5.2021.xml.Gauge3.txt.gz " +
		"TSM5.2022.bsm.level2/TSM5.2022.xml.Gauge0.txt.gz TSM5.2022.bsm.level2/TSM5.2022.xml.Gauge1.txt.gz " +
		"TSM5.2022.bsm.level2/TSM5.2022.xml.Gauge2.txt.gz TSM5.2022.bsm.level2/TSM5.2022.xml.Gauge3.txt.gz"
	if strings.Join(names, " ") != wantNames || rows != 4*len(want) {
		t.Fatalf("files %v with %d rows; want %s and %d rows", names, rows, wantNames, 4*len(want))
	}
	g1 := gunzip(t, files[5].Path)
	if !strings.HasPrefix(g1, export.Header(1)+"\n2022-01-01T00:00:00 ") {
		t.Errorf("Gauge1 2022 starts %q", g1[:min(len(g1), 200)])
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
	pfiles, err := export.Level2(ctx, pg, export.Options{Site: "TSM5", Dir: outPG})
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if a, b := gunzip(t, files[i].Path), gunzip(t, pfiles[i].Path); a != b {
			t.Errorf("%s differs between the file and the endpoint", names[i])
		}
	}
	// --from/--to select [from, to).
	from := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	sub, err := export.Level2(ctx, pg, export.Options{Site: "TSM5", Dir: t.TempDir(), From: from, To: from.Add(time.Hour)})
	if err != nil || len(sub) != 4 || sub[0].Rows != 12 {
		t.Errorf("one hour of 2022: %+v, %v; want 4 files of 12 rows", sub, err)
	}
	if _, err := export.Level2(ctx, pg, export.Options{Site: "NOPE", Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no Level-2 rows for site NOPE") {
		t.Errorf("unknown site: %v", err)
	}
	pg.Close()

	// 3. EarthScope's reader reads it; every value equals the machine's.
	ref := filepath.Dir(testutil.Shared(t, "reference/earthscopestraintools/ascii_tools.py"))
	cmd := exec.Command("/usr/bin/python3", "-c", readerScript, ref, "TSM5", "2021", "2022")
	cmd.Dir = outFile
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_l2_ascii: %v\n%s", err, stderr.String())
	}
	var got map[string]map[string][]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got["microstrain"]) != len(want) {
		t.Fatalf("reader returned %d times, want %d", len(got["microstrain"]), len(want))
	}
	check := func(series string, tm int64, g int, v any, w float64) {
		t.Helper()
		if math.IsNaN(w) {
			if v != nil {
				t.Errorf("%s %d gauge %d = %v, want NaN", series, tm, g, v)
			}
			return
		}
		f, ok := v.(float64)
		if !ok || math.Abs(f-w) > 5.000001e-7 {
			t.Errorf("%s %d gauge %d = %v, want %.9f", series, tm, g, v, w)
		}
	}
	var nAtmp, nOffset, nTide int
	for tm, row := range want {
		k := json.Number(itoa(tm)).String()
		for g := 0; g < 4; g++ {
			check("microstrain", tm, g, got["microstrain"][k][g], row[g].ms)
			check("offset_c", tm, g, got["offset_c"][k][g], row[g].off)
			check("atmp_c", tm, g, got["atmp_c"][k][g], row[g].atmp)
			check("tide_c", tm, g, got["tide_c"][k][g], row[g].tide)
			check("trend_c", tm, g, got["trend_c"][k][g], math.NaN())
			if q := got["quality"][k][g]; q != "g" {
				t.Errorf("strain_quality %s gauge %d = %v, want g", k, g, q)
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
		}
		check("atmp", tm, 0, got["atmp"][k][0], math.NaN())
	}
	// The data must exercise what is compared: pressure corrections and the
	// CH1 step found as an offset.
	if nAtmp < 4*400 || nOffset == 0 || nTide < 4*300 {
		t.Errorf("fixture too weak: %d atmp values, %d nonzero offsets, %d tide values over 1e-3", nAtmp, nOffset, nTide)
	}
}

func itoa(x int64) string {
	b, _ := json.Marshal(x)
	return string(b)
}
