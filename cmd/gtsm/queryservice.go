package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/earthscope/gtsm-stream/lake"
	"github.com/earthscope/gtsm-stream/pgwire"
)

const queryServiceHelp = `Serves the Parquet lake that processors publish (package lake, docs/scale-out-query.md)
over the Postgres wire protocol, with the single-file table names and views, so psql,
Grafana, gtsm sql, gtsm compare and the named queries see every site of every partition
in one place. DuckDB runs in memory over the files: each statement reads the files
renamed into the lake before it started. The endpoint has the processor's lockdown
(no file outside --lake, read-only statements, row cap, timeout, connection limits).

Freshness: a row is visible here once its partition's owner committed it (the
processor's --flush-interval) and then published it (the owner's publish interval).

Examples:
  gtsm query-service --lake /data/lake                        # 127.0.0.1:5434
  psql -h 127.0.0.1 -p 5434 -c 'SELECT site, count(*) FROM gtsm_etl GROUP BY site'
  GTSM_SQL_PASSWORD=secret gtsm query-service --lake /data/lake --sql-addr 0.0.0.0:5434

Environment: GTSM_LAKE (--lake), GTSM_QUERY_ADDR (--sql-addr), GTSM_SQL_PASSWORD
(the password clients must give; required off loopback).`

type queryServiceConfig struct {
	lake, addr, password, memoryLimit string
	rowCap, maxConns                  int
	timeout, idle, refresh            time.Duration
}

func runQueryService(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "query-service", "query-service --lake DIR [flags]", queryServiceHelp)
	var c queryServiceConfig
	fs.StringVar(&c.lake, "lake", envOr(env, "GTSM_LAKE", ""), "the lake directory the processors publish to (env GTSM_LAKE)")
	fs.StringVar(&c.addr, "sql-addr", envOr(env, "GTSM_QUERY_ADDR", "127.0.0.1:5434"), "SQL endpoint (Postgres wire, read-only) address (env GTSM_QUERY_ADDR)")
	fs.IntVar(&c.rowCap, "sql-row-cap", pgwire.DefaultRowCap, "most rows a plain SQL query may return (COPY TO STDOUT, cursors and fetch sizes stream past it)")
	fs.DurationVar(&c.timeout, "sql-timeout", pgwire.DefaultQueryTimeout, "SQL statements running longer are interrupted (keep it below the publishers' retention, 10m)")
	fs.StringVar(&c.memoryLimit, "sql-memory-limit", "", "DuckDB memory_limit, e.g. 2GB (default: DuckDB's)")
	fs.IntVar(&c.maxConns, "sql-max-conns", pgwire.DefaultMaxConns, "most SQL client connections at once")
	fs.DurationVar(&c.idle, "sql-idle-timeout", pgwire.DefaultIdleTimeout, "SQL connections idle this long are closed")
	fs.DurationVar(&c.refresh, "refresh", time.Second, "how often tables with no file yet are looked for")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if c.lake == "" {
		return usageError{"--lake DIR is required"}
	}
	c.password = env.getenv("GTSM_SQL_PASSWORD")
	qs, err := startQueryService(ctx, c, env.log)
	if err != nil {
		return err
	}
	env.log.Info("query service running", "lake", qs.q.Dir(), "sql", qs.srv.Addr().String())
	select {
	case <-ctx.Done():
		return qs.stop()
	case err := <-qs.done: // the endpoint or the refresh stopped on its own
		qs.received++
		return errors.Join(fmt.Errorf("query service stopped: %w", err), qs.stop())
	}
}

// queryService is the lake's query database served over pgwire.
type queryService struct {
	q      *lake.Query
	srv    *pgwire.Server
	cancel context.CancelFunc
	done   chan error // Serve's and the refresh loop's results
	// received counts the results already taken from done.
	received int
}

func startQueryService(ctx context.Context, c queryServiceConfig, log *slog.Logger) (*queryService, error) {
	q, err := lake.OpenQuery(ctx, c.lake)
	if err != nil {
		return nil, err
	}
	srv, err := pgwire.Listen(q.DB(), pgwire.Config{Addr: c.addr, Password: c.password, RowCap: c.rowCap, QueryTimeout: c.timeout,
		Logger: log, AllowDirs: []string{q.Dir()}, MemoryLimit: c.memoryLimit, MaxConns: c.maxConns, IdleTimeout: c.idle})
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("SQL endpoint (--sql-addr %s): %w", c.addr, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	qs := &queryService{q: q, srv: srv, cancel: cancel, done: make(chan error, 2)}
	go func() { qs.done <- srv.Serve(sctx) }()
	go func() { qs.done <- q.Run(sctx, c.refresh) }()
	return qs, nil
}

func (qs *queryService) stop() error {
	qs.cancel()
	err := qs.srv.Close()
	for ; qs.received < 2; qs.received++ {
		err = errors.Join(err, <-qs.done)
	}
	return errors.Join(err, qs.q.Close())
}
