// Package monitor is how people watch a running processor: Prometheus metrics
// on /metrics, a /healthz for orchestrators, and a status page (/) with each
// site's state and its strain channels drawn as curves, rendered on the server
// as SVG so the page works offline (no CDN, no JavaScript).
package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the processor's counters. Each processor owns one set,
// registered on its own registry (no global default registry), so tests and
// several processors in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	RecordsIn    prometheus.Counter
	RowsWritten  prometheus.Counter
	Batches      prometheus.Counter
	FlushSeconds prometheus.Histogram
	ConsumerLag  *prometheus.GaugeVec   // by topic, partition
	Late         *prometheus.CounterVec // by site, session
	Duplicates   *prometheus.CounterVec // by site, session
	GapSamples   *prometheus.CounterVec // by site, session: expected samples that never came
	DeadLetters  *prometheus.CounterVec // by reason
}

// NewMetrics creates the metrics and registers them, with Go runtime and
// process collectors, on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		RecordsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gtsm_records_in_total", Help: "gtsm_etl records consumed from Kafka.",
		}),
		RowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gtsm_rows_written_total", Help: "gtsm_etl rows committed to DuckDB.",
		}),
		Batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gtsm_batches_total", Help: "DuckDB batches committed (rows, state and Kafka offsets in one transaction).",
		}),
		FlushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gtsm_flush_seconds", Help: "Time to write and commit one DuckDB batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gtsm_consumer_lag_records", Help: "High watermark minus the next offset committed to DuckDB.",
		}, []string{"topic", "partition"}),
		Late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gtsm_late_records_total", Help: "Records older than the last event time seen for their site and session.",
		}, []string{"site", "session"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gtsm_duplicate_records_total", Help: "Re-sent records (same site, session, time), counted and not stored again.",
		}, []string{"site", "session"}),
		GapSamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gtsm_gap_samples_total", Help: "Expected samples that never came, from each session's interval.",
		}, []string{"site", "session"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gtsm_dead_letters_total", Help: "Poison messages sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.RecordsIn, m.RowsWritten, m.Batches, m.FlushSeconds, m.ConsumerLag,
		m.Late, m.Duplicates, m.GapSamples, m.DeadLetters,
	)
	return m
}
