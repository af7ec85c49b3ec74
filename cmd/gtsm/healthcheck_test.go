package main

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/monitor"
)

// gtsm healthcheck against the processor's real /healthz handler: healthy,
// unhealthy (503 with its cause), and nothing listening.
func TestHealthcheck(t *testing.T) {
	var broken atomic.Value
	broken.Store("")
	srv := httptest.NewServer(monitor.Handler(nil, monitor.NewMetrics(), func() error {
		if s := broken.Load().(string); s != "" {
			return errors.New(s)
		}
		return nil
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	for _, tc := range []struct {
		name, broken, url string
		code              int
		out, errText      string
	}{
		{"healthy", "", srv.URL + "/healthz", 0, "ok", ""},
		{"unhealthy", "sink: disk full", srv.URL + "/healthz", 1, "", "503 Service Unavailable: unhealthy: sink: disk full"},
		{"not listening", "", closed, 1, "", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken.Store(tc.broken)
			var out, errb testutil.SyncBuffer
			env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
				getenv: func(k string) string {
					if k == "GTSM_HEALTH_URL" {
						return tc.url
					}
					return ""
				}}
			code := run(context.Background(), env, []string{"healthcheck"})
			if code != tc.code || strings.TrimSpace(out.String()) != tc.out || !strings.Contains(errb.String(), tc.errText) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errb.String(), tc.code, tc.out, tc.errText)
			}
		})
	}
}
