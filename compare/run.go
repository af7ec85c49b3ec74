package compare

import (
	"context"
	"fmt"
	"io"
)

// Query is one named query in both dialects.
type Query struct {
	Name   string
	Flink  string // Flink SQL (flink/queries/<name>.sql)
	DuckDB string // DuckDB SQL (sql/queries/<name>.sql)
	Args   []any  // bind arguments of the DuckDB query (nil = NULL: all sites)
}

// Run runs each query on both sources, writes each comparison to w and
// returns the diffs. An error of either source stops the run and names the
// query and the side.
func Run(ctx context.Context, flinkSide, duckSide Source, queries []Query, o Options, w io.Writer, maxRows int) ([]*Diff, error) {
	var diffs []*Diff
	for _, q := range queries {
		left, err := flinkSide.Run(ctx, q.Flink)
		if err != nil {
			return diffs, fmt.Errorf("%s on %s: %w", q.Name, flinkSide.Name(), err)
		}
		right, err := duckSide.Run(ctx, q.DuckDB, q.Args...)
		if err != nil {
			return diffs, fmt.Errorf("%s on %s: %w", q.Name, duckSide.Name(), err)
		}
		d := Compare(q.Name, flinkSide.Name(), left, duckSide.Name(), right, o)
		if err := d.Write(w, maxRows); err != nil {
			return diffs, err
		}
		diffs = append(diffs, d)
	}
	return diffs, nil
}
