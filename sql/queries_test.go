package gtsmsql_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func TestQueriesCatalog(t *testing.T) {
	want := []string{"daily", "gaps", "hourly", "late_duplicates", "latest", "level2", "regional", "seed"}
	var got []string
	for _, q := range gtsmsql.Queries() {
		got = append(got, q.Name)
		if q.Description == "" {
			t.Errorf("%s: no description", q.Name)
		}
		stmts, rest := gtsmsql.Split(q.SQL)
		if len(stmts) != 0 || rest == "" {
			t.Errorf("%s: want one statement without a trailing semicolon, got %q + %q", q.Name, stmts, rest)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("names = %v, want %v", got, want)
	}
	h, err := gtsmsql.QueryByName("hourly")
	if err != nil {
		t.Fatal(err)
	}
	if h.Usage() != "hourly [site]" || len(h.Params) != 1 || h.Params[0].Name != "site" {
		t.Errorf("hourly: usage %q params %+v", h.Usage(), h.Params)
	}
	if args, err := h.Args(nil); err != nil || len(args) != 1 || args[0] != nil {
		t.Errorf("Args(nil) = %v, %v; want [nil]", args, err)
	}
	if args, err := h.Args([]string{"B009"}); err != nil || args[0] != "B009" {
		t.Errorf("Args(B009) = %v, %v", args, err)
	}
	if _, err := h.Args([]string{"B009", "x"}); err == nil || !strings.Contains(err.Error(), "usage: hourly [site]") {
		t.Errorf("two args: err = %v", err)
	}
	_, err = gtsmsql.QueryByName("nope")
	if err == nil || !strings.Contains(err.Error(), "daily, gaps, hourly, late_duplicates, latest, level2, regional, seed") {
		t.Errorf("unknown name: err = %v, want the list of names", err)
	}
}

// demoDB is a migrated DuckDB file with two sites' worth of processor output.
func demoDB(t *testing.T) *sql.DB {
	t.Helper()
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "q.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		// 2021-07-01 00:00:00 UTC = 1625097600000 ms
		`INSERT INTO gtsm_etl (key_site, site, "time", "timestamp", ls1_t0, ls2_t0, ls3_t0, ls4_t0, session, kafka_partition, kafka_offset, late) VALUES
		 ('B009', 'B009', 1625097601000, '2021-07-01 00:00:01', 48116355, 49196540, NULL, 50000000, 'Hour', 3, 11, false),
		 ('B009', 'B009', 1625097600000, '2021-07-01 00:00:00', 48116300, 49196500, 1, 2, 'Hour', 3, 10, false),
		 ('A001', 'A001', 1625097600000, '2021-07-01 00:00:00', 1, 2, 3, 4, 'Hour', 0, 5, false)`,
		`INSERT INTO gtsm_etl (key_site, site, "time", "timestamp", rs1_t0, session, kafka_partition, kafka_offset, late) VALUES
		 ('B009', 'B009', 1625097600000, '2021-07-01 00:00:00', 40000000, 'Day', 3, 12, true)`,
		`INSERT INTO site_reference (site, gauge, reference_counts) VALUES ('B009', 1, 48000000)`,
		`INSERT INTO windows (site, session, width, window_start, window_end, channel, n, n_null, min, max, mean, first, last, microstrain_mean, final, late_updates, sum, first_time, last_time, n_micro, sum_micro) VALUES
		 ('B009', 'Hour', '1h', '2021-07-01 00:00:00', '2021-07-01 01:00:00', 'ls1_t0', 3600, 1, 10, 20, 15.5, 11, 19, NULL, true, 0, 0, NULL, NULL, 0, 0),
		 ('B009', 'Hour', '1h', '2021-07-01 01:00:00', '2021-07-01 02:00:00', 'ls1_t0', 3600, 0, 1, 2, 1.5, 1, 2, NULL, false, 2, 0, NULL, NULL, 0, 0),
		 ('A001', 'Hour', '1h', '2021-07-01 00:00:00', '2021-07-01 01:00:00', 'ls1_t0', 10, 0, 5, 5, 5, 5, 5, NULL, true, 0, 0, NULL, NULL, 0, 0),
		 ('B009', 'Hour', '1d', '2021-07-01 00:00:00', '2021-07-02 00:00:00', 'ls1_t0', 86400, 3, -7, 9, 0.25, -7, 9, NULL, false, 0, 0, NULL, NULL, 0, 0)`,
		`INSERT INTO gaps VALUES ('B009', 'Hour', '2021-07-01 00:10:00', '2021-07-01 00:10:04', 5), ('A001', 'Min', '2021-07-01 00:00:00.05', '2021-07-01 00:00:00.05', 1)`,
		`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at) VALUES
		 ('B009', 'Hour', '2021-07-01 00:00:00', '2021-07-01 23:59:59', 86395, 7, 2, 1, 5, 3, 12, now()),
		 ('A001', 'Hour', '2021-07-01 00:00:00', '2021-07-01 00:00:00', 1, 0, 0, 0, 0, 0, 5, now())`,
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

// rowsText runs a query and renders each row as space-separated values.
func rowsText(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, v := range vals {
			switch x := v.(type) {
			case nil:
				parts = append(parts, "NULL")
			case interface{ Format(string) string }:
				parts = append(parts, x.Format("2006-01-02T15:04:05.000"))
			default:
				parts = append(parts, fmt.Sprint(x))
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNamedQueriesResults(t *testing.T) {
	db := demoDB(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"seed", nil, []string{"A001 2021-07-01 00:00:00", "B009 2021-07-01 00:00:00", "B009 2021-07-01 00:00:00", "B009 2021-07-01 00:00:01"}},
		{"hourly", nil, []string{
			"A001 Hour ls1_t0 2021-07-01T00:00:00.000 2021-07-01T01:00:00.000 10 0 5 5 5 5 5",
			"B009 Hour ls1_t0 2021-07-01T00:00:00.000 2021-07-01T01:00:00.000 3600 1 10 20 15.5 11 19",
			"B009 Hour ls1_t0 2021-07-01T01:00:00.000 2021-07-01T02:00:00.000 3600 0 1 2 1.5 1 2",
		}},
		{"hourly", []string{"B009"}, []string{
			"B009 Hour ls1_t0 2021-07-01T00:00:00.000 2021-07-01T01:00:00.000 3600 1 10 20 15.5 11 19",
			"B009 Hour ls1_t0 2021-07-01T01:00:00.000 2021-07-01T02:00:00.000 3600 0 1 2 1.5 1 2",
		}},
		{"hourly", []string{"ZZZZ"}, nil},
		{"daily", nil, []string{"B009 Hour ls1_t0 2021-07-01T00:00:00.000 2021-07-02T00:00:00.000 86400 3 -7 9 0.25 -7 9"}},
		{"gaps", nil, []string{
			"A001 Min 2021-07-01T00:00:00.050 2021-07-01T00:00:00.050 1",
			"B009 Hour 2021-07-01T00:10:00.000 2021-07-01T00:10:04.000 5",
		}},
		{"gaps", []string{"A001"}, []string{"A001 Min 2021-07-01T00:00:00.050 2021-07-01T00:00:00.050 1"}},
		{"late_duplicates", nil, []string{"A001 Hour 1 0 0", "B009 Hour 86395 7 2"}},
		{"latest", []string{"B009"}, []string{"B009 Hour 2021-07-01T23:59:59.000 86395"}},
	}
	for _, tc := range tests {
		t.Run(tc.name+strings.Join(tc.args, "_"), func(t *testing.T) {
			q, err := gtsmsql.QueryByName(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			args, err := q.Args(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			got := rowsText(t, db, q.SQL, args...)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestStrainView(t *testing.T) {
	db := demoDB(t)
	got := rowsText(t, db, `SELECT site, session, "time", gauge, channel, counts, reference_counts::BIGINT FROM strain WHERE site = 'B009' ORDER BY session, "time", gauge`)
	want := []string{
		"B009 Day 1625097600000 1 rs1_t0 40000000 48000000",
		"B009 Day 1625097600000 2 rs2_t0 NULL NULL", // the reference is for gauge 1 only
		"B009 Day 1625097600000 3 rs3_t0 NULL NULL",
		"B009 Day 1625097600000 4 rs4_t0 NULL NULL",
		"B009 Hour 1625097600000 1 ls1_t0 48116300 48000000",
		"B009 Hour 1625097600000 2 ls2_t0 49196500 NULL",
		"B009 Hour 1625097600000 3 ls3_t0 1 NULL",
		"B009 Hour 1625097600000 4 ls4_t0 2 NULL",
		"B009 Hour 1625097601000 1 ls1_t0 48116355 48000000",
		"B009 Hour 1625097601000 2 ls2_t0 49196540 NULL",
		"B009 Hour 1625097601000 3 ls3_t0 NULL NULL",
		"B009 Hour 1625097601000 4 ls4_t0 50000000 NULL",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Microstrain of the Hour sample at 00:00:01, gauge 1, computed here
	// independently from the formula in the view's header.
	var ms sql.NullFloat64
	var ts string
	if err := db.QueryRow(`SELECT microstrain, strftime(ts, '%Y-%m-%d %H:%M:%S') FROM strain WHERE site = 'B009' AND session = 'Hour' AND "time" = 1625097601000 AND gauge = 1`).Scan(&ms, &ts); err != nil {
		t.Fatal(err)
	}
	x, x0 := 48116355/1e8, 48000000/1e8
	want1 := (x/(1-x) - x0/(1-x0)) * (0.0001 / 0.087) * 1e6
	if !ms.Valid || math.Abs(ms.Float64-want1) > 1e-9 || ts != "2021-07-01 00:00:01" {
		t.Errorf("microstrain = %v at %s, want %v at 2021-07-01 00:00:01", ms, ts, want1)
	}
	var nulls int
	if err := db.QueryRow(`SELECT count(*) FROM strain WHERE microstrain IS NULL`).Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != 16-3 { // 4 records x 4 gauges; only B009 gauge 1 (3 samples) has a reference
		t.Errorf("NULL microstrain rows = %d, want 13", nulls)
	}
}
