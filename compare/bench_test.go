package compare

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hourlyLike makes n rows shaped like the hourly query's result.
func hourlyLike(n int) *Table {
	t := &Table{Columns: []string{"site", "session", "channel", "window_start", "window_end", "n", "n_null", "min", "max", "mean", "first", "last"}}
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		ws := t0.Add(time.Duration(i/12) * time.Hour)
		t.Rows = append(t.Rows, []any{fmt.Sprintf("B%03d", i%97), "Hour", fmt.Sprintf("ls%d_t0", i%4+1), ws, ws.Add(time.Hour),
			int64(3600), int64(i % 3), int64(48116355 - i), int64(48116355 + i), 48116355.123456789 + float64(i)/7, int64(48116355), int64(48116356)})
	}
	return t
}

// BenchmarkCompare: normalizing, sorting and diffing two 100k-row results
// that differ in one row.
func BenchmarkCompare(b *testing.B) {
	left, right := hourlyLike(100_000), hourlyLike(100_000)
	right.Rows[500][5] = int64(3599)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := Compare("hourly", "flink", left, "duckdb", right, Options{Precision: 6})
		if len(d.Changed) != 1 {
			b.Fatal(len(d.Changed))
		}
	}
	b.ReportMetric(float64(b.N*200_000)/b.Elapsed().Seconds(), "rows/s")
}

// benchPages serves a 100k-row changelog (inserts, then a retraction and
// update of every 10th row) as v2 result pages of 1000 rows from memory.
func benchPages(b *testing.B) (*httptest.Server, [][]byte) {
	tab := hourlyLike(100_000)
	var rows []RowData
	field := func(v any) json.RawMessage {
		switch v := v.(type) {
		case time.Time:
			return json.RawMessage(`"` + v.Format("2006-01-02T15:04:05") + `"`)
		case string:
			return json.RawMessage(strconv.Quote(v))
		case int64:
			return json.RawMessage(strconv.FormatInt(v, 10))
		case float64:
			return json.RawMessage(strconv.FormatFloat(v, 'g', -1, 64))
		}
		return json.RawMessage("null")
	}
	for i, r := range tab.Rows {
		fs := make([]json.RawMessage, len(r))
		for k, v := range r {
			fs[k] = field(v)
		}
		if i%10 == 0 {
			stale := append([]json.RawMessage(nil), fs...)
			stale[5] = json.RawMessage("1")
			rows = append(rows, RowData{"INSERT", stale}, RowData{"UPDATE_BEFORE", stale})
			rows = append(rows, RowData{"UPDATE_AFTER", fs})
			continue
		}
		rows = append(rows, RowData{"INSERT", fs})
	}
	cols := make([]ColumnInfo, len(tab.Columns))
	for i, c := range tab.Columns {
		typ := map[int]string{0: "VARCHAR", 1: "VARCHAR", 2: "VARCHAR", 3: "TIMESTAMP_WITHOUT_TIME_ZONE", 4: "TIMESTAMP_WITHOUT_TIME_ZONE", 9: "DOUBLE"}[i]
		if typ == "" {
			typ = "BIGINT"
		}
		cols[i] = ColumnInfo{Name: c, LogicalType: LogicalType{Type: typ, Nullable: true}}
	}
	var pages [][]byte
	for p := 0; len(rows) > 0; p++ {
		n := min(1000, len(rows))
		page := Page{ResultType: "PAYLOAD", Results: &ResultInfo{Columns: cols, RowFormat: "JSON", Data: rows[:n]},
			NextResultURI: fmt.Sprintf("/v2/sessions/s/operations/o/result/%d?rowFormat=JSON", p+1)}
		rows = rows[n:]
		b, _ := json.Marshal(page)
		pages = append(pages, b)
	}
	eos, _ := json.Marshal(Page{ResultType: "EOS", Results: &ResultInfo{Columns: cols, Data: []RowData{}}})
	pages = append(pages, eos)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strconv.Atoi(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		w.Write(pages[tok])
	}))
	return srv, pages
}

// BenchmarkFetch: the client paging through 100k rows (plus 20k changelog
// retractions) and building the final table, next to a baseline in the same
// run that only fetches the same pages and decodes them into generic JSON.
func BenchmarkFetch(b *testing.B) {
	srv, pages := benchPages(b)
	defer srv.Close()
	g, err := NewGateway(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("gateway-client", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			r, err := g.Fetch(context.Background(), "s", "o")
			if err != nil || len(r.Table.Rows) != 100_000 {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*100_000)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("baseline-get-and-unmarshal", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for p := range pages {
				resp, err := http.Get(fmt.Sprintf("%s/v2/sessions/s/operations/o/result/%d?rowFormat=JSON", srv.URL, p))
				if err != nil {
					b.Fatal(err)
				}
				var v any
				if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		}
		b.ReportMetric(float64(b.N*100_000)/b.Elapsed().Seconds(), "rows/s")
	})
}
