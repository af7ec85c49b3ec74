package export_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/export"
	"github.com/earthscope/gtsm-stream/shell"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestLevel2SiteIsNotAPath: export.Level2 itself (not only the command
// line) refuses a site that is not a site code, even when the database has
// rows under that name, and writes nothing anywhere.
func TestLevel2SiteIsNotAPath(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dbPath := filepath.Join(base, "l2.duckdb")
	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	sites := []string{"x/../../escaped", "../escaped", "b009", "B0\x009"}
	for _, site := range sites {
		if _, err := db.ExecContext(ctx, `INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version) SELECT ?, TIMESTAMP '2022-06-01 00:00:00' + INTERVAL (i * 300) SECOND, g,
			4.9e7, 1.5, 0.1, 0.2, 0.0, 'v1' FROM range(0, 3) r(i), range(0, 4) gg(g)`, site); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b, err := shell.OpenLocal(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := filepath.Join(base, "a", "b")
	for _, site := range sites {
		files, err := export.Level2(ctx, b, export.Options{Site: site, Dir: out})
		if err == nil || !strings.Contains(err.Error(), "not a site code") || len(files) != 0 {
			t.Errorf("Level2(site %q) = %v, %v; want the site-code refusal", site, files, err)
		}
	}
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(filepath.Base(p), "l2.duckdb") {
			t.Errorf("wrote %s", p)
		}
		return nil
	})
}
