package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/earthscope/gtsm-stream/bottle"
)

// Columnar landing. The row appender boxes every value into a driver.Value
// and converts it cell by cell; it kept the sink at about one core at ~280k
// rows/s (issue 16). Narrow rows (every Min and Hour record) are instead
// read by DuckDB from a Go table function that fills whole data chunks with
// typed writes, inside the batch transaction:
//
//	INSERT INTO gtsm_etl (narrow columns) SELECT ?site, ?site, time, ..., '<session>', ?partition, ... FROM <land>()
//
// once per site and session of a batch (rowSet, rows.go, holds them in
// columns already).
//
// A columnar INSERT of ≥ 122,880 rows in one transaction also lets DuckDB
// write row groups straight to the file instead of the WAL.

// landTypes are the table function's columns; site, session and partition
// are the same for all its rows and are parameters of the INSERT.
var landTypes = []duckdb.Type{duckdb.TYPE_BIGINT, duckdb.TYPE_VARCHAR,
	duckdb.TYPE_INTEGER, duckdb.TYPE_INTEGER, duckdb.TYPE_INTEGER, duckdb.TYPE_INTEGER,
	duckdb.TYPE_BIGINT, duckdb.TYPE_BOOLEAN}

var landNames = []string{"time", "timestamp", "s1", "s2", "s3", "s4", "kafka_offset", "late"}

// registerLand registers the sink's table function on its connection. The
// name is the sink's own (a function closes over its sink; two sinks on one
// database must not share one).
func (k *sink) registerLand() error {
	cols := make([]duckdb.ColumnInfo, len(landTypes))
	for i, t := range landTypes {
		ti, err := duckdb.NewTypeInfo(t)
		if err != nil {
			return fmt.Errorf("land column %s: %w", landNames[i], err)
		}
		cols[i] = duckdb.ColumnInfo{Name: landNames[i], T: ti}
	}
	name := fmt.Sprintf("gtsm_land_%p", k)
	name = strings.ReplaceAll(name, "0x", "")
	f := duckdb.ChunkTableFunction{
		BindArguments: func(named map[string]any, args ...any) (duckdb.ChunkTableSource, error) {
			if k.pend == nil {
				return nil, errors.New("land: no rows pending")
			}
			return &landSource{cols: cols, rows: k.pend}, nil
		},
	}
	if err := duckdb.RegisterTableUDF(k.conn, name, f); err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	k.land = name
	for _, s := range bottle.Sessions {
		k.landSQL[s] = fmt.Sprintf(`INSERT INTO gtsm_etl (%s) SELECT ?, ?, "time", "timestamp", s1, s2, s3, s4, '%s', ?, kafka_offset, late FROM %s()`,
			quoteCols(narrowColumns(s)), s.String(), name)
	}
	return nil
}

// landNarrow lands one site's and session's narrow rows of a batch: through
// the C appender's data chunks (chunks.go), or else one statement that reads
// them from the table function, or else the narrow row appender (the last
// two for BenchmarkLand's comparison, and the table function if the C
// appender cannot be had).
func (k *sink) landNarrow(ctx context.Context, n *narrowRows, part int32) error {
	if n.len() == 0 {
		return nil
	}
	if c := k.chunks[n.session]; c != nil {
		return c.land(n, part)
	}
	if k.land == "" {
		return k.appendNarrow(n, part)
	}
	k.pend = n
	_, err := k.conn.ExecContext(ctx, k.landSQL[n.session], n.site, n.site, part)
	k.pend = nil
	if err != nil {
		return fmt.Errorf("land %d %s rows of site %s into gtsm_etl (partition %d offsets %d..%d): %w",
			n.len(), n.session, n.site, part, n.off[0], n.off[n.len()-1], err)
	}
	return nil
}

// appendNarrow appends narrow rows through the session's narrow appender.
func (k *sink) appendNarrow(n *narrowRows, part int32) error {
	a := k.nargs
	for i := range n.time {
		a[0], a[1], a[2], a[3] = n.site, n.site, n.time[i], n.ts[i]
		for j := range n.strain {
			a[4+j] = nullInt(n.null[i]&(1<<j) == 0, n.strain[j][i])
		}
		a[8], a[9], a[10], a[11] = n.session.String(), part, n.off[i], n.late[i]
		if err := k.narrow[n.session].AppendRow(a...); err != nil {
			return fmt.Errorf("append gtsm_etl row (site %s partition %d offset %d): %w", n.site, part, n.off[i], err)
		}
	}
	return nil
}

func quoteCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = `"` + c + `"`
	}
	return strings.Join(q, ", ")
}

// landSource scans one narrowRows a data chunk at a time, with typed
// writes (no driver.Value boxing; fixed-width values are stored straight
// into the vector, only the timestamp string is a cgo call).
type landSource struct {
	cols []duckdb.ColumnInfo
	rows *narrowRows
	pos  int
}

func (l *landSource) ColumnInfos() []duckdb.ColumnInfo { return l.cols }

func (l *landSource) Cardinality() *duckdb.CardinalityInfo {
	return &duckdb.CardinalityInfo{Cardinality: uint(l.rows.len()), Exact: true}
}

func (l *landSource) Init() {}

func (l *landSource) FillChunk(c duckdb.DataChunk) error {
	r := l.rows
	n := min(duckdb.GetDataChunkCapacity(), r.len()-l.pos)
	for i := 0; i < n; i++ {
		x := l.pos + i
		errs := [...]error{
			duckdb.SetChunkValue(c, 0, i, r.time[x]),
			duckdb.SetChunkValue(c, 1, i, r.ts[x]),
			duckdb.SetChunkValue(c, 6, i, r.off[x]),
			duckdb.SetChunkValue(c, 7, i, r.late[x]),
		}
		for j := range r.strain {
			if r.null[x]&(1<<j) == 0 {
				errs[0] = errors.Join(errs[0], duckdb.SetChunkValue(c, 2+j, i, r.strain[j][x]))
			} else {
				errs[0] = errors.Join(errs[0], c.SetValue(2+j, i, nil))
			}
		}
		for _, err := range errs {
			if err != nil {
				return fmt.Errorf("land site %s %s offset %d: %w", r.site, r.session, r.off[x], err)
			}
		}
	}
	l.pos += n
	return c.SetSize(n)
}
