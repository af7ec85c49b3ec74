package pgwire_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// grafanaSchemaConstraint is how Grafana's PostgreSQL data source limits
// table and column lists to the schemas on the search path (its query
// builder, as of Grafana 11/12: quote_ident, current_setting, string_to_array,
// generate_series over the array's bounds).
const grafanaSchemaConstraint = `quote_ident(table_schema) IN (
	SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
	FROM generate_series(
		array_lower(string_to_array(current_setting('search_path'),','),1),
		array_upper(string_to_array(current_setting('search_path'),','),1)
	) as i,
	string_to_array(current_setting('search_path'),',') s
)`

// grafanaTimeFilter is $__timeFilter(col) as Grafana expands it: BETWEEN
// two RFC 3339 literals.
func grafanaTimeFilter(col string, from, to time.Time) string {
	return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", col, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
}

// TestGrafanaPostgresDataSource replays, through pgx (which Grafana's
// data source uses), the queries Grafana sends: the health check, version
// and TimescaleDB detection, the query builder's schema, table and column
// lists (with the types Grafana maps), and a time-series panel query with
// $__timeFilter and $__timeGroup on gtsm_etl_ts.ts.
func TestGrafanaPostgresDataSource(t *testing.T) {
	e := startDB(t, pgwire.Config{}, func(db *sql.DB) error { return gtsmsql.Migrate(context.Background(), db) },
		`INSERT INTO gtsm_etl (key_site, site, session, "time", "timestamp", rs1_t0, kafka_partition, kafka_offset, late) SELECT 'B009', 'B009', 'Min', 1625097600000 + range * 1000, 'x', range::INTEGER, 0, range, false FROM range(600)`)
	ctx := context.Background()
	c := connect(t, e, pgx.QueryExecModeCacheStatement)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("health check (ping): %v", err)
	}
	one := func(q string) (string, error) {
		rows, err := c.Query(ctx, q)
		if err != nil {
			return "", err
		}
		var out []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return "", err
			}
			var cells []string
			for _, v := range vals {
				if f, ok := v.(float64); ok {
					v = strconv.FormatFloat(f, 'f', -1, 64)
				}
				cells = append(cells, fmt.Sprint(v))
			}
			out = append(out, strings.Join(cells, "|"))
		}
		return strings.Join(out, ","), rows.Err()
	}
	for _, q := range []struct{ name, sql, want string }{
		{"version", `SELECT current_setting('server_version_num')::int/100 as version`, "1500"},
		{"timescaledb", `SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'`, ""},
		{"schemas", `SELECT schema_name AS "name" FROM information_schema.schemata
			WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast', '_timescaledb_cache') ORDER BY schema_name`, "public"},
		{"tables in public", `SELECT quote_ident(table_name) AS "table" FROM information_schema.tables
			WHERE quote_ident(table_schema) = 'public' AND table_name LIKE 'gtsm%' ORDER BY 1`, "gtsm_etl,gtsm_etl_ts"},
		{"tables on the search path", `SELECT CASE WHEN ` + grafanaSchemaConstraint + ` THEN quote_ident(table_name)
			ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS "table"
			FROM information_schema.tables
			WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog') AND table_name IN ('gtsm_etl_ts', 'strain')
			ORDER BY CASE WHEN ` + grafanaSchemaConstraint + ` THEN 0 ELSE 1 END, 1`, "gtsm_etl_ts,strain"},
		{"internal tables not listed", `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('schema_migrations', 'level2_state', 'level2_checkpoint') OR table_name LIKE 'lake\_%' ESCAPE '\'`, "0"},
		{"columns", `SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns
			WHERE CASE WHEN array_length(parse_ident('gtsm_etl_ts'),1) = 2
				THEN quote_ident(table_schema) = (parse_ident('gtsm_etl_ts'))[1] AND quote_ident(table_name) = (parse_ident('gtsm_etl_ts'))[2]
				ELSE quote_ident(table_name) = 'gtsm_etl_ts' AND ` + grafanaSchemaConstraint + ` END
			AND column_name IN ('ts', 'key_site', 'time', 'rs1_t0') ORDER BY ordinal_position`,
			"ts|timestamp with time zone,key_site|text,time|bigint,rs1_t0|integer"},
		{"qualified columns", `SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns
			WHERE CASE WHEN array_length(parse_ident('public.strain'),1) = 2
				THEN quote_ident(table_schema) = (parse_ident('public.strain'))[1] AND quote_ident(table_name) = (parse_ident('public.strain'))[2]
				ELSE quote_ident(table_name) = 'public.strain' END
			AND column_name IN ('ts', 'microstrain') ORDER BY ordinal_position`,
			"ts|timestamp without time zone,microstrain|double precision"},
		{"time series", `SELECT floor(extract(epoch from ts)/60)*60 AS "time", avg(rs1_t0) AS rs1
			FROM gtsm_etl_ts WHERE ` + grafanaTimeFilter("ts", time.Date(2021, 7, 1, 0, 2, 0, 0, time.UTC), time.Date(2021, 7, 1, 0, 3, 59, 0, time.UTC)) + `
			AND site = 'B009' GROUP BY 1 ORDER BY 1`, "1625097720|149.5,1625097780|209.5"},
		{"raw rows", `SELECT ts AS "time", rs1_t0 FROM gtsm_etl_ts WHERE ` + grafanaTimeFilter("ts", time.Date(2021, 7, 1, 0, 0, 1, 0, time.UTC), time.Date(2021, 7, 1, 0, 0, 2, 0, time.UTC)) + ` ORDER BY 1`,
			"2021-07-01 00:00:01 +0000 UTC|1,2021-07-01 00:00:02 +0000 UTC|2"},
		{"metabase probe", `SELECT true AS "_" FROM "public"."gtsm_etl" WHERE 1 <> 1 LIMIT 0`, ""},
	} {
		got, err := one(q.sql)
		if err != nil || got != q.want {
			t.Errorf("%s: %q, %v; want %q", q.name, got, err, q.want)
		}
	}
	// The time column arrives as a timestamptz, which Grafana maps to time.
	rows, err := c.Query(ctx, `SELECT ts FROM gtsm_etl_ts LIMIT 1`)
	if err != nil {
		t.Fatal(err)
	}
	if oid := rows.FieldDescriptions()[0].DataTypeOID; oid != 1184 {
		t.Errorf("gtsm_etl_ts.ts has type oid %d, want 1184 (timestamptz)", oid)
	}
	rows.Close()
}
