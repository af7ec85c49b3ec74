// Package compare runs the same named query on Flink SQL (through the Flink
// SQL Gateway REST API) and on the processor's DuckDB (through its
// Postgres-wire endpoint, or a DuckDB file), normalizes both results and shows
// the rows that differ side by side.
package compare

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Table is a query result: named columns and rows of values. Values are nil
// (SQL NULL), int64, float64, string, bool or time.Time, whatever the source.
type Table struct {
	Columns []string
	Rows    [][]any
}

// Source runs a query and returns its whole result.
type Source interface {
	// Name labels the side in the diff ("flink", "duckdb").
	Name() string
	// Run executes one query (with its bind arguments, if the source takes any).
	Run(ctx context.Context, query string, args ...any) (*Table, error)
}

// Options control the normalization.
type Options struct {
	// Precision is the number of decimals floats are rounded to before
	// comparing: Flink (Java) and DuckDB may sum doubles in different orders.
	Precision int
}

// Cell renders one value canonically, so that values equal after
// normalization render equal whatever their source type: integers and
// integral floats alike ("3"), floats rounded to Precision decimals without
// trailing zeros, timestamps in UTC to the millisecond, NULL as "NULL".
func (o Options) Cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case float64:
		return o.float(v)
	case float32:
		return o.float(float64(v))
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.UTC().Truncate(time.Millisecond).Format("2006-01-02 15:04:05.000")
	case string:
		return v
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

func (o Options) float(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	if math.Abs(f) >= 1e15 { // beyond exact decimals: 15 significant digits
		return strconv.FormatFloat(f, 'g', 15, 64)
	}
	p := math.Pow10(o.Precision)
	r := math.Round(f*p) / p
	s := strconv.FormatFloat(r, 'f', o.Precision, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
