package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestMain lets the test binary be gtsm's query process: the SQL endpoint
// of a processor run in-process by a test re-executes this executable as
// `query-service --worker` (package querysvc), with GTSM_QUERY_WORKER set.
func TestMain(m *testing.M) {
	if os.Getenv("GTSM_QUERY_WORKER") == "1" && len(os.Args) > 1 && os.Args[1] == "query-service" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		env := &environ{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
		code := run(ctx, env, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
