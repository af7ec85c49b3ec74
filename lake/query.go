package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go/catalog"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Query is the query service's database: a DuckDB with one view per lake
// table, under the single-file name (gtsm_etl, windows, ...), over
// read_parquet of the data files of the table's current Iceberg snapshot,
// and the project's views (sql/views) on top, so every named query runs
// unchanged. Nothing else is in it: no helper schema, no placeholder table.
//
// DuckDB cannot load its iceberg extension here, so Refresh reads the
// catalog: a table whose metadata location changed (a new commit) gets its
// view replaced by one over the new snapshot's file list. A statement binds
// the views as they are when it starts, so it reads one committed snapshot
// of each table, never half a commit; the files of a replaced snapshot stay
// for the retention (longer than the SQL timeout).
//
// The database is a file in a fresh temporary directory (removed by Close)
// rather than DuckDB's :memory: because pgwire serves a database by
// reopening its path.
type Query struct {
	db  *sql.DB
	dir string
	tmp string
	cat *lakeCatalog
	log interface {
		Warn(string, ...any)
	}

	mu   sync.Mutex
	seen map[string]string // table -> metadata location its view reads
}

// OpenQuery opens the query database over the lake directory dir. Call it
// before locking the database down (pgwire.Listen does that, with dir in
// its AllowDirs): it runs DDL.
func OpenQuery(ctx context.Context, dir string, opts ...Option) (*Query, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lake directory %q: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("lake directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("lake directory %s is not a directory", abs)
	}
	cfg := newConfig(opts)
	cat, err := openCatalog(ctx, abs, cfg.catalog)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "gtsm-query-")
	if err != nil {
		cat.close()
		return nil, fmt.Errorf("query database: %w", err)
	}
	db, err := gtsmsql.Open(ctx, filepath.Join(tmp, "query.duckdb"), false)
	if err != nil {
		cat.close()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("query database: %w", err)
	}
	q := &Query{db: db, dir: abs, tmp: tmp, cat: cat, log: cfg.log, seen: map[string]string{}}
	if err := q.init(ctx); err != nil {
		q.Close()
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
	for _, t := range tables {
		if _, err := conn.ExecContext(ctx, q.emptyView(t)); err != nil {
			return fmt.Errorf("view %s: %w", t.name, err)
		}
	}
	if err := q.refresh(ctx, conn); err != nil {
		q.log.Warn("lake views", "err", err)
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

// selectCols casts every stored column back to the processor's type;
// empty: NULLs (but the constants given).
func (q *Query) selectCols(t table, empty bool, consts map[string]string) string {
	s := q.cat.sch[t.name]
	cols := make([]string, len(s.cols))
	for i, c := range s.cols {
		src := quoteIdent(c.name)
		if empty {
			src = "NULL"
			if v, ok := consts[c.name]; ok {
				src = v
			}
		}
		cols[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", src, c.duck, quoteIdent(c.name))
	}
	return strings.Join(cols, ", ")
}

// emptyView is the view of a table with no data file: its columns, no row.
func (q *Query) emptyView(t table) string {
	return fmt.Sprintf(`CREATE OR REPLACE VIEW main.%s AS SELECT %s WHERE false`, quoteIdent(t.name), q.selectCols(t, true, nil))
}

// liveFile is a data file of a table's current snapshot.
type liveFile struct {
	path string
	vals []sql.NullString // partition values
	err  string           // why it cannot be read (probe)
}

// viewSQL is the view of a table over its current data files: the good
// ones read by one read_parquet, and for each bad one a branch that fails
// with its error when a statement reads it. The branch's identity
// partition column (site, key_site, kafka_partition) is a constant, so a
// statement that filters on another value never runs it.
func (q *Query) viewSQL(t table, files, bad []liveFile) string {
	if len(files) == 0 && len(bad) == 0 {
		return q.emptyView(t)
	}
	var parts []string
	if len(files) > 0 {
		lits := make([]string, len(files))
		for i, f := range files {
			lits[i] = quoteLiteral(f.path)
		}
		parts = append(parts, fmt.Sprintf(`SELECT %s FROM read_parquet([%s], hive_partitioning = false)`,
			q.selectCols(t, false, nil), strings.Join(lits, ", ")))
	}
	for _, b := range bad {
		consts := map[string]string{}
		for i, k := range t.keys {
			if k.tr == identity && b.vals[i].Valid {
				consts[k.col] = quoteLiteral(b.vals[i].String)
			}
		}
		parts = append(parts, fmt.Sprintf(`SELECT %s FROM range(1) WHERE error(%s) IS NULL`,
			q.selectCols(t, true, consts), quoteLiteral(fmt.Sprintf("lake table %s: data file %s cannot be read: %s", t.name, b.path, b.err))))
	}
	return fmt.Sprintf(`CREATE OR REPLACE VIEW main.%s AS %s`, quoteIdent(t.name), strings.Join(parts, "\nUNION ALL\n"))
}

// probe opens each file's footer and splits them into readable and not.
func (q *Query) probe(ctx context.Context, conn *sql.Conn, files []liveFile) (good, bad []liveFile) {
	for _, f := range files {
		var n int64
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM parquet_metadata(?)`, f.path).Scan(&n); err != nil {
			f.err = err.Error()
			bad = append(bad, f)
			continue
		}
		good = append(good, f)
	}
	return good, bad
}

// Refresh points each view at its table's current snapshot, if a commit
// happened since the last refresh. It is cheap (one catalog read per
// table; manifests only for the tables that changed) and safe while
// clients query. A table whose refresh fails keeps its previous view.
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
	var errs []error
	for _, t := range tables {
		tb, err := q.cat.cat.LoadTable(ctx, ident(t.name))
		if errors.Is(err, catalog.ErrNoSuchTable) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("lake table %s: %w", t.name, err))
			continue
		}
		if q.seen[t.name] == tb.MetadataLocation() {
			continue
		}
		dfs, err := liveFiles(ctx, tb)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files := make([]liveFile, 0, len(dfs))
		spec := tb.Spec()
		for _, df := range dfs {
			var lf liveFile
			if lf.path, err = localPath(q.dir, df.FilePath()); err != nil {
				err = fmt.Errorf("lake table %s: %w", t.name, err)
				break
			}
			if lf.vals, err = partitionVals(spec, df.Partition()); err != nil {
				break
			}
			files = append(files, lf)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := conn.ExecContext(ctx, q.viewSQL(t, files, nil)); err != nil {
			// A file that cannot be opened (truncated, missing): the view
			// reads the others, and a statement that would read it fails
			// naming it (a filter on the site prunes it).
			good, bad := q.probe(ctx, conn, files)
			if len(bad) == 0 {
				errs = append(errs, fmt.Errorf("refresh lake view %s: %w", t.name, err))
				continue
			}
			if _, err := conn.ExecContext(ctx, q.viewSQL(t, good, bad)); err != nil {
				errs = append(errs, fmt.Errorf("refresh lake view %s: %w", t.name, err))
				continue
			}
			for _, b := range bad {
				errs = append(errs, fmt.Errorf("lake table %s: %s", t.name, b.err))
			}
		}
		q.seen[t.name] = tb.MetadataLocation()
	}
	return errors.Join(errs...)
}

// Run refreshes every interval until ctx ends. A failing refresh is
// logged and retried: the service keeps answering from the views it has.
func (q *Query) Run(ctx context.Context, every time.Duration) error {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			if err := q.Refresh(ctx); err != nil && ctx.Err() == nil {
				q.log.Warn("refresh lake views", "err", err)
			}
		}
	}
}

// DB is the query database, to serve with pgwire (AllowDirs: Dir()).
func (q *Query) DB() *sql.DB { return q.db }

// Dir is the lake directory (absolute).
func (q *Query) Dir() string { return q.dir }

// Close closes the database and the catalog and removes the database file.
func (q *Query) Close() error {
	err := q.db.Close()
	return errors.Join(err, q.cat.close(), os.RemoveAll(q.tmp))
}
