// Package gatewaytest is an in-process Flink SQL Gateway for tests: it
// implements the REST endpoints `gtsm compare` uses, with the documented JSON
// shapes, and answers statements from a real DuckDB computation. A translate
// function maps each Flink statement to DuckDB SQL (or to nothing, for DDL the
// test has already set up); the DuckDB answer is serialized as Flink would,
// optionally split in many pages, preceded by NOT_READY answers, and sent as
// a changelog with retractions.
package gatewaytest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape the answers.
type Options struct {
	PageSize int // changelog rows per PAYLOAD page (default 3)
	NotReady int // NOT_READY answers before each statement's first page
	// EmptyPages is the number of PAYLOAD pages without rows sent before
	// each page with rows: what the gateway answers while a job runs and has
	// produced nothing new. A client must wait before asking again.
	EmptyPages int
	// Changelog sends every result row the way a streaming aggregate does:
	// first a stale version (numbers off by one), then UPDATE_BEFORE of it
	// and UPDATE_AFTER with the real row; plus a phantom row INSERTed and
	// DELETEd. The final table is unchanged.
	Changelog bool
}

// Translate maps a Flink statement to DuckDB SQL. An empty string means the
// statement only needs an "OK" (e.g. CREATE TABLE over a topic the test
// emulates with a DuckDB view).
type Translate func(statement string) (string, error)

// Server is the fake gateway.
type Server struct {
	*httptest.Server
	db        *sql.DB
	translate Translate
	opts      Options

	// Down, while true, answers every request 503, as a gateway that is
	// still starting (the readiness wait must ride it out).
	Down atomic.Bool

	mu       sync.Mutex
	sessions map[string]map[string]*operation // session -> operations
	// Fetches are the times of every result fetch, in order, with whether
	// the answer was a PAYLOAD without rows (for the backoff tests).
	Fetches    []Fetch
	Statements []string // every statement received, in order
	Closed     []string // sessions closed
	Stats      Stats
}

// FetchLog returns a copy of Fetches.
func (s *Server) FetchLog() []Fetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Fetch(nil), s.Fetches...)
}

// Fetch is one result fetch served.
type Fetch struct {
	At    time.Time
	Empty bool // an empty PAYLOAD page was answered
}

// Stats counts what was served, so tests can check paging really happened.
type Stats struct {
	NotReady, Payload, EmptyPayload, EOS int
	Kinds                                map[string]int // rows sent per kind
}

type operation struct {
	pages    [][]rowData
	columns  []columnInfo
	err      error
	notReady int
	next     int // the token expected next
}

type rowData struct {
	Kind   string `json:"kind"`
	Fields []any  `json:"fields"`
}

type columnInfo struct {
	Name        string         `json:"name"`
	LogicalType map[string]any `json:"logicalType"`
	Comment     *string        `json:"comment"`
}

// New starts a fake gateway answering from db.
func New(db *sql.DB, translate Translate, opts Options) *Server {
	if opts.PageSize <= 0 {
		opts.PageSize = 3
	}
	s := &Server{db: db, translate: translate, opts: opts, sessions: map[string]map[string]*operation{},
		Stats: Stats{Kinds: map[string]int{}}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msgs ...string) {
	writeJSON(w, status, map[string][]string{"errors": msgs})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "v") {
		writeErr(w, http.StatusNotFound, "Not found: "+r.URL.Path)
		return
	}
	version := parts[0]
	if s.Down.Load() {
		writeErr(w, http.StatusServiceUnavailable, "gateway starting")
		return
	}
	// Flink 1.20's SQL Gateway serves API versions v1 to v3 (v4 came with
	// Flink 2.0); any other version path is not found.
	if n, err := strconv.Atoi(version[1:]); err != nil || n < 1 || n > 3 {
		writeErr(w, http.StatusNotFound, "Not found: "+r.URL.Path)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && len(parts) == 2 && parts[1] == "info":
		writeJSON(w, 200, map[string]string{"productName": "Apache Flink", "version": "1.20.1"})
	case r.Method == http.MethodPost && len(parts) == 2 && parts[1] == "sessions":
		h := newID()
		s.sessions[h] = map[string]*operation{}
		writeJSON(w, 200, map[string]string{"sessionHandle": h})
	case r.Method == http.MethodDelete && len(parts) == 3 && parts[1] == "sessions":
		if _, ok := s.sessions[parts[2]]; !ok {
			writeErr(w, 500, "org.apache.flink.table.gateway.api.utils.SqlGatewayException: Session '"+parts[2]+"' does not exist.")
			return
		}
		delete(s.sessions, parts[2])
		s.Closed = append(s.Closed, parts[2])
		writeJSON(w, 200, map[string]string{"status": "CLOSED"})
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "sessions" && parts[3] == "statements":
		ops, ok := s.sessions[parts[2]]
		if !ok {
			writeErr(w, 500, "Session '"+parts[2]+"' does not exist.")
			return
		}
		var body struct {
			Statement string `json:"statement"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Statement == "" {
			writeErr(w, 400, "Bad request: no statement")
			return
		}
		s.Statements = append(s.Statements, body.Statement)
		op := s.execute(body.Statement)
		h := newID()
		ops[h] = op
		writeJSON(w, 200, map[string]string{"operationHandle": h})
	case r.Method == http.MethodGet && len(parts) == 7 && parts[1] == "sessions" && parts[3] == "operations" && parts[5] == "result":
		s.fetch(w, r, version, parts[2], parts[4], parts[6])
	default:
		writeErr(w, http.StatusNotFound, "Not found: "+r.Method+" "+r.URL.Path)
	}
}

// execute runs the statement's DuckDB translation and prepares the pages.
func (s *Server) execute(stmt string) *operation {
	op := &operation{notReady: s.opts.NotReady}
	q, err := s.translate(stmt)
	if err != nil {
		op.err = err
		return op
	}
	if q == "" {
		op.columns = []columnInfo{{Name: "result", LogicalType: map[string]any{"type": "VARCHAR", "nullable": true, "length": 2147483647}}}
		op.pages = [][]rowData{{{Kind: "INSERT", Fields: []any{"OK"}}}}
		return op
	}
	rows, err := s.db.Query(q)
	if err != nil {
		op.err = fmt.Errorf("%w\n(DuckDB translation: %s)", err, q)
		return op
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		op.err = err
		return op
	}
	for _, t := range types {
		op.columns = append(op.columns, columnInfo{Name: t.Name(), LogicalType: logicalType(t.DatabaseTypeName())})
	}
	var changelog []rowData
	for rows.Next() {
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			op.err = err
			return op
		}
		fields := make([]any, len(vals))
		for i, v := range vals {
			fields[i] = jsonValue(v)
		}
		if s.opts.Changelog {
			stale := staleCopy(fields)
			changelog = append(changelog,
				rowData{"INSERT", stale},
				rowData{"UPDATE_BEFORE", stale},
				rowData{"UPDATE_AFTER", fields})
			if len(changelog)%7 == 0 {
				phantom := staleCopy(stale)
				changelog = append(changelog, rowData{"INSERT", phantom}, rowData{"DELETE", phantom})
			}
		} else {
			changelog = append(changelog, rowData{"INSERT", fields})
		}
	}
	if err := rows.Err(); err != nil {
		op.err = err
		return op
	}
	for len(changelog) > 0 {
		for i := 0; i < s.opts.EmptyPages; i++ {
			op.pages = append(op.pages, []rowData{})
		}
		n := min(s.opts.PageSize, len(changelog))
		op.pages = append(op.pages, changelog[:n])
		changelog = changelog[n:]
	}
	return op
}

// staleCopy changes every number by one (and texts by a suffix when there is
// no number), so the copy is a different row.
func staleCopy(fields []any) []any {
	out := append([]any(nil), fields...)
	changed := false
	for i, f := range out {
		switch f := f.(type) {
		case json.Number:
			if n, err := strconv.ParseInt(string(f), 10, 64); err == nil {
				out[i] = json.Number(strconv.FormatInt(n+1, 10))
			} else {
				x, _ := strconv.ParseFloat(string(f), 64)
				out[i] = json.Number(strconv.FormatFloat(x+1, 'g', -1, 64))
			}
			changed = true
		}
	}
	if !changed {
		for i, f := range out {
			if s, ok := f.(string); ok {
				out[i] = s + "~stale"
				break
			}
		}
	}
	return out
}

func (s *Server) fetch(w http.ResponseWriter, r *http.Request, version, session, opID, token string) {
	ops, ok := s.sessions[session]
	if !ok {
		writeErr(w, 500, "Session '"+session+"' does not exist.")
		return
	}
	op, ok := ops[opID]
	if !ok {
		writeErr(w, 500, "Can not find the submitted operation in the OperationManager with the "+opID+".")
		return
	}
	// v2 and later require the row format, as Flink does.
	if version != "v1" && r.URL.Query().Get("rowFormat") != "JSON" {
		writeErr(w, 400, "Bad request: rowFormat is required (JSON or PLAIN_TEXT)")
		return
	}
	tok, err := strconv.Atoi(token)
	if err != nil || tok != op.next {
		writeErr(w, 400, fmt.Sprintf("The token %s is not the expected %d.", token, op.next))
		return
	}
	if op.err != nil {
		writeErr(w, 500,
			"org.apache.flink.table.gateway.api.utils.SqlGatewayException: Failed to fetchResults.\n\tat org.apache.flink...\nCaused by: "+op.err.Error())
		return
	}
	next := func(t int) string {
		u := fmt.Sprintf("/%s/sessions/%s/operations/%s/result/%d", version, session, opID, t)
		if version != "v1" {
			u += "?rowFormat=JSON"
		}
		return u
	}
	if op.notReady > 0 {
		op.notReady--
		s.Stats.NotReady++
		writeJSON(w, 200, map[string]any{"resultType": "NOT_READY", "nextResultUri": next(tok)})
		return
	}
	body := map[string]any{"isQueryResult": true, "resultKind": "SUCCESS_WITH_CONTENT", "jobID": strings.ReplaceAll(opID, "-", "")}
	if version == "v1" { // Flink 1.16's v1 answers have neither
		body = map[string]any{}
	}
	results := map[string]any{"columns": op.columns, "rowFormat": "JSON", "data": []rowData{}}
	if tok < len(op.pages) {
		results["data"] = op.pages[tok]
		for _, row := range op.pages[tok] {
			s.Stats.Kinds[row.Kind]++
		}
		body["resultType"] = "PAYLOAD"
		body["nextResultUri"] = next(tok + 1)
		op.next = tok + 1
		s.Stats.Payload++
		empty := len(op.pages[tok]) == 0
		if empty {
			s.Stats.EmptyPayload++
		}
		s.Fetches = append(s.Fetches, Fetch{At: time.Now(), Empty: empty})
	} else {
		body["resultType"] = "EOS"
		s.Stats.EOS++
	}
	body["results"] = results
	writeJSON(w, 200, body)
}

// logicalType maps a DuckDB column type to Flink's JSON logical type.
func logicalType(duck string) map[string]any {
	t := map[string]any{"nullable": true}
	switch {
	case duck == "VARCHAR":
		t["type"], t["length"] = "VARCHAR", 2147483647
	case duck == "INTEGER" || duck == "SMALLINT" || duck == "TINYINT":
		t["type"] = "INTEGER"
	case duck == "BIGINT" || duck == "HUGEINT" || duck == "UBIGINT" || duck == "UINTEGER":
		t["type"] = "BIGINT"
	case duck == "DOUBLE" || duck == "FLOAT" || strings.HasPrefix(duck, "DECIMAL"):
		t["type"] = "DOUBLE"
	case duck == "BOOLEAN":
		t["type"] = "BOOLEAN"
	case strings.HasPrefix(duck, "TIMESTAMP"):
		t["type"], t["precision"] = "TIMESTAMP_WITHOUT_TIME_ZONE", 3
	default:
		t["type"], t["length"] = "VARCHAR", 2147483647
	}
	return t
}

// jsonValue renders a DuckDB value as Flink's JSON format does: numbers as
// numbers (doubles in Java's notation), timestamps as ISO-8601 local date-time
// with the shortest fraction, text as strings.
func jsonValue(v any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case int32:
		return json.Number(strconv.FormatInt(int64(v), 10))
	case int64:
		return json.Number(strconv.FormatInt(v, 10))
	case int16:
		return json.Number(strconv.FormatInt(int64(v), 10))
	case int8:
		return json.Number(strconv.FormatInt(int64(v), 10))
	case *big.Int:
		return json.Number(v.String())
	case float64:
		return json.Number(javaDouble(v))
	case float32:
		return json.Number(javaDouble(float64(v)))
	case interface{ Float64() float64 }:
		return json.Number(javaDouble(v.Float64()))
	case time.Time:
		return v.UTC().Format("2006-01-02T15:04:05.999999999")
	case bool:
		return v
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// javaDouble formats like Java's Double.toString: plain between 1e-3 and 1e7,
// otherwise d.dddE±n, always with a fractional part.
func javaDouble(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "0" // not produced by our queries; JSON has no NaN
	}
	a := math.Abs(f)
	if a == 0 || (a >= 1e-3 && a < 1e7) {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'E', -1, 64) // 4.8116355E+07
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}
