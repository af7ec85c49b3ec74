// Package registry talks to a Confluent Schema Registry (REST API v1) and
// frames gtsm_etl keys and values in the Confluent wire format: magic byte 0,
// the 4-byte big-endian schema id, then the Avro binary body.
package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/earthscope/gtsm-stream/internal/tlsconfig"
)

// ContentType is the media type of Schema Registry requests and replies.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Config says how to reach the registry. Only URL is required.
type Config struct {
	URL                string // e.g. http://localhost:8081; user:password@ in the URL is basic auth too
	Username, Password string // basic auth
	CAFile             string // PEM CA bundle to trust instead of the system roots
	CertFile, KeyFile  string // client certificate (mutual TLS)
	InsecureSkipVerify bool   // do not verify the server certificate (testing only)
	Timeout            time.Duration
	MaxRetries         int // retries after the first try on connection errors and 5xx; 0 = 4, <0 = none
}

// Client is a Schema Registry client. Schemas by id are cached (they are
// immutable in the registry). Safe for concurrent use.
type Client struct {
	base       string
	user, pass string
	http       *http.Client
	retries    int
	backoff    time.Duration // first retry delay, doubled each time

	mu   sync.RWMutex
	byID map[int]string
}

// ResponseError is an error reply from the registry.
type ResponseError struct {
	Method  string `json:"-"`
	URL     string `json:"-"`
	Status  int    `json:"-"`          // HTTP status
	Code    int    `json:"error_code"` // registry error code, e.g. 40403 schema not found
	Message string `json:"message"`
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("schema registry %s %s: HTTP %d, error %d: %s", e.Method, e.URL, e.Status, e.Code, e.Message)
}

// ErrUnreachable is wrapped by errors from a registry that could not be
// reached (connection errors or 5xx replies on every try).
var ErrUnreachable = errors.New("schema registry unreachable")

// New checks cfg and builds a client. It does not contact the registry.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("schema registry URL is empty (set SCHEMA_REGISTRY_URL or --registry)")
	}
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("schema registry URL %q: %w", cfg.SafeURL(), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("schema registry URL %q: want http://host:port or https://host:port", cfg.SafeURL())
	}
	c := &Client{user: cfg.Username, pass: cfg.Password, retries: cfg.MaxRetries, backoff: 100 * time.Millisecond, byID: map[int]string{}}
	if u.User != nil {
		if c.user == "" {
			c.user = u.User.Username()
			c.pass, _ = u.User.Password()
		}
		u.User = nil
	}
	c.base = strings.TrimRight(u.String(), "/")
	if c.retries == 0 {
		c.retries = 4
	} else if c.retries < 0 {
		c.retries = 0
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" || cfg.InsecureSkipVerify {
		tc, err := tlsconfig.FromFiles("schema registry TLS", cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	c.http = &http.Client{Transport: tr, Timeout: timeout}
	return c, nil
}

// URL is the registry base URL (without credentials).
func (c *Client) URL() string { return c.base }

// Register registers schema (Avro) under subject, or finds it already
// registered, and returns its id.
func (c *Client) Register(ctx context.Context, subject, schema string) (int, error) {
	var out struct {
		ID int `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject)+"/versions", map[string]string{"schema": schema}, &out)
	if err != nil {
		return 0, fmt.Errorf("register schema under subject %s: %w", subject, err)
	}
	c.mu.Lock()
	c.byID[out.ID] = schema
	c.mu.Unlock()
	return out.ID, nil
}

// SchemaByID returns the schema text with the given id (cached). An id the
// registry does not know is an error wrapping ErrUnknownSchemaID.
func (c *Client) SchemaByID(ctx context.Context, id int) (string, error) {
	c.mu.RLock()
	s, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	var out struct {
		Schema string `json:"schema"`
	}
	err := c.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id), nil, &out)
	var re *ResponseError
	if errors.As(err, &re) && re.Status == http.StatusNotFound {
		return "", fmt.Errorf("%w: schema id %d is not in the registry at %s (%v)", ErrUnknownSchemaID, id, c.base, err)
	}
	if err != nil {
		return "", fmt.Errorf("look up schema id %d: %w", id, err)
	}
	c.mu.Lock()
	c.byID[id] = out.Schema
	c.mu.Unlock()
	return out.Schema, nil
}

// Latest returns the id and text of the latest version under subject.
func (c *Client) Latest(ctx context.Context, subject string) (id int, schema string, err error) {
	var out struct {
		ID      int    `json:"id"`
		Version int    `json:"version"`
		Schema  string `json:"schema"`
	}
	if err := c.do(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions/latest", nil, &out); err != nil {
		return 0, "", fmt.Errorf("latest schema of subject %s: %w", subject, err)
	}
	c.mu.Lock()
	c.byID[out.ID] = out.Schema
	c.mu.Unlock()
	return out.ID, out.Schema, nil
}

// Compatible asks the registry whether schema is compatible with version
// ("latest" or a number) of subject under the subject's compatibility level.
func (c *Client) Compatible(ctx context.Context, subject, version, schema string) (bool, error) {
	var out struct {
		IsCompatible bool `json:"is_compatible"`
	}
	p := "/compatibility/subjects/" + url.PathEscape(subject) + "/versions/" + url.PathEscape(version)
	if err := c.do(ctx, http.MethodPost, p, map[string]string{"schema": schema}, &out); err != nil {
		return false, fmt.Errorf("compatibility of a schema with subject %s version %s: %w", subject, version, err)
	}
	return out.IsCompatible, nil
}

// do sends one request, retrying connection errors and 5xx replies with
// exponential backoff. 4xx replies are returned at once as *ResponseError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	u := c.base + path
	delay := c.backoff
	var last error
	for try := 0; try <= c.retries; try++ {
		if try > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s %s: %w (after %d tries, last: %v)", method, u, ctx.Err(), try, last)
			case <-t.C:
			}
			delay = min(2*delay, 5*time.Second)
		}
		retry, err := c.once(ctx, method, u, body, out)
		if err == nil {
			return nil
		}
		if !retry {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, u, ctx.Err())
		}
		last = err
	}
	return fmt.Errorf("%w: %s %s failed %d times, last: %v", ErrUnreachable, method, u, c.retries+1, last)
}

// once makes one HTTP exchange; retry says whether a failure may pass on
// another try.
func (c *Client) once(ctx context.Context, method, u string, body []byte, out any) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", ContentType+", application/json")
	if body != nil {
		req.Header.Set("Content-Type", ContentType)
	}
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// A certificate the client does not trust will not become trusted
		// by trying again.
		var cv *tls.CertificateVerificationError
		return !errors.As(err, &cv), err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return true, fmt.Errorf("reading reply: %w", err)
	}
	if resp.StatusCode >= 300 {
		re := &ResponseError{Method: method, URL: u, Status: resp.StatusCode}
		if json.Unmarshal(data, re) != nil || re.Message == "" {
			re.Message = strings.TrimSpace(string(data))
		}
		re.Status = resp.StatusCode
		return resp.StatusCode >= 500, re
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return false, fmt.Errorf("%s %s: reply is not the expected JSON: %w", method, u, err)
		}
	}
	return false, nil
}
