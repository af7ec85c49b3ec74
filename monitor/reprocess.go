package monitor

import "github.com/prometheus/client_golang/prometheus"

// Level2Job is one station's Level-2 reprocess as the processor reports it
// (processor.ReprocessStatus), running or the last finished.
type Level2Job struct {
	Site, Version string
	Done, Total   int64 // seconds of data reprocessed / stored
	Points        int64 // 300 s points written
	Running       bool
}

var (
	reprocessDoneDesc = prometheus.NewDesc("gtsm_level2_reprocess_done_seconds",
		"Seconds of a station's stored data its Level-2 reprocess has recomputed (the job's cursor minus the first stored second).", []string{"site", "version"}, nil)
	reprocessTotalDesc = prometheus.NewDesc("gtsm_level2_reprocess_total_seconds",
		"Seconds of data stored for the station when its reprocess last moved (done = total when it finished).", []string{"site", "version"}, nil)
	reprocessPointsDesc = prometheus.NewDesc("gtsm_level2_reprocess_points",
		"300 s Level-2 points the reprocess has written.", []string{"site", "version"}, nil)
	reprocessRunningDesc = prometheus.NewDesc("gtsm_level2_reprocess_running",
		"1 while the station's Level-2 reprocess runs, 0 once it finished.", []string{"site", "version"}, nil)
)

// WatchLevel2Reprocess exports the Level-2 reprocess jobs, asking jobs at
// scrape time.
func (m *Metrics) WatchLevel2Reprocess(jobs func() []Level2Job) {
	m.Registry.MustRegister(&reprocessCollector{jobs: jobs})
}

type reprocessCollector struct{ jobs func() []Level2Job }

func (c *reprocessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reprocessDoneDesc
	ch <- reprocessTotalDesc
	ch <- reprocessPointsDesc
	ch <- reprocessRunningDesc
}

func (c *reprocessCollector) Collect(ch chan<- prometheus.Metric) {
	for _, j := range c.jobs() {
		running := 0.0
		if j.Running {
			running = 1
		}
		for _, v := range []struct {
			d *prometheus.Desc
			x float64
		}{{reprocessDoneDesc, float64(j.Done)}, {reprocessTotalDesc, float64(j.Total)}, {reprocessPointsDesc, float64(j.Points)}, {reprocessRunningDesc, running}} {
			ch <- prometheus.MustNewConstMetric(v.d, prometheus.GaugeValue, v.x, j.Site, j.Version)
		}
	}
}
