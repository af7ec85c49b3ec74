package gtsmsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/earthscope/gtsm-stream/record"
)

func openT(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func columns(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	return cols
}

func TestMigrateNewFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gtsm.duckdb")
	db := openT(t, path)
	defer db.Close()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// Twice is a no-op.
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	ms, err := readMigrations(DDL())
	if err != nil {
		t.Fatal(err)
	}
	newest := ms[len(ms)-1].version
	v, err := Version(ctx, db)
	if err != nil || v != newest {
		t.Fatalf("version = %d, %v; want %d (the newest ddl file)", v, err, newest)
	}
	cols := columns(t, db, "gtsm_etl")
	want := append([]string{"key_site"}, record.FieldNames[:]...)
	want = append(want, "session", "kafka_partition", "kafka_offset", "late")
	if strings.Join(cols, ",") != strings.Join(want, ",") {
		t.Fatalf("gtsm_etl columns\n got %v\nwant %v", cols, want)
	}
	for _, tc := range []struct{ table, first string }{
		{"windows", "site,session,width,window_start,window_end,channel,n,n_null,min,max,mean,first,last,microstrain_mean,final,late_updates"},
		{"gaps", "site,session,gap_start,gap_end,missing"},
		{"site_state", "site,session,first_time,last_time,records,duplicates,late,gaps,missing"},
		{"site_reference", "site,gauge,reference_counts,gap_m"},
		{"kafka_offsets", "topic,kafka_partition,next_offset"},
		{"kafka_progress", "topic,kafka_partition,next_offset"},
	} {
		got := strings.Join(columns(t, db, tc.table), ",")
		if !strings.HasPrefix(got, tc.first) {
			t.Errorf("%s columns = %s; want prefix %s", tc.table, got, tc.first)
		}
	}
	// gap_m defaults to 0.0001 m.
	if _, err := db.Exec(`INSERT INTO site_reference (site, gauge, reference_counts) VALUES ('B009', 1, 5e7)`); err != nil {
		t.Fatal(err)
	}
	var gap float64
	if err := db.QueryRow(`SELECT gap_m FROM site_reference`).Scan(&gap); err != nil || gap != 0.0001 {
		t.Fatalf("gap_m = %v, %v", gap, err)
	}
}

// TestMigrateUpgradesOldFile builds a file at the embedded newest version, closes it, and opens it
// with a program that knows a version 999: the data stays, the new DDL applies
// once, and the views are re-created.
func TestMigrateUpgradesOldFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.duckdb")
	db := openT(t, path)
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO kafka_offsets VALUES ('gtsm_etl', 0, 42)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	v1, err := fs2map(DDL())
	if err != nil {
		t.Fatal(err)
	}
	ddl := fstest.MapFS{}
	for k, v := range v1 {
		ddl[k] = &fstest.MapFile{Data: v}
	}
	ddl["0999_notes.sql"] = &fstest.MapFile{Data: []byte(`ALTER TABLE kafka_offsets ADD COLUMN note VARCHAR DEFAULT 'upgraded';`)}
	views := fstest.MapFS{"v.sql": &fstest.MapFile{Data: []byte(`CREATE OR REPLACE VIEW offsets_note AS SELECT note FROM kafka_offsets;`)}}

	db = openT(t, path)
	defer db.Close()
	if err := migrate(ctx, db, ddl, views); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, ddl, views); err != nil {
		t.Fatalf("second run: %v", err)
	}
	var next int64
	var note string
	if err := db.QueryRow(`SELECT next_offset, note FROM kafka_offsets`).Scan(&next, &note); err != nil {
		t.Fatal(err)
	}
	if next != 42 || note != "upgraded" {
		t.Fatalf("after upgrade: next_offset=%d note=%q", next, note)
	}
	if v, _ := Version(ctx, db); v != 999 {
		t.Fatalf("version %d, want 999", v)
	}
	if err := db.QueryRow(`SELECT note FROM offsets_note`).Scan(&note); err != nil {
		t.Fatal(err)
	}
	// An older program refuses a newer file instead of corrupting it.
	if err := Migrate(ctx, db); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("old program on new file: %v", err)
	}
}

func TestMigrateBadDDLRollsBack(t *testing.T) {
	ctx := context.Background()
	db := openT(t, filepath.Join(t.TempDir(), "bad.duckdb"))
	defer db.Close()
	ddl := fstest.MapFS{
		"0001_a.sql": &fstest.MapFile{Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"0002_b.sql": &fstest.MapFile{Data: []byte(`CREATE TABLE b (x INTEGER); CREATE TABLE broken (;`)},
	}
	err := migrate(ctx, db, ddl, fstest.MapFS{})
	if err == nil || !strings.Contains(err.Error(), "0002_b.sql") {
		t.Fatalf("err = %v; want one naming 0002_b.sql", err)
	}
	if v, _ := Version(ctx, db); v != 1 {
		t.Fatalf("version %d after failed 0002, want 1", v)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_name = 'b'`).Scan(&n)
	if n != 0 {
		t.Fatal("table b of the failed migration exists")
	}
	bad := fstest.MapFS{"1_x.sql": &fstest.MapFile{Data: []byte(`SELECT 1`)}}
	if err := migrate(ctx, db, bad, fstest.MapFS{}); err == nil || !strings.Contains(err.Error(), "1_x.sql") {
		t.Fatalf("bad name: %v", err)
	}
}

// TestHelperHoldLock is not a test: run as a child process, it holds a DuckDB
// file open until killed.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv("GTSMSQL_HOLD")
	if path == "" {
		t.Skip("helper process")
	}
	db, err := Open(context.Background(), path, false)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	defer db.Close()
	fmt.Println("HOLDING")
	time.Sleep(time.Minute)
}

func TestOpenLockedNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.duckdb")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "GTSMSQL_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "HOLDING") {
		t.Fatalf("helper said %q", buf[:n])
	}
	_, err = Open(context.Background(), path, true)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v; want ErrLocked", err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "PID "+pid) {
		t.Fatalf("error %q does not name %s and PID %s", err, path, pid)
	}
}

func fs2map(f fs.FS) (map[string][]byte, error) {
	m := map[string][]byte{}
	es, err := fs.ReadDir(f, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		b, err := fs.ReadFile(f, e.Name())
		if err != nil {
			return nil, err
		}
		m[e.Name()] = b
	}
	return m, nil
}
