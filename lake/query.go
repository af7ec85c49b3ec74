package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Query is the query service's database: a throwaway DuckDB with one view
// per published table, under the single-file name (gtsm_etl, windows, ...),
// over read_parquet of the lake, and the project's views (sql/views) on top,
// so every named query runs unchanged. DuckDB expands a view's file glob
// when a statement binds it, so every statement sees the files renamed in
// before it started; files are never modified, only added (and replaced
// ones deleted after the publisher's retention).
//
// DuckDB refuses a view over a glob that matches no file, so a table with
// nothing published yet is a view over an empty table of the same schema
// (schema lake_empty, from sql/ddl) until Refresh finds its first file.
//
// The database holds no data, only those views; it is a file in a fresh
// temporary directory (removed by Close) rather than DuckDB's :memory:
// because pgwire serves a database by reopening its path.
type Query struct {
	db  *sql.DB
	dir string
	tmp string

	mu      sync.Mutex
	waiting map[string]bool // tables still over lake_empty
}

// OpenQuery opens the query database over the lake directory dir. Call it
// before locking the database down (pgwire.Listen does that, with dir in
// its AllowDirs): it runs DDL.
func OpenQuery(ctx context.Context, dir string) (*Query, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lake directory %q: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("lake directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("lake directory %s is not a directory", abs)
	}
	tmp, err := os.MkdirTemp("", "gtsm-query-")
	if err != nil {
		return nil, fmt.Errorf("query database: %w", err)
	}
	db, err := gtsmsql.Open(ctx, filepath.Join(tmp, "query.duckdb"), false)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("query database: %w", err)
	}
	q := &Query{db: db, dir: abs, tmp: tmp, waiting: map[string]bool{}}
	if err := q.init(ctx); err != nil {
		db.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	return q, nil
}

func (q *Query) init(ctx context.Context) error {
	conn, err := q.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("query database: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE SCHEMA lake_empty`); err != nil {
		return fmt.Errorf("query database: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SET search_path = 'lake_empty'`); err != nil {
		return fmt.Errorf("query database: %w", err)
	}
	ddl := gtsmsql.DDL()
	names, err := fs.Glob(ddl, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(ddl, n)
		if err != nil {
			return fmt.Errorf("ddl %s: %w", n, err)
		}
		if _, err := conn.ExecContext(ctx, string(b)); err != nil {
			return fmt.Errorf("ddl %s in schema lake_empty: %w", n, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `RESET search_path`); err != nil {
		return fmt.Errorf("query database: %w", err)
	}
	for _, t := range tables {
		q.waiting[t.name] = true
		cols, err := q.columns(ctx, conn, t.name)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE VIEW main.%s AS SELECT %s FROM lake_empty.%s`,
			quoteIdent(t.name), cols, quoteIdent(t.name))); err != nil {
			return fmt.Errorf("view %s: %w", t.name, err)
		}
	}
	if err := q.refresh(ctx, conn); err != nil {
		return err
	}
	views := gtsmsql.Views()
	vs, err := fs.Glob(views, "*.sql")
	if err != nil {
		return err
	}
	for _, n := range vs {
		b, err := fs.ReadFile(views, n)
		if err != nil {
			return fmt.Errorf("view %s: %w", n, err)
		}
		if _, err := conn.ExecContext(ctx, string(b)); err != nil {
			return fmt.Errorf("view %s: %w", n, err)
		}
	}
	return nil
}

// columns is the table's column list (quoted, in DDL order).
func (q *Query) columns(ctx context.Context, conn *sql.Conn, tbl string) (string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT column_name FROM duckdb_columns()
		WHERE schema_name = 'lake_empty' AND table_name = ? ORDER BY column_index`, tbl)
	if err != nil {
		return "", fmt.Errorf("columns of %s: %w", tbl, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", fmt.Errorf("columns of %s: %w", tbl, err)
		}
		cols = append(cols, quoteIdent(c))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("columns of %s: %w", tbl, err)
	}
	return strings.Join(cols, ", "), nil
}

// viewSQL is the view of a table over its files. Append-only tables: every
// file (offset ranges never overlap). Upserted tables: per span directory,
// only the files of its newest round (p<P>_r<round>, zero-padded, so the
// greatest name is the newest); a replaced file that is still on disk is
// listed but filtered out, so a span is never counted twice. A span whose
// rows were all deleted is a tombstone: one row whose key column (NOT NULL
// in the table) is NULL, filtered out here (external readers: filter
// site IS NOT NULL, or kafka_partition for kafka_offsets).
func (q *Query) viewSQL(t table, cols string) string {
	src := fmt.Sprintf(`read_parquet(%s, union_by_name = true, hive_partitioning = false, filename = true)`, quoteLiteral(t.glob(q.dir)))
	if t.kind == appendOnly {
		return fmt.Sprintf(`CREATE OR REPLACE VIEW main.%s AS SELECT %s FROM %s`, quoteIdent(t.name), cols, src)
	}
	return fmt.Sprintf(`CREATE OR REPLACE VIEW main.%s AS SELECT %s FROM (
	SELECT *, regexp_extract(filename, '/(p[0-9]+_r[0-9]+)[^/]*$', 1) AS lake_round,
	       max(regexp_extract(filename, '/(p[0-9]+_r[0-9]+)[^/]*$', 1)) OVER (PARTITION BY parse_dirpath(filename)) AS lake_newest
	FROM %s) WHERE lake_round = lake_newest AND %s IS NOT NULL`, quoteIdent(t.name), cols, src, quoteIdent(t.keys[0].expr))
}

// Refresh points the views of tables that had no file yet at their files,
// once they have one. It is cheap (a directory glob per such table) and
// safe to call while clients query.
func (q *Query) Refresh(ctx context.Context) error {
	conn, err := q.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("refresh lake views: %w", err)
	}
	defer conn.Close()
	return q.refresh(ctx, conn)
}

func (q *Query) refresh(ctx context.Context, conn *sql.Conn) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, t := range tables {
		if !q.waiting[t.name] {
			continue
		}
		ms, err := filepath.Glob(t.glob(q.dir))
		if err != nil {
			return fmt.Errorf("refresh lake view %s: %w", t.name, err)
		}
		if len(ms) == 0 {
			continue
		}
		cols, err := q.columns(ctx, conn, t.name)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, q.viewSQL(t, cols)); err != nil {
			return fmt.Errorf("refresh lake view %s: %w", t.name, err)
		}
		delete(q.waiting, t.name)
	}
	return nil
}

// Run refreshes every interval until ctx ends.
func (q *Query) Run(ctx context.Context, every time.Duration) error {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			if err := q.Refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
	}
}

// DB is the query database, to serve with pgwire (AllowDirs: Dir()).
func (q *Query) DB() *sql.DB { return q.db }

// Dir is the lake directory (absolute).
func (q *Query) Dir() string { return q.dir }

// Close closes the database and removes its file.
func (q *Query) Close() error {
	err := q.db.Close()
	return errors.Join(err, os.RemoveAll(q.tmp))
}
