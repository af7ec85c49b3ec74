// Package gtsmsql holds the DuckDB schema of gtsm-stream: versioned DDL files
// (ddl/NNNN_name.sql, applied once each, in order) and views (views/*.sql,
// re-created on every start), plus Open, which turns DuckDB's lock error into
// one that names the file and the process holding it.
package gtsmsql

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
)

//go:embed ddl/*.sql
var ddlFS embed.FS

//go:embed views/*.sql
var viewsFS embed.FS

// DDL returns the embedded ddl/ files (for tools that print the schema).
func DDL() fs.FS { d, _ := fs.Sub(ddlFS, "ddl"); return d }

// Views returns the embedded views/ files.
func Views() fs.FS { v, _ := fs.Sub(viewsFS, "views"); return v }

// Migrate brings the database to the newest schema: every ddl file whose
// version is not yet in schema_migrations is applied in its own transaction
// (together with its schema_migrations row, so a crash leaves either the old
// or the new version, never half), in version order; then every view file is
// executed (CREATE OR REPLACE VIEW), so views always match this binary.
func Migrate(ctx context.Context, db *sql.DB) error {
	return migrate(ctx, db, DDL(), Views())
}

var ddlName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

func readMigrations(ddl fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(ddl, ".")
	if err != nil {
		return nil, fmt.Errorf("read ddl directory: %w", err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := ddlName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("ddl file %q: name must be NNNN_lower_case.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("ddl files %q and %q have the same version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(ddl, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read ddl file %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

func migrate(ctx context.Context, db *sql.DB, ddl, views fs.FS) error {
	ms, err := readMigrations(ddl)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	newest := 0
	if len(ms) > 0 {
		newest = ms[len(ms)-1].version
	}
	for v := range applied {
		if v > newest {
			return fmt.Errorf("database schema version %d is newer than this program's (%d): upgrade gtsm", v, newest)
		}
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := apply(ctx, db, m); err != nil {
			return err
		}
	}
	vs, err := fs.ReadDir(views, ".")
	if err != nil {
		return fmt.Errorf("read views directory: %w", err)
	}
	for _, e := range vs {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(views, e.Name())
		if err != nil {
			return fmt.Errorf("read view %s: %w", e.Name(), err)
		}
		if _, err := db.ExecContext(ctx, string(b)); err != nil {
			return fmt.Errorf("view %s: %w", e.Name(), err)
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, m migration) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
		return fmt.Errorf("migration %s: record version: %w", m.name, err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return nil
}

// Version returns the highest applied schema version (0 for a new file).
func Version(ctx context.Context, db *sql.DB) (int, error) {
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return int(v.Int64), nil
}

// ErrLocked is wrapped by Open when another process holds the file.
var ErrLocked = errors.New("database file is locked by another process")

var lockPID = regexp.MustCompile(`\(PID (\d+)\)`)

// Open opens (creating if needed) a DuckDB file and pings it, so that a lock
// held by another process is reported here, as an error that names the file
// and the holder's PID (DuckDB allows one process per file, even read-only).
func Open(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	dsn := path
	if readOnly {
		dsn += "?access_mode=read_only"
	}
	db, err := sql.Open("duckdb", dsn)
	if err != nil {
		return nil, openError(path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	return db, nil
}

func openError(path string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "different configuration") {
		// This process already has the file open read-write (a processor
		// in the same process): DuckDB will not open it read-only too.
		return fmt.Errorf("open DuckDB %s: %w (by this process, read-write): %v", path, ErrLocked, err)
	}
	if strings.Contains(msg, "Could not set lock") || strings.Contains(msg, "Conflicting lock") {
		pid := "unknown"
		if m := lockPID.FindStringSubmatch(msg); m != nil {
			pid = m[1]
		}
		return fmt.Errorf("open DuckDB %s: %w (held by PID %s; stop that process, e.g. `kill %s`, or use another --db file): %v",
			path, ErrLocked, pid, pid, err)
	}
	return fmt.Errorf("open DuckDB %s: %w", path, err)
}
