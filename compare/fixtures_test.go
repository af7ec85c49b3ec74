package compare

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// script is a gateway that answers each "METHOD path?query" with the next of
// its recorded answers, and logs the requests.
type script struct {
	t       *testing.T
	mu      sync.Mutex
	answers map[string][]answer
	log     []string
	bodies  []string
}

type answer struct {
	status int
	body   string // JSON text, or "@file" from testdata/gateway
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		key += "?" + r.URL.RawQuery
	}
	s.log = append(s.log, key)
	b, _ := io.ReadAll(r.Body)
	s.bodies = append(s.bodies, string(b))
	q := s.answers[key]
	if len(q) == 0 {
		w.WriteHeader(404)
		io.WriteString(w, `{"errors":["Not found: `+key+`"]}`)
		return
	}
	a := q[0]
	if len(q) > 1 { // the last answer repeats
		s.answers[key] = q[1:]
	}
	body := a.body
	if strings.HasPrefix(body, "@") {
		f, err := os.ReadFile(filepath.Join("testdata", "gateway", body[1:]))
		if err != nil {
			s.t.Error(err)
		}
		body = string(f)
	}
	w.Header().Set("Content-Type", "application/json")
	if a.status == 0 {
		a.status = 200
	}
	w.WriteHeader(a.status)
	io.WriteString(w, body)
}

func newScript(t *testing.T, answers map[string][]answer) (*script, *Gateway) {
	s := &script{t: t, answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	g, err := NewGateway(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	g.PollMin, g.PollMax = time.Millisecond, 2*time.Millisecond
	return s, g
}

const (
	sess = "d9befa48-8b52-42f4-93a0-b8b948552452"
	op   = "ce3489f5-74a2-41d7-8d83-1caa301d3b6f"
)

func TestRecordedShapesV2(t *testing.T) {
	res := "/v2/sessions/" + sess + "/operations/" + op + "/result/"
	s, g := newScript(t, map[string][]answer{
		"POST /v2/sessions":                         {{body: "@open_session.json"}},
		"POST /v2/sessions/" + sess + "/statements": {{body: "@submit.json"}},
		"GET " + res + "0?rowFormat=JSON":           {{body: "@not_ready_v2.json"}, {body: "@payload_v2.json"}},
		"GET " + res + "1?rowFormat=JSON":           {{body: "@eos_v2.json"}},
		"DELETE /v2/sessions/" + sess:               {{body: "@close_session.json"}},
	})
	f := &FlinkSource{Gateway: g, Properties: DefaultFlinkProperties()}
	ctx := context.Background()
	tab, err := f.Run(ctx, "SELECT ...")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantLog := []string{
		"POST /v2/sessions",
		"POST /v2/sessions/" + sess + "/statements",
		"GET " + res + "0?rowFormat=JSON", // NOT_READY
		"GET " + res + "0?rowFormat=JSON",
		"GET " + res + "1?rowFormat=JSON",
		"DELETE /v2/sessions/" + sess,
	}
	if strings.Join(s.log, "\n") != strings.Join(wantLog, "\n") {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(s.log, "\n"), strings.Join(wantLog, "\n"))
	}
	var open struct {
		Properties  map[string]string `json:"properties"`
		SessionName string            `json:"sessionName"`
	}
	if err := json.Unmarshal([]byte(s.bodies[0]), &open); err != nil || open.Properties["table.local-time-zone"] != "UTC" {
		t.Errorf("open session body %s: %v", s.bodies[0], err)
	}
	if s.bodies[1] != `{"statement":"SELECT ..."}` {
		t.Errorf("statement body %s", s.bodies[1])
	}

	if strings.Join(tab.Columns, ",") != "site,session,last_time,records,mean,first" {
		t.Errorf("columns %v", tab.Columns)
	}
	o := Options{Precision: 6}
	var got []string
	for _, r := range tab.Rows {
		var cells []string
		for _, v := range r {
			cells = append(cells, o.Cell(v))
		}
		got = append(got, strings.Join(cells, "|"))
	}
	want := []string{ // in first-insert order; the UPDATE replaced the Hour row
		"B009|Min|2021-07-01 00:00:00.050|2|-0.5|-7",
		"B009|Hour|2021-07-01 00:59:59.000|3600|48116355.5|48116355",
		"B010|Day|NULL|0|NULL|NULL",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, ok := tab.Rows[0][3].(int64); !ok {
		t.Errorf("BIGINT decoded as %T", tab.Rows[0][3])
	}
	if _, ok := tab.Rows[0][2].(time.Time); !ok {
		t.Errorf("TIMESTAMP decoded as %T", tab.Rows[0][2])
	}
}

func TestRecordedShapesV1(t *testing.T) {
	res := "/v1/sessions/" + sess + "/operations/" + op + "/result/"
	eos := `{"results":{"columns":[],"data":[]},"resultType":"EOS","nextResultUri":null}`
	for _, tc := range []struct {
		fixture string
		column  string
		value   any
	}{
		{"select1_v1.json", "EXPR$0", int64(1)},
		{"timestamp_v1.json", "localtimestamp", time.Date(2022, 11, 4, 11, 41, 40, 36e6, time.UTC)},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			s, g := newScript(t, map[string][]answer{
				"POST /v1/sessions/" + sess + "/statements": {{body: "@submit.json"}},
				"GET " + res + "0":                          {{body: "@" + tc.fixture}},
				"GET " + res + "1":                          {{body: eos}},
			})
			g.Version = "v1"
			r, err := g.Execute(context.Background(), sess, "SELECT 1")
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Table.Rows) != 1 || r.Table.Columns[0] != tc.column || r.Table.Rows[0][0] != tc.value {
				t.Errorf("got %v %v, want %s = %v", r.Table.Columns, r.Table.Rows, tc.column, tc.value)
			}
			for _, l := range s.log {
				if strings.Contains(l, "rowFormat") {
					t.Errorf("v1 request with rowFormat: %s", l)
				}
			}
		})
	}
}

func TestGatewayErrors(t *testing.T) {
	res := "/v2/sessions/" + sess + "/operations/" + op + "/result/"
	cols := `"columns":[{"name":"n","logicalType":{"type":"BIGINT","nullable":true}}]`
	for _, tc := range []struct {
		name    string
		answers []answer // for result/0
		want    []string // in the error text
		notWant string
	}{
		{"documented error", []answer{{status: 500, body: "@error.json"}},
			[]string{"500 Internal Server Error", "Failed to fetchResults", "Caused by: org.apache.flink.table.api.ValidationException", "Object 'gtsm_etl' not found"},
			"FetchResultsHandler.java"},
		{"not JSON", []answer{{status: 502, body: "Bad Gateway from proxy"}}, []string{"502", "Bad Gateway from proxy"}, ""},
		{"payload without next", []answer{{body: `{"resultType":"PAYLOAD","results":{` + cols + `,"data":[]}}`}},
			[]string{"PAYLOAD without nextResultUri"}, ""},
		{"retraction of a missing row", []answer{{body: `{"resultType":"EOS","results":{` + cols + `,"data":[{"kind":"INSERT","fields":[1]},{"kind":"DELETE","fields":[2]}]}}`}},
			[]string{"row 1", "DELETE of a row that is not in the result: [2]"}, ""},
		{"unknown kind", []answer{{body: `{"resultType":"EOS","results":{` + cols + `,"data":[{"kind":"UPSERT","fields":[1]}]}}`}},
			[]string{`unknown row kind "UPSERT"`}, ""},
		{"unknown result type", []answer{{body: `{"resultType":"MAYBE"}`}}, []string{`unknown resultType "MAYBE"`}, ""},
		{"bad number", []answer{{body: `{"resultType":"EOS","results":{` + cols + `,"data":[{"kind":"INSERT","fields":["x"]}]}}`}},
			[]string{"row 0 column n (BIGINT)", `not a number: "x"`}, ""},
		{"field count", []answer{{body: `{"resultType":"EOS","results":{` + cols + `,"data":[{"kind":"INSERT","fields":[1,2]}]}}`}},
			[]string{"row 0 has 2 fields for 1 columns"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, g := newScript(t, map[string][]answer{"GET " + res + "0?rowFormat=JSON": tc.answers})
			_, err := g.Fetch(context.Background(), sess, op)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("error %q keeps %q", err, tc.notWant)
			}
		})
	}
}

// A gateway behind a path prefix (a reverse proxy): requests and the
// server's absolute-path nextResultUri both go under the prefix.
func TestGatewayPathPrefix(t *testing.T) {
	res := "/flink/v2/sessions/" + sess + "/operations/" + op + "/result/"
	_, g := newScript(t, map[string][]answer{
		"GET " + res + "0?rowFormat=JSON": {{body: `{"resultType":"PAYLOAD","results":{"columns":[{"name":"x","logicalType":{"type":"VARCHAR","nullable":true,"length":3}}],"data":[{"kind":"INSERT","fields":["a"]}]},"nextResultUri":"/v2/sessions/` + sess + `/operations/` + op + `/result/1?rowFormat=JSON"}`}},
		"GET " + res + "1?rowFormat=JSON": {{body: `{"resultType":"EOS","results":{"columns":[],"data":[]}}`}},
	})
	g.base.Path = "/flink"
	// The server's nextResultUri does not know the prefix; the client keeps it.
	r, err := g.Fetch(context.Background(), sess, op)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Table.Rows) != 1 || r.Table.Rows[0][0] != "a" {
		t.Errorf("rows %v", r.Table.Rows)
	}
}

func TestNewGatewayRejectsBadAddress(t *testing.T) {
	for _, a := range []string{"localhost:8088", "", "http://"} {
		if _, err := NewGateway(a); err == nil {
			t.Errorf("NewGateway(%q) accepted", a)
		}
	}
}
