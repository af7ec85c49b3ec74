package metadata

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

const td = "testdata"

func loadTestStations(t *testing.T) map[string]Station {
	t.Helper()
	st, err := LoadFiles([]string{td + "/bsm_metadata.txt", td + "/TSM5.README.txt", td + "/B004.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Station{}
	for _, s := range st {
		m[s.Site] = s
	}
	return m
}

func TestParseTable(t *testing.T) {
	f, err := os.Open(td + "/bsm_metadata.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := ParseTable("bsm_metadata.txt", f)
	if err != nil {
		t.Fatal(err)
	}
	want := []TableRow{
		{File: "bsm_metadata.txt", Line: 2, Site: "B004", Latitude: 48.20193, Longitude: -124.42701, Elevation: 238, Gap: 0.0002, Orientation: 168.2,
			DataStart: "2005:175", LinearDate: "2005:180", Reference: [4]int64{48391551, 49872537, 49840454, 49541470}},
		{File: "bsm_metadata.txt", Line: 3, Site: "TSM5", Latitude: 43.479691, Longitude: 12.60252, Elevation: 721.5, Gap: 0.0001, Orientation: 342.9,
			DataStart: "2022:150", LinearDate: "2022:154", Reference: [4]int64{50858593, 53668101, 53904388, 49946112}},
		{File: "bsm_metadata.txt", Line: 5, Site: "B009", Latitude: 40.6, Longitude: -124.2, Elevation: 48, Gap: 0.0001, Orientation: 15,
			DataStart: "2006:060", LinearDate: "2006:061", Reference: [4]int64{48000000, 49000000, 50000000, 51000000}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows:\n got %+v\nwant %+v", rows, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		file string
		want string // the error must contain this, file:line first
	}{
		{"table_short_row.txt", "table_short_row.txt:2: 11 fields, header has 12"},
		{"table_no_l3.txt", "table_no_l3.txt:1: header has no L3(cnts) column"},
		{"table_lat_text.txt", `table_lat_text.txt:3: station TSM5 column LAT: "north" is not a number`},
		{"table_ref_fraction.txt", `table_ref_fraction.txt:2: station TSM5 column L0(cnts): "50858593.5" is not a whole number of counts`},
		{"table_gap_nan.txt", `table_gap_nan.txt:2: station TSM5 column GAP(m): "NaN" is not a finite number`},
		{"table_duplicate.txt", "table_duplicate.txt:3: station TSM5 already on line 2"},
		{"table_empty.txt", "table_empty.txt:1: empty table"},
		{"readme_matrix_short_row.txt", "readme_matrix_short_row.txt:5: lab matrix row 2: 4 fields, want a label and 4 numbers"},
		{"readme_matrix_text.txt", `readme_matrix_text.txt:5: CH2024 matrix row 2: "zero" is not a number`},
		{"readme_matrix_truncated.txt", "readme_matrix_truncated.txt:2: ER2010 matrix: file ends before row 2"},
		{"readme_baro_no_ch3.txt", "readme_baro_no_ch3.txt:1: barometric response has no CH3 line"},
		{"readme_tide_unknown.txt", `readme_tide_unknown.txt:3: tidal constituent "Q1": not one of M2 O1 P1 K1 N2 S2`},
		{"readme_tide_short.txt", `readme_tide_short.txt:2: tidal constituent: want "CHn NAME phase amplitude"`},
		{"readme_trend_no_ch2.txt", "readme_trend_no_ch2.txt:1: borehole trend models have no CH2 line"},
		{"readme_trend_bad_date.txt", `readme_trend_bad_date.txt:7: detrend date "2022-06-03"`},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(td, "bad", c.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if strings.HasPrefix(c.file, "table_") {
				_, err = ParseTable(c.file, f)
			} else {
				_, err = ParseReadme(c.file, f)
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.want[:strings.Index(c.want, ": ")]) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			// LoadFiles names the path it was given.
			if strings.HasPrefix(c.file, "table_") {
				_, err = LoadFiles([]string{path})
				if err == nil || !strings.HasPrefix(err.Error(), path+":") {
					t.Fatalf("LoadFiles error %v, want it to start with %s:", err, path)
				}
			}
		})
	}
}

func TestReadmeTSM5(t *testing.T) {
	s := loadTestStations(t)["TSM5"]
	for _, c := range []struct {
		name string
		want [3][4]float64
	}{
		{MatrixLab, [3][4]float64{{0.2962963, 0.51851852, 0.2962963, 0.22222222}, {-0.23421081, 0.3334514, 0.10083025, -0.20007084}, {-0.31429352, -0.1611967, 0.3787722, 0.09671802}}},
		{MatrixCH2024, [3][4]float64{{-2.29756838, -1.78884499, -1.90750646, -0.23665333}, {-0.08233948, 0.27250792, 0.36601184, -0.13119797}, {-0.48265607, -0.38451238, -0.00899979, 0.08270539}}},
		{MatrixEM2024, [3][4]float64{{-8.580e-05, -6.860e-05, -1.037e-04, 1.330e-05}, {1.100e-06, 1.620e-05, 2.470e-05, -9.700e-06}, {-2.060e-05, -1.450e-05, -2.900e-06, 9.300e-06}}},
	} {
		m := s.Matrix(c.name)
		if m == nil || m.Values != c.want {
			t.Errorf("%s matrix %v, want %v", c.name, m, c.want)
		}
	}
	if s.Matrix(MatrixER2010) != nil || s.Matrix(MatrixKH2013) != nil {
		t.Errorf("TSM5 has no ER2010 or KH2013 block, got %v", s.Matrices)
	}
	// level2.ipynb prints these (README nanostrain/hPa times 1e-3).
	if want := [4]float64{-0.00737258, -0.00589086, -0.0060482, -0.00492305}; s.Atmp == nil || !close4(*s.Atmp, want, 1e-15) {
		t.Errorf("atmp %v, want %v", s.Atmp, want)
	}
	if len(s.Tides) != 24 {
		t.Fatalf("%d constituents, want 24", len(s.Tides))
	}
	if c := s.Tides[1]; c != (Constituent{Gauge: 0, Name: "O1", Doodson: "1-1 0 0 0 0", Phase: -168.061, Amplitude: 7.432}) {
		t.Errorf("CH0 O1 = %+v", c)
	}
	if c := s.Tides[23]; c != (Constituent{Gauge: 3, Name: "S2", Doodson: "2 2-2 0 0 0", Phase: -15.441, Amplitude: 7.447}) {
		t.Errorf("CH3 S2 = %+v", c)
	}
	if s.Trend == nil || s.Trend.Date != "2022-06-03T00:00:00" || s.Trend.Gauges != [4]TrendModel{} {
		t.Errorf("trend %+v", s.Trend)
	}
	if s.Gap != 0.0001 || s.Orientation != 342.9 || s.Reference != [4]int64{50858593, 53668101, 53904388, 49946112} {
		t.Errorf("table part %+v", s)
	}
}

func close4(a, b [4]float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// The lab matrix computed from CH0(EofN) = 342.9 equals the one level2.ipynb
// prints for TSM5 to the 8 decimals printed.
func TestLabMatrix(t *testing.T) {
	for _, c := range []struct {
		orientation float64
		want        [3][4]float64
		tol         float64
	}{
		{342.9, [3][4]float64{{0.2962963, 0.51851852, 0.2962963, 0.22222222}, {-0.23421081, 0.3334514, 0.10083025, -0.20007084}, {-0.31429352, -0.1611967, 0.3787722, 0.09671802}}, 5e-9},
		// The areal row does not depend on the orientation: 8/27, 14/27, 8/27, 6/27.
		{0, [3][4]float64{{8.0 / 27, 14.0 / 27, 8.0 / 27, 6.0 / 27}}, -1},
		{168.2, [3][4]float64{{8.0 / 27, 14.0 / 27, 8.0 / 27, 6.0 / 27}}, -1},
	} {
		got := LabMatrix(c.orientation)
		if c.tol < 0 { // only the areal row
			for g := 0; g < 4; g++ {
				if math.Abs(got[0][g]-c.want[0][g]) > 1e-12 {
					t.Errorf("orientation %v areal %v, want %v", c.orientation, got[0], c.want[0])
				}
			}
			continue
		}
		for i := range got {
			if !close4(got[i], c.want[i], c.tol) {
				t.Errorf("orientation %v row %d: %v, want %v", c.orientation, i, got[i], c.want[i])
			}
		}
	}
	// B009 has no README: its lab matrix is computed.
	s := loadTestStations(t)["B009"]
	if len(s.Matrices) != 1 || s.Matrices[0].Values != LabMatrix(15) || s.Atmp != nil || s.Tides != nil || s.Trend != nil {
		t.Errorf("B009 %+v", s)
	}
}

func TestAvroRoundTrip(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for site, s := range loadTestStations(t) {
		t.Run(site, func(t *testing.T) {
			b, v, err := c.Encode(&s)
			if err != nil {
				t.Fatal(err)
			}
			got, gv, err := c.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if gv != v || len(v) != 16 {
				t.Errorf("version %q, encoded %q", gv, v)
			}
			if !reflect.DeepEqual(*got, s) {
				t.Errorf("decoded\n %+v\nwant\n %+v", *got, s)
			}
			if prev, ok := versions[v]; ok {
				t.Errorf("%s and %s have the same version %s", site, prev, v)
			}
			versions[v] = site
			// The same content gives the same version; any change a new one.
			b2, v2, _ := c.Encode(got)
			if v2 != v || !bytes.Equal(b2, b) {
				t.Errorf("re-encoding changed version %s -> %s", v, v2)
			}
			changed := *got
			changed.Reference[2]++
			if _, v3, _ := c.Encode(&changed); v3 == v {
				t.Errorf("a changed reference kept version %s", v)
			}
			if _, _, err := c.Decode(b[:len(b)-1]); err == nil {
				t.Error("truncated record decoded")
			}
			if _, _, err := c.Decode(append(b[:len(b):len(b)], 0)); err == nil {
				t.Error("record with a trailing byte decoded")
			}
		})
	}
}

// The version depends on the content, not on where the files were.
func TestVersionIgnoresPaths(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"bsm_metadata.txt", "TSM5.README.txt"} {
		b, err := os.ReadFile(filepath.Join(td, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	moved, err := LoadFiles([]string{filepath.Join(dir, "bsm_metadata.txt"), filepath.Join(dir, "TSM5.README.txt")})
	if err != nil {
		t.Fatal(err)
	}
	orig := loadTestStations(t)["TSM5"]
	for _, s := range moved {
		if s.Site != "TSM5" {
			continue
		}
		if reflect.DeepEqual(s.Sources, orig.Sources) {
			t.Fatalf("sources %v should name the other directory", s.Sources)
		}
		v1, _ := c.Version(&s)
		v2, _ := c.Version(&orig)
		if v1 != v2 {
			t.Errorf("same metadata from another directory: version %s, was %s", v1, v2)
		}
	}
}

func TestLoadFilesErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		paths []string
		want  string
	}{
		{"README without table", []string{td + "/TSM5.README.txt"}, td + "/TSM5.README.txt: station TSM5 is in no network table"},
		{"station in two tables", []string{td + "/bsm_metadata.txt", td + "/bsm_metadata.txt"}, td + "/bsm_metadata.txt:2: station B004 already in " + td + "/bsm_metadata.txt:2"},
		{"two READMEs", []string{td + "/bsm_metadata.txt", td + "/TSM5.README.txt", td + "/TSM5.README.txt"}, td + "/TSM5.README.txt: second README for TSM5"},
		{"missing file", []string{td + "/nope.txt"}, "nope.txt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadFiles(c.paths)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestPythonCrossCheck runs gtsm_metadata.py's own readers (GtsmMetadata,
// with the URL fetches pointed at the test files) under /usr/bin/python3 and
// requires the Go parser to read the same values.
func TestPythonCrossCheck(t *testing.T) {
	src := testutil.Shared(t, "reference/earthscopestraintools/gtsm_metadata.py")
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy, pandas").Run(); err != nil {
		t.Fatalf("%s with numpy and pandas is required (apt-get install python3-numpy python3-pandas): %v", py, err)
	}
	cmd := exec.Command(py, "gtsm_metadata_check.py", src, td+"/bsm_metadata.txt", td, "TSM5", "B004", "B009")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var res map[string]struct {
		Latitude, Longitude, Elevation, Gap, Orientation float64
		StartDate                                        string `json:"start_date"`
		Reference                                        map[string]any
		Matrices                                         map[string]*[3][4]float64
		ComputedLab                                      [3][4]float64 `json:"computed_lab"`
		Atmp                                             map[string]float64
		Tides                                            map[string]string
		Trend                                            map[string]any
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	st := loadTestStations(t)
	for _, site := range []string{"TSM5", "B004", "B009"} {
		t.Run(site, func(t *testing.T) {
			p, s := res[site], st[site]
			if p.Latitude != s.Latitude || p.Longitude != s.Longitude || p.Elevation != s.Elevation || p.Gap != s.Gap || p.Orientation != s.Orientation {
				t.Errorf("table: python %+v, go %+v", p, s)
			}
			d, err := time.Parse("2006:002", s.DataStart)
			if err != nil || d.Format("2006-01-02") != p.StartDate {
				t.Errorf("start date: python %q, go %q", p.StartDate, s.DataStart)
			}
			if p.Reference["linear_date"] != s.LinearDate {
				t.Errorf("linear date: python %v, go %v", p.Reference["linear_date"], s.LinearDate)
			}
			for g := 0; g < 4; g++ {
				if p.Reference["CH"+string(rune('0'+g))] != float64(s.Reference[g]) {
					t.Errorf("reference CH%d: python %v, go %d", g, p.Reference["CH"+string(rune('0'+g))], s.Reference[g])
				}
			}
			for _, name := range []string{MatrixLab, MatrixER2010, MatrixKH2013, MatrixCH2024, MatrixEM2024} {
				pm, gm := p.Matrices[name], s.Matrix(name)
				if name == MatrixLab && pm == nil {
					// No README: Python has none, Go computes it as make_weighted_strain_matrix does.
					for i := 0; i < 3; i++ {
						if !close4(gm.Values[i], p.ComputedLab[i], 1e-12) {
							t.Errorf("computed lab row %d: python %v, go %v", i, p.ComputedLab[i], gm.Values[i])
						}
					}
					continue
				}
				if (pm == nil) != (gm == nil) || (pm != nil && *pm != gm.Values) {
					t.Errorf("%s: python %v, go %v", name, pm, gm)
				}
			}
			// make_weighted_strain_matrix agrees with LabMatrix for every station.
			lab := LabMatrix(s.Orientation)
			for i := 0; i < 3; i++ {
				if !close4(lab[i], p.ComputedLab[i], 1e-12) {
					t.Errorf("LabMatrix(%v) row %d: python %v, go %v", s.Orientation, i, p.ComputedLab[i], lab[i])
				}
			}
			if s.Atmp == nil {
				if p.Atmp != nil {
					t.Errorf("atmp: python %v, go none", p.Atmp)
				}
			} else {
				for g := 0; g < 4; g++ {
					if p.Atmp["CH"+string(rune('0'+g))] != s.Atmp[g] {
						t.Errorf("atmp CH%d: python %v, go %v", g, p.Atmp["CH"+string(rune('0'+g))], s.Atmp[g])
					}
				}
			}
			gotTides := map[string]string{}
			gotNums := map[string]float64{}
			for _, c := range s.Tides {
				ch := "CH" + string(rune('0'+c.Gauge))
				gotTides[ch+" "+c.Name+" doodson"] = c.Doodson
				gotNums[ch+" "+c.Name+" phz"] = c.Phase
				gotNums[ch+" "+c.Name+" amp"] = c.Amplitude
			}
			if len(p.Tides) != len(gotTides)+len(gotNums) {
				t.Errorf("tides: python %d entries, go %d", len(p.Tides), len(gotTides)+len(gotNums))
			}
			for k, v := range p.Tides {
				if strings.HasSuffix(k, " doodson") {
					if gotTides[k] != v {
						t.Errorf("tide %s: python %q, go %q", k, v, gotTides[k])
					}
				} else if n, ok := gotNums[k]; !ok || parseF(t, v) != n {
					t.Errorf("tide %s: python %q, go %v", k, v, n)
				}
			}
			if s.Trend == nil {
				if p.Trend != nil {
					t.Errorf("trend: python %v, go none", p.Trend)
				}
				return
			}
			if p.Trend["detrend_date"] != s.Trend.Date {
				t.Errorf("detrend date: python %v, go %v", p.Trend["detrend_date"], s.Trend.Date)
			}
			for g, m := range s.Trend.Gauges {
				pm := p.Trend["CH"+string(rune('0'+g))].(map[string]any)
				for k, v := range map[string]float64{"F": m.F, "A1": m.A1, "T1": m.T1, "M": m.M, "A2": m.A2, "T2": m.T2} {
					if pv := parseF(t, pm[k].(string)); pv != v {
						t.Errorf("trend CH%d %s: python %v, go %v", g, k, pv, v)
					}
				}
			}
		})
	}
}

func parseF(t *testing.T, s string) float64 {
	v, err := parseFinite(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The tidal block ends at the next block header, where gtsm_metadata.py
// would go on reading the trend models' CH lines as constituents.
func TestTidalBlockEndsAtNextHeader(t *testing.T) {
	f, err := os.Open(td + "/trend_after_tides.README.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := ParseReadme("trend_after_tides.README.txt", f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.Tides) != 4 {
		t.Errorf("%d constituents, want the 4 M2 lines: %+v", len(rd.Tides), rd.Tides)
	}
	if rd.Trend == nil || rd.Trend.Gauges[3] != (TrendModel{F: 1, A1: 2, T1: 3, M: 4, A2: 5, T2: 6}) {
		t.Errorf("trend %+v", rd.Trend)
	}
}
