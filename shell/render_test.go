package shell

import (
	"bytes"
	"strings"
	"testing"
)

// TestTableDoubles: table mode shows a double to DoubleDigits significant
// digits; the other modes, and non-double numbers, keep every digit.
func TestTableDoubles(t *testing.T) {
	for _, tc := range []struct {
		text, table string
	}{
		{"48116515.166666664", "48116515.1667"},
		{"0.1", "0.1"},
		{"-2.5e-07", "-2.5e-07"},
		{"1.2345678901234567e-05", "1.23456789012e-05"},
		{"48116355", "48116355"},
		{"123456789012345.67", "1.23456789012e+14"},
		{"NaN", "NaN"},
		{"inf", "inf"},
		{"-0", "-0"},
	} {
		r := &Result{
			Columns: []Column{{Name: "d", Kind: KindNumber, Double: true}, {Name: "n", Kind: KindNumber}},
			Rows:    [][]Cell{{{Text: tc.text}, {Text: tc.text}}, {{Null: true}, {Null: true}}},
		}
		var table, csv bytes.Buffer
		if err := Render(&table, ModeTable, r); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(table.String(), "\n")
		cells := strings.Split(lines[2], "|")
		if got := strings.TrimSpace(cells[0]); got != tc.table {
			t.Errorf("%s: table shows %q, want %q", tc.text, got, tc.table)
		}
		if got := strings.TrimSpace(cells[1]); got != tc.text {
			t.Errorf("%s: a non-double number column shows %q", tc.text, got)
		}
		if got := strings.Fields(strings.ReplaceAll(lines[3], "|", " ")); len(got) != 2 || got[0] != "NULL" {
			t.Errorf("NULL row %q", lines[3])
		}
		if err := Render(&csv, ModeCSV, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(csv.String(), "\n"+tc.text+","+tc.text+"\n") {
			t.Errorf("%s: csv %q rounds", tc.text, csv.String())
		}
	}
}
