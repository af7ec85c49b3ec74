package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

// Columnar landing. The row appender boxes every value into a driver.Value
// and converts it cell by cell; it kept the sink at about one core at ~280k
// rows/s (issue 16). Narrow rows (every Min and Hour record) are instead
// read by DuckDB from a Go table function that fills whole data chunks with
// typed writes, inside the batch transaction:
//
//	INSERT INTO gtsm_etl (narrow columns) SELECT ..., '<session>', ... FROM <land>(session)
//
// A columnar INSERT of ≥ 122,880 rows in one transaction also lets DuckDB
// write row groups straight to the file instead of the WAL.

// landCols are the table function's columns; the session is a SQL literal.
var landTypes = []duckdb.Type{duckdb.TYPE_VARCHAR, duckdb.TYPE_VARCHAR, duckdb.TYPE_BIGINT, duckdb.TYPE_VARCHAR,
	duckdb.TYPE_INTEGER, duckdb.TYPE_INTEGER, duckdb.TYPE_INTEGER, duckdb.TYPE_INTEGER,
	duckdb.TYPE_INTEGER, duckdb.TYPE_BIGINT, duckdb.TYPE_BOOLEAN}

var landNames = []string{"key_site", "site", "time", "timestamp", "s1", "s2", "s3", "s4", "kafka_partition", "kafka_offset", "late"}

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
	sessT, err := duckdb.NewTypeInfo(duckdb.TYPE_INTEGER)
	if err != nil {
		return fmt.Errorf("land argument: %w", err)
	}
	name := fmt.Sprintf("gtsm_land_%p", k)
	name = strings.ReplaceAll(name, "0x", "")
	f := duckdb.ChunkTableFunction{
		Config: duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{sessT}},
		BindArguments: func(named map[string]any, args ...any) (duckdb.ChunkTableSource, error) {
			s, _ := args[0].(int32)
			if s < 0 || int(s) >= len(k.pend) {
				return nil, fmt.Errorf("land: session %d", s)
			}
			return &landSource{cols: cols, rows: k.pend[s], strain: record.StrainFields(bottle.Session(s))}, nil
		},
	}
	if err := duckdb.RegisterTableUDF(k.conn, name, f); err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	k.land = name
	return nil
}

// landPending inserts the pending narrow rows of each session and empties
// the lists (keeping their capacity).
func (k *sink) landPending(ctx context.Context) error {
	for _, s := range bottle.Sessions {
		rows := k.pend[s]
		if len(rows) == 0 {
			continue
		}
		cols := narrowColumns(s)
		q := fmt.Sprintf(`INSERT INTO gtsm_etl (%s) SELECT key_site, site, "time", "timestamp", s1, s2, s3, s4, '%s', kafka_partition, kafka_offset, late FROM %s(%d)`,
			quoteCols(cols), s.String(), k.land, int(s))
		_, err := k.conn.ExecContext(ctx, q)
		clear(rows)
		k.pend[s] = rows[:0]
		if err != nil {
			return fmt.Errorf("land %d %s rows into gtsm_etl (partitions/offsets from %d/%d): %w", len(rows), s, rows[0].partition, rows[0].offset, err)
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

// landSource scans a list of rows one data chunk at a time.
type landSource struct {
	cols   []duckdb.ColumnInfo
	rows   []*row
	strain [4]int
	pos    int
}

func (l *landSource) ColumnInfos() []duckdb.ColumnInfo { return l.cols }

func (l *landSource) Cardinality() *duckdb.CardinalityInfo {
	return &duckdb.CardinalityInfo{Cardinality: uint(len(l.rows)), Exact: true}
}

func (l *landSource) Init() {}

func (l *landSource) FillChunk(c duckdb.DataChunk) error {
	n := min(duckdb.GetDataChunkCapacity(), len(l.rows)-l.pos)
	for i := 0; i < n; i++ {
		r := l.rows[l.pos+i]
		rec := &r.rec
		errs := [...]error{
			duckdb.SetChunkValue(c, 0, i, r.keySite),
			duckdb.SetChunkValue(c, 1, i, rec.Site),
			duckdb.SetChunkValue(c, 2, i, rec.Time),
			duckdb.SetChunkValue(c, 3, i, rec.Timestamp),
			duckdb.SetChunkValue(c, 8, i, r.partition),
			duckdb.SetChunkValue(c, 9, i, r.offset),
			duckdb.SetChunkValue(c, 10, i, r.late),
		}
		for j, f := range l.strain {
			if rec.IsSet(f) {
				errs[0] = errors.Join(errs[0], duckdb.SetChunkValue(c, 4+j, i, rec.Ints[f-record.FirstInt]))
			} else {
				errs[0] = errors.Join(errs[0], c.SetValue(4+j, i, nil))
			}
		}
		for _, err := range errs {
			if err != nil {
				return fmt.Errorf("land site %s partition %d offset %d: %w", r.keySite, r.partition, r.offset, err)
			}
		}
	}
	l.pos += n
	return c.SetSize(n)
}
