// Package monitor is how people watch a running processor: Prometheus metrics
// on /metrics, a /healthz for orchestrators, and a status page (/) with each
// site's state and its strain gauges plotted in the browser with uPlot (embedded
// in the binary, so the page needs no CDN), from /api/series, which downsamples
// on the server to a bounded number of min/max/mean buckets per gauge.
package monitor

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the processor's metrics. Each processor owns one set,
// registered on its own registry (no global default registry), so tests and
// several processors in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	RecordsIn    prometheus.Counter
	RowsWritten  prometheus.Counter
	Batches      prometheus.Counter
	FlushSeconds prometheus.Histogram
	Late         prometheus.Counter
	Duplicates   prometheus.Counter
	DeadLetters  *prometheus.CounterVec // by reason, as in the dlq.reason header
}

// NewMetrics creates the metrics and registers them, with Go runtime and
// process collectors, on a fresh registry.
func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		Registry:    prometheus.NewRegistry(),
		RecordsIn:   counter("gtsm_records_in_total", "Kafka messages consumed and committed to DuckDB (stored, duplicates, replays skipped, dead letters)."),
		RowsWritten: counter("gtsm_rows_written_total", "gtsm_etl rows committed to DuckDB."),
		Batches:     counter("gtsm_batches_total", "DuckDB transactions committed (rows, state and Kafka offsets together)."),
		FlushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gtsm_flush_seconds", Help: "Time to write and commit one DuckDB transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		Late:       counter("gtsm_late_records_total", "Records stored although older than the last event time of their site and session."),
		Duplicates: counter("gtsm_duplicate_records_total", "Re-sent records (same site, session, time): counted, not stored again."),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gtsm_dead_letters_total", Help: "Messages that could not be applied, sent to the dead-letter topic, by reason (the dlq.reason header).",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.RecordsIn, m.RowsWritten, m.Batches, m.FlushSeconds, m.Late, m.Duplicates, m.DeadLetters,
	)
	return m
}

// ObserveCommit accounts one committed DuckDB transaction (the processor's
// OnCommit hook calls it); deadLetters counts them by reason.
func (m *Metrics) ObserveCommit(messages, rows, duplicates, late int, deadLetters map[string]int, d time.Duration) {
	m.Batches.Inc()
	m.RecordsIn.Add(float64(messages))
	m.RowsWritten.Add(float64(rows))
	m.Duplicates.Add(float64(duplicates))
	m.Late.Add(float64(late))
	for reason, n := range deadLetters {
		m.DeadLetters.WithLabelValues(reason).Add(float64(n))
	}
	m.FlushSeconds.Observe(d.Seconds())
}

// WatchSites exports site_state per site and session (records, duplicates,
// late, gaps, missing samples), read from DuckDB at scrape time: the table
// is the truth and survives restarts, which in-process counters do not.
func (m *Metrics) WatchSites(db *sql.DB) {
	m.Registry.MustRegister(&siteCollector{db: db})
}

// WatchLag exports the consumer lag per partition (messages in the topic not
// yet committed to DuckDB), asking lag at scrape time.
func (m *Metrics) WatchLag(topic string, lag func(context.Context) (map[int32]int64, error)) {
	m.Registry.MustRegister(&lagCollector{topic: topic, lag: lag})
}

var siteDescs = []*prometheus.Desc{
	prometheus.NewDesc("gtsm_site_records", "Records stored, by site and session (site_state).", []string{"site", "session"}, nil),
	prometheus.NewDesc("gtsm_site_duplicates", "Duplicate records counted, by site and session (site_state).", []string{"site", "session"}, nil),
	prometheus.NewDesc("gtsm_site_late", "Late records stored, by site and session (site_state).", []string{"site", "session"}, nil),
	prometheus.NewDesc("gtsm_site_gaps", "Open gaps in the sample timeline, by site and session (site_state).", []string{"site", "session"}, nil),
	prometheus.NewDesc("gtsm_site_missing_samples", "Expected samples that never came, by site and session (site_state).", []string{"site", "session"}, nil),
}

// Each collector has its own error gauge: a Desc may be described by one
// collector only.
var (
	siteErrorDesc = prometheus.NewDesc("gtsm_site_state_scrape_error", "1 when reading site_state for this scrape failed.", nil, nil)
	lagErrorDesc  = prometheus.NewDesc("gtsm_lag_scrape_error", "1 when asking the broker for the lag in this scrape failed.", nil, nil)
)

type siteCollector struct{ db *sql.DB }

func (c *siteCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range siteDescs {
		ch <- d
	}
	ch <- siteErrorDesc
}

func (c *siteCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0.0
	err := readTx(ctx, c.db, func(conn *sql.Conn) error {
		rows, err := conn.QueryContext(ctx, `SELECT site, session, records, duplicates, late, gaps, missing FROM site_state`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var site, session string
			var v [5]int64
			if err := rows.Scan(&site, &session, &v[0], &v[1], &v[2], &v[3], &v[4]); err != nil {
				return err
			}
			for i, d := range siteDescs {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v[i]), site, session)
			}
		}
		return rows.Err()
	})
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(siteErrorDesc, prometheus.GaugeValue, failed)
}

var lagDesc = prometheus.NewDesc("gtsm_consumer_lag_records", "High watermark minus the next offset committed to DuckDB.", []string{"topic", "partition"}, nil)

type lagCollector struct {
	topic string
	lag   func(context.Context) (map[int32]int64, error)
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc; ch <- lagErrorDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lag, err := c.lag(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	for p, n := range lag {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(n), c.topic, strconv.Itoa(int(p)))
	}
	ch <- prometheus.MustNewConstMetric(lagErrorDesc, prometheus.GaugeValue, failed)
}
