package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/earthscope/gtsm-stream/lake"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/querysvc"
)

const queryServiceHelp = `Serves the Parquet lake that processors publish (package lake, docs/scale-out-query.md)
over the Postgres wire protocol, with the single-file table names and views, so psql,
Grafana, gtsm sql, gtsm compare and the named queries see every site of every partition
in one place. DuckDB runs in memory over the files: each statement reads the files
renamed into the lake before it started. The endpoint has the processor's lockdown
(no file outside --lake, read-only statements, row cap, timeout, connection limits).

Every statement runs in a query process of its own that this command starts,
supervises and restarts (after a crash, or a statement that ignores its
interrupt past --sql-timeout); it keeps the address bound meanwhile and answers
SQLSTATE 57P03 ("starting up") until the new one serves. The query process's
address space is limited by the kernel (derived from --sql-memory-limit), so a
statement that exhausts memory fails or ends only that process. This is the
same SQL endpoint 'gtsm process' and 'gtsm demo' run over their own lake.

Freshness: a row is visible here once its partition's owner committed it (the
processor's --flush-interval) and then published it (the owner's publish interval).

Examples:
  gtsm query-service --lake /data/lake                        # 127.0.0.1:5434
  psql -h 127.0.0.1 -p 5434 -c 'SELECT site, count(*) FROM gtsm_etl GROUP BY site'
  GTSM_SQL_PASSWORD=secret gtsm query-service --lake /data/lake --sql-addr 0.0.0.0:5434

Environment: GTSM_LAKE (--lake), GTSM_QUERY_ADDR (--sql-addr), GTSM_SQL_PASSWORD
(the password clients must give; required off loopback).`

// queryServiceConfig is the SQL endpoint over a lake: flags of
// query-service, and what process and demo hand their query process.
type queryServiceConfig struct {
	lake, addr, password, memoryLimit string
	allowDirs                         []string
	rowCap, maxConns                  int
	timeout, idle, refresh            time.Duration
	// logFormat and logLevel are handed to the query process, whose logs
	// go to stderr.
	logFormat, logLevel string
	stderr              io.Writer
	// listener, in the query process, is the socket its supervisor bound;
	// onStuck is its way out when a statement ignores its interrupt.
	listener net.Listener
	onStuck  func(time.Duration)
	// gate, when set, is called once the endpoint is set up and before it
	// serves; an error stops it.
	gate func() error
}

func runQueryService(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "query-service", "query-service --lake DIR [flags]", queryServiceHelp)
	var c queryServiceConfig
	fs.StringVar(&c.lake, "lake", envOr(env, "GTSM_LAKE", ""), "the lake directory the processors publish to (env GTSM_LAKE)")
	fs.StringVar(&c.addr, "sql-addr", envOr(env, "GTSM_QUERY_ADDR", "127.0.0.1:5434"), "SQL endpoint (Postgres wire, read-only) address (env GTSM_QUERY_ADDR)")
	fs.IntVar(&c.rowCap, "sql-row-cap", pgwire.DefaultRowCap, "most rows a plain SQL query may return (COPY TO STDOUT, cursors and fetch sizes stream past it)")
	fs.DurationVar(&c.timeout, "sql-timeout", pgwire.DefaultQueryTimeout, "SQL statements running longer are interrupted (keep it below the publishers' retention, 10m)")
	fs.StringVar(&c.memoryLimit, "sql-memory-limit", querysvc.DefaultMemoryLimit, "DuckDB memory_limit of the query process, e.g. 2GB; its address-space limit is derived from it")
	fs.IntVar(&c.maxConns, "sql-max-conns", pgwire.DefaultMaxConns, "most SQL client connections at once")
	fs.DurationVar(&c.idle, "sql-idle-timeout", pgwire.DefaultIdleTimeout, "SQL connections idle this long are closed")
	fs.Var((*stringList)(&c.allowDirs), "sql-allow-dir", "another directory SQL clients may read files from (repeatable; the lake always)")
	fs.DurationVar(&c.refresh, "refresh", time.Second, "how often tables with no file yet are looked for")
	worker := fs.Bool("worker", false, "be the query process (started by gtsm itself, on the socket it passes)")
	fs.MarkHidden("worker")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if c.lake == "" {
		return usageError{"--lake DIR is required"}
	}
	if _, err := querysvc.ParseSize(c.memoryLimit); err != nil {
		return usageError{"--sql-memory-limit: " + err.Error()}
	}
	c.password = env.getenv("GTSM_SQL_PASSWORD")
	c.logFormat, c.logLevel, c.stderr = env.logFormat, env.logLevel, env.stderr
	if *worker {
		return runQueryWorker(ctx, c, env.log)
	}
	sup, err := startQueryProcess(c, env.log)
	if err != nil {
		return err
	}
	env.log.Info("query service running", "lake", c.lake, "sql", sup.Addr().String())
	<-ctx.Done()
	return sup.Close()
}

// startQueryProcess binds c.addr and starts the supervised query process
// (this executable, re-run as query-service --worker) serving it. The
// address is bound before anything starts, so a port in use fails here.
func startQueryProcess(c queryServiceConfig, log *slog.Logger) (*querysvc.Supervisor, error) {
	c.memoryLimit = cmp.Or(c.memoryLimit, querysvc.DefaultMemoryLimit)
	c.refresh = cmp.Or(c.refresh, time.Second)
	if _, err := querysvc.ParseSize(c.memoryLimit); err != nil {
		return nil, usageError{"--sql-memory-limit: " + err.Error()}
	}
	if c.password == "" && !pgwire.IsLoopback(c.addr) {
		return nil, fmt.Errorf("SQL endpoint %s is not a loopback address: set a password (env GTSM_SQL_PASSWORD), or bind 127.0.0.1", c.addr)
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("SQL endpoint (--sql-addr %s): %w", c.addr, err)
	}
	args := []string{"query-service", "--worker", "--lake", c.lake, "--sql-addr", ln.Addr().String(),
		"--sql-row-cap", strconv.Itoa(c.rowCap), "--sql-timeout", c.timeout.String(),
		"--sql-memory-limit", c.memoryLimit, "--sql-max-conns", strconv.Itoa(c.maxConns),
		"--sql-idle-timeout", c.idle.String(), "--refresh", c.refresh.String(),
		"--log-format", cmp.Or(c.logFormat, "text"), "--log-level", cmp.Or(c.logLevel, "info")}
	for _, d := range c.allowDirs {
		args = append(args, "--sql-allow-dir", d)
	}
	sup, err := querysvc.Start(querysvc.Config{Listener: ln.(*net.TCPListener), Args: args, Logger: log, Stderr: c.stderr,
		// The password by environment, not argument (ps shows arguments);
		// GTSM_QUERY_WORKER lets a test binary act as gtsm (TestMain).
		Env: []string{"GTSM_SQL_PASSWORD=" + c.password, "GTSM_QUERY_WORKER=1"}})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return sup, nil
}

// runQueryWorker is the query process: bounded by the kernel, on the socket
// its supervisor passed, until SIGTERM or a statement stuck in DuckDB.
func runQueryWorker(ctx context.Context, c queryServiceConfig, log *slog.Logger) error {
	mem, err := querysvc.ParseSize(c.memoryLimit)
	if err != nil {
		return usageError{"--sql-memory-limit: " + err.Error()}
	}
	if err := querysvc.Harden(querysvc.AddressSpace(mem, c.maxConns)); err != nil {
		return err
	}
	ln, ready, activated, err := querysvc.Inherited()
	if err != nil {
		return err
	}
	c.listener = ln
	// Started as a standby: everything is set up (the slow part), then
	// it waits for the supervisor's word before serving.
	c.gate = func() error {
		ready()
		return activated(ctx)
	}
	c.onStuck = func(running time.Duration) {
		log.Error("query process exiting: a statement ignored its interrupt; the supervisor starts a fresh query process",
			"running_for", running, "sql_timeout", c.timeout)
		os.Exit(3)
	}
	qs, err := startQueryService(ctx, c, log)
	if err != nil {
		ln.Close()
		if ctx.Err() != nil {
			return nil // stopped while a standby
		}
		return err
	}
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
	srv, err := pgwire.Listen(q.DB(), pgwire.Config{Addr: c.addr, Listener: c.listener, Password: c.password, RowCap: c.rowCap, QueryTimeout: c.timeout,
		Logger: log, AllowDirs: append([]string{q.Dir()}, c.allowDirs...), MemoryLimit: c.memoryLimit, MaxConns: c.maxConns, IdleTimeout: c.idle,
		OnStuck: c.onStuck})
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("SQL endpoint (--sql-addr %s): %w", c.addr, err)
	}
	if c.gate != nil {
		if err := c.gate(); err != nil {
			srv.Close()
			q.Close()
			return nil, err
		}
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
