package level2

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/metadata"
)

func station(t testing.TB, site string) metadata.Station {
	t.Helper()
	st, err := metadata.LoadFiles([]string{"../metadata/testdata/bsm_metadata.txt",
		"../metadata/testdata/TSM5.README.txt", "../metadata/testdata/B004.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Site == site {
			return s
		}
	}
	t.Fatalf("no %s in the test table", site)
	return metadata.Station{}
}

func mustTide(t testing.TB, s *metadata.Station) *Tide {
	t.Helper()
	tide, err := TideFrom(s)
	if err != nil || tide == nil {
		t.Fatalf("TideFrom(%s): %v %v", s.Site, tide, err)
	}
	return tide
}

// tideCase is a series the Go model and an external implementation both
// compute: n points period seconds apart from start.
type tideCase struct {
	name   string
	site   string
	start  string
	n      int
	period int64
}

func (c tideCase) t0(t testing.TB) int64 {
	t.Helper()
	s, err := time.Parse(time.RFC3339, c.start)
	if err != nil {
		t.Fatal(err)
	}
	return s.Unix()
}

// writeTideParams writes params.json for tide_hartid.py and tide_oracle.py:
// the station's constituents as the README strings get_tidal_params keeps.
func writeTideParams(t *testing.T, dir string, c tideCase, s *metadata.Station) {
	t.Helper()
	var cons [][5]string
	for _, k := range s.Tides {
		cons = append(cons, [5]string{"CH" + strconv.Itoa(k.Gauge), k.Name, k.Doodson, readmeNumber(k.Amplitude), readmeNumber(k.Phase)})
	}
	b, err := json.Marshal(map[string]any{"start": c.t0(t), "n": c.n, "period": c.period,
		"longitude": s.Longitude, "constituents": cons})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "params.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readmeNumber writes v as the README does (with a decimal point: "90.0").
// processing.py pads the string with zeros on the right to 7 (amplitude) or
// 8 (phase) characters for hartid's fixed columns, so a README value written
// without a point ("90") would reach hartid as 90000000.
func readmeNumber(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// compareTide reads DIR/tide.csv (time, CH0..CH3 in microstrain) and returns
// the largest |Go − file| over every point and gauge the station has.
func compareTide(t *testing.T, dir string, c tideCase, tide *Tide) (maxDiff float64, points int) {
	t.Helper()
	head, rows := readCSV(t, filepath.Join(dir, "tide.csv"))
	if len(rows) != c.n {
		t.Fatalf("%s: tide.csv has %d rows, want %d", c.name, len(rows), c.n)
	}
	t0 := c.t0(t)
	for i, r := range rows {
		want := t0 + int64(i)*c.period
		if int64(r[0]) != want {
			t.Fatalf("%s row %d: time %v, want %d", c.name, i, r[0], want)
		}
		got := tide.At(want)
		for j := 1; j < len(head); j++ {
			g, err := strconv.Atoi(head[j][2:])
			if err != nil {
				t.Fatalf("%s: column %q", c.name, head[j])
			}
			if math.IsNaN(got[g]) || math.IsNaN(r[j]) {
				t.Fatalf("%s %s at %d: go %v, other %v", c.name, head[j], want, got[g], r[j])
			}
			maxDiff = max(maxDiff, math.Abs(got[g]-r[j]))
			points++
		}
	}
	return maxDiff, points
}

// TestTideAgainstHartid builds SPOTL's hartid with gfortran from
// $GTSM_SPOTL_SRC, runs processing.calculate_tide_correction itself with it
// on PATH (so hartid gets exactly processing.py's input: "l", the longitude,
// "doodson amp phase" lines, -1; arguments Y M D H M S n period; output
// nanostrain × 1e-3) and compares every point with Tide.At.
//
// The differences are (a) hartid's single precision (its amplitudes,
// admittances and recursion frequencies are REAL; output to 1e-5 nanostrain)
// and (b) hartid fixes the astronomical arguments at the first time and
// advances each harmonic at a constant (float32-rounded) frequency, where
// Tide.At evaluates them at each time. Tolerance 1e-5 microstrain
// (0.01 nanostrain, 1e-3 of the smallest constituent amplitude here) for a
// one-year series; docs/level2.md records the measured maxima.
func TestTideAgainstHartid(t *testing.T) {
	src := os.Getenv("GTSM_SPOTL_SRC")
	if src == "" {
		t.Skip("GTSM_SPOTL_SRC is not set: point it at a directory with SPOTL's hartid.f admint.f tdfrph.f recurs.f spline.f shells.f " +
			"(github.com/geosciman/spotl_modified @58fa3fc, or Agnew's SPOTL distribution) to compare with the Fortran hartid")
	}
	py := requirePython(t)
	gf, err := exec.LookPath("gfortran")
	if err != nil {
		t.Fatalf("gfortran is required to build hartid (apt-get install gfortran): %v", err)
	}
	bin := t.TempDir()
	var srcs []string
	for _, f := range []string{"hartid.f", "admint.f", "tdfrph.f", "recurs.f", "spline.f", "shells.f"} {
		srcs = append(srcs, filepath.Join(src, f))
	}
	if out, err := exec.Command(gf, append([]string{"-O", "-o", filepath.Join(bin, "hartid")}, srcs...)...).CombinedOutput(); err != nil {
		t.Fatalf("gfortran: %v\n%s", err, out)
	}
	cases := []tideCase{
		{"TSM5 30 days", "TSM5", "2022-06-03T00:00:00Z", 30 * 288, 300},
		{"TSM5 1 year", "TSM5", "2023-01-01T00:00:00Z", 365 * 288, 300},
		{"TSM5 1 day at 1 s, 17:35", "TSM5", "2024-02-29T17:35:00Z", 86400, 1},
		{"B004 30 days (M2, O1 only; longitude -124.42701)", "B004", "2015-12-20T12:00:00Z", 30 * 288, 300},
	}
	tol := map[string]float64{"TSM5 30 days": 2e-6, "TSM5 1 year": 1e-5, "TSM5 1 day at 1 s, 17:35": 1e-5,
		"B004 30 days (M2, O1 only; longitude -124.42701)": 2e-6}
	for _, c := range cases {
		s := station(t, c.site)
		dir := t.TempDir()
		writeTideParams(t, dir, c, &s)
		cmd := exec.Command(py, "tide_hartid.py", referencePath, dir)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: tide_hartid.py: %v\n%s", c.name, err, out)
		}
		d, n := compareTide(t, dir, c, mustTide(t, &s))
		t.Logf("%s: %d values, max |Go − hartid| = %.3g microstrain (tolerance %g)", c.name, n, d, tol[c.name])
		if d > tol[c.name] {
			t.Errorf("%s: max |Go − hartid| = %g microstrain > %g", c.name, d, tol[c.name])
		}
	}
}
