package lake

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/lakecheck"
)

// The independent reader is package internal/lakecheck (no iceberg-go).

func readMeta(t testing.TB, dir, tbl string) *lakecheck.Meta {
	t.Helper()
	m, err := lakecheck.ReadMeta(filepath.Join(dir, CatalogFile), Namespace, tbl)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func localFile(t testing.TB, loc string) string {
	t.Helper()
	p, err := lakecheck.LocalPath(loc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// independentFiles lists the live data files of the table's current
// snapshot (nil if the table or snapshot does not exist).
func independentFiles(t testing.TB, dir, tbl string) []string {
	t.Helper()
	files, err := lakecheck.LiveFiles(readMeta(t, dir, tbl))
	if err != nil {
		t.Fatalf("%s: %v", tbl, err)
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
	lines, err := lakecheck.Lines(db, files, cols)
	if err != nil {
		t.Fatal(err)
	}
	return lines
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
			l, err := lakecheck.QueryLines(db, q)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, l...)
		}
		sortLines(want)
		diff(t, what+": independent reader: "+tb.name, independentLines(t, dir, tb.name, lc), want)
	}
}
