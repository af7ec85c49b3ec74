package compare

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCell(t *testing.T) {
	ts := time.Date(2021, 7, 1, 2, 3, 4, 56_789_000, time.FixedZone("PDT", -7*3600))
	for _, tc := range []struct {
		v    any
		prec int
		want string
	}{
		{nil, 6, "NULL"},
		{int64(-42), 6, "-42"},
		{int32(7), 6, "7"},
		{3.0, 6, "3"}, // integral floats render like integers
		{48116355.1234564, 6, "48116355.123456"},
		{48116355.1234566, 6, "48116355.123457"},
		{0.1 + 0.2, 6, "0.3"}, // summation noise rounds away
		{-0.0000001, 6, "0"},  // no "-0"
		{2.5, 0, "3"},         // half away from zero
		{1e300, 6, "1e+300"},
		{-1.234567890123456789e20, 6, "-1.23456789012346e+20"},
		{float32(1.5), 2, "1.5"},
		{"B009", 6, "B009"},
		{true, 6, "true"},
		{ts, 6, "2021-07-01 09:03:04.056"}, // UTC, milliseconds
		{[]byte("x"), 6, "x"},
	} {
		if got := (Options{Precision: tc.prec}).Cell(tc.v); got != tc.want {
			t.Errorf("Cell(%#v, %d) = %q, want %q", tc.v, tc.prec, got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	t1 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	left := &Table{Columns: []string{"site", "window_start", "n", "mean", "extra"}, Rows: [][]any{
		{"B009", t1, int64(10), 1.0000001, "x"},
		{"B009", t1.Add(time.Hour), int64(20), 2.5, "x"},
		{"B010", t1, int64(5), nil, "x"},
		{"B010", t1, int64(5), nil, "x"}, // a duplicate row counts twice
	}}
	right := &Table{Columns: []string{"MEAN", "n", "window_start", "site"}, Rows: [][]any{
		{2.5, int64(21), t1.Add(time.Hour), "B009"},
		{1.0, 10.0, t1, "B009"},
		{nil, int64(5), t1, "B010"},
		{7.0, int64(1), t1, "B011"},
	}}
	d := Compare("q", "flink", left, "duckdb", right, Options{Precision: 3})
	if d.Same() {
		t.Fatal("Same() on different tables")
	}
	if d.Equal != 2 || len(d.Changed) != 1 || len(d.OnlyLeft) != 1 || len(d.OnlyRight) != 1 {
		t.Fatalf("equal %d changed %d onlyL %d onlyR %d", d.Equal, len(d.Changed), len(d.OnlyLeft), len(d.OnlyRight))
	}
	if strings.Join(d.OnlyLeftCols, ",") != "extra" || len(d.OnlyRightCols) != 0 {
		t.Errorf("column differences %v %v", d.OnlyLeftCols, d.OnlyRightCols)
	}
	var out bytes.Buffer
	if err := d.Write(&out, 0); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"q: DIFFERENT: 1 rows changed, 1 only in flink, 1 only in duckdb, 2 equal (flink 4 rows, duckdb 4 rows)",
		"columns only in flink: extra",
		"! site=B009 window_start=2021-07-01 01:00:00.000",
		"< only in flink: site=B010 window_start=2021-07-01 00:00:00.000 n=5 mean=NULL",
		"> only in duckdb: site=B011 window_start=2021-07-01 00:00:00.000 n=1 mean=7",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
	lines := strings.Split(out.String(), "\n")
	for i, l := range lines {
		if strings.Contains(l, "! site=B009") {
			if f := strings.Fields(lines[i+2]); len(f) != 4 || f[0] != "n" || f[1] != "20" || f[2] != "21" || f[3] != "<>" {
				t.Errorf("changed n shown as %q", lines[i+2])
			}
			if f := strings.Fields(lines[i+3]); len(f) != 3 || f[0] != "mean" {
				t.Errorf("unchanged mean shown as %q", lines[i+3])
			}
		}
	}

	// The same rows in another order and types are the same.
	same := Compare("q", "a", right, "b", &Table{Columns: right.Columns, Rows: [][]any{right.Rows[3], right.Rows[2], right.Rows[1], right.Rows[0]}}, Options{Precision: 3})
	out.Reset()
	same.Write(&out, 0)
	if !same.Same() || out.String() != "q: same (4 rows)\n" {
		t.Errorf("reordered table differs: %s", out.String())
	}

	// maxRows caps the listing.
	many := &Table{Columns: []string{"k"}}
	for i := 0; i < 30; i++ {
		many.Rows = append(many.Rows, []any{int64(i)})
	}
	out.Reset()
	Compare("m", "a", many, "b", &Table{Columns: []string{"k"}}, Options{}).Write(&out, 5)
	if strings.Count(out.String(), "< only in a") != 5 || !strings.Contains(out.String(), "... and 25 more rows only in a") {
		t.Errorf("cap not applied:\n%s", out.String())
	}
}
