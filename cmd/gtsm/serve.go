package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/earthscope/gtsm-stream/monitor"
	"github.com/earthscope/gtsm-stream/pgwire"
)

// endpoints are what a running processor serves next to its work: SQL over
// the Postgres wire protocol (DuckDB lets only one process open the file, so
// the processor must serve the readers) and the monitoring HTTP server.
type endpoints struct {
	sql     *pgwire.Server
	httpSrv *http.Server
	httpLn  net.Listener
	done    chan error
}

// startEndpoints binds both addresses first, so a port in use fails before
// anything runs, with the flag to change named. An empty address disables
// that endpoint.
func startEndpoints(ctx context.Context, db *sql.DB, sqlAddr, sqlPassword, httpAddr string, m *monitor.Metrics, health func() error, log *slog.Logger) (*endpoints, error) {
	e := &endpoints{done: make(chan error, 2)}
	if sqlAddr != "" {
		s, err := pgwire.Listen(db, pgwire.Config{Addr: sqlAddr, Password: sqlPassword, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("SQL endpoint (--sql-addr %s): %w", sqlAddr, err)
		}
		e.sql = s
		go func() { e.done <- s.Serve(ctx) }()
	}
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("monitoring endpoint (--http-addr %s): %w", httpAddr, err)
		}
		e.httpLn = ln
		e.httpSrv = &http.Server{Handler: monitor.Handler(db, m, health), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := e.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				e.done <- err
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

// Close stops both; the SQL server interrupts running statements first so the
// database can be closed after it.
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

// hostOf and portOf split a bound host:port for printing client commands.
func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
