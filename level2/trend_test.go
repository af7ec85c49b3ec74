package level2

import (
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/metadata"
)

// TestTrendModelOracle: the README's double-exponential trend model equals
// processing.calculate_double_exponential_trend_correction (run by
// /usr/bin/python3 on the same times), and the machine uses it for trend_c
// when the station has one; an all-zero model (TSM5's) is none.
func TestTrendModelOracle(t *testing.T) {
	py := requirePython(t)
	ref := processingPy(t)
	st := tsm5(t)
	if TrendModelFrom(&st) != nil {
		t.Fatal("TSM5's all-zero trend model taken as a model")
	}
	st.Trend = &metadata.Trend{Date: "2022-06-03T00:00:00", Gauges: [4]metadata.TrendModel{
		{F: 1.5, A1: -2.25, T1: -0.0125, M: 0.0031, A2: 0.75, T2: -0.0009},
		{F: -0.4, A1: 3.1, T1: -0.002, M: -0.0012, A2: 0, T2: 0},
		{F: 0, A1: 0, T1: 0, M: 0.0007, A2: 0, T2: 0},
		{F: 2.0, A1: -1.0, T1: -0.05, M: 0, A2: -0.5, T2: -0.001},
	}}
	m := TrendModelFrom(&st)
	if m == nil {
		t.Fatal("no model")
	}
	times := []int64{1654214400, 1654214700, 1672531200, 1672531500, 1704067200 + 86400*45 + 300*7}
	var ts []string
	for _, x := range times {
		ts = append(ts, strconv.FormatInt(x, 10))
	}
	var sb strings.Builder
	for g, p := range st.Trend.Gauges {
		fmt.Fprintf(&sb, "'CH%d': {'F': %q, 'A1': %q, 'T1': %q, 'M': %q, 'A2': %q, 'T2': %q}, ", g,
			fmt.Sprint(p.F), fmt.Sprint(p.A1), fmt.Sprint(p.T1), fmt.Sprint(p.M), fmt.Sprint(p.A2), fmt.Sprint(p.T2))
	}
	script := `
import importlib.util, sys
import pandas as pd
spec = importlib.util.spec_from_file_location("processing", sys.argv[1])
proc = importlib.util.module_from_spec(spec); spec.loader.exec_module(proc)
idx = pd.to_datetime([` + strings.Join(ts, ",") + `], unit="s")
df = pd.DataFrame(0.0, index=idx, columns=["CH0", "CH1", "CH2", "CH3"])
params = {` + sb.String() + `'detrend_date': '` + st.Trend.Date + `'}
out = proc.calculate_double_exponential_trend_correction(df, params)
for r in out.itertuples(index=False):
    print(",".join("%.17g" % v for v in r))
`
	out, err := exec.Command(py, "-c", script, ref).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(times) {
		t.Fatalf("python printed %d lines, want %d:\n%s", len(lines), len(times), out)
	}
	var maxDiff float64
	for i, l := range lines {
		got := m.At(times[i])
		for g, f := range strings.Split(l, ",") {
			want, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatal(err)
			}
			maxDiff = max(maxDiff, math.Abs(got[g]-want))
		}
	}
	t.Logf("max |TrendModel.At − calculate_double_exponential_trend_correction| = %.3g microstrain", maxDiff)
	if maxDiff > 1e-9 || math.IsNaN(maxDiff) {
		t.Errorf("trend model differs by %g", maxDiff)
	}

	// The machine's trend_c is the model where there is one.
	s := makeSynth(t)
	s.station = st
	s.n = 86400
	pts, _, _ := s.run(t, 0)
	if len(pts) < 200 {
		t.Fatalf("%d points", len(pts))
	}
	for _, p := range pts {
		if p.Trend != m.At(p.Time) {
			t.Fatalf("point %d: trend_c %v, model %v", p.Time, p.Trend, m.At(p.Time))
		}
	}
}
