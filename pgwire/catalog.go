package pgwire

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The catalog Postgres clients see. psql's \d family, pgjdbc's
// DatabaseMetaData, pgcli's completion and Grafana's query builder read
// pg_catalog and information_schema and expect a Postgres database:
//
//   - the user's schema is "public" (DuckDB's "main"): clients list it under
//     that name and qualify with it ("public"."gtsm_etl"), which is rewritten
//     to main outside string literals;
//   - column types are Postgres type oids matching pg_type (DuckDB's
//     pg_attribute holds its own type ids), named as Postgres names them,
//     the same types the endpoint sends the columns as;
//   - the processor's internal tables (schema_migrations, level2_state,
//     level2_checkpoint, lake_*) are not listed; they can still be queried
//     by name;
//   - no indexes are listed (DuckDB's ART indexes have no Postgres twin),
//     tables have access method heap.

// pgType is one Postgres type the catalog knows.
type pgType struct {
	oid      uint32
	name     string // pg_type.typname
	display  string // format_type's name
	len      int
	category byte
	array    uint32 // oid of its array type
}

var pgTypes = []pgType{
	{16, "bool", "boolean", 1, 'B', 1000},
	{17, "bytea", "bytea", -1, 'U', 1001},
	{18, "char", `"char"`, 1, 'S', 1002},
	{19, "name", "name", 64, 'S', 1003},
	{20, "int8", "bigint", 8, 'N', 1016},
	{21, "int2", "smallint", 2, 'N', 1005},
	{23, "int4", "integer", 4, 'N', 1007},
	{25, "text", "text", -1, 'S', 1009},
	{26, "oid", "oid", 4, 'N', 1028},
	{114, "json", "json", -1, 'U', 199},
	{700, "float4", "real", 4, 'N', 1021},
	{701, "float8", "double precision", 8, 'N', 1022},
	{1043, "varchar", "character varying", -1, 'S', 1015},
	{1082, "date", "date", 4, 'D', 1182},
	{1083, "time", "time without time zone", 8, 'D', 1183},
	{1114, "timestamp", "timestamp without time zone", 8, 'D', 1115},
	{1184, "timestamptz", "timestamp with time zone", 8, 'D', 1185},
	{1186, "interval", "interval", 16, 'T', 1187},
	{1700, "numeric", "numeric", -1, 'N', 1231},
	{2950, "uuid", "uuid", 16, 'U', 2951},
}

// Namespace oids of the catalog (public is DuckDB's main, found at run time).
const (
	pgCatalogNamespace   = 11
	infoSchemaNamespace  = 13000
	internalTablesFilter = `(relname IN ('schema_migrations', 'level2_state', 'level2_checkpoint') OR relname LIKE 'lake\_%' ESCAPE '\')`
)

// mainNamespace is the oid of the served database's main schema.
const mainNamespace = `(SELECT oid FROM duckdb_schemas() WHERE database_name = current_database() AND schema_name = 'main')`

// typeOIDCase is SQL mapping a DuckDB type name (duckdb_columns.data_type)
// to the Postgres oid the endpoint sends such a column as (oidForTypeName).
func typeOIDCase(col string) string {
	names := make([]string, 0, len(duckdbTypeOIDs))
	for n := range duckdbTypeOIDs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("CASE")
	fmt.Fprintf(&b, " WHEN %s LIKE 'DECIMAL%%' THEN %d", col, 1700)
	for _, n := range names {
		fmt.Fprintf(&b, " WHEN %s = '%s' THEN %d", col, n, duckdbTypeOIDs[n])
	}
	b.WriteString(" ELSE 25 END")
	return b.String()
}

// typeNameCase is SQL mapping a type oid to the given field of pgTypes.
func typeNameCase(col string, field func(pgType) string) string {
	var b strings.Builder
	b.WriteString("CASE " + col)
	for _, t := range pgTypes {
		fmt.Fprintf(&b, " WHEN %d THEN '%s'", t.oid, strings.ReplaceAll(field(t), "'", "''"))
		fmt.Fprintf(&b, " WHEN %d THEN '%s'", t.array, strings.ReplaceAll(field(pgType{name: "_" + t.name, display: t.display + "[]"}), "'", "''"))
	}
	b.WriteString(" ELSE NULL END")
	return b.String()
}

// pgTypeRows is the pg_type relation: the base types and their arrays.
func pgTypeRows() string {
	var rows []string
	for _, t := range pgTypes {
		byval := t.len > 0 && t.len <= 8
		storage := "p"
		if t.len < 0 {
			storage = "x"
		}
		rows = append(rows, fmt.Sprintf("(%d, '%s', %d, %v, 'b', '%c', 0, 0, %d, '%s')", t.oid, t.name, t.len, byval, t.category, t.array, storage))
		rows = append(rows, fmt.Sprintf("(%d, '_%s', -1, false, 'b', 'A', 0, %d, 0, 'x')", t.array, t.name, t.oid))
	}
	return `SELECT oid::BIGINT AS oid, typname, ` + fmt.Sprint(pgCatalogNamespace) + `::BIGINT AS typnamespace, 10::BIGINT AS typowner, typlen::SMALLINT AS typlen,
		typbyval, typtype, typcategory, false AS typispreferred, true AS typisdefined, ',' AS typdelim, typrelid::BIGINT AS typrelid,
		0::BIGINT AS typsubscript, typelem::BIGINT AS typelem, typarray::BIGINT AS typarray, typname || 'in' AS typinput, typname || 'out' AS typoutput,
		typname || 'recv' AS typreceive, typname || 'send' AS typsend, '-' AS typmodin, '-' AS typmodout, '-' AS typanalyze,
		'd' AS typalign, typstorage, false AS typnotnull, 0::BIGINT AS typbasetype, -1 AS typtypmod, 0 AS typndims,
		0::BIGINT AS typcollation, NULL::VARCHAR AS typdefaultbin, NULL::VARCHAR AS typdefault, NULL::VARCHAR[] AS typacl
	FROM (VALUES ` + strings.Join(rows, ", ") + `) AS v(oid, typname, typlen, typbyval, typtype, typcategory, typrelid, typelem, typarray, typstorage)`
}

// pgAttributeRows is pg_attribute from duckdb_columns(), with Postgres type
// oids and type modifiers (numeric(p,s): ((p << 16) | s) + 4).
func pgAttributeRows() string {
	oid := typeOIDCase("data_type")
	return `SELECT table_oid::BIGINT AS attrelid, column_name AS attname, (` + oid + `)::BIGINT AS atttypid, -1 AS attstattarget,
		(CASE WHEN (` + oid + `) IN (16) THEN 1 WHEN (` + oid + `) IN (21) THEN 2 WHEN (` + oid + `) IN (23, 700, 1082) THEN 4 WHEN (` + oid + `) IN (20, 701, 1114, 1184) THEN 8 ELSE -1 END)::SMALLINT AS attlen,
		column_index::SMALLINT AS attnum, 0 AS attndims, -1 AS attcacheoff,
		CASE WHEN data_type LIKE 'DECIMAL%' THEN ((numeric_precision << 16) | numeric_scale) + 4 ELSE -1 END AS atttypmod,
		(` + oid + `) IN (16, 21, 23, 20, 700, 701, 1082, 1114, 1184) AS attbyval,
		CASE WHEN (` + oid + `) IN (16, 21, 23, 20, 700, 701, 1082, 1114, 1184) THEN 'p' ELSE 'x' END AS attstorage, 'd' AS attalign,
		NOT is_nullable AS attnotnull, column_default IS NOT NULL AS atthasdef, false AS atthasmissing, '' AS attidentity, '' AS attgenerated,
		false AS attisdropped, true AS attislocal, 0 AS attinhcount, 0::BIGINT AS attcollation, '' AS attcompression,
		NULL::VARCHAR[] AS attacl, NULL::VARCHAR[] AS attoptions, NULL::VARCHAR[] AS attfdwoptions, NULL::VARCHAR AS attmissingval
	FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main'`
}

// catalogRelations replace pg_catalog relations (see catalogSubqueries).
func catalogRelations() map[string]string {
	return map[string]string{
		// Relations of the served database's main schema keep its oid
		// (public); DuckDB's catalog views go to pg_catalog and
		// information_schema; other attached databases are not listed.
		"pg_class": `SELECT c.* REPLACE (NULL::VARCHAR[] AS reloptions, CASE c.relkind WHEN 'r' THEN 2 ELSE 0 END::BIGINT AS relam, 'd' AS relreplident,
				CASE WHEN s.database_name = 'system' THEN CASE s.schema_name WHEN 'information_schema' THEN ` + fmt.Sprint(infoSchemaNamespace) + ` ELSE ` + fmt.Sprint(pgCatalogNamespace) + ` END
				ELSE c.relnamespace END::BIGINT AS relnamespace),
			false AS relforcerowsecurity
			FROM pg_catalog.pg_class c JOIN duckdb_schemas() s ON s.oid = c.relnamespace
			WHERE (s.database_name = current_database() AND s.schema_name = 'main' OR s.database_name = 'system') AND NOT ` + internalTablesFilter,
		"pg_namespace": `SELECT ` + mainNamespace + `::BIGINT AS oid, 'public' AS nspname, 10::BIGINT AS nspowner, NULL::VARCHAR[] AS nspacl
			UNION ALL SELECT ` + fmt.Sprint(pgCatalogNamespace) + `, 'pg_catalog', 10, NULL
			UNION ALL SELECT ` + fmt.Sprint(infoSchemaNamespace) + `, 'information_schema', 10, NULL`,
		"pg_type":       pgTypeRows(),
		"pg_attribute":  pgAttributeRows(),
		"pg_am":         `SELECT 2::BIGINT AS oid, 'heap' AS amname, 'heap_tableam_handler' AS amhandler, 't' AS amtype`,
		"pg_index":      `SELECT 0::BIGINT AS indexrelid, 0::BIGINT AS indrelid, 0 AS indnatts, 0 AS indnkeyatts, false AS indisunique, false AS indisprimary, false AS indisexclusion, true AS indimmediate, false AS indisclustered, true AS indisvalid, false AS indcheckxmin, true AS indisready, true AS indislive, false AS indisreplident, []::INTEGER[] AS indkey, []::BIGINT[] AS indcollation, []::BIGINT[] AS indclass, []::INTEGER[] AS indoption, NULL::VARCHAR AS indexprs, NULL::VARCHAR AS indpred, false AS indnullsnotdistinct WHERE false`,
		"pg_constraint": `SELECT * FROM pg_catalog.pg_constraint WHERE contype IN ('c', 'f')`,
		"pg_attrdef":    `SELECT * FROM pg_catalog.pg_attrdef`,
		"pg_tables":     `SELECT * REPLACE (CASE schemaname WHEN 'main' THEN 'public' ELSE schemaname END AS schemaname) FROM pg_catalog.pg_tables WHERE NOT (tablename IN ('schema_migrations', 'level2_state', 'level2_checkpoint') OR tablename LIKE 'lake\_%' ESCAPE '\')`,
		"pg_settings":   pgSettingsRows(),
		"pg_roles": `SELECT 10::BIGINT AS oid, 'gtsm' AS rolname, false AS rolsuper, true AS rolinherit, false AS rolcreaterole, false AS rolcreatedb,
			true AS rolcanlogin, false AS rolreplication, -1 AS rolconnlimit, '********' AS rolpassword, NULL::TIMESTAMPTZ AS rolvaliduntil,
			false AS rolbypassrls, NULL::VARCHAR[] AS rolconfig`,
		"pg_auth_members": `SELECT 0::BIGINT AS oid, 0::BIGINT AS roleid, 0::BIGINT AS member, 0::BIGINT AS grantor, false AS admin_option WHERE false`,
		// Functions: the macros of the served database's main schema only
		// (DuckDB's built-ins have no Postgres signature).
		"pg_proc": `SELECT * REPLACE (NULL::BIGINT AS prorettype, []::BIGINT[] AS proargtypes, NULL::BIGINT[] AS proallargtypes)
			FROM pg_catalog.pg_proc WHERE pronamespace = ` + mainNamespace,
		"pg_database": `SELECT *, 6 AS encoding, 'C' AS datcollate, 'C' AS datctype, NULL::VARCHAR AS daticulocale, 'c' AS datlocprovider, NULL::VARCHAR[] AS datacl, 10::BIGINT AS datdba FROM pg_catalog.pg_database WHERE datname = current_database()`,
		"pg_views":    `SELECT * REPLACE (CASE schemaname WHEN 'main' THEN 'public' ELSE schemaname END AS schemaname) FROM pg_catalog.pg_views`,
	}
}

// pgSettingsRows is pg_settings: the parameters of pgSettings.
func pgSettingsRows() string {
	names := make([]string, 0, len(pgSettings))
	for n := range pgSettings {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := make([]string, len(names))
	for i, n := range names {
		rows[i] = fmt.Sprintf("('%s', '%s')", n, strings.ReplaceAll(pgSettings[n], "'", "''"))
	}
	return `SELECT name, setting, NULL::VARCHAR AS unit, '' AS category, '' AS short_desc, '' AS extra_desc, 'internal' AS context,
		'string' AS vartype, 'default' AS source, NULL::VARCHAR AS min_val, NULL::VARCHAR AS max_val, NULL::VARCHAR[] AS enumvals,
		setting AS boot_val, setting AS reset_val, NULL::VARCHAR AS sourcefile, NULL::INTEGER AS sourceline, false AS pending_restart
	FROM (VALUES ` + strings.Join(rows, ", ") + `) AS v(name, setting)`
}

// infoSchemaSubqueries replace information_schema relations: schema main
// shows as public, internal tables are not listed, data types have their
// Postgres names (Grafana maps columns by them).
var infoSchemaSubqueries = map[string]string{
	"tables": `SELECT * REPLACE (CASE table_schema WHEN 'main' THEN 'public' ELSE table_schema END AS table_schema)
		FROM information_schema.tables WHERE NOT (table_name IN ('schema_migrations', 'level2_state', 'level2_checkpoint') OR table_name LIKE 'lake\_%' ESCAPE '\')`,
	"columns": `SELECT * REPLACE (CASE table_schema WHEN 'main' THEN 'public' ELSE table_schema END AS table_schema,
		` + typeNameCase("("+typeOIDCase("data_type")+")", func(t pgType) string { return t.display }) + ` AS data_type,
		` + typeNameCase("("+typeOIDCase("data_type")+")", func(t pgType) string { return t.name }) + ` AS udt_name)
		FROM information_schema.columns WHERE NOT (table_name IN ('schema_migrations', 'level2_state', 'level2_checkpoint') OR table_name LIKE 'lake\_%' ESCAPE '\')`,
	"schemata": `SELECT * REPLACE (CASE schema_name WHEN 'main' THEN 'public' ELSE schema_name END AS schema_name)
		FROM information_schema.schemata WHERE catalog_name = current_database() AND schema_name = 'main'`,
	"views": `SELECT * REPLACE (CASE table_schema WHEN 'main' THEN 'public' ELSE table_schema END AS table_schema) FROM information_schema.views`,
}

var infoSchemaRE = regexp.MustCompile(`(?i)\binformation_schema\s*\.\s*(tables|columns|schemata|views)\b(\s+(?:AS\s+)?([a-z_][a-z0-9_]*))?`)

func replaceInfoSchema(text string) string {
	return replaceRelations(infoSchemaRE, infoSchemaSubqueries, text)
}

// pgExtensionRows is pg_extension: no extensions.
const pgExtensionRows = `(SELECT 0::BIGINT AS oid, ''::VARCHAR AS extname, 10::BIGINT AS extowner, 11::BIGINT AS extnamespace,
	false AS extrelocatable, ''::VARCHAR AS extversion, NULL::BIGINT[] AS extconfig, NULL::VARCHAR[] AS extcondition WHERE false) AS pg_extension`

// catalogMacros are created with compatMacros: the type names and the
// functions of Postgres' catalog that clients call.
func catalogMacros() []string {
	display := typeNameCase("oid", func(t pgType) string { return t.display })
	return []string{
		`CREATE OR REPLACE TEMP MACRO format_type(oid, typmod) AS CASE
			WHEN oid IS NULL THEN NULL
			WHEN oid = 1700 AND typmod > 4 THEN 'numeric(' || ((typmod - 4) >> 16) || ',' || ((typmod - 4) & 65535) || ')'
			ELSE coalesce(` + display + `, '???') END`,
		`CREATE OR REPLACE TEMP MACRO current_schema() AS 'public'`,
		`CREATE OR REPLACE TEMP MACRO current_schemas(implicit) AS CASE WHEN implicit THEN ['pg_catalog', 'public'] ELSE ['public'] END`,
		`CREATE OR REPLACE TEMP MACRO array_lower(arr, dim) AS CASE WHEN len(arr) > 0 THEN 1 END`,
		// parse_ident('a.b') -> ['a', 'b'], quotes removed (Grafana's column list).
		`CREATE OR REPLACE TEMP MACRO parse_ident(s) AS list_transform(string_split(s, '.'), x -> replace(trim(x, '"'), '""', '"'))`,
		// A Postgres array's text ('{r,"v"}') as a list of strings.
		`CREATE OR REPLACE TEMP MACRO gtsm_pg_array(s) AS CASE WHEN trim(s::VARCHAR, '{}') = '' THEN []::VARCHAR[]
			ELSE list_transform(string_split(trim(s::VARCHAR, '{}'), ','), x -> trim(x, '"')) END`,
		`CREATE OR REPLACE TEMP MACRO _pg_expandarray(arr) AS {'x': arr[1], 'n': 1}`,
		`CREATE OR REPLACE TEMP MACRO pg_get_function_result(oid) AS ''`,
		`CREATE OR REPLACE TEMP MACRO pg_get_viewdef(id) AS (SELECT sql FROM duckdb_views() WHERE view_oid = id),
			(id, pretty) AS (SELECT sql FROM duckdb_views() WHERE view_oid = id)`,
		`CREATE OR REPLACE TEMP MACRO pg_get_function_arguments(oid) AS ''`,
		`CREATE OR REPLACE TEMP MACRO pg_get_function_identity_arguments(oid) AS ''`,
		`CREATE OR REPLACE TEMP MACRO pg_get_functiondef(oid) AS ''`,
		`CREATE OR REPLACE TEMP MACRO obj_description(oid, cat) AS NULL::VARCHAR, (oid) AS NULL::VARCHAR`,
		`CREATE OR REPLACE TEMP MACRO col_description(oid, num) AS NULL::VARCHAR`,
		`CREATE OR REPLACE TEMP MACRO shobj_description(oid, cat) AS NULL::VARCHAR`,
	}
}

var (
	// information_schema._pg_expandarray(...) (pgjdbc's getPrimaryKeys).
	infoFuncRE = regexp.MustCompile(`(?i)\binformation_schema\s*\.\s*(_pg_expandarray\s*\()`)
	// = ANY(current_schemas(...)) (pgjdbc's type lookups).
	anySchemasRE = regexp.MustCompile(`(?i)=\s*ANY\s*\(\s*(?:pg_catalog\s*\.\s*)?current_schemas\s*\(\s*(true|false)\s*\)\s*\)`)
	// pg_extension, qualified or not (Grafana's TimescaleDB detection):
	// no extensions.
	pgExtensionRE = regexp.MustCompile(`(?i)(^|[^\w."])(?:pg_catalog\s*\.\s*)?pg_extension\b`)
	// string_to_array('literal', ',') s in a FROM list: a one-row table.
	stringToArrayFromRE = regexp.MustCompile(`(?i)\bstring_to_array\s*\(\s*('(?:[^']|'')*')\s*,\s*('(?:[^']|'')*')\s*\)\s+(?:AS\s+)?([a-z_][a-z0-9_]*)\b`)
	// generate_series(...) [AS] i, : Postgres names the column i too.
	seriesAliasRE = regexp.MustCompile(`(?i)(generate_series\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))\s+(?:AS\s+)?([a-z_][a-z0-9_]*)\s*,`)
	// CASE ... THEN user ELSE (Grafana's search_path expansion).
	thenUserRE = regexp.MustCompile(`(?i)\bTHEN\s+user\s+ELSE\b`)
	// x = ANY($n): a Postgres array parameter (pgcli's relkind = ANY(%s)),
	// sent as its text '{r,v}'.
	anyParamRE = regexp.MustCompile(`(?i)\b([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\s*=\s*ANY\s*\(\s*(\$\d+)(?:\s*::\s*[a-z_"]+(?:\s*\[\])?)?\s*\)`)
	// x::regtype[::text]: the type's name (pgcli's column types).
	regtypeRE = regexp.MustCompile(`(?i)\b([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\s*::\s*(?:pg_catalog\s*\.\s*)?regtype\b(\s*\[\])?(?:\s*::\s*(?:text|varchar|name))?`)
	// "public". or public. qualifying a name.
	publicRE = regexp.MustCompile(`(?i)(^|[^\w."$])(?:"public"|public)\s*\.\s*`)
)

// rewritePublic qualifies with main what clients qualify with public,
// outside string literals and quoted identifiers' insides.
func rewritePublic(text string) string {
	if !strings.Contains(strings.ToLower(text), "public") {
		return text
	}
	var b strings.Builder
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] != '\'' {
			continue
		}
		b.WriteString(publicRE.ReplaceAllString(text[start:i], "${1}main."))
		j := i + 1
		for j < len(text) {
			if text[j] == '\'' {
				if j+1 < len(text) && text[j+1] == '\'' {
					j += 2
					continue
				}
				break
			}
			j++
		}
		end := min(j+1, len(text))
		b.WriteString(text[i:end])
		start, i = end, end-1
	}
	b.WriteString(publicRE.ReplaceAllString(text[start:], "${1}main."))
	return b.String()
}

// catalogRewrite adapts catalog queries that need no pg_catalog prefix
// (information_schema, public, current_schemas).
func catalogRewrite(text string) string {
	text = rewritePublic(text)
	lower := strings.ToLower(text)
	if strings.Contains(lower, "information_schema") {
		text = infoFuncRE.ReplaceAllString(text, "$1")
		text = replaceInfoSchema(text)
	}
	if strings.Contains(lower, "any") {
		text = anyParamRE.ReplaceAllStringFunc(text, func(m string) string {
			g := anyParamRE.FindStringSubmatch(m)
			return "list_contains(gtsm_pg_array(" + g[2] + "), " + g[1] + ")"
		})
	}
	if strings.Contains(lower, "regtype") {
		text = regtypeRE.ReplaceAllStringFunc(text, func(m string) string {
			g := regtypeRE.FindStringSubmatch(m)
			if g[2] != "" {
				return "list_transform(" + g[1] + ", t -> format_type(t, NULL))"
			}
			return "format_type(" + g[1] + ", NULL)"
		})
	}
	if strings.Contains(lower, "pg_extension") {
		text = pgExtensionRE.ReplaceAllString(text, "${1}"+pgExtensionRows)
	}
	if strings.Contains(lower, "string_to_array") {
		text = stringToArrayFromRE.ReplaceAllStringFunc(text, func(m string) string {
			g := stringToArrayFromRE.FindStringSubmatch(m)
			if sqlKeywords[strings.ToUpper(g[3])] || strings.EqualFold(g[3], "AND") || strings.EqualFold(g[3], "OR") {
				return m
			}
			return "(SELECT string_to_array(" + g[1] + ", " + g[2] + ") AS " + g[3] + ") AS " + g[3]
		})
	}
	if strings.Contains(lower, "generate_series") {
		text = seriesAliasRE.ReplaceAllStringFunc(text, func(m string) string {
			g := seriesAliasRE.FindStringSubmatch(m)
			if sqlKeywords[strings.ToUpper(g[2])] {
				return m
			}
			return g[1] + " AS " + g[2] + "(" + g[2] + "),"
		})
	}
	text = thenUserRE.ReplaceAllString(text, "THEN current_user ELSE")
	if strings.Contains(lower, "current_schemas") {
		text = anySchemasRE.ReplaceAllStringFunc(text, func(m string) string {
			if strings.EqualFold(anySchemasRE.FindStringSubmatch(m)[1], "true") {
				return "IN ('pg_catalog', 'public')"
			}
			return "IN ('public')"
		})
	}
	return text
}
