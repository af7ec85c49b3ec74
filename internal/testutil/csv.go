package testutil

import (
	"encoding/csv"
	"math"
	"os"
	"strconv"
	"testing"
)

// ReadFloatCSV reads a CSV file of numbers with a header line (what the
// Python oracles write): the header and the rows, an empty cell as NaN.
func ReadFloatCSV(t testing.TB, path string) ([]string, [][]float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no header line", path)
	}
	var rows [][]float64
	for i, r := range recs[1:] {
		row := make([]float64, len(r))
		for j, x := range r {
			if x == "" {
				row[j] = math.NaN()
				continue
			}
			if row[j], err = strconv.ParseFloat(x, 64); err != nil {
				t.Fatalf("%s line %d: %v", path, i+2, err)
			}
		}
		rows = append(rows, row)
	}
	return recs[0], rows
}
