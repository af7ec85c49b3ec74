package gatewaytest

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, b)
	}
	return resp.StatusCode, m
}

// The fake answers with the documented shapes and refuses what Flink refuses.
func TestProtocol(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, func(stmt string) (string, error) {
		if strings.HasPrefix(stmt, "CREATE") {
			return "", nil
		}
		return "SELECT 1::INTEGER AS a, 'x' AS b, TIMESTAMP '2021-07-01 00:00:00.05' AS c, 2.5::DOUBLE AS d FROM range(3)", nil
	}, Options{PageSize: 2, NotReady: 1})
	defer s.Close()

	code, m := call(t, "POST", s.URL+"/v2/sessions", `{"properties":{}}`)
	h, _ := m["sessionHandle"].(string)
	if code != 200 || h == "" {
		t.Fatalf("open session: %d %v", code, m)
	}
	_, m = call(t, "POST", s.URL+"/v2/sessions/"+h+"/statements", `{"statement":"SELECT ..."}`)
	op, _ := m["operationHandle"].(string)
	base := s.URL + "/v2/sessions/" + h + "/operations/" + op + "/result/"

	if code, m := call(t, "GET", base+"0", ""); code != 400 || m["errors"] == nil {
		t.Errorf("v2 without rowFormat: %d %v", code, m)
	}
	if _, m := call(t, "GET", base+"0?rowFormat=JSON", ""); m["resultType"] != "NOT_READY" || m["nextResultUri"] != "/v2/sessions/"+h+"/operations/"+op+"/result/0?rowFormat=JSON" {
		t.Errorf("first fetch: %v", m)
	}
	if code, _ := call(t, "GET", base+"1?rowFormat=JSON", ""); code != 400 {
		t.Errorf("token out of order: %d", code)
	}
	_, m = call(t, "GET", base+"0?rowFormat=JSON", "")
	if m["resultType"] != "PAYLOAD" || m["isQueryResult"] != true || m["resultKind"] != "SUCCESS_WITH_CONTENT" || len(m["jobID"].(string)) != 32 {
		t.Errorf("payload page: %v", m)
	}
	res := m["results"].(map[string]any)
	cols, _ := json.Marshal(res["columns"])
	// (re-marshalled from a map: keys sorted)
	wantCols := `[{"comment":null,"logicalType":{"nullable":true,"type":"INTEGER"},"name":"a"},` +
		`{"comment":null,"logicalType":{"length":2147483647,"nullable":true,"type":"VARCHAR"},"name":"b"},` +
		`{"comment":null,"logicalType":{"nullable":true,"precision":3,"type":"TIMESTAMP_WITHOUT_TIME_ZONE"},"name":"c"},` +
		`{"comment":null,"logicalType":{"nullable":true,"type":"DOUBLE"},"name":"d"}]`
	if string(cols) != wantCols {
		t.Errorf("columns\n%s\nwant\n%s", cols, wantCols)
	}
	data, _ := json.Marshal(res["data"])
	if string(data) != `[{"fields":[1,"x","2021-07-01T00:00:00.05",2.5],"kind":"INSERT"},{"fields":[1,"x","2021-07-01T00:00:00.05",2.5],"kind":"INSERT"}]` {
		t.Errorf("data %s", data)
	}
	_, m = call(t, "GET", s.URL+m["nextResultUri"].(string), "")
	if m["resultType"] != "PAYLOAD" || len(m["results"].(map[string]any)["data"].([]any)) != 1 {
		t.Errorf("second page: %v", m)
	}
	_, m = call(t, "GET", s.URL+m["nextResultUri"].(string), "")
	if m["resultType"] != "EOS" || m["nextResultUri"] != nil {
		t.Errorf("end: %v", m)
	}
	if code, m := call(t, "DELETE", s.URL+"/v2/sessions/"+h, ""); code != 200 || m["status"] != "CLOSED" {
		t.Errorf("close: %d %v", code, m)
	}
	if code, _ := call(t, "DELETE", s.URL+"/v2/sessions/"+h, ""); code != 500 {
		t.Errorf("closing twice: %d", code)
	}
}

func TestJavaDouble(t *testing.T) {
	for f, want := range map[float64]string{
		4.8116355e7: "4.8116355E7", 1e7: "1.0E7", 2.5: "2.5", 3: "3.0", 0: "0.0",
		-0.5: "-0.5", 1e-4: "1.0E-4", 48116355.5: "4.81163555E7", 1234567.25: "1234567.25",
	} {
		if got := javaDouble(f); got != want {
			t.Errorf("javaDouble(%v) = %s, want %s", f, got, want)
		}
	}
}

// Only the API versions of Flink 1.20 (v1-v3) exist; a starting gateway
// answers 503.
func TestVersionsAndDown(t *testing.T) {
	s := New(nil, func(string) (string, error) { return "", nil }, Options{})
	defer s.Close()
	for _, tc := range []struct {
		path string
		down bool
		code int
	}{
		{"/v1/info", false, 200},
		{"/v3/info", false, 200},
		{"/v4/info", false, 404},
		{"/v0/info", false, 404},
		{"/v1/info", true, 503},
	} {
		s.Down.Store(tc.down)
		if code, m := call(t, "GET", s.URL+tc.path, ""); code != tc.code {
			t.Errorf("GET %s (down=%v): %d %v, want %d", tc.path, tc.down, code, m, tc.code)
		}
	}
}
