package monitor

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// TestLevel2ReprocessMetrics: the jobs' progress is what /metrics shows,
// one series per site and version, read at scrape time.
func TestLevel2ReprocessMetrics(t *testing.T) {
	m := NewMetrics()
	jobs := []Level2Job{{Site: "B004", Version: "v2", Done: 3600, Total: 7200, Points: 12, Running: true}}
	m.WatchLevel2Reprocess(func() []Level2Job { return jobs })
	scrape := func() string {
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "gtsm_level2_reprocess_") {
				continue
			}
			for _, mt := range mf.GetMetric() {
				var l []string
				for _, lp := range mt.GetLabel() {
					l = append(l, lp.GetName()+"="+lp.GetValue())
				}
				out = append(out, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(l, ","), mt.GetGauge().GetValue()))
			}
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	want := `gtsm_level2_reprocess_done_seconds{site=B004,version=v2} 3600
gtsm_level2_reprocess_points{site=B004,version=v2} 12
gtsm_level2_reprocess_running{site=B004,version=v2} 1
gtsm_level2_reprocess_total_seconds{site=B004,version=v2} 7200`
	if got := scrape(); got != want {
		t.Fatalf("scrape:\n%s\nwant:\n%s", got, want)
	}
	jobs[0].Done, jobs[0].Running = 7200, false
	want = strings.Replace(strings.Replace(want, "} 3600", "} 7200", 1), "running{site=B004,version=v2} 1", "running{site=B004,version=v2} 0", 1)
	if got := scrape(); got != want {
		t.Fatalf("scrape after the job finished:\n%s\nwant:\n%s", got, want)
	}
}
