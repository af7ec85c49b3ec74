package compare_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/compare"
	"github.com/earthscope/gtsm-stream/compare/gatewaytest"
	"github.com/earthscope/gtsm-stream/flink"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// namedQueries pairs flink/queries with sql/queries by name.
func namedQueries(t *testing.T) []compare.Query {
	t.Helper()
	var qs []compare.Query
	for _, name := range flink.QueryNames() {
		fq, err := flink.Query(name)
		if err != nil {
			t.Fatal(err)
		}
		dq, err := gtsmsql.QueryByName(name)
		if err != nil {
			t.Fatalf("sql/queries has no %s: %v", name, err)
		}
		args, err := dq.Args(nil)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, compare.Query{Name: name, Flink: fq, DuckDB: dq.SQL, Args: args})
	}
	return qs
}

func flinkSource(t *testing.T, url, version string) *compare.FlinkSource {
	t.Helper()
	g, err := compare.NewGateway(url)
	if err != nil {
		t.Fatal(err)
	}
	g.Version = version
	g.PollMin, g.PollMax = time.Millisecond, 5*time.Millisecond
	return &compare.FlinkSource{Gateway: g, DDL: flink.Statements(flink.DDL()), Properties: compare.DefaultFlinkProperties()}
}

// TestNamedQueriesAgree runs every named query of flink/queries through the
// fake gateway (which computes the Flink text, translated, on the topic) and
// every named query of sql/queries on the processor's tables (filled by
// independent SQL), in both API versions, with NOT_READY answers, small pages
// and a changelog of retractions: all must agree, and the facts computed in
// Go must show in the results.
func TestNamedQueriesAgree(t *testing.T) {
	db, msgs := newDB(t)
	fillProcessorTables(t, db)
	want := expect(msgs)
	queries := namedQueries(t)

	for _, tc := range []struct {
		version  string
		opts     gatewaytest.Options
		endpoint bool // DuckDB side through the processor's SQL endpoint (pgwire + pgx)
	}{
		{"v2", gatewaytest.Options{PageSize: 50, NotReady: 2, Changelog: true}, false},
		{"v1", gatewaytest.Options{PageSize: 500}, true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			ctx := context.Background()
			gw := gatewaytest.New(db, flinkToDuckDB, tc.opts)
			defer gw.Close()
			fs := flinkSource(t, gw.URL, tc.version)
			var duck compare.Source = &compare.DBSource{DB: db}
			if tc.endpoint {
				srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
				if err != nil {
					t.Fatal(err)
				}
				sctx, cancel := context.WithCancel(ctx)
				defer cancel()
				go srv.Serve(sctx)
				defer srv.Close()
				conn, err := pgx.Connect(ctx, "postgres://gtsm@"+srv.Addr().String()+"/gtsm?sslmode=disable")
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				duck = &compare.PGSource{Conn: conn}
			}
			var out bytes.Buffer
			diffs, err := compare.Run(ctx, fs, duck, queries, compare.Options{Precision: 6}, &out, 10)
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if err := fs.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for _, d := range diffs {
				if !d.Same() {
					t.Errorf("%s differs:\n%s", d.Query, out.String())
				}
				if d.LeftRows == 0 {
					t.Errorf("%s: no rows", d.Query)
				}
			}
			if t.Failed() {
				return
			}
			t.Logf("\n%s", out.String())

			// The gateway really paged, waited and retracted.
			if len(gw.Closed) != 1 {
				t.Errorf("sessions closed: %d, want 1", len(gw.Closed))
			}
			if tc.opts.NotReady > 0 && gw.Stats.NotReady != tc.opts.NotReady*(len(queries)+2) {
				t.Errorf("NOT_READY answers %d, want %d", gw.Stats.NotReady, tc.opts.NotReady*(len(queries)+2))
			}
			if tc.opts.Changelog && (gw.Stats.Kinds["UPDATE_BEFORE"] == 0 || gw.Stats.Kinds["DELETE"] == 0) {
				t.Errorf("no retractions sent: %v", gw.Stats.Kinds)
			}
			if tc.opts.PageSize < 100 && gw.Stats.Payload < 100 {
				t.Errorf("only %d pages", gw.Stats.Payload)
			}
			if !strings.HasPrefix(gw.Statements[0], "-- The gtsm_etl topic") || len(gw.Statements) != len(queries)+2 {
				t.Errorf("statements: %d, first %.40q", len(gw.Statements), gw.Statements[0])
			}

			// Facts computed in Go, seen through the Flink side.
			for _, q := range []string{"late_duplicates", "latest"} {
				fq, _ := flink.Query(q)
				tab, err := fs.Run(ctx, fq)
				if err != nil {
					t.Fatal(err)
				}
				defer fs.Close(ctx)
				col := map[string]int{}
				for i, c := range tab.Columns {
					col[c] = i
				}
				if len(tab.Rows) != len(want.records) {
					t.Errorf("%s: %d rows, want %d", q, len(tab.Rows), len(want.records))
				}
				for _, r := range tab.Rows {
					k := r[col["site"]].(string) + "/" + r[col["session"]].(string)
					if got := r[col["records"]]; got != want.records[k] {
						t.Errorf("%s %s: records %v, want %d", q, k, got, want.records[k])
					}
					if q == "late_duplicates" && (r[col["duplicates"]] != want.duplicates[k] || r[col["late"]] != want.late[k]) {
						t.Errorf("%s: duplicates %v late %v, want %d %d", k, r[col["duplicates"]], r[col["late"]], want.duplicates[k], want.late[k])
					}
					if q == "latest" && !r[col["last_time"]].(time.Time).Equal(time.UnixMilli(want.lastTime[k])) {
						t.Errorf("%s: last_time %v, want %v", k, r[col["last_time"]], time.UnixMilli(want.lastTime[k]).UTC())
					}
				}
			}
		})
	}
	if want.duplicates["B009/Hour"] != 5 || want.late["B009/Hour"] != 10 {
		t.Errorf("fixture: B009/Hour duplicates %d late %d, want 5 and 10", want.duplicates["B009/Hour"], want.late["B009/Hour"])
	}
}

// TestDifferencesShown: when the processor's tables disagree with Flink, the
// diff names the changed row and the column, and the rows only on one side.
func TestDifferencesShown(t *testing.T) {
	db, _ := newDB(t)
	fillProcessorTables(t, db)
	for _, q := range []string{
		`UPDATE windows SET n = n + 1 WHERE site = 'B009' AND session = 'Hour' AND width = '1h' AND channel = 'ls1_t0' AND window_start = TIMESTAMP '2021-07-02 00:00:00'`,
		`DELETE FROM gaps WHERE site = 'B009' AND session = 'Hour'`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	gw := gatewaytest.New(db, flinkToDuckDB, gatewaytest.Options{PageSize: 40})
	defer gw.Close()
	fs := flinkSource(t, gw.URL, "v2")
	defer fs.Close(context.Background())
	var queries []compare.Query
	for _, q := range namedQueries(t) {
		if q.Name == "hourly" || q.Name == "gaps" || q.Name == "latest" {
			queries = append(queries, q)
		}
	}
	var out bytes.Buffer
	diffs, err := compare.Run(context.Background(), fs, &compare.DBSource{DB: db}, queries, compare.Options{Precision: 6}, &out, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Logf("\n%s", got)
	byName := map[string]*compare.Diff{}
	for _, d := range diffs {
		byName[d.Query] = d
	}
	h := byName["hourly"]
	if h.Same() || len(h.Changed) != 1 || len(h.OnlyLeft)+len(h.OnlyRight) != 0 {
		t.Fatalf("hourly: changed %d, only %d/%d", len(h.Changed), len(h.OnlyLeft), len(h.OnlyRight))
	}
	g := byName["gaps"]
	if len(g.OnlyLeft) != 1 || len(g.OnlyRight) != 0 || len(g.Changed) != 0 {
		t.Errorf("gaps: only in flink %d, only in duckdb %d, changed %d; want 1, 0, 0", len(g.OnlyLeft), len(g.OnlyRight), len(g.Changed))
	}
	if !byName["latest"].Same() {
		t.Error("latest should be the same")
	}
	// 2400 samples plus two re-sent ones in that hour; the processor table says one more.
	if !regexp.MustCompile(`\n\s+n\s+2402\s+2403\s+<>\n`).MatchString(got) {
		t.Error("output lacks the changed column n: 2402 vs 2403")
	}
	for _, s := range []string{
		"hourly: DIFFERENT: 1 rows changed, 0 only in flink, 0 only in duckdb",
		"! site=B009 session=Hour channel=ls1_t0 window_start=2021-07-02 00:00:00.000 window_end=2021-07-02 01:00:00.000",
		"< only in flink: site=B009 session=Hour gap_start=2021-07-01 23:46:40.000 gap_end=2021-07-01 23:48:39.000 missing=120",
		"latest: same (6 rows)",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("output lacks %q", s)
		}
	}
}
