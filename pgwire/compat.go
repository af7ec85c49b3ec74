package pgwire

import (
	"context"
	"database/sql/driver"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	wire "github.com/jeroenrinzema/psql-wire"
)

// serverVersion is what clients see as the Postgres version (ParameterStatus
// server_version and SHOW server_version): psql and pgx pick their catalog
// queries by it.
const serverVersion = "15.0 (gtsm DuckDB, read-only)"

// serverVersionNum is server_version_num, as clients compare it.
const serverVersionNum = "150000"

// pgSettings are the Postgres parameters clients read with SHOW or
// current_setting(), as a Postgres 15 server configured like the endpoint
// (UTC, UTF8, read-only) answers them.
var pgSettings = map[string]string{
	"server_version":                serverVersion,
	"server_version_num":            serverVersionNum,
	"transaction_isolation":         "serializable",
	"default_transaction_isolation": "serializable",
	"transaction_read_only":         "on",
	"default_transaction_read_only": "on",
	"standard_conforming_strings":   "on",
	"client_encoding":               "UTF8",
	"server_encoding":               "UTF8",
	"datestyle":                     "ISO, MDY",
	"timezone":                      "UTC",
	"integer_datetimes":             "on",
	"max_identifier_length":         "63",
	"max_index_keys":                "32",
	"search_path":                   `"$user", public`,
	"lc_collate":                    "C",
	"lc_ctype":                      "C",
	"is_superuser":                  "off",
	"application_name":              "",
}

// compatMacros are created on each of the endpoint's own connections, as
// TEMPORARY macros: they live in that connection's temp schema only, so
// nothing is written to the database file and the processor never sees
// them. They fill the pg_catalog functions Postgres clients' introspection
// calls and DuckDB lacks.
var compatMacros = []string{
	// version() as a Postgres 15 server says it (SQLAlchemy, pandas and
	// Metabase parse it), naming DuckDB's version after it.
	`CREATE OR REPLACE TEMP MACRO version() AS 'PostgreSQL ` + serverVersionNumber + ` (gtsm DuckDB ' || (SELECT library_version FROM pragma_version()) || ', read-only) on ' || (SELECT platform FROM pragma_platform()) || ', 64-bit'`,
	`CREATE OR REPLACE TEMP MACRO quote_ident(s) AS CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_$]*') THEN s ELSE '"' || replace(s, '"', '""') || '"' END`,
	`CREATE OR REPLACE TEMP MACRO pg_get_userbyid(id) AS 'gtsm'`,
	`CREATE OR REPLACE TEMP MACRO pg_encoding_to_char(enc) AS 'UTF8'`,
	`CREATE OR REPLACE TEMP MACRO pg_tablespace_location(id) AS ''`,
	`CREATE OR REPLACE TEMP MACRO pg_relation_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_table_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_total_relation_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_database_size(id) AS 0::BIGINT`,
	`CREATE OR REPLACE TEMP MACRO pg_get_expr(expr, rel) AS expr::VARCHAR, (expr, rel, pretty) AS expr::VARCHAR`,
	`CREATE OR REPLACE TEMP MACRO pg_get_statisticsobjdef_columns(id) AS ''`,
	`CREATE OR REPLACE TEMP MACRO pg_get_triggerdef(id, pretty) AS ''`,
	`CREATE OR REPLACE TEMP MACRO pg_get_indexdef(id, col, pretty) AS ''`,
	`CREATE OR REPLACE TEMP MACRO pg_get_constraintdef(id, pretty) AS ''`,
	`CREATE OR REPLACE TEMP MACRO pg_get_partkeydef(id) AS NULL::VARCHAR`,
	`CREATE OR REPLACE TEMP MACRO pg_relation_is_publishable(id) AS false`,
	`CREATE OR REPLACE TEMP MACRO array_upper(arr, dim) AS len(arr)`,
	`CREATE OR REPLACE TEMP MACRO pg_get_partition_constraintdef(id) AS NULL::VARCHAR`,
}

// serverVersionNumber is serverVersion's number ("15.0").
const serverVersionNumber = "15.0"

// catalogSubqueries stand in for pg_catalog relations: DuckDB's with the
// columns psql 15 reads and DuckDB lacks, and empty ones DuckDB has not (no
// policies, statistics objects, publications, inheritance, triggers).
// They are subqueries put into the statement text, not temporary views,
// which information_schema and SHOW TABLES would list among the user's.
var catalogSubqueries = map[string]string{
	"pg_policy":                `SELECT ''::VARCHAR AS polname, true AS polpermissive, []::BIGINT[] AS polroles, ''::VARCHAR AS polqual, ''::VARCHAR AS polwithcheck, ''::VARCHAR AS polcmd, 0::BIGINT AS polrelid WHERE false`,
	"pg_statistic_ext":         `SELECT 0::BIGINT AS oid, 0::BIGINT AS stxrelid, 0::BIGINT AS stxnamespace, ''::VARCHAR AS stxname, []::VARCHAR[] AS stxkind, 0 AS stxstattarget WHERE false`,
	"pg_publication":           `SELECT 0::BIGINT AS oid, ''::VARCHAR AS pubname, false AS puballtables WHERE false`,
	"pg_publication_rel":       `SELECT 0::BIGINT AS oid, 0::BIGINT AS prpubid, 0::BIGINT AS prrelid, ''::VARCHAR AS prqual, []::INTEGER[] AS prattrs WHERE false`,
	"pg_publication_namespace": `SELECT 0::BIGINT AS oid, 0::BIGINT AS pnpubid, 0::BIGINT AS pnnspid WHERE false`,
	"pg_inherits":              `SELECT 0::BIGINT AS inhrelid, 0::BIGINT AS inhparent, 0 AS inhseqno, false AS inhdetachpending WHERE false`,
	"pg_trigger":               `SELECT 0::BIGINT AS oid, 0::BIGINT AS tgrelid, ''::VARCHAR AS tgname, false AS tgisinternal, ''::VARCHAR AS tgenabled, 0::BIGINT AS tgparentid WHERE false`,
}

func init() {
	for k, v := range catalogRelations() {
		catalogSubqueries[k] = v
	}
	compatMacros = append(compatMacros, catalogMacros()...)
	names := make([]string, 0, len(catalogSubqueries))
	for k := range catalogSubqueries {
		names = append(names, k)
	}
	sort.Strings(names)
	catalogRE = regexp.MustCompile(`(?i)\bpg_catalog\s*\.\s*(` + strings.Join(names, "|") + `)\b(\s+(?:AS\s+)?([a-z_][a-z0-9_]*))?`)
}

// catalogRE matches a qualified catalog relation and what follows it (an
// alias or the next keyword); built from catalogSubqueries.
var catalogRE *regexp.Regexp

var sqlKeywords = map[string]bool{"WHERE": true, "LEFT": true, "RIGHT": true, "INNER": true, "JOIN": true, "ON": true, "ORDER": true,
	"GROUP": true, "LIMIT": true, "UNION": true, "CROSS": true, "FULL": true, "NATURAL": true, "HAVING": true, "USING": true,
	"OFFSET": true, "EXCEPT": true, "INTERSECT": true, "WINDOW": true, "QUALIFY": true, "OUTER": true}

func replaceCatalog(text string) string { return replaceRelations(catalogRE, catalogSubqueries, text) }

// replaceRelations puts subqueries[name] in place of each relation re
// matches (group 1 the name, group 3 an alias), keeping the alias or naming
// the subquery after the relation.
func replaceRelations(re *regexp.Regexp, subqueries map[string]string, text string) string {
	return re.ReplaceAllStringFunc(text, func(m string) string {
		g := re.FindStringSubmatch(m)
		sub := "(" + subqueries[strings.ToLower(g[1])] + ")"
		if g[3] != "" && !sqlKeywords[strings.ToUpper(g[3])] {
			return sub + " AS " + g[3]
		}
		return sub + " AS " + strings.ToLower(g[1]) + g[2]
	})
}

// initConn prepares each new endpoint connection (duckdb.NewConnector's
// init hook).
func initConn(ex driver.ExecerContext) error {
	for _, m := range compatMacros {
		if _, err := ex.ExecContext(context.Background(), m, nil); err != nil {
			return fmt.Errorf("SQL endpoint connection setup: %s: %w", m, err)
		}
	}
	return nil
}

// Postgres clients qualify catalog functions and operators
// (pg_catalog.pg_get_userbyid(...), OPERATOR(pg_catalog.~), COLLATE
// pg_catalog.default) where DuckDB finds them unqualified (its pg_catalog
// schema holds views, and our macros live in the temp schema).
var (
	pgOperatorRE = regexp.MustCompile(`(?i)OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!<>=*+-]+)\s*\)`)
	pgCollateRE  = regexp.MustCompile(`(?i)\s+COLLATE\s+pg_catalog\s*\.\s*"?default"?`)
	pgFuncRE     = regexp.MustCompile(`(?i)\bpg_catalog\s*\.\s*([a-z_][a-z0-9_]*\s*\()`)
	pgCastRE     = regexp.MustCompile(`(?i)::\s*pg_catalog\s*\.\s*`)
	pgRegCastRE  = regexp.MustCompile(`(?i)::\s*(regtype|regclass|regproc|regprocedure|regnamespace)\b`)
)

var (
	// current_setting('name' [, missing_ok]) of a parameter in pgSettings.
	currentSettingRE = regexp.MustCompile(`(?i)\b(?:pg_catalog\s*\.\s*)?current_setting\s*\(\s*'([a-z_]+)'\s*(?:,\s*(?:true|false)\s*)?\)`)
	// = ANY('{a,b}') and = ANY(ARRAY['a','b']): Postgres array literals,
	// which DuckDB's ANY turns into a correlated UNNEST it cannot run.
	anyArrayRE = regexp.MustCompile(`(?i)(=|<>|!=)\s*ANY\s*\(\s*(?:'\{([^'{}]*)\}'(?:\s*::\s*[a-z_"]+(?:\s*\[\])?)?|ARRAY\s*\[((?:[^\[\]']|'(?:[^']|'')*')*)\](?:\s*::\s*[a-z_"]+(?:\s*\[\])?)?)\s*\)`)
)

// rewriteAnyArray turns x = ANY(array literal) into x IN (elements), and
// x <> ANY of a one-element array into x <> element (with more elements
// <> ANY is left to DuckDB).
func rewriteAnyArray(m string) string {
	g := anyArrayRE.FindStringSubmatch(m)
	var elems []string
	if g[3] != "" || strings.Contains(strings.ToUpper(m), "ARRAY") {
		elems = splitArrayElems(g[3])
	} else {
		for _, e := range strings.Split(g[2], ",") {
			e = strings.Trim(strings.TrimSpace(e), `"`)
			if e == "" {
				continue
			}
			elems = append(elems, "'"+strings.ReplaceAll(e, "'", "''")+"'")
		}
	}
	if len(elems) == 0 {
		elems = []string{"NULL"}
	}
	if g[1] != "=" {
		if len(elems) != 1 {
			return m // x <> ANY(several): true unless all equal; left to DuckDB
		}
		return "<> " + elems[0]
	}
	return "IN (" + strings.Join(elems, ", ") + ")"
}

// splitArrayElems splits the elements of ARRAY[...] at top-level commas.
func splitArrayElems(s string) []string {
	var out []string
	depth, start, inStr := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			inStr = !inStr
		case inStr:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

// pgRewrite adapts catalog queries of Postgres clients (psql's \d family,
// pgx, psycopg) to DuckDB. It runs before the statement guard, which checks
// the rewritten text: the text DuckDB runs.
func pgRewrite(text string) string {
	lower := strings.ToLower(text)
	if strings.Contains(lower, "current_setting") {
		text = currentSettingRE.ReplaceAllStringFunc(text, func(m string) string {
			if v, ok := pgSettings[strings.ToLower(currentSettingRE.FindStringSubmatch(m)[1])]; ok {
				return "'" + strings.ReplaceAll(v, "'", "''") + "'"
			}
			return m
		})
	}
	text = catalogRewrite(text)
	lower = strings.ToLower(text)
	if strings.Contains(lower, "any") {
		text = anyArrayRE.ReplaceAllStringFunc(text, rewriteAnyArray)
	}
	if !strings.Contains(lower, "pg_catalog") {
		return text
	}
	text = pgOperatorRE.ReplaceAllString(text, " $1 ")
	text = pgCollateRE.ReplaceAllString(text, "")
	text = pgFuncRE.ReplaceAllString(text, "$1")
	text = replaceCatalog(text)
	text = pgCastRE.ReplaceAllString(text, "::")
	return pgRegCastRE.ReplaceAllString(text, "::VARCHAR")
}

var showRE = regexp.MustCompile(`(?is)^\s*SHOW\s+"?([a-z_]+|TRANSACTION\s+ISOLATION\s+LEVEL)"?\s*;?\s*$`)

// show answers SHOW of the Postgres parameters clients ask for, and
// gtsm_database: the absolute path of the DuckDB file this endpoint serves
// (`gtsm sql --db FILE` checks it before trusting the endpoint with FILE).
func (s *Server) show(text string) *wire.PreparedStatement {
	m := showRE.FindStringSubmatch(stripLeadingComments(text))
	if m == nil {
		return nil
	}
	name := strings.ToLower(strings.Join(strings.Fields(m[1]), "_"))
	if name == "transaction_isolation_level" {
		name = "transaction_isolation" // SHOW TRANSACTION ISOLATION LEVEL (pgjdbc)
	}
	v, ok := pgSettings[name]
	if name == "gtsm_database" {
		v, ok = s.path, true
	}
	if !ok {
		return nil
	}
	cols := wire.Columns{{Name: name, Oid: pgtype.TextOID, Width: -1}}
	return wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		if err := w.Row([]any{v}); err != nil {
			return err
		}
		return w.Complete("SHOW")
	}, wire.WithColumns(cols))
}
