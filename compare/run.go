package compare

import (
	"context"
	"errors"
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
// returns the diffs of the queries that ran. A query that fails on either
// side is reported (as "name: ERROR: ...") and the others still run, so one
// query Flink rejects does not hide the rest; the returned error then names
// every failure with its side. A cancelled context stops the run.
func Run(ctx context.Context, flinkSide, duckSide Source, queries []Query, o Options, w io.Writer, maxRows int) ([]*Diff, error) {
	var diffs []*Diff
	var failed []error
	for _, q := range queries {
		if err := ctx.Err(); err != nil {
			return diffs, err
		}
		d, err := runOne(ctx, flinkSide, duckSide, q, o)
		if err != nil {
			fmt.Fprintf(w, "%s: ERROR: %v\n", q.Name, err)
			failed = append(failed, err)
			continue
		}
		if err := d.Write(w, maxRows); err != nil {
			return diffs, err
		}
		diffs = append(diffs, d)
	}
	if len(failed) > 0 {
		return diffs, fmt.Errorf("%d of %d queries failed: %w", len(failed), len(queries), errors.Join(failed...))
	}
	return diffs, nil
}

func runOne(ctx context.Context, flinkSide, duckSide Source, q Query, o Options) (*Diff, error) {
	left, err := flinkSide.Run(ctx, q.Flink)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", q.Name, flinkSide.Name(), err)
	}
	right, err := duckSide.Run(ctx, q.DuckDB, q.Args...)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", q.Name, duckSide.Name(), err)
	}
	return Compare(q.Name, flinkSide.Name(), left, duckSide.Name(), right, o), nil
}
