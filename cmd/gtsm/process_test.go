package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func TestProcessCLIUsage(t *testing.T) {
	code, out, _ := runCmd(t, nil, "process", "-h")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--allowed-lateness") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"process", "--kafka-version", "x.y"}, 2, "--kafka-version"},
		{[]string{"process", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"process", "--batch-rows", "0"}, 2, "--batch-rows"},
		{[]string{"process", "--duckdb-threads", "0"}, 2, "--duckdb-threads"},
		{[]string{"process", "--allowed-lateness", "-1m"}, 2, "--allowed-lateness"},
		{[]string{"process", "extra"}, 2, "unexpected"},
		{[]string{"process", "--tls-cert", "c.pem"}, 2, "--tls-key"},
		{[]string{"process", "--sasl-mechanism", "GSSAPI", "--db", filepath.Join(t.TempDir(), "x.duckdb")}, 1, "GSSAPI"},
		{[]string{"process", "--log-format", "xml"}, 2, "--log-format"},
		// Kafka client properties: unknown or producer-only keys refused by name.
		{[]string{"process", "-X", "client.idd=x"}, 2, `unknown Kafka client property "client.idd"`},
		{[]string{"process", "-X", "linger.ms=5", "-X", "queue.buffering.max.messages=9"}, 2, `"queue.buffering.max.messages"`},
		{[]string{"process", "-X", "session.timeout.ms=soon"}, 2, "session.timeout.ms"},
		{[]string{"process", "-X", "noequals"}, 2, "want key=value"},
		{[]string{"process", "--kafka-properties", "/nonexistent.properties"}, 2, "/nonexistent.properties"},
		{[]string{"process", "--sasl-mechanism", "PLAIN", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=u"}, 2, "choose one"},
	} {
		code, _, errs := runCmd(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %s", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

// TestProcessCLI publishes the Hour fixture with `gtsm produce`, runs
// `gtsm process` until the group's committed offsets reach the end of the
// topic (they are committed only after DuckDB has the rows), stops it like
// Ctrl-C does, and reads the file.
func TestProcessCLI(t *testing.T) {
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vars := map[string]string{"BOOTSTRAP_SERVERS": st.BootstrapServers, "SCHEMA_REGISTRY_URL": st.RegistryURL}
	if code, _, errs := runCmd(t, vars, "produce", "--quiet", testutil.Testdata(t, "hour")); code != 0 {
		t.Fatalf("produce: %d %s", code, errs)
	}
	db := filepath.Join(t.TempDir(), "cli.duckdb")
	// Kafka client properties from a file and from -X: the session timeout
	// (what --session-timeout 6s did) and the client id the broker sees.
	props := filepath.Join(t.TempDir(), "client.properties")
	if err := os.WriteFile(props, []byte("# as kcat -F reads it\nsession.timeout.ms=6000\nclient.id=overridden-by-X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	errb := &testutil.SyncBuffer{} // the test reads it while the command writes
	go func() {
		env := &environ{stdin: strings.NewReader(""), stdout: &strings.Builder{}, stderr: errb,
			getenv: func(k string) string { return vars[k] }}
		done <- run(ctx, env, []string{"process", "--db", db, "--flush-interval", "50ms", "-X", "client.id=gtsm-proc-x",
			"--kafka-properties", props, "--log-format", "json", "--progress-interval", "100ms"})
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(ctx, "gtsm_etl")
		if err != nil {
			t.Fatal(err)
		}
		offs, err := adm.FetchOffsets(ctx, "gtsm-processor")
		caught := err == nil
		var total int64
		ends.Each(func(o kadm.ListedOffset) {
			total += o.Offset
			c, ok := offs.Lookup("gtsm_etl", o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				caught = false
			}
		})
		if caught && total == 3600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processor did not catch up (end offsets %v, committed %v, %v); stderr:\n%s", ends, offs, err, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	groups, err := adm.DescribeGroups(ctx, "gtsm-processor")
	if err != nil {
		t.Fatal(err)
	}
	var clientIDs []string
	for _, g := range groups {
		for _, m := range g.Members {
			clientIDs = append(clientIDs, m.ClientID)
		}
	}
	if len(clientIDs) == 0 || clientIDs[0] != "gtsm-proc-x" {
		t.Errorf("group members' client ids %v, want gtsm-proc-x (-X client.id)", clientIDs)
	}
	// Progress lines come every --progress-interval, as JSON; once caught
	// up, one says lag 0 on both partitions and counts all 3600 records.
	progress := func() (last map[string]any, n int) {
		for _, l := range strings.Split(errb.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "progress" {
				last, n = m, n+1
			}
		}
		return last, n
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		last, n := progress()
		if n >= 2 && last["records"] == float64(3600) && last["lag"] == float64(0) {
			lbp, _ := last["lag_by_partition"].(map[string]any)
			if lbp["0"] != float64(0) || lbp["1"] != float64(0) || last["records_per_s"] == nil {
				t.Errorf("progress line %v: want lag_by_partition 0 and 1, records_per_s", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress line with records 3600 and lag 0 (%d lines, last %v); stderr:\n%s", n, last, errb.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("process exit %d:\n%s", code, errb.String())
	}
	d, err := gtsmsql.Open(context.Background(), db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var rows, records int
	if err := d.QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := d.QueryRow(`SELECT records FROM site_state WHERE site = 'B009' AND session = 'Hour'`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if rows != 3600 || records != 3600 {
		t.Fatalf("gtsm_etl %d rows, site_state.records %d; want 3600", rows, records)
	}
}
