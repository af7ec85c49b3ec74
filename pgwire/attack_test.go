package pgwire_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/pgwire"
)

// snapshot is what an attack must leave unchanged: the table contents, the
// bytes of the database file and its WAL (the test's writer is idle, and
// rows sit in the WAL so a checkpoint would show), every DuckDB setting,
// and the tree under the victim directory.
type snapshot struct {
	rows     string
	dbFile   string
	wal      string
	settings map[string]string
	tree     []string
}

func takeSnapshot(t *testing.T, e *endpoint, victim string) snapshot {
	t.Helper()
	var s snapshot
	if err := e.db.QueryRow(`SELECT string_agg(t::VARCHAR, '|' ORDER BY i) FROM t`).Scan(&s.rows); err != nil {
		t.Fatal(err)
	}
	s.dbFile = fileHash(t, filepath.Join(e.dir, "e.duckdb"))
	s.wal = fileHash(t, filepath.Join(e.dir, "e.duckdb.wal"))
	s.settings = map[string]string{}
	rows, err := e.db.Query(`SELECT name, coalesce(value, 'NULL') FROM duckdb_settings()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		s.settings[k] = v
	}
	rows.Close()
	for _, root := range []string{victim, e.dir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, _ := d.Info()
			if info != nil {
				s.tree = append(s.tree, fmt.Sprintf("%s %d", p, info.Size()))
			}
			return nil
		})
	}
	sort.Strings(s.tree)
	return s
}

func fileHash(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (a snapshot) diff(b snapshot) []string {
	var d []string
	if a.rows != b.rows {
		d = append(d, "table t changed")
	}
	if a.dbFile != b.dbFile {
		d = append(d, "database file bytes changed")
	}
	if a.wal != b.wal {
		d = append(d, "WAL bytes changed (a checkpoint ran?)")
	}
	for k, v := range a.settings {
		if b.settings[k] != v {
			d = append(d, fmt.Sprintf("setting %s: %q -> %q", k, v, b.settings[k]))
		}
	}
	if strings.Join(a.tree, "\n") != strings.Join(b.tree, "\n") {
		d = append(d, fmt.Sprintf("directory tree changed:\n%s\n->\n%s", strings.Join(a.tree, "\n"), strings.Join(b.tree, "\n")))
	}
	return d
}

// victimTree is a directory with files an attack would delete or overwrite.
func victimTree(t *testing.T) string {
	v := t.TempDir()
	for _, f := range []string{"keep.txt", "sub/deep.txt"} {
		p := filepath.Join(v, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("precious "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// startAttacked is an endpoint whose table has rows in the WAL (written
// after the last checkpoint), so a checkpoint through the endpoint would
// change the file bytes.
func startAttacked(t *testing.T, cfg pgwire.Config) *endpoint {
	e := start(t, cfg, `CHECKPOINT`, `INSERT INTO t (i, s) VALUES (3, 'in the WAL')`)
	return e
}

// The reported bypasses, each as the issue ran it (and the neighbours).
func reportedAttacks(e *endpoint, victim string) []string {
	db := filepath.Join(e.dir, "e.duckdb")
	return []string{
		`EXPLAIN ANALYZE COPY (SELECT 'x' AS x) TO '` + db + `'`,
		`EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '` + victim + `' (FORMAT csv, PARTITION_BY (a), OVERWRITE true)`,
		`EXPLAIN (ANALYZE) COPY (SELECT 1 AS a) TO '` + victim + `' (FORMAT csv, PARTITION_BY (a), OVERWRITE true)`,
		`EXPLAIN ANALYZE /* hidden */ COPY (SELECT 'x' AS x) TO '` + db + `'`,
		`EXPLAIN COPY (SELECT 'x' AS x) TO '` + db + `'`,
		`EXPLAIN ANALYZE SET memory_limit='20MB'`,
		`EXPLAIN ANALYZE SET threads=1`,
		`EXPLAIN ANALYZE SET lock_configuration=false`,
		`EXPLAIN ANALYZE SET search_path='pg_catalog'`,
		`EXPLAIN ANALYZE RESET memory_limit`,
		`EXPLAIN ANALYZE CHECKPOINT`,
		`EXPLAIN ANALYZE FORCE CHECKPOINT`,
		`EXPLAIN ANALYZE VACUUM`,
		`EXPLAIN ANALYZE CREATE TEMP TABLE x AS SELECT 1`,
		`EXPLAIN ANALYZE INSTALL httpfs`,
		`EXPLAIN ANALYZE LOAD httpfs`,
		`EXPLAIN ANALYZE ATTACH '` + filepath.Join(victim, "w.duckdb") + `' AS w`,
		`EXPLAIN ANALYZE EXPORT DATABASE '` + filepath.Join(victim, "exp1") + `'`,
		`EXPORT DATABASE '` + filepath.Join(victim, "exp2") + `'`,
		`EXPLAIN EXPORT DATABASE '` + filepath.Join(victim, "exp3") + `'`,
		`EXPLAIN ANALYZE PREPARE p AS COPY t TO '` + db + `'`,
		`PREPARE p AS SELECT 1`,
		`EXECUTE p`,
		`EXPLAIN ANALYZE EXPLAIN ANALYZE CHECKPOINT`,
		`SELECT * FROM read_csv('/etc/passwd')`,
		`SELECT * FROM read_blob('/etc/passwd')`,
		`SELECT * FROM read_text('/etc/passwd')`,
		`SELECT * FROM glob('/etc/*')`,
		`SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')`,
		`SELECT * FROM '/etc/passwd'`,
		`SELECT * FROM checkpoint()`,
		`SELECT * FROM force_checkpoint()`,
		`SELECT * FROM system.main."checkpoint"/**/()`,
		`SELECT '/*', * FROM checkpoint(), (SELECT '*/')`,
		`SELECT 'x\', * FROM checkpoint() /* ' */`,
		`SELECT * FROM query('SELECT * FROM checkpoint()')`,
		`SELECT * FROM query_table('t')`,
		`SELECT setseed(0.5)`,
		`SELECT write_log('x')`,
		`SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))`,
		`WITH c AS (SELECT 1) INSERT INTO t (i) SELECT * FROM c`,
		`EXPLAIN ANALYZE WITH c AS (SELECT 1) INSERT INTO t (i) SELECT * FROM c`,
		`EXPLAIN ANALYZE DELETE FROM t`,
		`EXPLAIN ANALYZE UPDATE t SET s = 'x'`,
		`CALL checkpoint()`,
		`PRAGMA enable_profiling`,
		`PRAGMA disable_checkpoint_on_shutdown`,
		`ATTACH '` + filepath.Join(victim, "w.duckdb") + `' AS w (READ_WRITE)`,
		`DETACH memory`,
		`USE memory`,
		`EXPLAIN ANALYZE SET VARIABLE x = 1`,
	}
}

// TestReportedAttacksChangeNothing runs each reported bypass over pgx's
// simple and extended protocols, with a password, and through psql: each
// must fail, and nothing may change.
func TestReportedAttacksChangeNothing(t *testing.T) {
	for _, password := range []string{"", "pw"} {
		t.Run("password="+password, func(t *testing.T) {
			e := startAttacked(t, pgwire.Config{Password: password})
			victim := victimTree(t)
			before := takeSnapshot(t, e, victim)
			attacks := reportedAttacks(e, victim)
			ctx := context.Background()
			for _, m := range modes {
				cfg, _ := pgx.ParseConfig(e.url("&password=" + password))
				cfg.DefaultQueryExecMode = m.mode
				c, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range attacks {
					if _, err := c.Exec(ctx, a); err == nil {
						t.Errorf("%s: %s: no error", m.name, a)
					}
				}
				c.Close(ctx)
			}
			// The extended protocol with a parameter in the dangerous statement.
			cfg, _ := pgx.ParseConfig(e.url("&password=" + password))
			cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			db := filepath.Join(e.dir, "e.duckdb")
			for _, a := range []string{
				`EXPLAIN ANALYZE COPY (SELECT $1::VARCHAR AS x) TO '` + db + `'`,
				`EXPLAIN ANALYZE COPY (SELECT $1::INTEGER AS a) TO '` + victim + `' (FORMAT csv, PARTITION_BY (a), OVERWRITE true)`,
				`SELECT * FROM read_csv($1)`,
			} {
				arg := any("/etc/passwd")
				if strings.Contains(a, "INTEGER") {
					arg = 1
				}
				if _, err := c.Exec(ctx, a, arg); err == nil {
					t.Errorf("extended with parameter: %s: no error", a)
				}
			}
			var script strings.Builder
			for _, a := range attacks {
				script.WriteString(a + ";\n")
			}
			var env []string
			if password != "" {
				env = []string{"PGPASSWORD=" + password}
			}
			out, _ := psql(t, e, env, "-f", writeFile(t, script.String()))
			if n := strings.Count(out, "ERROR:"); n != len(attacks) {
				t.Errorf("psql: %d errors for %d attacks:\n%s", n, len(attacks), out)
			}
			if d := before.diff(takeSnapshot(t, e, victim)); len(d) > 0 {
				t.Errorf("the attacks changed:\n%s", strings.Join(d, "\n"))
			}
			// The writer still works after the lockdown: rows and a checkpoint.
			if _, err := e.db.Exec(`INSERT INTO t (i) VALUES (4)`); err != nil {
				t.Errorf("processor insert after the lockdown: %v", err)
			}
			if _, err := e.db.Exec(`CHECKPOINT`); err != nil {
				t.Errorf("processor checkpoint after the lockdown: %v", err)
			}
		})
	}
}

// statementCorpus is every kind of DuckDB statement, with targets in the
// victim directory and the database file.
func statementCorpus(e *endpoint, victim string) []string {
	db := filepath.Join(e.dir, "e.duckdb")
	v := func(name string) string { return "'" + filepath.Join(victim, name) + "'" }
	return []string{
		`INSERT INTO t (i) VALUES (99)`,
		`INSERT INTO t (i) VALUES (99) RETURNING i`,
		`UPDATE t SET s = 'x'`,
		`DELETE FROM t`,
		`TRUNCATE t`,
		`MERGE INTO t USING (SELECT 1 AS i) s ON t.i = s.i WHEN MATCHED THEN DELETE`,
		`CREATE TABLE u (a INTEGER)`,
		`CREATE TEMP TABLE u (a INTEGER)`,
		`CREATE TABLE u AS SELECT 1`,
		`CREATE VIEW vv AS SELECT 1`,
		`CREATE TEMP VIEW vv AS SELECT 1`,
		`CREATE MACRO m(x) AS x`,
		`CREATE TEMP MACRO m(x) AS x`,
		`CREATE SEQUENCE sq`,
		`CREATE SCHEMA sc`,
		`CREATE INDEX ix ON t (i)`,
		`CREATE TYPE ty AS ENUM ('a')`,
		`CREATE SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')`,
		`CREATE PERSISTENT SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')`,
		`DROP TABLE t`,
		`ALTER TABLE t ADD COLUMN z INTEGER`,
		`ALTER TABLE t RENAME TO t2`,
		`COMMENT ON TABLE t IS 'x'`,
		`COPY t TO ` + v("out.csv"),
		`COPY t TO '` + db + `'`,
		`COPY (SELECT 1 AS a) TO ` + v("") + ` (FORMAT csv, PARTITION_BY (a), OVERWRITE true)`,
		`COPY t FROM '/etc/passwd'`,
		`COPY FROM DATABASE memory TO memory`,
		`EXPORT DATABASE ` + v("exp"),
		`IMPORT DATABASE ` + v("exp"),
		`ATTACH ` + v("a.duckdb") + ` AS a`,
		`ATTACH ` + v("a.duckdb") + ` AS a (READ_WRITE)`,
		`ATTACH ':memory:' AS m`,
		`DETACH memory`,
		`USE memory`,
		`SET memory_limit = '20MB'`,
		`SET GLOBAL threads = 1`,
		`SET lock_configuration = false`,
		`SET enable_external_access = true`,
		`SET search_path = 'pg_catalog'`,
		`RESET memory_limit`,
		`SET VARIABLE x = 1`,
		`RESET VARIABLE x`,
		`PRAGMA threads = 1`,
		`PRAGMA enable_profiling`,
		`PRAGMA disable_checkpoint_on_shutdown`,
		`CALL checkpoint()`,
		`CALL pragma_table_info('t')`,
		`CHECKPOINT`,
		`FORCE CHECKPOINT`,
		`VACUUM`,
		`VACUUM ANALYZE t`,
		`ANALYZE`,
		`INSTALL httpfs`,
		`FORCE INSTALL httpfs`,
		`LOAD httpfs`,
		`UPDATE EXTENSIONS`,
		`PREPARE p AS SELECT 1`,
		`EXECUTE p`,
		`DEALLOCATE p`,
		`BEGIN TRANSACTION`,
		`COMMIT`,
		`ROLLBACK`,
		`SELECT * FROM checkpoint()`,
		`SELECT * FROM read_csv('/etc/passwd')`,
		`SELECT * FROM read_blob('/etc/*')`,
		`SELECT * FROM glob('/*')`,
		`SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')`,
		`SELECT * FROM read_json('https://127.0.0.1:1/x.json')`,
		`SELECT * FROM sniff_csv('/etc/passwd')`,
		`SELECT * FROM parquet_metadata('/etc/passwd')`,
		`SELECT setseed(0.1)`,
		`SELECT nextval('sq')`,
		`SELECT * FROM duckdb_logs`,
	}
}

// wrappers put a statement in every shape that might run it.
var wrappers = []string{
	"%s",
	"EXPLAIN %s",
	"EXPLAIN ANALYZE %s",
	"EXPLAIN (ANALYZE) %s",
	"EXPLAIN (ANALYZE, FORMAT json) %s",
	"EXPLAIN ANALYZE VERBOSE %s",
	"EXPLAIN ANALYZE /* c */ %s",
	"EXPLAIN ANALYZE EXPLAIN ANALYZE %s",
	"PREPARE p%d AS %s",
	"EXPLAIN ANALYZE PREPARE p%d AS %s",
	"WITH c AS (SELECT 1) %s",
	"WITH c AS (%s) SELECT * FROM c",
	"SELECT * FROM (%s)",
	"SELECT (%s)",
	"SELECT * FROM t WHERE i IN (%s)",
	"(%s)",
	"SELECT * FROM query('%s')",
	"EXPLAIN ANALYZE SELECT * FROM query('%s')",
	"FROM (%s)",
	"DESCRIBE %s",
	"SUMMARIZE %s",
	"SHOW %s",
	"PIVOT (%s) ON i",
}

func wrap(w string, i int, stmt string) string {
	if strings.Contains(w, "query('") {
		stmt = strings.ReplaceAll(stmt, "'", "''")
	}
	if strings.Contains(w, "%d") {
		return fmt.Sprintf(w, i, stmt)
	}
	return fmt.Sprintf(w, stmt)
}

// TestGeneratedStatementCorpusChangesNothing runs every statement kind in
// every wrapper through pgx (simple and extended protocol) and psql, then
// requires the database file, WAL, settings, table contents and the victim
// directory tree to be exactly as before.
func TestGeneratedStatementCorpusChangesNothing(t *testing.T) {
	e := startAttacked(t, pgwire.Config{})
	victim := victimTree(t)
	before := takeSnapshot(t, e, victim)
	var all []string
	for i, s := range statementCorpus(e, victim) {
		for _, w := range wrappers {
			all = append(all, wrap(w, i, s))
		}
	}
	ctx := context.Background()
	ran := 0
	for _, m := range modes[:2] {
		c := connect(t, e, m.mode)
		for _, q := range all {
			rows, err := c.Query(ctx, q)
			if err == nil {
				for rows.Next() {
				}
				err = rows.Err()
			}
			if err == nil {
				ran++
			}
			// A broken session must not hide later statements.
			if c.IsClosed() {
				c = connect(t, e, m.mode)
			}
		}
	}
	var script strings.Builder
	for _, q := range all {
		script.WriteString(q + ";\n")
	}
	out, _ := psql(t, e, nil, "-f", writeFile(t, script.String()))
	if !strings.Contains(out, "ERROR:") {
		t.Errorf("psql ran the corpus without one error:\n%.2000s", out)
	}
	if d := before.diff(takeSnapshot(t, e, victim)); len(d) > 0 {
		t.Errorf("the corpus (%d statements) changed:\n%s", len(all), strings.Join(d, "\n"))
	}
	t.Logf("%d statements x 3 clients; %d statement runs succeeded over pgx (harmless ones: acknowledged SET/BEGIN, reads)", len(all), ran)
}

// TestAllowDir: files are readable only under Config.AllowDirs.
func TestAllowDir(t *testing.T) {
	allowed := t.TempDir()
	if err := os.WriteFile(filepath.Join(allowed, "x.csv"), []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, pgwire.Config{AllowDirs: []string{allowed}})
	c := connect(t, e, pgx.QueryExecModeSimpleProtocol)
	ctx := context.Background()
	var b int
	if err := c.QueryRow(ctx, `SELECT b FROM read_csv('`+filepath.Join(allowed, "x.csv")+`')`).Scan(&b); err != nil || b != 2 {
		t.Errorf("read in the allowed directory: %d, %v", b, err)
	}
	for _, q := range []string{`SELECT * FROM read_csv('/etc/passwd')`, `SELECT * FROM read_text('` + allowed + `/../x')`, `COPY t TO '` + filepath.Join(allowed, "o.csv") + `'`} {
		if _, err := c.Exec(ctx, q); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	if _, err := os.Stat(filepath.Join(allowed, "o.csv")); !os.IsNotExist(err) {
		t.Errorf("COPY wrote into the allowed directory: %v", err)
	}
}

// TestLockdownIsInstanceWide documents what docs/sql.md says: DuckDB 1.5
// has these settings per database instance (GLOBAL scope), so the
// processor's own connections see them, can still write and checkpoint,
// and can no longer SET anything.
func TestLockdownIsInstanceWide(t *testing.T) {
	e := start(t, pgwire.Config{})
	for name, want := range map[string]string{
		"enable_external_access": "false", "lock_configuration": "true",
		"autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
	} {
		var v, scope string
		if err := e.db.QueryRow(`SELECT value, scope FROM duckdb_settings() WHERE name = ?`, name).Scan(&v, &scope); err != nil {
			t.Fatal(err)
		}
		if v != want || scope != "GLOBAL" {
			t.Errorf("processor connection: %s = %s (scope %s), want %s (GLOBAL)", name, v, scope, want)
		}
	}
	if _, err := e.db.Exec(`SET threads = 1`); err == nil {
		t.Error("the processor could SET threads after the lockdown")
	}
	if _, err := e.db.Exec(`INSERT INTO t (i) VALUES (5)`); err != nil {
		t.Errorf("processor insert: %v", err)
	}
	if _, err := e.db.Exec(`CHECKPOINT`); err != nil {
		t.Errorf("processor checkpoint: %v", err)
	}
}
