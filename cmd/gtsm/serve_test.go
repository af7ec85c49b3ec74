package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/monitor"
	"github.com/earthscope/gtsm-stream/shell"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// A client with a wrong password is logged as an authentication failure
// (WARN), not as psql-wire's "an unexpected error got returned while serving
// a client connection" (ERROR); the right password still gets in.
func TestSQLAuthFailureLogged(t *testing.T) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "auth.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := &testutil.SyncBuffer{}
	ep, err := startEndpoints(db, endpointConfig{sqlAddr: "127.0.0.1:0", sqlPassword: "right", rowCap: 10, queryTimeout: 5 * time.Second,
		logFormat: "json", stderr: logs}, t.TempDir(), monitor.NewMetrics(), func() error { return nil }, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := ep.sql.Ready(rctx); err != nil {
		t.Fatalf("%v; logs:\n%s", err, logs.String())
	}
	if pg, err := shell.DialPG(ctx, ep.SQLAddr(), "wrong", 5*time.Second); err == nil {
		pg.Close()
		t.Fatal("wrong password: connected")
	}
	pg, err := shell.DialPG(ctx, ep.SQLAddr(), "right", 5*time.Second)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	pg.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var found map[string]any
		for _, l := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && strings.Contains(l, "authentication failed") {
				found = m
			}
		}
		if found != nil {
			if found["level"] != "WARN" || found["msg"] != "SQL endpoint: authentication failed (wrong password)" {
				t.Errorf("wrong password logged as %v", found)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the wrong password:\n%s", logs.String())
		}
	}
	if strings.Contains(logs.String(), "unexpected error") {
		t.Errorf("logs still say unexpected error:\n%s", logs.String())
	}
}
