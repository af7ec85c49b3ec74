package compare

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// DefaultFlinkProperties are the session settings a comparison needs: UTC
// (window bounds and TIMESTAMP_LTZ -> TIMESTAMP casts follow the session time
// zone, the processor's windows are UTC) and streaming execution (the
// queries are written for it; the bounded scan makes them finish).
func DefaultFlinkProperties() map[string]string {
	return map[string]string{
		"table.local-time-zone":  "UTC",
		"execution.runtime-mode": "streaming",
	}
}

// FlinkSource runs queries on Flink through the SQL Gateway, in one session
// opened on first use, after running the DDL statements in it.
type FlinkSource struct {
	Gateway    *Gateway
	DDL        []string          // e.g. flink.Statements(flink.DDL())
	Properties map[string]string // session configuration
	session    string
}

// Name is "flink".
func (f *FlinkSource) Name() string { return "flink" }

// Run executes one Flink SQL query; Flink queries take no bind arguments.
func (f *FlinkSource) Run(ctx context.Context, query string, args ...any) (*Table, error) {
	if len(args) > 0 {
		return nil, errors.New("flink queries take no bind arguments")
	}
	if f.session == "" {
		h, err := f.Gateway.OpenSession(ctx, "gtsm-compare", f.Properties)
		if err != nil {
			return nil, err
		}
		f.session = h
		for i, stmt := range f.DDL {
			if _, err := f.Gateway.Execute(ctx, h, stmt); err != nil {
				return nil, fmt.Errorf("flink DDL statement %d (%.40q...): %w", i+1, stmt, err)
			}
		}
	}
	res, err := f.Gateway.Execute(ctx, f.session, query)
	if err != nil {
		return nil, err
	}
	return res.Table, nil
}

// Close closes the gateway session, if one was opened.
func (f *FlinkSource) Close(ctx context.Context) error {
	if f.session == "" {
		return nil
	}
	err := f.Gateway.CloseSession(ctx, f.session)
	f.session = ""
	return err
}

// DBSource runs queries on a database/sql handle: a DuckDB file opened with
// the "duckdb" driver (github.com/duckdb/duckdb-go/v2) when no processor
// holds it, or any other driver.
type DBSource struct {
	DB    *sql.DB
	Label string
}

// Name is the label, "duckdb" by default.
func (s *DBSource) Name() string { return nameOr(s.Label, "duckdb") }

// Run executes one query with its bind arguments.
func (s *DBSource) Run(ctx context.Context, query string, args ...any) (*Table, error) {
	rows, err := s.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	t := &Table{Columns: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("row %d: %w", len(t.Rows), err)
		}
		for i, v := range vals {
			vals[i] = Normalize(v)
		}
		t.Rows = append(t.Rows, vals)
	}
	return t, rows.Err()
}

// PGSource runs queries over the Postgres wire protocol: the processor's SQL
// endpoint (gtsm process --sql-addr).
type PGSource struct {
	Conn  *pgx.Conn
	Label string
}

// Name is the label, "duckdb" by default (the processor's DuckDB answers).
func (s *PGSource) Name() string { return nameOr(s.Label, "duckdb") }

// Run executes one query with its bind arguments.
func (s *PGSource) Run(ctx context.Context, query string, args ...any) (*Table, error) {
	rows, err := s.Conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	t := &Table{}
	for _, fd := range rows.FieldDescriptions() {
		t.Columns = append(t.Columns, fd.Name)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", len(t.Rows), err)
		}
		for i, v := range vals {
			vals[i] = Normalize(v)
		}
		t.Rows = append(t.Rows, vals)
	}
	return t, rows.Err()
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Normalize maps a driver's value to the types a Table holds: nil, int64,
// float64, string, bool, time.Time (UTC).
func Normalize(v any) any {
	switch v := v.(type) {
	case nil, int64, float64, string, bool:
		return v
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		if v <= 1<<63-1 {
			return int64(v)
		}
		return fmt.Sprint(v)
	case float32:
		return float64(v)
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC()
	case *big.Int: // DuckDB HUGEINT (e.g. SUM of BIGINT)
		if v.IsInt64() {
			return v.Int64()
		}
		return v.String()
	case pgtype.Numeric:
		if !v.Valid {
			return nil
		}
		f, err := v.Float64Value()
		if err != nil {
			return fmt.Sprint(v)
		}
		return f.Float64
	case interface{ Float64() float64 }: // duckdb.Decimal
		return v.Float64()
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}
