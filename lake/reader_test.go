package lake

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	_ "modernc.org/sqlite"
)

// The independent reader: what any Iceberg engine sees, found without
// iceberg-go. It reads the current metadata location from the catalog's
// SQLite table (the JDBC catalog layout every engine shares), parses the
// metadata JSON, the Avro manifest list and the Avro manifests with goavro,
// and lists the live data files (status not DELETED) of the current
// snapshot; DuckDB reads them.

type icebergMeta struct {
	FormatVersion     int               `json:"format-version"`
	CurrentSnapshotID *int64            `json:"current-snapshot-id"`
	Properties        map[string]string `json:"properties"`
	Snapshots         []struct {
		ID           int64             `json:"snapshot-id"`
		ManifestList string            `json:"manifest-list"`
		Summary      map[string]string `json:"summary"`
	} `json:"snapshots"`
}

func localFile(t testing.TB, loc string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "file" && u.Scheme != "") {
		t.Fatalf("location %q: not a local file", loc)
	}
	return u.Path
}

// readMeta returns the table's current metadata (nil: no such table).
func readMeta(t testing.TB, dir, tbl string) *icebergMeta {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, CatalogFile)+"?mode=ro&_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var loc string
	err = db.QueryRow(`SELECT metadata_location FROM iceberg_tables WHERE table_namespace = ? AND table_name = ?`, Namespace, tbl).Scan(&loc)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		t.Fatalf("catalog row of %s: %v", tbl, err)
	}
	b, err := os.ReadFile(localFile(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	var m icebergMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("metadata %s: %v", loc, err)
	}
	return &m
}

func readAvro(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := goavro.NewOCFReader(f)
	if err != nil {
		t.Fatalf("avro %s: %v", path, err)
	}
	var out []map[string]any
	for r.Scan() {
		d, err := r.Read()
		if err != nil {
			t.Fatalf("avro %s: %v", path, err)
		}
		out = append(out, d.(map[string]any))
	}
	return out
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

// independentFiles lists the live data files of the table's current
// snapshot (nil if the table or snapshot does not exist).
func independentFiles(t testing.TB, dir, tbl string) []string {
	t.Helper()
	m := readMeta(t, dir, tbl)
	if m == nil || m.CurrentSnapshotID == nil || *m.CurrentSnapshotID < 0 {
		return nil
	}
	var list string
	for _, s := range m.Snapshots {
		if s.ID == *m.CurrentSnapshotID {
			list = s.ManifestList
		}
	}
	if list == "" {
		t.Fatalf("%s: current snapshot %d not in the metadata", tbl, *m.CurrentSnapshotID)
	}
	var files []string
	for _, man := range readAvro(t, localFile(t, list)) {
		if c := avroInt(man["content"]); c != 0 {
			t.Fatalf("%s: manifest content %d (delete files): the lake must be copy-on-write", tbl, c)
		}
		for _, e := range readAvro(t, localFile(t, man["manifest_path"].(string))) {
			if avroInt(e["status"]) == 2 { // DELETED
				continue
			}
			df := e["data_file"].(map[string]any)
			if c := avroInt(df["content"]); c != 0 {
				t.Fatalf("%s: data_file content %d", tbl, c)
			}
			files = append(files, localFile(t, df["file_path"].(string)))
		}
	}
	return files
}

// independentLines reads the table's live files with a fresh DuckDB,
// columns in the given order, as sorted text lines.
func independentLines(t testing.TB, dir, tbl string, cols []string) []string {
	t.Helper()
	files := independentFiles(t, dir, tbl)
	if len(files) == 0 {
		return nil
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lits := make([]string, len(files))
	for i, f := range files {
		lits[i] = quoteLiteral(f)
	}
	return sqlLines(t, db, fmt.Sprintf("SELECT %s FROM read_parquet([%s])", strings.Join(cols, ", "), strings.Join(lits, ", ")))
}

// ownerCols are the table's columns, cast to what the lake stores, so
// both sides print alike.
func ownerCols(t testing.TB, tbl string) (lake, owner []string) {
	t.Helper()
	sch, err := lakeSchemas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sch[tbl].cols {
		lake = append(lake, quoteIdent(c.name))
		owner = append(owner, fmt.Sprintf("CAST(%s AS %s)", quoteIdent(c.name), c.stored))
	}
	return lake, owner
}

// checkIndependent asserts that every lake table, read by the independent
// reader, equals the owners' DuckDB tables (the union over dbs).
func checkIndependent(t *testing.T, dir string, dbs []*sql.DB, what string) {
	t.Helper()
	for _, tb := range tables {
		lc, oc := ownerCols(t, tb.name)
		var want []string
		for _, db := range dbs {
			q := fmt.Sprintf("SELECT %s FROM %s", strings.Join(oc, ", "), quoteIdent(tb.name))
			if tb.where == siteOf {
				q += " WHERE site IN (SELECT site FROM site_state)"
			}
			want = append(want, sqlLines(t, db, q)...)
		}
		sortLines(want)
		diff(t, what+": independent reader: "+tb.name, independentLines(t, dir, tb.name, lc), want)
	}
}
