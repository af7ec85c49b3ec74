package main

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func TestExportLevel2CLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "l2.duckdb")
	db, err := gtsmsql.Open(ctx, dbPath, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// Two 300 s rows per gauge; gauge 2 of the second has no microstrain and
	// no atmp_c (fill in the file).
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version)
		SELECT 'B009', TIMESTAMP '2022-03-01 00:00:00' + to_seconds(300 * (i // 4)), i % 4, 1e7,
		       CASE WHEN i = 6 THEN NULL ELSE i * 0.5 - 1.25 END, CASE WHEN i = 6 THEN NULL ELSE 0.125 END, NULL, 0, 'abc'
		FROM range(8) r(i)`); err != nil {
		t.Fatal(err)
	}
	// B010: decimated counts only (no metadata): nothing but fill to write.
	if _, err := db.Exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts)
		SELECT 'B010', TIMESTAMP '2022-03-01 00:00:00' + to_seconds(300 * (i // 4)), i % 4, 1e7 FROM range(8) r(i)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out := filepath.Join(dir, "out")
	vars := map[string]string{"GTSM_SQL_ADDR": "127.0.0.1:1"} // no endpoint: the file is read
	code, _, errs := runCmd(t, vars, "export", "level2", "--site", "B009", "--db", dbPath, "--out", out, "--from", "2022-03-01")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f, err := os.Open(filepath.Join(out, "B009.2022.bsm.level2", "B009.2022.xml.Gauge2.txt.gz"))
	if err != nil {
		t.Fatalf("%v (stderr %s)", err, errs)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	want := "date gauge2(mstrain) strain_quality s_offset tide_c detrend_c atmp_c atmp_c_quality version level atmp\n" +
		"2022-03-01T00:00:00 -0.250000 g 0.000000 999999 999999 0.125000 g abc 2a 999999\n" +
		"2022-03-01T00:05:00 999999 m 0.000000 999999 999999 999999 m abc 2a 999999\n"
	if string(b) != want {
		t.Errorf("Gauge2 file:\n%s\nwant:\n%s", b, want)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--db", dbPath}, 2, "--site is required"},
		{[]string{"--site", "B009", "--db", dbPath, "--from", "March"}, 2, `--from "March"`},
		{[]string{"--site", "B009", "--db", dbPath, "--out", out, "--to", "2022-01-01"}, 1, "no Level-2 rows for site B009"},
		{[]string{"--site", "B010", "--db", dbPath, "--out", out}, 1, "every value for site B010 in the range given would be the fill value 999999"},
	} {
		code, _, errs := runCmd(t, vars, append([]string{"export", "level2"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}
