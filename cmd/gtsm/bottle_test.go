package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/bottle"
)

// gtsm runs the CLI in-process and returns exit code, stdout and stderr.
func gtsm(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

const fixtures = "../../testdata"

func TestBottleInspectText(t *testing.T) {
	code, out, errs := gtsm(t, "bottle", "inspect", "-n", "1801", fixtures+"/hour/B0092118200CH1")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		fixtures + "/hour/B0092118200CH1\n",
		"  site B009  session Hour  2021-182  hour 00  channel CH1  field ls2_t0\n",
		"  little-endian  header_size 40  unused 0  usgs_lock 0  id 0\n",
		"  int32  num_pts 3600  fill 999999  missing 1\n",
		"  start 2021-07-01T00:00:00.000Z (1625097600000 ms)  interval 1000 ms  last 2021-07-01T00:59:59.000Z\n",
		"        0  2021-07-01T00:00:00.000Z  49196540\n",
		"     1800  2021-07-01T00:30:00.000Z  missing\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%.600s", want, out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 5+1801+1 {
		t.Errorf("%d lines, want %d", lines, 5+1801+1)
	}
	// float32 samples print with the fewest digits that round-trip
	_, out, _ = gtsm(t, "bottle", "inspect", "-n", "1", fixtures+"/day/B00921182PressureKPa", fixtures+"/formats/B00921183CH0")
	for _, want := range []string{"float32  num_pts 48", "2021-07-01T00:00:00.000Z  92.40515\n", "big-endian  header_size 40", "2021-07-02T00:00:00.000Z  48115932\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBottleInspectJSON(t *testing.T) {
	code, out, errs := gtsm(t, "bottle", "inspect", "--json", "-n", "-1", fixtures+"/hour")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d JSON lines, want 4", len(lines))
	}
	var got []fileInfo
	for _, l := range lines {
		var fi fileInfo
		if err := json.Unmarshal([]byte(l), &fi); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		got = append(got, fi)
	}
	ch0, ch1, ch3 := got[0], got[1], got[3]
	if ch0.Field != "ls1_t0" || *ch0.Samples[0].Value != 48116355 || ch0.Samples[0].TimeMs != 1625097600000 || ch0.Samples[0].Time != "2021-07-01T00:00:00.000Z" {
		t.Errorf("CH0: %+v %+v", ch0.Field, ch0.Samples[0])
	}
	if *ch1.Samples[0].Value != 49196540 || ch1.Missing != 1 || ch1.Samples[1800].Value != nil || len(ch1.Samples) != 3600 {
		t.Errorf("CH1: sample0 %v missing %d sample1800 %v n %d", *ch1.Samples[0].Value, ch1.Missing, ch1.Samples[1800].Value, len(ch1.Samples))
	}
	if ch3.Samples[2701].Value != nil || ch3.Samples[2701].TimeMs != 1625097600000+2701000 || *ch3.Hour != 0 || ch3.Minute != nil {
		t.Errorf("CH3: %+v hour %v minute %v", ch3.Samples[2701], ch3.Hour, ch3.Minute)
	}
	if ch0.ByteOrder != "little-endian" || ch0.HeaderSize != 40 || ch0.DataType != "int32" || ch0.NumPts != 3600 || ch0.Fill != 999999 || ch0.IntervalMs != 1000 || ch0.Session != "Hour" || ch0.Site != "B009" {
		t.Errorf("CH0 header: %+v", ch0)
	}
}

// TestBottleInspectArchive inspects a .tgz built at run time, plus junk: the
// good member is printed, the errors name the archive member, the exit code is 1.
func TestBottleInspectArchive(t *testing.T) {
	dir := t.TempDir()
	good, err := bottle.Encode(&bottle.File{Header: bottle.Header{Start: 1625097600, Interval: 0.05, DataType: bottle.Int32, Missing: 999999},
		Ints: []int32{48116355, 999999, 48116357}})
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, m := range []struct {
		name string
		body []byte
	}{{"B009211820000CH0_20", good}, {"junk.txt", []byte("x")}, {"B009211820000CH1_20", good[:50]}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.body)
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb.Bytes())
	zw.Close()
	arch := filepath.Join(dir, "B009211820000_20.tgz")
	if err := os.WriteFile(arch, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := gtsm(t, "bottle", "inspect", arch, filepath.Join(dir, "absent"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{arch + "!B009211820000CH0_20\n", "        1  2021-07-01T00:00:00.050Z  missing\n", "field bs1_t0"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{arch + `!junk.txt: bottle file name "junk.txt"`, arch + "!B009211820000CH1_20: truncated body", "absent: no such file", "3 of 4 inputs could not be read"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	code, out, _ = gtsm(t, "bottle", "inspect", "--json", "-n", "0", arch)
	if code != 1 || strings.Count(out, `{"error":`) != 2 || !strings.Contains(out, `"samples":[]`) {
		t.Errorf("json: exit %d\n%s", code, out)
	}
}

func TestBottleUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bottle"}, 2, "missing subcommand"},
		{[]string{"bottle", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"bottle", "inspect"}, 2, "no FILE, DIR or ARCHIVE given"},
		{[]string{"bottle", "inspect", "--bogus", "x"}, 2, "unknown flag: --bogus"},
		{[]string{"bottle", "inspect", "-h"}, 0, "Examples:"},
		{[]string{"bottle", "--help"}, 0, "gtsm bottle inspect --json"},
	} {
		code, out, errs := gtsm(t, c.args...)
		if c.code == 0 {
			errs = out // help is the output: on stdout
		}
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d stderr %q, want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}
