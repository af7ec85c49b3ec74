package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/embedded"
)

func runCmd(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }}
	code = run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestProduceCLI(t *testing.T) {
	root := testutil.RepoRoot(t)
	hour := filepath.Join(root, "testdata", "hour")

	t.Run("help teaches", func(t *testing.T) {
		code, out, _ := runCmd(t, nil, "produce", "-h")
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "SCRAM-SHA-512") ||
			!strings.Contains(out, "--dry-run testdata/hour") {
			t.Fatalf("exit %d, help:\n%s", code, out)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"produce"},
			{"produce", "--replication-factor", "0", hour},
			{"produce", "--partitions", "0", hour},
			{"produce", "--no-such-flag", hour},
		} {
			if code, _, errs := runCmd(t, nil, args...); code != 2 {
				t.Errorf("%q: exit %d, want 2 (%s)", args, code, errs)
			}
		}
	})

	t.Run("glob matching nothing", func(t *testing.T) {
		code, _, errs := runCmd(t, nil, "produce", "--dry-run", filepath.Join(root, "testdata", "nope*"))
		if code != 1 || !strings.Contains(errs, "matches no file") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})

	t.Run("bad file among good ones", func(t *testing.T) {
		dir := t.TempDir()
		for _, n := range []string{"B0092118200CH0", "B0092118200CH1"} {
			data, err := os.ReadFile(filepath.Join(hour, n))
			if err != nil {
				t.Fatal(err)
			}
			if n == "B0092118200CH1" {
				data = data[:100] // truncated
			}
			if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		code, out, errs := runCmd(t, nil, "produce", "--dry-run", dir)
		if code != 1 || strings.Count(out, "\n") != 3600 || !strings.Contains(errs, "B0092118200CH1") ||
			!strings.Contains(errs, "unreadable input(s): 1") {
			t.Fatalf("exit %d, %d lines; stderr:\n%s", code, strings.Count(out, "\n"), errs)
		}
	})

	t.Run("dry run", func(t *testing.T) {
		code, out, errs := runCmd(t, nil, "produce", "--dry-run", filepath.Join(hour, "B009*"))
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != 0 || len(lines) != 3600 || !strings.Contains(lines[0], `"ls1_t0":{"int":48116355},"ls2_t0":{"int":49196540}`) {
			t.Fatalf("exit %d, %d lines, first %.200s\n%s", code, len(lines), lines[0], errs)
		}
		if !strings.Contains(errs, "3600 records written as JSON lines") {
			t.Errorf("summary: %s", errs)
		}
	})

	t.Run("embedded broker from env", func(t *testing.T) {
		st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		vars := map[string]string{"BOOTSTRAP_SERVERS": st.BootstrapServers, "SCHEMA_REGISTRY_URL": st.RegistryURL}
		code, out, errs := runCmd(t, vars, "produce", "--partitions", "4", hour, filepath.Join(root, "testdata", "min"))
		if code != 0 || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errs)
		}
		for _, want := range []string{"topic gtsm_etl: 4 partitions, created by this run", "B009", "Hour", "Min", "3600", "1200",
			"4800 records delivered (acknowledged) to topic gtsm_etl"} {
			if !strings.Contains(errs, want) {
				t.Errorf("summary lacks %q:\n%s", want, errs)
			}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), "gtsm_etl")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		if n != 4800 {
			t.Fatalf("topic holds %d records, want 4800", n)
		}

		// Kafka client properties reach the client: the batches stored
		// for topic zstd are zstd-compressed (attribute codec 4), not
		// the --compression default snappy; unknown keys are refused.
		code, _, errs = runCmd(t, vars, "produce", "--topic", "zstd", hour, "-X", "compression.type=zstd", "-X", "client.id=gtsm-test", "-q")
		if code != 0 {
			t.Fatalf("produce -X: exit %d: %s", code, errs)
		}
		zc, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics("zstd"))
		if err != nil {
			t.Fatal(err)
		}
		defer zc.Close()
		fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer fcancel()
		for got := 0; got < 3600; {
			fs := zc.PollFetches(fctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("read back topic zstd after %d records: %v", got, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				got++
				if c := r.Attrs.CompressionType(); c != 4 {
					t.Fatalf("record %d/%d: compression codec %d, want 4 (zstd)", r.Partition, r.Offset, c)
				}
			})
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-X", "compresion.type=zstd"}, `unknown Kafka client property "compresion.type" for gtsm produce`},
			{[]string{"-X", "session.timeout.ms=6000"}, `"session.timeout.ms"`},
			{[]string{"-X", "acks=1"}, "needs acks=all"},
		} {
			code, _, errs = runCmd(t, vars, append(append([]string{"produce"}, tc.args...), hour)...)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Errorf("produce %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
			}
		}

		// --no-create on another topic: a clear error, exit 1.
		code, _, errs = runCmd(t, vars, "produce", "--no-create", "--topic", "other", hour)
		if code != 1 || !strings.Contains(errs, "other does not exist") {
			t.Fatalf("--no-create: exit %d: %s", code, errs)
		}
	})
}
