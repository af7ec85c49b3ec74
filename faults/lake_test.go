package faults

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/lakecheck"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/lake"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// lakeTables are the lake's Iceberg tables with the columns that differ
// between identical runs left out (wall-clock times), and the rows of the
// single file that are published (per-site tables: the sites with
// messages; per-topic tables: the input topic's).
var lakeTables = []struct{ name, exclude, where string }{
	{"gtsm_etl", "", ""},
	{"dead_letters", "received_at", "topic = 'gtsm_etl'"},
	{"windows", "", ""},
	{"gaps", "", ""},
	{"site_state", "updated_at", ""},
	{"level2_gauge_data", "", ""},
	{"level2_regional_data", "", ""},
	{"station_metadata", "received_at", "site IN (SELECT site FROM site_state)"},
	{"site_reference", "", "site IN (SELECT site FROM site_state)"},
	{"kafka_offsets", "", "topic = 'gtsm_etl'"},
}

// sameLakeAsClean reads every table of the Iceberg lake in dir with the
// independent reader (catalog row, metadata JSON, Avro manifests: no
// iceberg-go) and requires it to equal the crash-free single file.
func sameLakeAsClean(t *testing.T, dir, clean string) {
	t.Helper()
	db, err := gtsmsql.Open(context.Background(), clean, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reader, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var files int
	for _, tb := range lakeTables {
		sel := "*"
		if tb.exclude != "" {
			sel = "* EXCLUDE (" + tb.exclude + ")"
		}
		q := "SELECT " + sel + " FROM " + tb.name
		if tb.where != "" {
			q += " WHERE " + tb.where
		}
		want, err := lakecheck.QueryLines(db, q)
		if err != nil {
			t.Fatal(err)
		}
		m, err := lakecheck.ReadMeta(filepath.Join(dir, lake.CatalogFile), lake.Namespace, tb.name)
		if err != nil {
			t.Fatal(err)
		}
		live, err := lakecheck.LiveFiles(m)
		if err != nil {
			t.Fatalf("lake table %s: %v", tb.name, err)
		}
		files += len(live)
		got, err := lakecheck.Lines(reader, live, []string{sel})
		if err != nil {
			t.Fatal(err)
		}
		testutil.DiffLines(t, "lake "+tb.name, got, want)
	}
	t.Logf("every Iceberg table of the lake (%d live data files) equals the single-instance file", files)
}
