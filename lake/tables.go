package lake

import (
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
)

// kind says how a table's rows reach the lake.
type kind int

const (
	// appendOnly tables (gtsm_etl, dead_letters) carry the Kafka offset of
	// every row and never change a row once its offset is committed: a
	// publish appends the rows of one offset range, once, and records the
	// range's end in the same Iceberg commit.
	appendOnly kind = iota
	// upserted tables change rows in place (late data, INSERT OR REPLACE,
	// DELETE): a publish replaces every span (partition) whose rows
	// changed, whole, in one Iceberg commit that removes the span's old
	// data files and adds its new ones.
	upserted
)

// transform is how a partition key is derived from its source column.
type transform int

const (
	identity transform = iota
	// day of a TIMESTAMP column (Iceberg's day transform).
	day
	// dayMillis is the UTC day of a BIGINT of epoch milliseconds
	// (gtsm_etl."time"): Iceberg's truncate[86400000], the day's first
	// millisecond.
	dayMillis
)

const msPerDay = 86_400_000

// pkey is one Iceberg partition field of a table.
type pkey struct {
	col string
	tr  transform
}

// name is the partition field's name (Trino, Spark and PyIceberg show it).
func (k pkey) name() string {
	switch k.tr {
	case day:
		return k.col + "_day"
	case dayMillis:
		return k.col + "_day"
	}
	return k.col
}

// sqlExpr is the DuckDB expression of the partition value of a row: the
// same value Iceberg's transform gives (days since 1970-01-01 for day, the
// truncated milliseconds for dayMillis).
func (k pkey) sqlExpr() string {
	c := quoteIdent(k.col)
	switch k.tr {
	case day:
		return fmt.Sprintf("CAST(date_diff('day', DATE '1970-01-01', CAST(%s AS DATE)) AS BIGINT)", c)
	case dayMillis:
		return fmt.Sprintf("(%[1]s - (((%[1]s %% %[2]d) + %[2]d) %% %[2]d))", c, msPerDay)
	}
	return c
}

func (k pkey) transform() iceberg.Transform {
	switch k.tr {
	case day:
		return iceberg.DayTransform{}
	case dayMillis:
		return iceberg.TruncateTransform{Width: msPerDay}
	}
	return iceberg.IdentityTransform{}
}

// table is how one of the processor's tables is published.
type table struct {
	name string
	kind kind
	// keys are the Iceberg partition fields; a span is one partition.
	keys []pkey
	// where selects the partition's rows: %[1]d is the Kafka partition,
	// %[2]s the quoted topic (append-only tables add the offset range).
	where string
	// owned selects, among the spans of the Iceberg table, those of the
	// Kafka partition: the key column whose value set is the partition's
	// ("site": the partition's sites; "kafka_partition": the partition).
	owned string
}

// siteOf selects the sites of partition %[1]d. The Kafka key bytes that
// murmur2 hashes include the schema registry's id of the key schema, so
// the partition of a site is taken from what the processor recorded
// (site_state.kafka_partition: the partition its messages came from), not
// recomputed; a site without any stored message is not published.
const siteOf = `site IN (SELECT site FROM site_state WHERE kafka_partition = %[1]d)`

func siteDay(col string) []pkey { return []pkey{{"site", identity}, {col, day}} }

var siteOnly = []pkey{{"site", identity}}

var byPartition = []pkey{{"kafka_partition", identity}}

// tables are the processor's tables users query, in the order published.
// Internal state (level2_state, level2_checkpoint, schema_migrations, the
// lake_* bookkeeping) is not published.
var tables = []table{
	{name: "gtsm_etl", kind: appendOnly, where: `kafka_partition = %[1]d`,
		keys: []pkey{{"key_site", identity}, {"time", dayMillis}}},
	{name: "dead_letters", kind: appendOnly, where: `topic = %[2]s AND kafka_partition = %[1]d`, keys: byPartition},
	{name: "windows", kind: upserted, where: siteOf, keys: siteDay("window_start"), owned: "site"},
	{name: "gaps", kind: upserted, where: siteOf, keys: siteDay("gap_start"), owned: "site"},
	{name: "site_state", kind: upserted, where: siteOf, keys: siteOnly, owned: "site"},
	{name: "level2_gauge_data", kind: upserted, where: siteOf, keys: siteDay("time"), owned: "site"},
	{name: "level2_regional_data", kind: upserted, where: siteOf, keys: siteDay("time"), owned: "site"},
	{name: "station_metadata", kind: upserted, where: siteOf, keys: siteOnly, owned: "site"},
	{name: "site_reference", kind: upserted, where: siteOf, keys: siteOnly, owned: "site"},
	{name: "kafka_offsets", kind: upserted, where: `topic = %[2]s AND kafka_partition = %[1]d`, keys: byPartition,
		owned: "kafka_partition"},
}

func tableByName(name string) (table, bool) {
	for _, t := range tables {
		if t.name == name {
			return t, true
		}
	}
	return table{}, false
}

// spanID is the SQL of a row's span identifier: an md5 of the partition
// values, length-prefixed so no two spans share one. It names the
// directory DuckDB's COPY ... PARTITION_BY writes a span's file into, so
// no site name (data) ever becomes a path.
func (t table) spanID() string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		v := fmt.Sprintf("CAST(%s AS VARCHAR)", k.sqlExpr())
		parts[i] = fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN 'n' ELSE strlen(%[1]s) || ':' || %[1]s END", v)
	}
	return "md5(" + strings.Join(parts, " || '|' || ") + ")"
}

// spanCols is the SQL of a row's partition values, as VARCHAR.
func (t table) spanCols() string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = fmt.Sprintf("CAST(%s AS VARCHAR)", k.sqlExpr())
	}
	return strings.Join(parts, ", ")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
