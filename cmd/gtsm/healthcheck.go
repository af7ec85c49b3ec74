package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const healthcheckHelp = `Asks a running processor's /healthz (gtsm process --http-addr) whether it is
working: exit 0 when it answers 200, 1 otherwise, with its answer. It is the
Docker image's HEALTHCHECK, which has no curl or wget to do this.

Examples:
  gtsm healthcheck                                   # http://127.0.0.1:8080/healthz
  gtsm healthcheck --url http://proc:8080/healthz`

func runHealthcheck(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "healthcheck", "healthcheck [--url URL]", healthcheckHelp)
	url := fs.String("url", envOr(env, "GTSM_HEALTH_URL", "http://127.0.0.1:8080/healthz"), "the processor's /healthz (env GTSM_HEALTH_URL)")
	timeout := fs.Duration("timeout", 4*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Sprintf("--url %q: %v", *url, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", *url, resp.Status, msg)
	}
	fmt.Fprintln(env.stdout, msg)
	return nil
}
