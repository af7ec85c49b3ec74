package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// hostileSites are site names built to escape a directory or break a query.
var hostileSites = []string{"x/../../escaped", "../../../tmp/gtsm-escape", "B0/9", "b009", "B009\x00", "B0 9", "TSM5.", strings.Repeat("A", 300)}

// TestExportSiteIsNotAPath: `gtsm export level2 --site` with a site name
// that is a path (and rows stored under that name, so the query finds
// them) exits non-zero naming the site-code rule, and writes nothing, in
// --out or outside it.
func TestExportSiteIsNotAPath(t *testing.T) {
	testutil.Long(t)
	bin := gtsm(t)
	base := t.TempDir()
	dbPath := filepath.Join(base, "l2.duckdb")
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, site := range hostileSites {
		if _, err := db.ExecContext(ctx, `INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version) SELECT ?, TIMESTAMP '2022-06-01 00:00:00' + INTERVAL (i * 300) SECOND, g,
			4.9e7, 1.5, 0.1, 0.2, 0.0, 'v1' FROM range(0, 3) r(i), range(0, 4) gg(g)`, site); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	dead := freeAddr(t)
	for _, site := range hostileSites {
		if strings.Contains(site, "\x00") {
			continue // an argument cannot hold NUL
		}
		out := filepath.Join(base, "out", "deeper")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		p := start(t, nil, bin, "export", "level2", "--addr", dead, "--db", dbPath, "--site", site, "--out", out)
		for range p.lines {
		}
		err := p.wait(time.Minute)
		if exitCode(err) == 0 || !strings.Contains(p.stderr.String(), "site code") {
			t.Errorf("export --site %q: exit %v, want non-zero naming the site-code rule:\n%s", site, err, p.stderr)
		}
		// Nothing but the database and the empty --out under base; nothing
		// in /tmp from the absolute escape either.
		filepath.WalkDir(base, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(filepath.Base(path), "l2.duckdb") {
				t.Errorf("export --site %q wrote %s", site, path)
			}
			return nil
		})
		if m, _ := filepath.Glob("/tmp/gtsm-escape*"); len(m) > 0 {
			os.RemoveAll(m[0])
			t.Errorf("export --site %q wrote %v", site, m)
		}
	}
}

// TestProcessorRefusesBadSiteKeys: records keyed (and valued) by a site
// name that is not a site code become dead letters with reason
// key_bad_site naming the rule; nothing of them reaches gtsm_etl or the
// per-site tables, and the good records around them are stored.
func TestProcessorRefusesBadSiteKeys(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	serde := b.serde(t)
	cl := b.client(t)
	ctx := context.Background()
	var n int
	for i, site := range append([]string{"B009"}, append(hostileSites, "TSM5")...) {
		var r record.Record
		r.SetSite(site)
		r.SetTime(1625097600000 + int64(i)*1000)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: serde.AppendKey(nil, site), Value: serde.AppendValue(nil, &r),
			Headers: []kgo.RecordHeader{{Key: record.SessionHeader, Value: []byte("Hour")}}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	dbPath := filepath.Join(t.TempDir(), "p.duckdb")
	p := start(t, nil, gtsm(t), "process", "--bootstrap-servers", b.kafka, "--registry", b.registry, "--db", dbPath,
		"--group", "sites", "--exit-at-end", "--http-addr", "", "--sql-addr", "", "--progress-interval", "0")
	for range p.lines {
	}
	if err := p.wait(3 * time.Minute); err != nil {
		t.Fatalf("process: %v\n%s", err, p.stderr)
	}
	if got := queryInt(t, dbPath, `SELECT count(*) FROM dead_letters WHERE error LIKE '%not a site code%'`); got != int64(len(hostileSites)) {
		t.Errorf("%d dead letters naming the site-code rule, want %d\n%s", got, len(hostileSites), tail(p.stderr.String(), 30))
	}
	if got := queryInt(t, dbPath, `SELECT count(*) FROM gtsm_etl`); got != 2 {
		t.Errorf("gtsm_etl holds %d records, want the 2 of B009 and TSM5", got)
	}
	if got := queryInt(t, dbPath, `SELECT count(*) FROM site_state WHERE site NOT IN ('B009', 'TSM5')`); got != 0 {
		t.Errorf("site_state has %d rows of other sites", got)
	}
	if !strings.Contains(p.stderr.String(), "key_bad_site") {
		t.Errorf("no dead-letter log with reason key_bad_site:\n%s", tail(p.stderr.String(), 30))
	}
}
