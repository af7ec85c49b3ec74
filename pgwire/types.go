package pgwire

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgtype"
)

// oidForType maps a DuckDB column type to the Postgres type the endpoint
// announces. Types without a faithful Postgres twin (nested, enum, uuid,
// interval, time) travel as text in DuckDB's own rendering, which every
// client can show.
func oidForType(t duckdb.Type) uint32 {
	switch t {
	case duckdb.TYPE_BOOLEAN:
		return pgtype.BoolOID
	case duckdb.TYPE_TINYINT, duckdb.TYPE_SMALLINT, duckdb.TYPE_UTINYINT:
		return pgtype.Int2OID
	case duckdb.TYPE_INTEGER, duckdb.TYPE_USMALLINT:
		return pgtype.Int4OID
	case duckdb.TYPE_BIGINT, duckdb.TYPE_UINTEGER:
		return pgtype.Int8OID
	case duckdb.TYPE_UBIGINT, duckdb.TYPE_HUGEINT, duckdb.TYPE_UHUGEINT, duckdb.TYPE_DECIMAL, duckdb.TYPE_BIGNUM:
		return pgtype.NumericOID
	case duckdb.TYPE_FLOAT:
		return pgtype.Float4OID
	case duckdb.TYPE_DOUBLE:
		return pgtype.Float8OID
	case duckdb.TYPE_DATE:
		return pgtype.DateOID
	case duckdb.TYPE_TIMESTAMP, duckdb.TYPE_TIMESTAMP_S, duckdb.TYPE_TIMESTAMP_MS, duckdb.TYPE_TIMESTAMP_NS:
		return pgtype.TimestampOID
	case duckdb.TYPE_TIMESTAMP_TZ:
		return pgtype.TimestamptzOID
	case duckdb.TYPE_BLOB:
		return pgtype.ByteaOID
	default:
		return pgtype.TextOID
	}
}

// duckdbTypeOIDs maps database/sql's DatabaseTypeName (and
// duckdb_columns.data_type) to the Postgres type the endpoint announces, as
// oidForType does; the catalog (catalog.go) reports columns with it too.
// DECIMAL(p,s) is numeric; names not here are sent as text.
var duckdbTypeOIDs = map[string]uint32{
	"BOOLEAN": pgtype.BoolOID,
	"TINYINT": pgtype.Int2OID, "SMALLINT": pgtype.Int2OID, "UTINYINT": pgtype.Int2OID,
	"INTEGER": pgtype.Int4OID, "USMALLINT": pgtype.Int4OID,
	"BIGINT": pgtype.Int8OID, "UINTEGER": pgtype.Int8OID,
	"UBIGINT": pgtype.NumericOID, "HUGEINT": pgtype.NumericOID, "UHUGEINT": pgtype.NumericOID, "BIGNUM": pgtype.NumericOID, "VARINT": pgtype.NumericOID,
	"FLOAT": pgtype.Float4OID, "DOUBLE": pgtype.Float8OID,
	"DATE":      pgtype.DateOID,
	"TIMESTAMP": pgtype.TimestampOID, "TIMESTAMP_S": pgtype.TimestampOID, "TIMESTAMP_MS": pgtype.TimestampOID, "TIMESTAMP_NS": pgtype.TimestampOID,
	"TIMESTAMPTZ": pgtype.TimestamptzOID, "TIMESTAMP WITH TIME ZONE": pgtype.TimestamptzOID,
	"BLOB": pgtype.ByteaOID,
}

// oidForTypeName does the same as oidForType from database/sql's
// DatabaseTypeName ("BIGINT", "DECIMAL(18,3)", "TIMESTAMP WITH TIME ZONE",
// ...), used when a statement had to be described by running it.
func oidForTypeName(name string) uint32 {
	if strings.HasPrefix(name, "DECIMAL") {
		return pgtype.NumericOID
	}
	if oid, ok := duckdbTypeOIDs[name]; ok {
		return oid
	}
	return pgtype.TextOID
}

// toWire converts a value scanned from DuckDB into what pgtype encodes for
// the announced oid. A value that does not fit (a describe that guessed
// wrong) is an error naming both, never a silently wrong cell.
func toWire(oid uint32, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch oid {
	case pgtype.TextOID:
		return Text(v), nil
	case pgtype.BoolOID:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		if i, ok := asInt64(v); ok {
			switch oid {
			case pgtype.Int2OID:
				return int16(i), nil
			case pgtype.Int4OID:
				return int32(i), nil
			}
			return i, nil
		}
	case pgtype.Float4OID:
		if f, ok := v.(float32); ok {
			return f, nil
		}
	case pgtype.Float8OID:
		switch f := v.(type) {
		case float64:
			return f, nil
		case float32:
			return float64(f), nil
		}
	case pgtype.NumericOID:
		switch x := v.(type) {
		case duckdb.Decimal:
			return pgtype.Numeric{Int: x.Value, Exp: -int32(x.Scale), Valid: true}, nil
		case *big.Int:
			return pgtype.Numeric{Int: x, Valid: true}, nil
		case uint64:
			return pgtype.Numeric{Int: new(big.Int).SetUint64(x), Valid: true}, nil
		case string: // UHUGEINT and BIGNUM stream as DuckDB's text of the number
			var n pgtype.Numeric
			if err := n.Scan(x); err == nil {
				return n, nil
			}
		}
		if i, ok := asInt64(v); ok {
			return pgtype.Numeric{Int: big.NewInt(i), Valid: true}, nil
		}
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		if t, ok := v.(time.Time); ok {
			return t, nil
		}
	case pgtype.ByteaOID:
		if b, ok := v.([]byte); ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("value %v (%T) does not fit the announced Postgres type oid %d", v, v, oid)
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

// Text renders a DuckDB value the way DuckDB's own CLI would: lists as
// [a, b], structs as {'k': v}, timestamps without a zone suffix. The shell
// uses it for its table/csv/line output too.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case []byte:
		return fmt.Sprintf("\\x%x", x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case time.Time:
		return formatTime(x)
	case duckdb.Decimal:
		return formatDecimal(x)
	case *big.Int:
		return x.String()
	case duckdb.Interval:
		return formatInterval(x)
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = nested(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // Go maps lose DuckDB's struct field order
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = "'" + k + "': " + nested(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case duckdb.Map:
		parts := make([]string, 0, len(x))
		for k, e := range x {
			parts = append(parts, nested(k)+"="+nested(e))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// nested quotes strings inside lists and structs, as DuckDB does.
func nested(v any) string {
	if s, ok := v.(string); ok {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return Text(v)
}

// formatFloat prints the shortest representation that reads back the same,
// in plain notation for everyday magnitudes (48116355 not 4.8116355e+07).
func formatFloat(f float64, bits int) string {
	if a := math.Abs(f); a == 0 || a >= 1e-5 && a < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, bits)
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// formatTime prints a UTC time without zone, with the fraction only when
// there is one; DATE columns are shortened by the caller, which knows the type.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999")
}

func formatInterval(iv duckdb.Interval) string {
	var parts []string
	if iv.Months != 0 {
		parts = append(parts, fmt.Sprintf("%d mons", iv.Months))
	}
	if iv.Days != 0 {
		parts = append(parts, fmt.Sprintf("%d days", iv.Days))
	}
	if iv.Micros != 0 || len(parts) == 0 {
		d := time.Duration(iv.Micros) * time.Microsecond
		sign := ""
		if d < 0 {
			sign, d = "-", -d
		}
		h := int64(d / time.Hour)
		m := int64(d/time.Minute) % 60
		s := float64(d%time.Minute) / float64(time.Second)
		parts = append(parts, fmt.Sprintf("%s%02d:%02d:%s", sign, h, m, strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%09.6f", s), "0"), ".")))
	}
	return strings.Join(parts, " ")
}

// formatDecimal keeps the declared scale (-0.500 for DECIMAL(18,3)), as
// DuckDB and Postgres print decimals; duckdb.Decimal.String trims zeros.
func formatDecimal(d duckdb.Decimal) string {
	digits := new(big.Int).Abs(d.Value).String()
	sign := ""
	if d.Value.Sign() < 0 {
		sign = "-"
	}
	scale := int(d.Scale)
	if scale == 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// pgTextTypes adjusts psql-wire's type map to how Postgres writes values in
// text format: pgx writes a timestamptz as "2021-07-01 00:00:01Z", which
// pgjdbc refuses ("Bad value for type timestamp"); Postgres (TimeZone UTC)
// writes "2021-07-01 00:00:01+00".
func pgTextTypes(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &pgTimestamptzCodec{}})
}

type pgTimestamptzCodec struct{ pgtype.TimestamptzCodec }

func (c *pgTimestamptzCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(pgtype.TimestamptzValuer); ok && format == pgtype.TextFormatCode {
		return timestamptzText{}
	}
	return c.TimestamptzCodec.PlanEncode(m, oid, format, value)
}

type timestamptzText struct{}

func (timestamptzText) Encode(value any, buf []byte) ([]byte, error) {
	ts, err := value.(pgtype.TimestamptzValuer).TimestamptzValue()
	if err != nil || !ts.Valid {
		return nil, err
	}
	switch ts.InfinityModifier {
	case pgtype.Infinity:
		return append(buf, "infinity"...), nil
	case pgtype.NegativeInfinity:
		return append(buf, "-infinity"...), nil
	}
	t := ts.Time.UTC()
	if t.Year() <= 0 {
		return append(buf, t.AddDate(1-2*t.Year(), 0, 0).Format("2006-01-02 15:04:05.999999")+"+00 BC"...), nil
	}
	return append(buf, t.Format("2006-01-02 15:04:05.999999")+"+00"...), nil
}
