package lake

import (
	"fmt"
	"strings"
)

// kind says how a table's rows reach the lake.
type kind int

const (
	// appendOnly tables (gtsm_etl, dead_letters) carry the Kafka offset of
	// every row and never change a row once its offset is committed: a
	// publish writes the rows of one offset range, once, in files named by
	// that range.
	appendOnly kind = iota
	// upserted tables change rows in place (late data, INSERT OR REPLACE,
	// DELETE): a publish writes every span whose rows changed again, whole,
	// under a newer name; readers take the newest file of each span.
	upserted
)

// key is one hive directory level: name=value, value computed by expr.
type key struct{ name, expr string }

// table is how one of the processor's tables is laid out in the lake.
type table struct {
	name string
	kind kind
	keys []key
	// where selects the partition's rows: %[1]d is the partition, %[2]s
	// the quoted topic (append-only tables add the offset range).
	where string
}

// siteOf selects the sites of partition %[1]d. The Kafka key bytes that
// murmur2 hashes include the schema registry's id of the key schema, so
// the partition of a site is taken from what the processor recorded
// (site_state.kafka_partition: the partition its messages came from), not
// recomputed; a site without any stored message is not published.
const siteOf = `site IN (SELECT site FROM site_state WHERE kafka_partition = %[1]d)`

func siteDate(col string) []key {
	return []key{{"site", "site"}, {"date", "strftime(" + col + ", '%Y-%m-%d')"}}
}

var siteOnly = []key{{"site", "site"}}

// tables are the processor's tables users query, in the order published.
// Internal state (level2_state, level2_checkpoint, schema_migrations, the
// lake_* bookkeeping) is not published.
var tables = []table{
	{name: "gtsm_etl", kind: appendOnly, where: `kafka_partition = %[1]d`,
		keys: []key{{"site", "key_site"}, {"date", `strftime(epoch_ms("time"), '%Y-%m-%d')`}}},
	{name: "dead_letters", kind: appendOnly, where: `topic = %[2]s AND kafka_partition = %[1]d`,
		keys: []key{{"kafka_partition", "kafka_partition"}}},
	{name: "windows", kind: upserted, where: siteOf, keys: siteDate("window_start")},
	{name: "gaps", kind: upserted, where: siteOf, keys: siteDate("gap_start")},
	{name: "site_state", kind: upserted, where: siteOf, keys: siteOnly},
	{name: "level2_gauge_data", kind: upserted, where: siteOf, keys: siteDate(`"time"`)},
	{name: "level2_regional_data", kind: upserted, where: siteOf, keys: siteDate(`"time"`)},
	{name: "station_metadata", kind: upserted, where: siteOf, keys: siteOnly},
	{name: "site_reference", kind: upserted, where: siteOf, keys: siteOnly},
	{name: "kafka_offsets", kind: upserted, where: `topic = %[2]s AND kafka_partition = %[1]d`,
		keys: []key{{"kafka_partition", "kafka_partition"}}},
}

// glob matches every data file of the table under dir.
func (t table) glob(dir string) string {
	return dir + "/" + t.name + "/" + strings.Repeat("*/", len(t.keys)) + "*.parquet"
}

// spanExpr is the SQL of a row's span: 'site=' || (expr) || '/date=' || ...
func (t table) spanExpr() string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		sep := "/"
		if i == 0 {
			sep = ""
		}
		parts[i] = fmt.Sprintf("'%s%s=' || coalesce(CAST(%s AS VARCHAR), 'null')", sep, k.name, k.expr)
	}
	return strings.Join(parts, " || ")
}

// keyCols are the PARTITION_BY columns lake_k0, lake_k1, ... of a COPY.
func (t table) keyCols() (sel, names string) {
	var s, n []string
	for i, k := range t.keys {
		s = append(s, fmt.Sprintf("coalesce(CAST(%s AS VARCHAR), 'null') AS lake_k%d", k.expr, i))
		n = append(n, fmt.Sprintf("lake_k%d", i))
	}
	return strings.Join(s, ", "), strings.Join(n, ", ")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
