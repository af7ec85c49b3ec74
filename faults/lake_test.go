package faults

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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

// waitLakeCaught waits until the lake's gtsm_etl holds every partition up
// to the group's committed offset (the owners publish every interval and
// when they open a partition's file).
func (b *broker) waitLakeCaught(t *testing.T, dir, group string, timeout time.Duration, ms ...*proc) {
	t.Helper()
	committed, _ := b.groupState(t, group)
	deadline := time.Now().Add(timeout)
	for {
		m, err := lakecheck.ReadMeta(filepath.Join(dir, lake.CatalogFile), lake.Namespace, "gtsm_etl")
		if err != nil {
			t.Fatal(err)
		}
		var behind []string
		for p, c := range committed {
			if c <= 0 {
				continue
			}
			got := int64(-1)
			if m != nil {
				got, _ = strconv.ParseInt(m.Properties[fmt.Sprintf("gtsm.kafka-offset.%s.%d", topic, p)], 10, 64)
			}
			if got < c {
				behind = append(behind, fmt.Sprintf("p%d %d<%d", p, got, c))
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, p := range ms {
				t.Logf("--- member %d\n%s", i, tail(p.stderr.String(), 40))
			}
			t.Fatalf("the lake is behind the committed offsets after %v: %v", timeout, behind)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
