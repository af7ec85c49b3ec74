package gtsmsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var memRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)$`)

// Lockdown is DuckDB's own protection for a database that serves untrusted
// SQL (the processor's SQL endpoint, `gtsm sql --db`): no file, URL or
// extension outside the database, and no configuration change afterwards.
//
// Every setting involved is GLOBAL in DuckDB 1.5 (duckdb_settings().scope):
// it applies to the whole database instance, so to the processor's own
// connections too. That is what we want: the processor never reads files,
// URLs or extensions (its database file, WAL and temp directory stay
// writable, as DuckDB exempts them), and no statement may change a setting
// the processor relies on. A consequence: once locked, the processor cannot
// SET anything either, so every SET it needs must run before Apply.
type Lockdown struct {
	// AllowDirs are directories the SQL may read (and, in `gtsm sql --db`,
	// write with COPY ... TO): DuckDB's allowed_directories. None by default.
	AllowDirs []string
	// MemoryLimit, when set, is DuckDB's memory_limit (e.g. "2GB"): global,
	// it bounds the instance, the processor included; work beyond it spills
	// to the temp directory or fails with an out-of-memory error.
	MemoryLimit string
}

// settingsExecer is a *sql.DB or *sql.Conn.
type settingsExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Apply locks the database instance behind db down. It is idempotent: on an
// instance that is already locked with external access off it checks that
// the allowed directories and memory limit match and returns nil (a second
// endpoint on the same file), and it fails if the instance is locked with
// external access on (somebody locked it without us).
func (l Lockdown) Apply(ctx context.Context, db settingsExecer) error {
	dirs, err := l.dirs()
	if err != nil {
		return err
	}
	var locked, external bool
	if err := db.QueryRowContext(ctx, `SELECT current_setting('lock_configuration'), current_setting('enable_external_access')`).Scan(&locked, &external); err != nil {
		return fmt.Errorf("read DuckDB settings: %w", err)
	}
	if locked {
		if external {
			return errors.New("DuckDB configuration is locked with external access enabled: cannot serve SQL safely")
		}
		var have []string
		if err := db.QueryRowContext(ctx, `SELECT current_setting('allowed_directories')::VARCHAR[]`).Scan(newStringList(&have)); err != nil {
			return fmt.Errorf("read allowed_directories: %w", err)
		}
		if strings.Join(have, "\n") != strings.Join(dirs, "\n") {
			return fmt.Errorf("DuckDB configuration is already locked with allowed directories %q, not %q", have, dirs)
		}
		return nil
	}
	stmts := []string{
		// Extensions are neither downloaded nor loaded on demand
		// (read_parquet('http://...') would fetch httpfs).
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
	}
	if len(dirs) > 0 {
		q := make([]string, len(dirs))
		for i, d := range dirs {
			q[i] = quoteLiteral(d)
		}
		// Must precede enable_external_access = false, which freezes it.
		stmts = append(stmts, "SET allowed_directories = ["+strings.Join(q, ", ")+"]")
	}
	if l.MemoryLimit != "" {
		if !memRE.MatchString(l.MemoryLimit) {
			return fmt.Errorf("memory limit %q: want a size like 512MB or 2GB", l.MemoryLimit)
		}
		stmts = append(stmts, "SET memory_limit = "+quoteLiteral(l.MemoryLimit))
	}
	stmts = append(stmts,
		// No file outside the database (and allowed_directories), no URL,
		// no ATTACH, no COPY/EXPORT to files, no extension installs. DuckDB
		// refuses to turn this back on.
		"SET enable_external_access = false",
		// Nothing above (nor threads, memory_limit, ...) can change again.
		"SET lock_configuration = true",
	)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("lock DuckDB down: %s: %w", s, err)
		}
	}
	return nil
}

// dirs makes the allowed directories absolute, existing, with a trailing
// slash (DuckDB matches them as path prefixes: "/data" would allow
// "/database").
func (l Lockdown) dirs() ([]string, error) {
	var out []string
	for _, d := range l.AllowDirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("allowed directory %q: %w", d, err)
		}
		if st, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("allowed directory: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("allowed directory %s is not a directory", abs)
		}
		out = append(out, strings.TrimSuffix(abs, "/")+"/")
	}
	return out, nil
}

// DatabasePath is the absolute path of the file behind db's default
// database ("" for an in-memory database).
func DatabasePath(ctx context.Context, db settingsExecer) (string, error) {
	var p sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT path FROM duckdb_databases() WHERE database_name = current_database()`).Scan(&p); err != nil {
		return "", fmt.Errorf("find the DuckDB file: %w", err)
	}
	if !p.Valid || p.String == "" || p.String == ":memory:" {
		return "", nil
	}
	abs, err := filepath.Abs(p.String)
	if err != nil {
		return "", fmt.Errorf("DuckDB file %s: %w", p.String, err)
	}
	return abs, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// stringList scans a DuckDB VARCHAR[] (the driver returns []any).
type stringList struct{ out *[]string }

func newStringList(out *[]string) *stringList { return &stringList{out: out} }

func (s *stringList) Scan(v any) error {
	*s.out = nil
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		for _, e := range x {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("list element %T is not a string", e)
			}
			*s.out = append(*s.out, str)
		}
		return nil
	}
	return fmt.Errorf("cannot scan %T as a list of strings", v)
}
