package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/internal/testutil"
	"github.com/earthscope/gtsm-stream/partition"
)

func metadataFiles(t *testing.T) []string {
	d := filepath.Join(testutil.RepoRoot(t), "metadata", "testdata")
	return []string{filepath.Join(d, "bsm_metadata.txt"), filepath.Join(d, "TSM5.README.txt"), filepath.Join(d, "B004.README.txt")}
}

func TestMetadataLoadDryRunAndErrors(t *testing.T) {
	files := metadataFiles(t)
	code, out, errs := runCmd(t, nil, append([]string{"metadata", "load", "--dry-run"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sites := []string{}
	for _, l := range lines {
		var r struct {
			Topic, Key, Version string
			Value               map[string]any
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Topic != "gtsm_metadata" || r.Value["site"] != r.Key || r.Value["version"] != r.Version || len(r.Version) != 16 {
			t.Errorf("line %.200s", l)
		}
		sites = append(sites, r.Key)
	}
	if strings.Join(sites, ",") != "B004,B009,TSM5" {
		t.Errorf("sites %v, want B004,B009,TSM5", sites)
	}
	if !strings.Contains(out, `"reference_counts":[50858593,53668101,53904388,49946112]`) {
		t.Errorf("TSM5 references missing from dry run:\n%s", out)
	}
	bad := filepath.Join(testutil.RepoRoot(t), "metadata", "testdata", "bad")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{filepath.Join(bad, "table_lat_text.txt")}, 1, "table_lat_text.txt:"},
		{[]string{files[0], filepath.Join(bad, "readme_tide_unknown.txt")}, 1, "readme_tide_unknown.txt:"},
		{[]string{filepath.Join(bad, "nope.txt")}, 1, "nope.txt"},
		{nil, 2, "no FILE"},
		{[]string{"--partitions", "0", files[0]}, 2, "--partitions"},
	} {
		code, _, errs := runCmd(t, nil, append([]string{"metadata", "load", "--dry-run"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	// An error names the line: table_lat_text.txt's bad value is on a numbered line.
	_, _, errs = runCmd(t, nil, "metadata", "load", "--dry-run", filepath.Join(bad, "table_lat_text.txt"))
	if !regexp.MustCompile(`table_lat_text\.txt:\d+: `).MatchString(errs) {
		t.Errorf("error does not name file:line: %s", errs)
	}
}

// kcatRecords reads the whole topic with kcat: partition, offset and the
// key (the plain site name, as goka table keys are).
func kcatRecords(t *testing.T, brokers, topic string) []string {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is not installed (.ci/run installs it)")
	}
	out, err := exec.Command("kcat", "-C", "-b", brokers, "-t", topic, "-e", "-q", "-f", "%p %o %k\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// kcatValue returns one record's raw value bytes as kcat prints them.
func kcatValue(t *testing.T, brokers, topic string, p, off string) []byte {
	t.Helper()
	out, err := exec.Command("kcat", "-C", "-b", brokers, "-t", topic, "-p", p, "-o", off, "-c", "1", "-e", "-q", "-f", "%s").Output()
	if err != nil {
		t.Fatalf("kcat value %s/%s: %v", p, off, err)
	}
	return out
}

func TestMetadataLoadEmbedded(t *testing.T) {
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vars := map[string]string{"BOOTSTRAP_SERVERS": st.BootstrapServers, "SCHEMA_REGISTRY_URL": st.RegistryURL}
	files := metadataFiles(t)
	codec, err := goavro.NewCodec(avroschemas.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	_, dry, _ := runCmd(t, nil, append([]string{"metadata", "load", "--dry-run"}, files...)...)
	wantVersion := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(dry), "\n") {
		var r struct{ Key, Version string }
		json.Unmarshal([]byte(l), &r)
		wantVersion[r.Key] = r.Version
	}

	var firstSummary []string
	for run := 1; run <= 2; run++ {
		code, out, errs := runCmd(t, vars, append([]string{"metadata", "load"}, files...)...)
		if code != 0 || out != "" {
			t.Fatalf("run %d: exit %d, stdout %q, stderr:\n%s", run, code, out, errs)
		}
		if !strings.Contains(errs, "3 station record(s) delivered (acknowledged) to topic gtsm_metadata") {
			t.Fatalf("run %d summary:\n%s", run, errs)
		}
		if created := strings.Contains(errs, "created by this run, cleanup.policy=compact"); created != (run == 1) {
			t.Errorf("run %d: created=%v:\n%s", run, created, errs)
		}
		// Same versions and schema ids each time (offsets differ).
		var sum []string
		for _, l := range strings.Split(errs, "\n") {
			if i := strings.Index(l, " offset "); i > 0 {
				l = l[:i]
			}
			sum = append(sum, l)
		}
		if run == 1 {
			firstSummary = sum[1:]
		} else if strings.Join(sum[1:], "\n") != strings.Join(firstSummary, "\n") {
			t.Errorf("second load differs:\n%s\nfirst:\n%s", strings.Join(sum, "\n"), strings.Join(firstSummary, "\n"))
		}
	}

	// Read back with kcat: 6 records (two loads of 3 stations), each keyed by
	// the plain site, on partition murmur2(key) mod 12, each value
	// decodable by goavro with the version of the dry run.
	recs := kcatRecords(t, st.BootstrapServers, "gtsm_metadata")
	if len(recs) != 6 {
		t.Fatalf("kcat read %d records, want 6: %q", len(recs), recs)
	}
	perSite := map[string]int{}
	for _, r := range recs {
		f := strings.Fields(r)
		if len(f) != 3 {
			t.Fatalf("kcat line %q", r)
		}
		site := f[2]
		if len(site) != 4 {
			t.Errorf("key %q is not a plain four-character site", site)
		}
		perSite[site]++
		// partition: murmur2 of the key, as the processor's goka Lookup
		// (partition.NewHasher) looks it up.
		if want := partition.For([]byte(site), 12); f[0] != strconv.Itoa(int(want)) {
			t.Errorf("%s on partition %s, want %d", site, f[0], want)
		}
		v := kcatValue(t, st.BootstrapServers, "gtsm_metadata", f[0], f[1])
		if len(v) < 5 || v[0] != 0 {
			t.Fatalf("%s: value not Confluent framed: % x", site, v[:min(len(v), 8)])
		}
		n, rest, err := codec.NativeFromBinary(v[5:])
		if err != nil || len(rest) != 0 {
			t.Fatalf("%s: goavro decode: %v (%d trailing)", site, err, len(rest))
		}
		m := n.(map[string]any)
		if m["site"] != site || m["version"] != wantVersion[site] {
			t.Errorf("%s: decoded site %v version %v, want version %s", site, m["site"], m["version"], wantVersion[site])
		}
		if site == "TSM5" {
			refs := m["reference_counts"].([]any)
			if refs[0] != int64(50858593) || refs[3] != int64(49946112) || m["ch0_east_of_north"] != 342.9 {
				t.Errorf("TSM5 decoded %v %v", refs, m["ch0_east_of_north"])
			}
		}
	}
	if perSite["TSM5"] != 2 || perSite["B004"] != 2 || perSite["B009"] != 2 {
		t.Errorf("records per site %v", perSite)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rcs, err := adm.DescribeTopicConfigs(context.Background(), "gtsm_metadata")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("gtsm_metadata", nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy %q, want compact", policy)
	}
	// The registry holds one version of the value subject after two loads.
	for _, subj := range []string{"gtsm_metadata-value"} {
		resp, err := http.Get(st.RegistryURL + "/subjects/" + subj + "/versions")
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || strings.TrimSpace(string(out)) != "[1]" {
			t.Errorf("%s versions: %q %v", subj, out, err)
		}
	}

	// A topic that exists without compaction is refused; --no-create on a
	// missing topic fails; both exit 1.
	if _, err := adm.CreateTopic(context.Background(), 1, -1, nil, "plain"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "plain"}, "cleanup.policy=delete"},
		{[]string{"--topic", "absent", "--no-create"}, "absent does not exist and --no-create is set"},
	} {
		code, _, errs := runCmd(t, vars, append(append([]string{"metadata", "load"}, tc.args...), files...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, errs, tc.want)
		}
	}
}
