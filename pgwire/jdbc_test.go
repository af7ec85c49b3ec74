package pgwire_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
)

// pgjdbcJar is Debian's libpostgresql-jdbc-java.
const pgjdbcJar = "/usr/share/java/postgresql.jar"

// TestJDBC drives pgjdbc (what DBeaver, Metabase, Tableau and Spark's JDBC
// source use) through DatabaseMetaData, typed getters, bind parameters,
// setFetchSize with autocommit off past the row cap, and savepoints: a small
// Java program compiled here (testdata/JdbcProbe.java).
func TestJDBC(t *testing.T) {
	testutil.Long(t) // javac and two JVM starts: seconds of CPU
	_, errJavac := exec.LookPath("javac")
	needClient(t, errJavac == nil, "default-jdk-headless")
	_, errJar := os.Stat(pgjdbcJar)
	needClient(t, errJar == nil, "libpostgresql-jdbc-java")
	dir := t.TempDir()
	if out, err := exec.Command("javac", "-d", dir, filepath.Join("testdata", "JdbcProbe.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	e := start(t, pgwire.Config{}, `CREATE VIEW v AS SELECT i, s FROM t`)
	out, err := exec.Command("java", "-cp", dir+string(os.PathListSeparator)+pgjdbcJar, "JdbcProbe",
		"jdbc:postgresql://"+e.addr+"/gtsm?sslmode=disable").CombinedOutput()
	if err != nil {
		t.Fatalf("JdbcProbe: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		got[k] = v
	}
	for k, want := range map[string]string{
		"product":   "PostgreSQL 15.0",
		"tables":    "public|t|TABLE,public|v|VIEW",
		"columns":   "i|int8|-5,n|int4|4,d|float8|8,s|text|12,ts|timestamp|93,b|bool|-7,dec|numeric|2,day|date|91,h|numeric|2,l|text|12",
		"typeinfo":  "true",
		"pk":        "",
		"indexes":   "0",
		"fks":       "0",
		"functions": "true",
		"isolation": "true",
		"row":       "1|one|2021-07-01T00:00:01.250Z|2021-07-01T00:00:01.250Z|2021-07-01T00:00:01.250Z",
		"bound":     "1",
		"fetched":   "250000|31249875000",
		"savepoint": "ok",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
	if !strings.Contains(got["schemas"], "public") {
		t.Errorf("schemas %q lack public", got["schemas"])
	}
	if t.Failed() {
		t.Logf("JdbcProbe printed:\n%s", out)
	}
}
