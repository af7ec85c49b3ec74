package pgwire_test

import (
	"context"
	"database/sql"
	"log/slog"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestPsqlMetaCommands: psql's catalog commands work against the endpoint
// (Debian's psql 15 sends pg_catalog queries DuckDB needs help with).
func TestPsqlMetaCommands(t *testing.T) {
	e := start(t, pgwire.Config{}, `CREATE VIEW v AS SELECT i, s FROM t`)
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{`\dt`, []string{"public|t|table|gtsm"}},
		{`\d`, []string{"public|t|table|gtsm", "public|v|view|gtsm"}},
		{`\d t`, []string{"i|bigint||", "s|text||", "ts|timestamp without time zone||"}},
		{`\d+ t`, []string{"i|bigint|", "dec|numeric(18,3)|"}},
		{`\d v`, []string{"i|bigint||", "s|text||"}},
		{`\l`, []string{"e|gtsm|UTF8"}},
		{`\dn`, []string{"public|gtsm"}},
		{`SHOW server_version`, []string{"15.0 (gtsm DuckDB, read-only)"}},
		{`SHOW gtsm_database`, []string{e.dir + "/e.duckdb"}},
	} {
		out, err := psql(t, e, nil, "-c", tc.cmd)
		if err != nil || strings.Contains(out, "ERROR") {
			t.Errorf("%s: %v\n%s", tc.cmd, err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.cmd, w, out)
			}
		}
	}
}

// TestClientIntrospection: what pgx users and psycopg2 (Python) ask on
// connecting and for table metadata.
func TestClientIntrospection(t *testing.T) {
	e := start(t, pgwire.Config{})
	ctx := context.Background()
	for _, m := range modes {
		c := connect(t, e, m.mode)
		if v := c.PgConn().ParameterStatus("server_version"); v != "15.0 (gtsm DuckDB, read-only)" {
			t.Errorf("%s: server_version parameter %q", m.name, v)
		}
		for _, q := range []struct{ sql, want string }{
			{`SELECT version()`, ""},
			{`SELECT current_schema()`, "public"},
			{`SHOW server_version`, "15.0 (gtsm DuckDB, read-only)"},
			{`SHOW transaction_isolation`, "serializable"},
			{`SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 't'`, "i,n,d,s,ts,b,dec,day,h,l"},
			{`SELECT count(*)::VARCHAR FROM pg_catalog.pg_type WHERE typname = 'int8'`, "1"},
			{`SELECT pg_catalog.pg_get_userbyid(10)`, "gtsm"},
			{`SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.~) '^(public)$' COLLATE pg_catalog.default`, "public"},
		} {
			var got string
			if err := c.QueryRow(ctx, q.sql).Scan(&got); err != nil {
				t.Errorf("%s: %s: %v", m.name, q.sql, err)
			} else if q.want != "" && got != q.want {
				t.Errorf("%s: %s = %q, want %q", m.name, q.sql, got, q.want)
			}
		}
	}
	// psycopg2 (Debian python3-psycopg2): connect, server version, a query
	// in its implicit transaction, cursor.description, information_schema.
	// Debian's python3 has the package; a python3 earlier on PATH may not.
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import psycopg2").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Skip("python3-psycopg2 not installed (apt-get install -y python3-psycopg2)")
	}
	host, port, _ := strings.Cut(e.addr, ":")
	script := `
import psycopg2
c = psycopg2.connect(host="` + host + `", port=` + port + `, user="x", dbname="gtsm")
print(c.server_version)
cur = c.cursor()
cur.execute("SELECT i, s FROM t WHERE i = %s", (1,))
print([d.name for d in cur.description], cur.fetchall())
cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
print(cur.fetchall())
c.rollback()
c.close()
`
	out, err := exec.Command(python, "-c", script).CombinedOutput()
	if want := "150000\n['i', 's'] [(1, 'one')]\n[('t',)]\n"; err != nil || string(out) != want {
		t.Errorf("psycopg2: %v\n%s\nwant\n%s", err, out, want)
	}
	_ = pgx.QueryExecModeSimpleProtocol
}

// TestPsqlLooksLikePostgres: on a database with the processor's tables,
// psql's \d family lists what a user queries and nothing of the
// processor's bookkeeping, and \d+ reads like a Postgres table's.
func TestPsqlLooksLikePostgres(t *testing.T) {
	e := startDB(t, pgwire.Config{}, func(db *sql.DB) error { return gtsmsql.Migrate(context.Background(), db) })
	internal := regexp.MustCompile(`schema_migrations|level2_state|level2_checkpoint|lake_|\?\?\?|art\b`)
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{`\d`, []string{"public|gtsm_etl|table|gtsm", "public|gtsm_etl_ts|view|gtsm", "public|strain|view|gtsm", "public|site_reference|table|gtsm"}},
		{`\dt`, []string{"public|gtsm_etl|table|gtsm"}},
		{`\dv`, []string{"public|strain|view|gtsm"}},
		{`\df`, nil},
		{`\di`, nil},
		{`\dn`, []string{"public|gtsm"}},
		{`\d gtsm_etl`, []string{`Table "public.gtsm_etl"`, "key_site|text||not null|", "\ntime|bigint|||"}},
		{`\d+ gtsm_etl`, []string{`Table "public.gtsm_etl"`, "key_site|text||not null||extended|||", "Access method: heap"}},
		{`\d+ gtsm_etl_ts`, []string{`View "public.gtsm_etl_ts"`, "ts|timestamp with time zone|||"}},
	} {
		out, err := psql(t, e, nil, "-P", "tuples_only=off", "-c", tc.cmd)
		if err != nil || strings.Contains(out, "ERROR") {
			t.Errorf("%s: %v\n%s", tc.cmd, err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.cmd, w, out)
			}
		}
		if m := internal.FindString(out); m != "" {
			t.Errorf("%s: output shows %q:\n%s", tc.cmd, m, out)
		}
	}
	// The internal tables can still be read by name.
	if out, err := psql(t, e, nil, "-c", "SELECT count(*) >= 1 FROM schema_migrations"); err != nil || strings.TrimSpace(out) != "t" {
		t.Errorf("schema_migrations by name: %v %q", err, out)
	}
}

// TestStatementErrorsLogged: a failed statement is logged at info with its
// SQLSTATE and command, never the password.
func TestStatementErrorsLogged(t *testing.T) {
	var logs testutil.SyncBuffer
	e := start(t, pgwire.Config{Password: "s3cret-pw", Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	out, _ := psql(t, e, []string{"PGPASSWORD=s3cret-pw"}, "-c", "SELECT * FROM no_such_table", "-c", "DELETE FROM t")
	if !strings.Contains(out, "ERROR") {
		t.Fatalf("psql: %s", out)
	}
	got := logs.String()
	for _, w := range []string{`msg="SQL endpoint: statement failed" command=SELECT sqlstate=42P01`, `command=DELETE sqlstate=25006`} {
		if !strings.Contains(got, w) {
			t.Errorf("log lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "s3cret-pw") {
		t.Errorf("log holds the password:\n%s", got)
	}
}
