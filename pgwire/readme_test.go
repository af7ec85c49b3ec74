package pgwire_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestREADMEClients runs the README's client examples (psql \copy, pandas
// through SQLAlchemy, a Grafana-style query) against an endpoint serving a
// processor database, its port in place of 5433.
func TestREADMEClients(t *testing.T) {
	testutil.Long(t) // three client processes, pandas' import alone takes seconds
	py := python3(t, "python3-pandas python3-sqlalchemy python3-psycopg2", "pandas", "sqlalchemy", "psycopg2")
	if _, err := exec.LookPath("psql"); err != nil {
		needClient(t, false, "postgresql-client")
	}
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			lines = lines[:0]
			in = true
		case strings.HasPrefix(l, "```") && in:
			in = false
			if len(lines) > 0 && strings.Contains(lines[0], "TestREADMEClients") {
				goto found
			}
		case in:
			lines = append(lines, l)
		}
	}
	t.Fatal("README.md has no sh block naming TestREADMEClients")
found:
	e := startDB(t, pgwire.Config{}, func(db *sql.DB) error { return gtsmsql.Migrate(context.Background(), db) },
		`INSERT INTO gtsm_etl (key_site, site, session, "time", "timestamp", rs1_t0, kafka_partition, kafka_offset, late)
		 SELECT 'B009', 'B009', 'Min', 1625097600000 + range * 1000, 'x', range::INTEGER, 0, range, false FROM range(600)`)
	_, port, _ := strings.Cut(e.addr, ":")
	dir := t.TempDir()
	var out strings.Builder
	for _, l := range lines[1:] {
		cmd := strings.TrimSpace(l)
		if i := strings.Index(cmd, "   # "); i >= 0 {
			cmd = strings.TrimSpace(cmd[:i])
		}
		if cmd == "" {
			continue
		}
		cmd = strings.ReplaceAll(cmd, "5433", port)
		if rest, ok := strings.CutPrefix(cmd, "python3 "); ok {
			cmd = py + " " + rest // Debian's, which has the modules
		}
		c := exec.Command("bash", "-c", cmd)
		c.Dir = dir
		c.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
		o, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, o)
		}
		out.Write(o)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "b009.csv"))
	if n := strings.Count(string(csv), "\n"); err != nil || n != 601 || !strings.HasPrefix(string(csv), "ts,key_site,site,") ||
		!strings.Contains(string(csv), "\n2021-07-01 00:00:00+00,B009,B009,") {
		t.Errorf("b009.csv: %d lines, %v:\n%.300s", n, err, csv)
	}
	for _, want := range []string{"COPY 600", "0  B009      600", " 1625097600 |  29.5", " 1625097840 | 269.5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("README client lines' output lacks %q:\n%s", want, out.String())
		}
	}
}
