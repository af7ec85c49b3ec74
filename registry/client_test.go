package registry

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// newTestClient returns a client of reg with fast retries.
func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = time.Millisecond
	return c
}

func TestClientRoundTrip(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	var badType atomic.Int32
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.Header.Get("Content-Type") != ContentType {
			badType.Add(1)
		}
		return false
	})
	c := newTestClient(t, Config{URL: reg.URL() + "/"})
	ctx := context.Background()
	kid, err := c.Register(ctx, "gtsm_etl-key", avroschemas.Key)
	if err != nil {
		t.Fatal(err)
	}
	vid, err := c.Register(ctx, "gtsm_etl-value", avroschemas.Value)
	if err != nil {
		t.Fatal(err)
	}
	if kid == vid || kid <= 0 || vid <= 0 {
		t.Fatalf("ids %d %d", kid, vid)
	}
	if again, err := c.Register(ctx, "gtsm_etl-value", avroschemas.Value); err != nil || again != vid {
		t.Fatalf("re-register: %d %v, want the same id %d", again, err, vid)
	}
	id, s, err := c.Latest(ctx, "gtsm_etl-value")
	if err != nil || id != vid || !strings.Contains(s, `"rcd_t8"`) {
		t.Fatalf("Latest = %d %.40q %v", id, s, err)
	}
	// A fresh client (empty cache) fetches by id.
	c2 := newTestClient(t, Config{URL: reg.URL()})
	s, err = c2.SchemaByID(ctx, kid)
	if err != nil || !strings.Contains(s, `"site"`) || strings.Contains(s, "rcd_t8") {
		t.Fatalf("SchemaByID(%d) = %q %v", kid, s, err)
	}
	_, err = c2.SchemaByID(ctx, 999)
	if !errors.Is(err, ErrUnknownSchemaID) || !strings.Contains(err.Error(), "schema id 999") {
		t.Fatalf("unknown id: %v", err)
	}
	if _, _, err := c2.Latest(ctx, "nope-value"); err == nil || !strings.Contains(err.Error(), "nope-value") {
		t.Fatalf("latest of unknown subject: %v", err)
	}
	ok, err := c.Compatible(ctx, "gtsm_etl-value", "latest", avroschemas.Value)
	if err != nil || !ok {
		t.Fatalf("Compatible = %v %v", ok, err)
	}
	if n := badType.Load(); n != 0 {
		t.Errorf("%d POSTs without Content-Type %s", n, ContentType)
	}
}

func TestClientBasicAuth(t *testing.T) {
	reg := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))))
	defer reg.Close()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"fields", Config{URL: reg.URL(), Username: "alice", Password: "s3cret"}, true},
		{"in the URL", Config{URL: strings.Replace(reg.URL(), "http://", "http://alice:s3cret@", 1)}, true},
		{"wrong password", Config{URL: reg.URL(), Username: "alice", Password: "nope"}, false},
		{"none", Config{URL: reg.URL()}, false},
	} {
		var calls atomic.Int32
		reg.ClearInterceptors()
		reg.Intercept(func(http.ResponseWriter, *http.Request) bool { calls.Add(1); return false })
		cl := newTestClient(t, c.cfg)
		_, err := cl.Register(ctx, "s-value", `{"type":"record","name":"r","fields":[]}`)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.name, err)
		}
		var re *ResponseError
		if !c.ok && (!errors.As(err, &re) || re.Status/100 != 4) {
			t.Errorf("%s: want a 4xx ResponseError, got %v", c.name, err)
		}
		if calls.Load() != 1 {
			t.Errorf("%s: %d requests; a 4xx must not be retried", c.name, calls.Load())
		}
		if strings.Contains(cl.URL(), "s3cret") {
			t.Errorf("URL() leaks the password: %s", cl.URL())
		}
	}
}

func TestClientRetries(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	var calls, failures atomic.Int32
	failures.Store(3)
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		calls.Add(1)
		if failures.Add(-1) >= 0 {
			http.Error(w, `{"error_code":50001,"message":"storage backend down"}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	ctx := context.Background()
	c := newTestClient(t, Config{URL: reg.URL(), MaxRetries: 4})
	if _, err := c.Register(ctx, "s-value", avroschemas.Key); err != nil {
		t.Fatalf("3 failures then success with 4 retries: %v", err)
	}
	if calls.Load() != 4 {
		t.Fatalf("%d calls, want 4", calls.Load())
	}

	calls.Store(0)
	failures.Store(100)
	c = newTestClient(t, Config{URL: reg.URL(), MaxRetries: 2})
	_, err := c.Register(ctx, "s-value", avroschemas.Key)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "failed 3 times") || !strings.Contains(err.Error(), "storage backend down") {
		t.Fatalf("persistent 503: %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}

	// Nobody listening: connection errors are retried, then reported.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	c = newTestClient(t, Config{URL: url, MaxRetries: 1})
	_, err = c.SchemaByID(ctx, 1)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "failed 2 times") {
		t.Fatalf("dead registry: %v", err)
	}
	// A cancelled context stops the retries.
	c = newTestClient(t, Config{URL: url, MaxRetries: 1000})
	c.backoff = time.Hour
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err = c.SchemaByID(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestClientTLS(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	srv := httptest.NewTLSServer(reg.Handler())
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		cfg  Config
		want string // "" = success
	}{
		{"CA file", Config{URL: srv.URL, CAFile: ca}, ""},
		{"skip verify", Config{URL: srv.URL, InsecureSkipVerify: true}, ""},
		{"untrusted", Config{URL: srv.URL, MaxRetries: 3}, "certificate"},
	} {
		cl := newTestClient(t, c.cfg)
		_, err := cl.Register(ctx, "s-key", avroschemas.Key)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrUnreachable)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, cfg := range []Config{
		{URL: srv.URL, CAFile: filepath.Join(t.TempDir(), "none.pem")},
		{URL: srv.URL, CertFile: ca},
		{URL: ""},
		{URL: "localhost:8081"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
