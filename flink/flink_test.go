package flink

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/earthscope/gtsm-stream/record"
)

func TestStatements(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         []string
	}{
		{"two", "SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"no trailing semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"semicolon in string", "SELECT ';' ; SELECT 'it''s;'", []string{"SELECT ';'", "SELECT 'it''s;'"}},
		{"semicolon in identifier", "SELECT `a;b` FROM t;", []string{"SELECT `a;b` FROM t"}},
		{"semicolon in comments", "-- a; b\nSELECT 1 /* ; */;\n-- only a comment;\n", []string{"-- a; b\nSELECT 1 /* ; */"}},
		{"empty", " ;\n; ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Statements(tc.script)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("Statements(%q) = %q, want %q", tc.script, got, tc.want)
			}
		})
	}
}

// stripComments removes -- comments (none of our strings contain "--").
func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestDDL(t *testing.T) {
	stmts := Statements(DDL())
	if len(stmts) != 2 {
		t.Fatalf("gtsm_etl.sql has %d statements, want CREATE TABLE and CREATE VIEW", len(stmts))
	}
	table := stripComments(stmts[0])
	if !strings.HasPrefix(strings.TrimSpace(table), "CREATE TABLE IF NOT EXISTS gtsm_etl (") {
		t.Fatalf("first statement is not CREATE TABLE gtsm_etl: %.60q", table)
	}
	withAt := strings.LastIndex(table, ") WITH (")
	if withAt < 0 {
		t.Fatal("no WITH (...) options")
	}

	// Physical columns: key_site, then every value field in schema order.
	colRe := regexp.MustCompile("^\\s*`(\\w+)` (STRING|BIGINT|INT)\\s*,\\s*$")
	var cols []string
	sc := bufio.NewScanner(strings.NewReader(table[:withAt]))
	for sc.Scan() {
		if m := colRe.FindStringSubmatch(sc.Text()); m != nil {
			cols = append(cols, m[1])
		}
	}
	want := append([]string{"key_site"}, record.FieldNames[:]...)
	if strings.Join(cols, ",") != strings.Join(want, ",") {
		t.Errorf("physical columns\n got %v\nwant %v", cols, want)
	}
	for _, s := range []string{
		"`headers` MAP<STRING, BYTES> METADATA VIRTUAL",
		"`headers`['gtsm_session']",
		"`event_time` AS TO_TIMESTAMP_LTZ(`time`, 3)",
		"WATERMARK FOR `event_time` AS",
		"`proc_time` AS PROCTIME()",
	} {
		if !strings.Contains(table, s) {
			t.Errorf("CREATE TABLE lacks %s", s)
		}
	}

	// The options: 'k' = 'v' pairs separated by commas (the seed's DDL missed
	// one after 'scan.startup.mode', which Flink rejects).
	body := table[withAt+len(") WITH ("):]
	body = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body), ")"))
	pairRe := regexp.MustCompile(`^'([^']+)'\s*=\s*'([^']*)'$`)
	opts := map[string]string{}
	for _, part := range strings.Split(body, ",") {
		m := pairRe.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			t.Errorf("option %q is not one 'key' = 'value' pair (missing comma?)", strings.TrimSpace(part))
			continue
		}
		opts[m[1]] = m[2]
	}
	for k, v := range map[string]string{
		"connector":                    "kafka",
		"topic":                        "gtsm_etl",
		"properties.bootstrap.servers": "kafka-broker:9092",
		"scan.startup.mode":            "earliest-offset",
		"scan.bounded.mode":            "latest-offset",
		"key.format":                   "avro-confluent",
		"key.avro-confluent.url":       "http://kafka-schema-registry:8081",
		"key.fields":                   "key_site",
		"key.fields-prefix":            "key_",
		"value.format":                 "avro-confluent",
		"value.avro-confluent.url":     "http://kafka-schema-registry:8081",
		"value.fields-include":         "EXCEPT_KEY",
	} {
		if opts[k] != v {
			t.Errorf("option %s = %q, want %q", k, opts[k], v)
		}
	}
	if !strings.Contains(stmts[1], "CREATE TEMPORARY VIEW IF NOT EXISTS gtsm_strain AS") {
		t.Errorf("second statement is not the gtsm_strain view: %.60q", stmts[1])
	}
	// The view covers CH0..CH3 of each session.
	for _, s := range []string{"Day", "Hour", "Min"} {
		for k := 1; k <= 4; k++ {
			prefix := map[string]string{"Day": "rs", "Hour": "ls", "Min": "bs"}[s]
			ch := prefix + string(rune('0'+k)) + "_t0"
			if !strings.Contains(stmts[1], "'"+ch+"'") || !strings.Contains(stmts[1], "`"+ch+"`") {
				t.Errorf("gtsm_strain lacks channel %s", ch)
			}
		}
	}
}

func TestQueries(t *testing.T) {
	names := QueryNames()
	want := []string{"daily", "gaps", "hourly", "late_duplicates", "latest", "seed"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("QueryNames() = %v, want %v", names, want)
	}
	cols := map[string][]string{
		"seed":            {"key_site", "timestamp"},
		"hourly":          {"site", "session", "channel", "window_start", "window_end", "n", "n_null", "min", "max", "mean", "first", "last"},
		"daily":           {"site", "session", "channel", "window_start", "window_end", "n", "n_null", "min", "max", "mean", "first", "last"},
		"gaps":            {"site", "session", "gap_start", "gap_end", "missing"},
		"late_duplicates": {"site", "session", "records", "duplicates", "late"},
		"latest":          {"site", "session", "last_time", "records"},
	}
	for _, n := range names {
		q, err := Query(n)
		if err != nil {
			t.Fatal(err)
		}
		if st := Statements(q); len(st) != 1 || !strings.HasPrefix(stripComments(st[0]), "SELECT") && !strings.Contains(st[0], "\nSELECT") {
			t.Errorf("%s: want one SELECT statement, got %d", n, len(st))
		}
		// Every result column is named as the contract says (AS name or bare).
		for _, c := range cols[n] {
			if !regexp.MustCompile("(AS `?" + c + "`?\\b|SELECT `?" + c + "`?|, `?" + c + "`?[,\\s])").MatchString(q) {
				t.Errorf("%s: no result column %s", n, c)
			}
		}
		if strings.Contains(q, "AVG(`v`)") {
			t.Errorf("%s: AVG of an INT is an INT in Flink: cast to DOUBLE", n)
		}
	}
	if _, err := Query("nope"); err == nil || !strings.Contains(err.Error(), "hourly") {
		t.Errorf("Query(nope) error %v should list the names", err)
	}
}

// TestInstallConnectors runs the real script against a Maven layout on disk
// (file:// URLs through curl): right versions for the Flink found in lib/,
// checksums verified, idempotent, a corrupt jar refused.
func TestInstallConnectors(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	root := testutil.RepoRoot(t)
	tmp := t.TempDir()
	home := filepath.Join(tmp, "flink")
	maven := filepath.Join(tmp, "m2")
	cache := filepath.Join(tmp, "cache")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(home, "lib"), 0o755))
	must(os.WriteFile(filepath.Join(home, "lib", "flink-dist-1.20.1.jar"), []byte("dist"), 0o644))
	publish := func(artifact, version, content, sum string) {
		dir := filepath.Join(maven, "org/apache/flink", artifact, version)
		must(os.MkdirAll(dir, 0o755))
		jar := filepath.Join(dir, artifact+"-"+version+".jar")
		must(os.WriteFile(jar, []byte(content), 0o644))
		if sum == "" {
			h := sha1.Sum([]byte(content))
			sum = hex.EncodeToString(h[:])
		}
		must(os.WriteFile(jar+".sha1", []byte(sum+"\n"), 0o644))
	}
	publish("flink-sql-connector-kafka", "3.3.0-1.20", "kafka jar", "")
	publish("flink-sql-avro-confluent-registry", "1.20.1", "avro jar", "")

	run := func() (string, error) {
		cmd := exec.Command("bash", filepath.Join(root, "flink", "install-connectors.sh"))
		cmd.Env = append(os.Environ(), "FLINK_HOME="+home, "CONNECTOR_CACHE="+cache, "MAVEN_REPO=file://"+maven)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i := 0; i < 2; i++ { // the second run finds everything in place
		out, err := run()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		for jar, content := range map[string]string{
			"flink-sql-connector-kafka-3.3.0-1.20.jar":     "kafka jar",
			"flink-sql-avro-confluent-registry-1.20.1.jar": "avro jar",
		} {
			b, err := os.ReadFile(filepath.Join(home, "lib", jar))
			if err != nil || string(b) != content {
				t.Errorf("run %d: lib/%s = %q, %v", i, jar, b, err)
			}
		}
		if got := strings.Count(out, "downloading"); (i == 0) != (got == 2) || (i == 1 && got != 0) {
			t.Errorf("run %d downloaded %d jars:\n%s", i, got, out)
		}
	}

	// A jar whose checksum does not match is refused and not installed.
	must(os.RemoveAll(cache))
	must(os.Remove(filepath.Join(home, "lib", "flink-sql-avro-confluent-registry-1.20.1.jar")))
	publish("flink-sql-avro-confluent-registry", "1.20.1", "tampered", strings.Repeat("0", 40))
	out, err := run()
	if err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("tampered jar accepted: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "lib", "flink-sql-avro-confluent-registry-1.20.1.jar")); err == nil {
		t.Error("tampered jar installed")
	}
}

// TestDockerfile checks what can be checked without an engine: a cgo build of
// ./cmd/gtsm in a Go builder, a Debian slim runtime of the same release, and
// COPY sources that exist and are not excluded by .dockerignore.
func TestDockerfile(t *testing.T) {
	root := testutil.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	var froms []string
	for _, line := range strings.Split(df, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "FROM" {
			froms = append(froms, f[1])
		}
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:") || !strings.HasPrefix(froms[1], "debian:") || !strings.HasSuffix(froms[1], "-slim") {
		t.Errorf("stages %v, want golang builder then debian slim", froms)
	}
	release := func(img string) string { return img[strings.LastIndex(img, "-")+1:] }
	if len(froms) == 2 && release(froms[0]) != strings.TrimSuffix(strings.TrimPrefix(froms[1], "debian:"), "-slim") {
		t.Errorf("builder %s and runtime %s are different Debian releases (glibc/libstdc++ for DuckDB)", froms[0], froms[1])
	}
	for _, s := range []string{"CGO_ENABLED=1", "./cmd/gtsm", `ENTRYPOINT ["gtsm"]`} {
		if !strings.Contains(df, s) {
			t.Errorf("Dockerfile lacks %s", s)
		}
	}
	// Not root; both ports; a health probe the image can run (the binary's
	// own healthcheck subcommand: there is no curl).
	var user string
	for _, line := range strings.Split(df, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "USER" {
			user = f[1]
		}
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("runtime USER %q: runs as root", user)
	}
	if !regexp.MustCompile(`(?m)^EXPOSE 5433 8080$`).MatchString(df) {
		t.Errorf("Dockerfile does not EXPOSE 5433 8080")
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["gtsm", "healthcheck"\]$`).MatchString(df) {
		t.Errorf("no HEALTHCHECK running gtsm healthcheck")
	}
	// (cmd/gtsm TestHealthcheck runs the subcommand through the dispatcher.)
	if src, err := os.ReadFile(filepath.Join(root, "cmd", "gtsm", "healthcheck.go")); err != nil || !strings.Contains(string(src), "func runHealthcheck(") {
		t.Errorf("cmd/gtsm has no healthcheck subcommand for the HEALTHCHECK (%v)", err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored[strings.TrimPrefix(l, "/")] = true
		}
	}
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			if ignored[src] {
				t.Errorf("COPY %s but .dockerignore excludes it", src)
			}
		}
	}
	for _, must := range []string{".git", "**/*.duckdb"} {
		if !ignored[must] {
			t.Errorf(".dockerignore does not exclude %s", must)
		}
	}
}
