package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/earthscope/gtsm-stream/lake"
	"github.com/earthscope/gtsm-stream/monitor"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/processor"
	"github.com/earthscope/gtsm-stream/querysvc"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// endpointConfig says where a processor serves SQL and monitoring.
type endpointConfig struct {
	sqlAddr, sqlPassword string
	rowCap               int
	queryTimeout         time.Duration
	httpAddr             string
	sqlAllowDirs         stringList
	sqlMemoryLimit       string
	sqlMaxConns          int
	sqlIdleTimeout       time.Duration
	// logFormat and logLevel are handed to the query process, whose logs
	// go to stderr.
	logFormat, logLevel string
	stderr              io.Writer
	// lakeDir is the lake the processor publishes to and the SQL endpoint
	// serves (fileLake).
	lakeDir string
}

// fileLake sets up the single-file processor's lake: dir, or by default
// <db>.lake beside its DuckDB file, published every interval (0: 2s) when
// the SQL endpoint is on (it serves the lake) or a directory is given.
func fileLake(cfg *processor.Config, ec *endpointConfig, dir string, interval time.Duration, log *slog.Logger) error {
	if dir == "" && ec.sqlAddr == "" {
		return nil
	}
	if dir == "" {
		dir = cfg.DBPath + ".lake"
	}
	pub, err := lake.New(dir, lake.Topic(cmp.Or(cfg.Topic, "gtsm_etl")), lake.Logger(log))
	if err != nil {
		return fmt.Errorf("lake of %s: %w", cfg.DBPath, err)
	}
	cfg.Publisher = pub
	cfg.PublishInterval = cmp.Or(interval, defaultFilePublish)
	ec.lakeDir = pub.Dir()
	return nil
}

// defaultFilePublish is how often a single-file processor publishes: a
// committed row is queryable through its SQL endpoint this long (plus the
// publish itself and the query process's refresh, 1s) after its commit.
const defaultFilePublish = 2 * time.Second

// register adds the endpoint flags (shared by process and demo).
func (c *endpointConfig) register(fs *pflag.FlagSet, env *environ) {
	fs.StringVar(&c.sqlAddr, "sql-addr", envOr(env, "GTSM_SQL_ADDR", pgwire.DefaultAddr), "SQL endpoint (Postgres wire, read-only) address; empty: off (env GTSM_SQL_ADDR)")
	fs.IntVar(&c.rowCap, "sql-row-cap", pgwire.DefaultRowCap, "most rows a plain SQL query may return through the endpoint (COPY TO STDOUT, cursors and fetch sizes stream past it)")
	fs.DurationVar(&c.queryTimeout, "sql-timeout", pgwire.DefaultQueryTimeout, "SQL statements running longer are interrupted")
	fs.Var(&c.sqlAllowDirs, "sql-allow-dir", "directory SQL clients may read files from (repeatable; default: none, only the database)")
	fs.StringVar(&c.sqlMemoryLimit, "sql-memory-limit", querysvc.DefaultMemoryLimit, "DuckDB memory_limit of the SQL endpoint's query process, e.g. 2GB; its address-space limit is derived from it")
	fs.IntVar(&c.sqlMaxConns, "sql-max-conns", pgwire.DefaultMaxConns, "most SQL client connections at once")
	fs.DurationVar(&c.sqlIdleTimeout, "sql-idle-timeout", pgwire.DefaultIdleTimeout, "SQL connections idle this long are closed")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "monitoring address: status page /, /metrics, /healthz; empty: off")
}

// endpoints are what a running processor serves next to its work: SQL over
// the Postgres wire protocol and the monitoring HTTP server. The SQL is
// served by a query process of its own over the processor's lake (package
// querysvc): no statement a client sends runs in the process that writes
// DuckDB. Monitoring (status page, /api, /metrics) runs the processor's
// own queries on its file.
type endpoints struct {
	sql     *querysvc.Supervisor
	httpSrv *http.Server
	httpLn  net.Listener
}

// startEndpoints binds both addresses first, so a port in use fails before
// anything runs, with the flag to change named. An empty address disables
// that endpoint. lakeDir is the lake the processor publishes to.
func startEndpoints(db *sql.DB, c endpointConfig, lakeDir string, m *monitor.Metrics, health func() error, log *slog.Logger) (*endpoints, error) {
	e := &endpoints{}
	if c.sqlAddr != "" {
		s, err := startQueryProcess(queryServiceConfig{lake: lakeDir, addr: c.sqlAddr, password: c.sqlPassword,
			memoryLimit: c.sqlMemoryLimit, allowDirs: c.sqlAllowDirs, rowCap: c.rowCap, maxConns: c.sqlMaxConns,
			timeout: c.queryTimeout, idle: c.sqlIdleTimeout, refresh: time.Second,
			logFormat: c.logFormat, logLevel: c.logLevel, stderr: c.stderr}, log)
		if err != nil {
			return nil, err
		}
		e.sql = s
	}
	if c.httpAddr != "" {
		ln, err := net.Listen("tcp", c.httpAddr)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("monitoring endpoint (--http-addr %s): %w", c.httpAddr, err)
		}
		e.httpLn = ln
		e.httpSrv = &http.Server{Handler: monitor.Handler(db, m, health), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := e.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Error("monitoring endpoint stopped", "err", err)
			}
		}()
	}
	return e, nil
}

// SQLAddr is the bound SQL address ("" when disabled).
func (e *endpoints) SQLAddr() string {
	if e.sql == nil {
		return ""
	}
	return e.sql.Addr().String()
}

// HTTPAddr is the bound monitoring address ("" when disabled).
func (e *endpoints) HTTPAddr() string {
	if e.httpLn == nil {
		return ""
	}
	return e.httpLn.Addr().String()
}

// Close stops both: the query process, and the monitoring server, which
// reads the database, so it is closed after them.
func (e *endpoints) Close() {
	if e.sql != nil {
		e.sql.Close()
	}
	if e.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e.httpSrv.Shutdown(ctx)
	}
}

// runningProcessor is a processor at work with its endpoints.
type runningProcessor struct {
	*processor.Processor
	ep     *endpoints
	cancel context.CancelFunc
	done   chan error
}

// startProcessor opens the processor's DuckDB file, starts its endpoints on
// that same *sql.DB, and runs the processor in the background. Metrics are
// fed from every committed DuckDB transaction and read from site_state.
func startProcessor(ctx context.Context, cfg processor.Config, ec endpointConfig) (*runningProcessor, error) {
	m := monitor.NewMetrics()
	m.Registry.MustRegister(buildInfoGauge())
	next := cfg.OnCommit
	cfg.OnCommit = func(ci processor.CommitInfo) {
		m.ObserveCommit(ci.Messages, ci.Rows, ci.Duplicates, ci.Late, ci.DeadReasons, ci.Duration)
		if next != nil {
			next(ci)
		}
	}
	p, err := processor.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	log := cmp.Or(cfg.Logger, slog.Default())
	db := p.DB()
	if db == nil {
		// --state-dir: every partition has its own file and this member
		// holds only some, so its SQL endpoint would answer for an
		// arbitrary subset of sites: off (the lake's query service is the
		// query surface). Monitoring keeps /healthz and /metrics; its
		// status page reads an empty in-memory database.
		if ec.sqlAddr != "" {
			log.Info("--state-dir: the processor's SQL endpoint is off (it would see only this member's partitions)")
			ec.sqlAddr = ""
		}
		if db, err = emptyDB(ctx); err != nil {
			return nil, errors.Join(err, p.Close())
		}
	} else {
		m.WatchSites(db)
	}
	m.WatchLag(cmp.Or(cfg.Topic, "gtsm_etl"), p.Lag)
	m.WatchLevel2Reprocess(func() []monitor.Level2Job {
		var out []monitor.Level2Job
		for _, s := range p.Level2Reprocess() {
			out = append(out, monitor.Level2Job{Site: s.Site, Version: s.Version, Done: s.Done, Total: s.Total, Points: s.Points, Running: s.Finished.IsZero()})
		}
		return out
	})
	pctx, cancel := context.WithCancel(ctx)
	ep, err := startEndpoints(db, ec, ec.lakeDir, m, p.Healthy, log)
	if err != nil {
		cancel()
		return nil, errors.Join(err, p.Close())
	}
	r := &runningProcessor{Processor: p, ep: ep, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(pctx) }()
	return r, nil
}

// emptyDB is an in-memory database with the processor's tables and no rows.
func emptyDB(ctx context.Context) (*sql.DB, error) {
	db, err := gtsmsql.Open(ctx, "", false)
	if err != nil {
		return nil, err
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("in-memory DuckDB: %w", err)
	}
	return db, nil
}

// wait runs until ctx ends (then stops cleanly) or the processor fails.
func (r *runningProcessor) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return r.stop()
	case err := <-r.done:
		r.ep.Close()
		r.cancel()
		return err
	}
}

// stop closes the endpoints first (they read the database), then stops the
// processor, which commits its last batch and checkpoints the file.
func (r *runningProcessor) stop() error {
	r.ep.Close()
	r.cancel()
	return <-r.done
}

// hostOf and portOf split a bound host:port for printing client commands.
func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
