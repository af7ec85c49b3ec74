// Package lakecheck reads the lake's Apache Iceberg tables the way any
// engine does, without iceberg-go, so tests can check what package lake
// wrote against an implementation that shares none of its code: the
// current metadata location from the catalog's SQLite table (the JDBC
// catalog layout Trino, Spark and PyIceberg share), the metadata JSON, the
// Avro manifest list and manifests (goavro), and the live data files
// (entries not DELETED) of the current snapshot, read with DuckDB.
package lakecheck

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"
	_ "modernc.org/sqlite" // the catalog file
)

// Meta is the part of a table's metadata JSON the checks use.
type Meta struct {
	Location          string            `json:"location"`
	CurrentSnapshotID *int64            `json:"current-snapshot-id"`
	Properties        map[string]string `json:"properties"`
	Snapshots         []struct {
		ID           int64             `json:"snapshot-id"`
		TimestampMs  int64             `json:"timestamp-ms"`
		ManifestList string            `json:"manifest-list"`
		Summary      map[string]string `json:"summary"`
	} `json:"snapshots"`
}

// ReadMeta reads the current metadata of namespace.table from the SQL
// catalog in the SQLite file catalog (nil, nil: no such table).
func ReadMeta(catalog, namespace, table string) (*Meta, error) {
	db, err := sql.Open("sqlite", "file:"+catalog+"?mode=ro&_pragma=busy_timeout(30000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var loc string
	err = db.QueryRow(`SELECT metadata_location FROM iceberg_tables WHERE table_namespace = ? AND table_name = ?`, namespace, table).Scan(&loc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog %s: table %s.%s: %w", catalog, namespace, table, err)
	}
	p, err := LocalPath(loc)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", loc, err)
	}
	return &m, nil
}

// LocalPath is the path of a file:// location.
func LocalPath(loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "file" && u.Scheme != "") {
		return "", fmt.Errorf("location %q is not a local file", loc)
	}
	return u.Path, nil
}

func readAvro(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := goavro.NewOCFReader(f)
	if err != nil {
		return nil, fmt.Errorf("avro %s: %w", path, err)
	}
	var out []map[string]any
	for r.Scan() {
		d, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("avro %s: %w", path, err)
		}
		m, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("avro %s: a record is %T", path, d)
		}
		out = append(out, m)
	}
	return out, nil
}

func avroInt(v any) int64 {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int64:
		return x
	case map[string]any: // a union
		for _, u := range x {
			return avroInt(u)
		}
	}
	return -1
}

// LiveFiles lists the local paths of the live data files of the table's
// current snapshot (none if the table or a snapshot does not exist). It
// fails on delete files: the lake is copy-on-write.
func LiveFiles(m *Meta) ([]string, error) {
	if m == nil || m.CurrentSnapshotID == nil || *m.CurrentSnapshotID < 0 {
		return nil, nil
	}
	var list string
	for _, s := range m.Snapshots {
		if s.ID == *m.CurrentSnapshotID {
			list = s.ManifestList
		}
	}
	if list == "" {
		return nil, fmt.Errorf("current snapshot %d is not in the metadata", *m.CurrentSnapshotID)
	}
	lp, err := LocalPath(list)
	if err != nil {
		return nil, err
	}
	mans, err := readAvro(lp)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, man := range mans {
		if c := avroInt(man["content"]); c != 0 {
			return nil, fmt.Errorf("manifest content %d (delete files) in %s", c, list)
		}
		path, _ := man["manifest_path"].(string)
		mp, err := LocalPath(path)
		if err != nil {
			return nil, err
		}
		es, err := readAvro(mp)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if avroInt(e["status"]) == 2 { // DELETED
				continue
			}
			df, _ := e["data_file"].(map[string]any)
			if c := avroInt(df["content"]); c != 0 {
				return nil, fmt.Errorf("data_file content %d in %s", c, path)
			}
			fp, _ := df["file_path"].(string)
			p, err := LocalPath(fp)
			if err != nil {
				return nil, err
			}
			files = append(files, p)
		}
	}
	return files, nil
}

// Lines reads the columns (SQL expressions) of the files with db (a
// DuckDB), as sorted text lines (Format).
func Lines(db *sql.DB, files, cols []string) ([]string, error) {
	if len(files) == 0 {
		return nil, nil
	}
	lits := make([]string, len(files))
	for i, f := range files {
		lits[i] = "'" + strings.ReplaceAll(f, "'", "''") + "'"
	}
	return QueryLines(db, fmt.Sprintf("SELECT %s FROM read_parquet([%s], hive_partitioning = false)", strings.Join(cols, ", "), strings.Join(lits, ", ")))
}

// QueryLines runs q and returns its rows as sorted text lines.
func QueryLines(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vs := make([]any, len(cols))
		ps := make([]any, len(cols))
		for i := range vs {
			ps[i] = &vs[i]
		}
		if err := rows.Scan(ps...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vs))
		for i, v := range vs {
			parts[i] = Format(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// Format is a value as text, alike from the lake and from DuckDB tables.
func Format(v any) string {
	switch x := v.(type) {
	case []byte:
		return fmt.Sprintf("%x", x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}
