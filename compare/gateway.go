package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Gateway is a client of the Flink SQL Gateway REST API (Flink 1.16+), as
// documented in Flink's "SQL Gateway / REST Endpoint" page and its OpenAPI
// specifications (rest_v1_sql_gateway.yml, rest_v2_sql_gateway.yml):
//
//	POST   /{v}/sessions                                        -> {"sessionHandle": "..."}
//	POST   /{v}/sessions/{session}/statements  {"statement"}    -> {"operationHandle": "..."}
//	GET    /{v}/sessions/{session}/operations/{op}/result/{token}[?rowFormat=JSON]
//	DELETE /{v}/sessions/{session}
//
// A result page is {"resultType": "NOT_READY"|"PAYLOAD"|"EOS", "results":
// {"columns": [{"name", "logicalType": {"type", "nullable", ...}}], "data":
// [{"kind": "INSERT"|"UPDATE_BEFORE"|"UPDATE_AFTER"|"DELETE", "fields": [...]}]},
// "nextResultUri": "..."} (v2 adds "isQueryResult", "jobID", "resultKind").
// Errors are {"errors": ["..."]} with status 400 or 500.
type Gateway struct {
	base *url.URL
	// Version is the API version path segment: "v1" (Flink 1.16) or "v2"
	// and later (1.17+), which require ?rowFormat=JSON on result fetches.
	Version string
	HTTP    *http.Client
	// PollMin and PollMax bound the wait between fetches while a result is
	// NOT_READY or comes as empty PAYLOAD pages (doubling from PollMin).
	PollMin, PollMax time.Duration
}

// NewGateway returns a client for the gateway at baseURL (e.g.
// http://localhost:8088), speaking API version v2.
func NewGateway(baseURL string) (*Gateway, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("flink sql gateway address %q: want http://host:port", baseURL)
	}
	return &Gateway{base: u, Version: "v2", HTTP: &http.Client{Timeout: 2 * time.Minute},
		PollMin: 50 * time.Millisecond, PollMax: time.Second}, nil
}

// GatewayError is an error answer of the gateway.
type GatewayError struct {
	Method, Path string
	Status       int
	Errors       []string
}

func (e *GatewayError) Error() string {
	return fmt.Sprintf("flink sql gateway: %s %s: %d %s: %s", e.Method, e.Path, e.Status,
		http.StatusText(e.Status), summarize(e.Errors))
}

// summarize keeps what a person needs from Java stack traces: each error's
// first line and its "Caused by:" lines.
func summarize(errs []string) string {
	var out []string
	for _, e := range errs {
		for n, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line == "<Exception on server side:" || line == "End of exception on server side>" {
				continue
			}
			if n == 0 || strings.HasPrefix(line, "Caused by:") {
				out = append(out, line)
			}
		}
	}
	if len(out) == 0 {
		return "(no error text)"
	}
	return strings.Join(out, "\n    ")
}

// do sends a request to path (relative to the base URL, starting with "/")
// and decodes a 200 answer into out.
func (g *Gateway) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ref, err := url.Parse(path)
	if err != nil {
		return fmt.Errorf("flink sql gateway: bad path %q: %w", path, err)
	}
	u := *g.base
	if ref.IsAbs() { // an absolute nextResultUri: follow it as given
		u = *ref
	} else {
		u.Path = strings.TrimRight(g.base.Path, "/") + ref.Path
		u.RawQuery = ref.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := g.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("flink sql gateway: %s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("flink sql gateway: %s %s: reading the answer: %w", method, u.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ge := &GatewayError{Method: method, Path: u.Path, Status: resp.StatusCode}
		var e struct {
			Errors []string `json:"errors"`
		}
		if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
			ge.Errors = e.Errors
		} else {
			ge.Errors = []string{strings.TrimSpace(string(b))}
		}
		return ge
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // BIGINT values beyond 2^53 stay exact
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("flink sql gateway: %s %s: unexpected answer %.200q: %w", method, u.Path, b, err)
	}
	return nil
}

// OpenSession opens a session with the given configuration properties
// (e.g. table.local-time-zone) and returns its handle.
func (g *Gateway) OpenSession(ctx context.Context, name string, props map[string]string) (string, error) {
	var out struct {
		SessionHandle string `json:"sessionHandle"`
	}
	body := map[string]any{"properties": props}
	if name != "" {
		body["sessionName"] = name
	}
	if err := g.do(ctx, http.MethodPost, "/"+g.Version+"/sessions", body, &out); err != nil {
		return "", err
	}
	if out.SessionHandle == "" {
		return "", errors.New("flink sql gateway: open session: no sessionHandle in the answer")
	}
	return out.SessionHandle, nil
}

// CloseSession closes a session and with it its operations.
func (g *Gateway) CloseSession(ctx context.Context, session string) error {
	return g.do(ctx, http.MethodDelete, "/"+g.Version+"/sessions/"+url.PathEscape(session), nil, nil)
}

// Submit starts a statement and returns its operation handle.
func (g *Gateway) Submit(ctx context.Context, session, statement string) (string, error) {
	var out struct {
		OperationHandle string `json:"operationHandle"`
	}
	path := "/" + g.Version + "/sessions/" + url.PathEscape(session) + "/statements"
	if err := g.do(ctx, http.MethodPost, path, map[string]any{"statement": statement}, &out); err != nil {
		return "", err
	}
	if out.OperationHandle == "" {
		return "", errors.New("flink sql gateway: submit: no operationHandle in the answer")
	}
	return out.OperationHandle, nil
}

// Page is one answer of the result endpoint.
type Page struct {
	ResultType    string      `json:"resultType"`
	IsQueryResult *bool       `json:"isQueryResult,omitempty"`
	JobID         string      `json:"jobID,omitempty"`
	ResultKind    string      `json:"resultKind,omitempty"`
	Results       *ResultInfo `json:"results,omitempty"`
	NextResultURI string      `json:"nextResultUri,omitempty"`
}

// ResultInfo is a page's schema and rows.
type ResultInfo struct {
	Columns   []ColumnInfo `json:"columns"`
	RowFormat string       `json:"rowFormat,omitempty"`
	Data      []RowData    `json:"data"`
}

// ColumnInfo is one result column.
type ColumnInfo struct {
	Name        string      `json:"name"`
	LogicalType LogicalType `json:"logicalType"`
	Comment     *string     `json:"comment,omitempty"`
}

// LogicalType is Flink's JSON form of a column type.
type LogicalType struct {
	Type      string `json:"type"`
	Nullable  bool   `json:"nullable"`
	Length    *int   `json:"length,omitempty"`
	Precision *int   `json:"precision,omitempty"`
	Scale     *int   `json:"scale,omitempty"`
}

// RowData is one changelog row.
type RowData struct {
	Kind   string            `json:"kind"`
	Fields []json.RawMessage `json:"fields"`
}

// Result is what a statement produced once its changelog is applied.
type Result struct {
	Columns []ColumnInfo
	Table   *Table
	JobID   string
	Pages   int // result pages fetched (NOT_READY answers included)
	// EmptyPages counts PAYLOAD pages without rows, each followed by a wait.
	EmptyPages int
}

// Fetch pages through an operation's results until EOS, waiting while they
// are NOT_READY, and applies the changelog: INSERT and UPDATE_AFTER add a
// row, UPDATE_BEFORE and DELETE retract an equal one. What remains is the
// statement's final table.
func (g *Gateway) Fetch(ctx context.Context, session, op string) (*Result, error) {
	path := "/" + g.Version + "/sessions/" + url.PathEscape(session) + "/operations/" + url.PathEscape(op) + "/result/0"
	res := &Result{}
	var cl changelog
	wait := g.PollMin
	for {
		if g.Version != "v1" && !strings.Contains(path, "rowFormat=") {
			if strings.Contains(path, "?") {
				path += "&rowFormat=JSON"
			} else {
				path += "?rowFormat=JSON"
			}
		}
		var p Page
		if err := g.do(ctx, http.MethodGet, path, nil, &p); err != nil {
			return nil, err
		}
		res.Pages++
		if p.JobID != "" {
			res.JobID = p.JobID
		}
		// NOT_READY, and a PAYLOAD without rows (what the gateway answers
		// while the job runs and has produced nothing new), mean "ask again
		// later": wait, doubling from PollMin to PollMax; rows reset the wait.
		idle := false
		switch p.ResultType {
		case "NOT_READY":
			idle = true
		case "PAYLOAD":
			idle = p.Results == nil || len(p.Results.Data) == 0
			res.EmptyPages += btoi(idle)
		case "EOS":
		default:
			return nil, fmt.Errorf("flink sql gateway: %s: unknown resultType %q", path, p.ResultType)
		}
		if idle {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("flink sql gateway: waiting for the results of %s (%d pages so far): %w", op, res.Pages, ctx.Err())
			case <-time.After(wait):
			}
			wait = min(2*wait, g.PollMax)
		} else {
			wait = g.PollMin
		}
		if p.ResultType == "NOT_READY" {
			if p.NextResultURI != "" {
				path = p.NextResultURI
			}
			continue
		}
		if p.Results != nil {
			if len(p.Results.Columns) > 0 && res.Columns == nil {
				res.Columns = p.Results.Columns
			}
			for n, row := range p.Results.Data {
				if err := cl.apply(row); err != nil {
					return nil, fmt.Errorf("flink sql gateway: %s row %d: %w", path, n, err)
				}
			}
		}
		if p.ResultType == "EOS" {
			break
		}
		if p.NextResultURI == "" {
			return nil, fmt.Errorf("flink sql gateway: %s: PAYLOAD without nextResultUri (results would be cut short)", path)
		}
		path = p.NextResultURI
	}
	t, err := decodeRows(res.Columns, cl.rows())
	if err != nil {
		return nil, err
	}
	res.Table = t
	return res, nil
}

// Execute submits a statement and fetches its final result.
func (g *Gateway) Execute(ctx context.Context, session, statement string) (*Result, error) {
	op, err := g.Submit(ctx, session, statement)
	if err != nil {
		return nil, err
	}
	return g.Fetch(ctx, session, op)
}

// changelog keeps the rows a changelog stream has built so far, keyed by the
// fields' JSON text (Flink serializes equal rows identically), in the order
// they were first inserted.
type changelog struct {
	count map[string]int
	field map[string][]json.RawMessage
	order []string
}

func (c *changelog) apply(row RowData) error {
	if c.count == nil {
		c.count, c.field = map[string]int{}, map[string][]json.RawMessage{}
	}
	var kb bytes.Buffer
	for _, f := range row.Fields {
		f = bytes.TrimSpace(f)
		// A scalar has no insignificant whitespace inside; only nested
		// values (maps, rows, arrays) need compacting to compare equal.
		if len(f) > 0 && (f[0] == '{' || f[0] == '[') {
			if err := json.Compact(&kb, f); err != nil {
				return fmt.Errorf("field %s: %w", f, err)
			}
		} else {
			kb.Write(f)
		}
		kb.WriteByte(0)
	}
	k := kb.String()
	switch row.Kind {
	case "INSERT", "UPDATE_AFTER", "": // "" : PLAIN rows of non-query results
		if _, ok := c.count[k]; !ok {
			c.order = append(c.order, k)
			c.field[k] = row.Fields
		}
		c.count[k]++
	case "UPDATE_BEFORE", "DELETE":
		if c.count[k] == 0 {
			return fmt.Errorf("%s of a row that is not in the result: %s", row.Kind, fieldsText(row.Fields))
		}
		c.count[k]--
	default:
		return fmt.Errorf("unknown row kind %q", row.Kind)
	}
	return nil
}

func (c *changelog) rows() [][]json.RawMessage {
	var out [][]json.RawMessage
	for _, k := range c.order {
		for i := 0; i < c.count[k]; i++ {
			out = append(out, c.field[k])
		}
	}
	return out
}

func fieldsText(fields []json.RawMessage) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = string(f)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// decodeRows turns JSON fields into typed values following the columns'
// logical types (Flink's JSON format: numbers for numeric types, ISO-8601
// strings for timestamps, strings for text).
func decodeRows(cols []ColumnInfo, rows [][]json.RawMessage) (*Table, error) {
	t := &Table{Columns: make([]string, len(cols)), Rows: make([][]any, 0, len(rows))}
	for i, c := range cols {
		t.Columns[i] = c.Name
	}
	for n, r := range rows {
		if len(r) != len(cols) {
			return nil, fmt.Errorf("flink result row %d has %d fields for %d columns", n, len(r), len(cols))
		}
		vals := make([]any, len(r))
		for i, f := range r {
			v, err := decodeValue(cols[i].LogicalType, f)
			if err != nil {
				return nil, fmt.Errorf("flink result row %d column %s (%s): %w", n, cols[i].Name, cols[i].LogicalType.Type, err)
			}
			vals[i] = v
		}
		t.Rows = append(t.Rows, vals)
	}
	return t, nil
}

func decodeValue(lt LogicalType, raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, nil
	}
	// Parsed directly from the JSON text: a json.Decoder per value costs ten
	// times the rest of the fetch (BenchmarkFetch).
	switch lt.Type {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT":
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %s", raw)
		}
		return n, nil
	case "FLOAT", "DOUBLE", "DECIMAL":
		if len(raw) > 0 && raw[0] == '"' { // NaN and Infinity are written as strings
			s, err := jsonString(raw)
			if err != nil {
				return nil, err
			}
			raw = []byte(strings.Replace(s, "Infinity", "Inf", 1))
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %s", raw)
		}
		return f, nil
	case "BOOLEAN":
		switch string(raw) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("not a boolean: %s", raw)
	case "TIMESTAMP_WITHOUT_TIME_ZONE", "TIMESTAMP_WITH_LOCAL_TIME_ZONE", "TIMESTAMP_WITH_TIME_ZONE":
		s, err := jsonString(raw)
		if err != nil {
			return nil, fmt.Errorf("not a timestamp: %s", raw)
		}
		return parseTimestamp(s)
	case "CHAR", "VARCHAR", "DATE", "TIME_WITHOUT_TIME_ZONE":
		s, err := jsonString(raw)
		if err != nil {
			return nil, fmt.Errorf("not a string: %s", raw)
		}
		return s, nil
	default: // maps, rows, arrays...: compared as their JSON text
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, err
		}
		return b.String(), nil
	}
}

// jsonString reads a JSON string, without the decoder when it has no escapes.
func jsonString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// parseTimestamp reads Flink's ISO-8601 timestamps: "2021-07-01T00:00:00",
// with a fraction of 1-9 digits when not zero, "Z" for TIMESTAMP_LTZ; the
// SQL form with a space is accepted too. Times without zone are UTC (the
// comparison session runs with table.local-time-zone = UTC).
func parseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{
		"2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04",
	} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp: %q", s)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
