package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/compare/gatewaytest"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/flink"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"

	"gopkg.in/yaml.v3"
)

func compareCmd(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code := run(context.Background(), env, append([]string{"compare"}, args...))
	return code, out.String(), errb.String()
}

const latestRows = `('B009', 'Hour', TIMESTAMP '2021-07-01 23:59:59', 86400), ('B009', 'Min', TIMESTAMP '2021-07-01 00:00:59.950', 1200)`

// compareFixture: a processor DuckDB file with site_state rows, and a fake
// gateway whose Flink "latest" answers from another DuckDB's table.
func compareFixture(t *testing.T) (path string, flinkDB *sql.DB, gw *gatewaytest.Server) {
	return compareFixtureHook(t, nil)
}

// compareFixtureHook is compareFixture calling onQuery (when not nil) as
// each Flink query arrives.
func compareFixtureHook(t *testing.T, onQuery func()) (path string, flinkDB *sql.DB, gw *gatewaytest.Server) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "gtsm.duckdb")
	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at)
		SELECT site, session, last_time, last_time, records, 0, 0, 0, 0, 0, 0, now() FROM (VALUES ` + latestRows + `) v(site, session, last_time, records)`); err != nil {
		t.Fatal(err)
	}
	// Two messages of partition 0 applied.
	if _, err := db.Exec(`INSERT INTO kafka_offsets VALUES ('gtsm_etl', 0, 2)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	flinkDB, err = sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flinkDB.Close() })
	flinkDB.SetMaxOpenConns(1) // one in-memory database
	if _, err := flinkDB.Exec(`CREATE TABLE flink_latest AS SELECT * FROM (VALUES ` + latestRows + `) v(site, session, last_time, records)`); err != nil {
		t.Fatal(err)
	}
	gw = gatewaytest.New(flinkDB, func(stmt string) (string, error) {
		switch {
		case strings.Contains(stmt, "CREATE TABLE IF NOT EXISTS gtsm_etl"), strings.Contains(stmt, "CREATE TEMPORARY VIEW"):
			return "", nil
		case strings.Contains(stmt, "AS last_time"):
			if onQuery != nil {
				onQuery()
			}
			return "SELECT site, session, last_time, records FROM flink_latest", nil
		}
		return "", fmt.Errorf("untranslated: %.40s", stmt)
	}, gatewaytest.Options{PageSize: 1, NotReady: 1, Changelog: true})
	t.Cleanup(gw.Close)
	return path, flinkDB, gw
}

func TestCompareCommand(t *testing.T) {
	path, flinkDB, gw := compareFixture(t)

	code, out, errOut := compareCmd(t, nil, "--wait", "0", "--gateway", gw.URL, "--db", path, "latest")
	if code != 0 || !strings.Contains(out, "latest: same (2 rows)\n") || !strings.Contains(out, "all 1 queries agree") {
		t.Fatalf("agreeing run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// --wait 0: Flink pinned to what the processor applied, and said so.
	if !strings.Contains(out, "comparing gtsm_etl partition:next-offset 0:2 (2 messages") ||
		!strings.Contains(gw.Statements[0], "'scan.bounded.mode' = 'specific-offsets',\n  'scan.bounded.specific-offsets' = 'partition:0,offset:2'") ||
		strings.Contains(gw.Statements[0], "latest-offset") {
		t.Errorf("offsets not pinned or not reported:\n%s\n%s", out, gw.Statements[0])
	}
	if len(gw.Closed) != 1 {
		t.Errorf("gateway sessions closed: %d, want 1", len(gw.Closed))
	}
	// With --db and no --wait: the stopped processor's file is compared as
	// it is, without asking Kafka (the default localhost:19092 is not ours).
	code, out, errOut = compareCmd(t, nil, "--gateway", gw.URL, "--db", path, "latest")
	if code != 0 || !strings.Contains(out, "comparing gtsm_etl partition:next-offset 0:2 (2 messages") {
		t.Fatalf("--db run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}

	// Through the processor's SQL endpoint (pgwire, pgx on our side), the
	// gateway from the environment.
	db, err := gtsmsql.Open(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx)
	code, out, errOut = compareCmd(t, map[string]string{"FLINK_SQL_GATEWAY": gw.URL, "GTSM_SQL_ADDR": srv.Addr().String()}, "--wait", "0", "latest")
	cancel()
	srv.Close()
	db.Close()
	if code != 0 || !strings.Contains(out, "latest: same (2 rows)") {
		t.Fatalf("endpoint run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}

	// Flink now says something else: exit 1 and the row side by side.
	if _, err := flinkDB.Exec(`UPDATE flink_latest SET records = 86399 WHERE session = 'Hour'`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = compareCmd(t, nil, "--wait", "0", "--gateway", gw.URL, "--db", path, "latest")
	if code != 1 {
		t.Errorf("differing run: exit %d, want 1", code)
	}
	for _, s := range []string{
		"latest: DIFFERENT: 1 rows changed, 0 only in flink, 0 only in duckdb, 1 equal",
		"! site=B009 session=Hour last_time=2021-07-01 23:59:59.000",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "records") || !strings.Contains(out, "86399") || !strings.Contains(out, "86400") || !strings.Contains(out, "<>") {
		t.Errorf("changed column not shown:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 1 queries differ between Flink and DuckDB") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestCompareCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"--help"}, 0, "Examples:"},
		{[]string{"--precision", "40"}, 2, "--precision 40"},
		{[]string{"--api", "v9"}, 2, `--api "v9"`},
		{[]string{"--api", "v4"}, 2, `--api "v4": want v1, v2 or v3`},
		{[]string{"--set", "novalue"}, 2, `--set "novalue"`},
		{[]string{"nosuchquery"}, 2, "hourly"},
		{[]string{"--gateway", "localhost:8088", "latest"}, 2, "want http://host:port"},
		// Nothing listens on port 1: a clear error naming the endpoint.
		{[]string{"--wait", "0", "--gateway", "http://127.0.0.1:1", "--pg", "postgres://x@127.0.0.1:1/gtsm?sslmode=disable", "latest"}, 1, "is gtsm process running"},
		// Waiting is bounded, and says what it was waiting for.
		{[]string{"--wait", "1s", "--gateway", "http://127.0.0.1:1", "--pg", "postgres://x@127.0.0.1:1/gtsm?sslmode=disable", "latest"}, 1, "waiting for the stack (--wait 1s): not ready after"},
		// ... and how to wait longer.
		{[]string{"--wait", "1s", "--gateway", "http://127.0.0.1:1", "--pg", "postgres://x@127.0.0.1:1/gtsm?sslmode=disable", "latest"}, 1, "; gtsm compare --wait 10m waits longer"},
		// A DuckDB-only query is refused with the reason.
		{[]string{"level2"}, 2, "level2 has no Flink twin, so it is not compared: Level-2 strain comes from the processor's Level-2 stage"},
		{[]string{"--help"}, 0, "Not compared: level2, regional (DuckDB only, no Flink twin)"},
	} {
		code, out, errOut := compareCmd(t, nil, tc.args...)
		if tc.code == 0 {
			errOut = out // help is the output: on stdout
		}
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("compare %v: exit %d (want %d), stderr %q lacks %q", tc.args, code, tc.code, errOut, tc.want)
		}
	}
}

func TestCompareCommandFlinkError(t *testing.T) {
	path, _, gw := compareFixture(t)
	noteFor := "note: the processor dead-lettered 1 messages of gtsm_etl (first: partition 0 offset 1"
	code, _, errOut := compareCmd(t, nil, "--wait", "0", "--gateway", gw.URL, "--db", path, "gaps")
	if code != 1 || strings.Contains(errOut, "dead-lettered") {
		t.Errorf("without dead letters: exit %d, stderr %q", code, errOut)
	}
	// A poison message: the processor dead-lettered it; Flink fails on it.
	db, err := gtsmsql.Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO dead_letters VALUES ('gtsm_etl', 0, 1, 'value: not Confluent-framed Avro', NULL, 'junk', now())`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, errOut = compareCmd(t, nil, "--wait", "0", "--gateway", gw.URL, "--db", path, "gaps")
	if code != 1 || !strings.Contains(errOut, noteFor) {
		t.Errorf("with a dead letter: exit %d, stderr %q lacks %q", code, errOut, noteFor)
	}

	// "gaps" is not translated by this fake gateway: the error comes back as
	// Flink's REST error, the command says which query and side, and the
	// next query still runs.
	code, out, errOut := compareCmd(t, nil, "--wait", "0", "--gateway", gw.URL, "--db", path, "gaps", "latest")
	if code != 1 || !strings.Contains(errOut, "1 of 2 queries failed: gaps on flink") || !strings.Contains(errOut, "untranslated") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "gaps: ERROR: gaps on flink: flink sql gateway: GET") || !strings.Contains(out, "latest: same (2 rows)") {
		t.Errorf("stdout %q", out)
	}
	if len(gw.Closed) != 3 { // one session per run
		t.Errorf("sessions not closed after the errors: %d of 3", len(gw.Closed))
	}
}

// TestCompareWaitsForTheStack is `docker compose up -d && gtsm compare` run
// too early, on in-process parts: the gateway answers 503 at first, the
// processor's endpoint (real pgwire, with a password) has applied one of the
// topic's two messages (a real Kafka-protocol broker). compare waits, says
// why on stderr, and compares once the processor has caught up, pinned to
// the offsets it applied.
func TestCompareWaitsForTheStack(t *testing.T) {
	var bump func()
	path, _, gw := compareFixtureHook(t, func() {
		if bump != nil {
			bump()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 2; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "gtsm_etl", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	db, err := gtsmsql.Open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE kafka_offsets SET next_offset = 1`); err != nil {
		t.Fatal(err)
	}
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", Password: "s3cret", Logger: pgwire.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx)
	defer srv.Close()
	vars := map[string]string{"FLINK_SQL_GATEWAY": gw.URL, "GTSM_SQL_ADDR": srv.Addr().String(),
		"GTSM_SQL_PASSWORD": "s3cret", "BOOTSTRAP_SERVERS": st.BootstrapServers}

	// A wrong password is not waited out.
	bad := map[string]string{}
	for k, v := range vars {
		bad[k] = v
	}
	bad["GTSM_SQL_PASSWORD"] = "wrong"
	start := time.Now()
	code, _, errOut := compareCmd(t, bad, "latest")
	if code != 1 || !strings.Contains(errOut, "refused the password: set GTSM_SQL_PASSWORD") || time.Since(start) > 20*time.Second {
		t.Errorf("wrong password: exit %d after %v, stderr %q", code, time.Since(start), errOut)
	}

	gw.Down.Store(true)
	var out, errb testutil.SyncBuffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	done := make(chan int, 1)
	go func() { done <- run(ctx, env, []string{"compare", "--wait", "50s", "latest"}) }()
	waitFor := func(s string) {
		t.Helper()
		for !strings.Contains(errb.String(), s) {
			select {
			case code := <-done:
				t.Fatalf("compare ended (exit %d) before %q:\n%s\n%s", code, s, errb.String(), out.String())
			case <-ctx.Done():
				t.Fatalf("no %q:\n%s", s, errb.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	// Each line says how long is left of --wait; while the gateway does
	// not answer, how to start the stack.
	waitFor("gtsm compare: waiting (0s, 50s left): Flink SQL Gateway: flink sql gateway: GET /v1/info: 503")
	waitFor("(is the compose stack up? docker compose up -d starts it, in minutes the first time)")
	gw.Down.Store(false)
	waitFor("gtsm compare: waiting (")
	waitFor("processor applied 1 of 2 messages (partition:applied/end 0:1/2)")
	if out.String() != "" {
		t.Fatalf("compared before the processor caught up:\n%s", out.String())
	}
	if _, err := db.Exec(`UPDATE kafka_offsets SET next_offset = 2`); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	for _, want := range []string{"comparing gtsm_etl partition:next-offset 0:2 (2 messages", "latest: same (2 rows)", "all 1 queries agree"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(errb.String(), "applied more messages") {
		t.Errorf("note without cause: %s", errb.String())
	}

	// The processor applies a third message while Flink runs its query:
	// the comparison says its side may hold messages Flink did not scan.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "gtsm_etl", Value: []byte{2}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	bump = func() {
		if _, err := db.Exec(`UPDATE kafka_offsets SET next_offset = 3`); err != nil {
			t.Error(err)
		}
	}
	code, _, errOut = compareCmd(t, vars, "--wait", "0", "latest")
	if code != 0 || !strings.Contains(errOut, "note: the processor applied more messages during the comparison (now 0:3)") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// oneLiner is the documented way to run the comparison on the compose stack.
const oneLiner = "export GTSM_SQL_PASSWORD=gtsm && docker compose up -d && gtsm compare --wait 10m"

// TestComposeOneLiner: the one-liner that README.md and flink/README.md
// give needs nothing else from the environment. Run with only what it
// exports, gtsm compare's defaults (gateway, Kafka, SQL endpoint, password)
// are exactly where docker-compose.yml publishes them and what its processor
// requires.
func TestComposeOneLiner(t *testing.T) {
	root := testutil.RepoRoot(t)
	for _, doc := range []string{"README.md", "flink/README.md"} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(oneLiner) + `(\s+#.*)?$`).Match(b) {
			t.Errorf("%s does not give the one-liner %q on a line of its own", doc, oneLiner)
		}
	}
	vars := map[string]string{}
	for _, part := range strings.Split(oneLiner, "&&") {
		part = strings.TrimSpace(part)
		switch {
		case strings.HasPrefix(part, "export "):
			k, v, _ := strings.Cut(strings.TrimPrefix(part, "export "), "=")
			vars[k] = v
		case part == "docker compose up -d", part == "gtsm compare --wait 10m":
		default:
			t.Fatalf("unexpected step %q", part)
		}
	}

	// gtsm compare's defaults with only those variables set.
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	if code := run(context.Background(), env, []string{"compare", "-h"}); code != 0 {
		t.Fatalf("compare -h: %d %s", code, errb.String())
	}
	def := func(flag string) string {
		// pflag's help: one line per flag, "  --name type   usage (default "v")".
		m := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--` + flag + ` [^\n]*\(default "([^"]*)"\)$`).FindStringSubmatch(errb.String() + out.String())
		if m == nil {
			t.Fatalf("no default for -%s in:\n%s", flag, errb.String())
		}
		return m[1]
	}
	gateway, brokers := def("gateway"), def("bootstrap-servers")

	// The compose file as compose resolves it with the same environment.
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		cmd := exec.Command("docker-compose", "-f", filepath.Join(root, "docker-compose.yml"), "config")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if raw, err = cmd.Output(); err != nil {
			t.Fatalf("docker-compose config: %v", err)
		}
	} else {
		t.Log("docker-compose not installed: reading the raw file")
	}
	var c struct {
		Services map[string]struct {
			Ports       []any `yaml:"ports"`
			Environment any   `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	published := func(service string) string {
		b, _ := yaml.Marshal(c.Services[service].Ports)
		return string(b)
	}
	environment := func(service, key string) string {
		switch e := c.Services[service].Environment.(type) {
		case map[string]any:
			s := fmt.Sprint(e[key])
			// The raw file: ${VAR:-default} as compose expands it.
			if m := regexp.MustCompile(`^\$\{(\w+):-([^}]*)\}$`).FindStringSubmatch(s); m != nil {
				if v := vars[m[1]]; v != "" {
					return v
				}
				return m[2]
			}
			return s
		}
		return ""
	}

	if got := environment("gtsm-processor", "GTSM_SQL_PASSWORD"); got == "" || got != vars["GTSM_SQL_PASSWORD"] {
		t.Errorf("the processor's password %q, the one-liner exports %q", got, vars["GTSM_SQL_PASSWORD"])
	}
	if gateway != "http://localhost:8088" || !strings.Contains(published("sql-gateway"), "8088") {
		t.Errorf("default gateway %s; sql-gateway publishes %s", gateway, published("sql-gateway"))
	}
	host, port, _ := strings.Cut(pgwire.DefaultAddr, ":")
	if p := published("gtsm-processor"); !regexp.MustCompile(`(?s)(` + regexp.QuoteMeta(host+":"+port+":"+port) + `|host_ip: ` + regexp.QuoteMeta(host) + `.*published: "?` + port + `)`).MatchString(p) {
		t.Errorf("the SQL endpoint default %s is not published by gtsm-processor: %s", pgwire.DefaultAddr, p)
	}
	if brokers != "localhost:19092" || !strings.Contains(environment("kafka-broker", "KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT_HOST://"+brokers) ||
		!strings.Contains(published("kafka-broker"), "19092") {
		t.Errorf("default bootstrap servers %s; kafka-broker advertises %s and publishes %s", brokers,
			environment("kafka-broker", "KAFKA_ADVERTISED_LISTENERS"), published("kafka-broker"))
	}
}

// TestCompareSaysWhatItLeavesOut: comparing all queries starts by naming
// the DuckDB-only ones and why they are not compared, on stdout with the
// results, before any of them runs.
func TestCompareSaysWhatItLeavesOut(t *testing.T) {
	path, _, gw := compareFixture(t)
	_, out, _ := compareCmd(t, nil, "--wait", "0", "--gateway", gw.URL, "--db", path)
	first, _, _ := strings.Cut(out, "\n")
	if first != "not compared: level2, regional (DuckDB only, no Flink twin): "+flink.WhyNoTwin("level2") {
		t.Errorf("first line %q", first)
	}
	if !strings.Contains(out, "comparing gtsm_etl") || strings.Contains(out, "level2:") || strings.Contains(out, "regional:") {
		t.Errorf("stdout:\n%s", out)
	}
}
