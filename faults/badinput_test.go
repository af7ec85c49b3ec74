package faults

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/earthscope/gtsm-stream/internal/testutil"

	"github.com/earthscope/gtsm-stream/bottle/fixture"
)

// TestBadBottleInput gives `gtsm produce` good bottle files mixed with bad
// ones: a truncated file, one with a wrong magic, a gzip archive with a junk
// member and a non-bottle member, an archive that is not gzip at all, a
// dangling symlink under a bottle name. (The tests run as root, so chmod 000
// would not make a file unreadable: the dangling symlink is the unreadable
// file; a FIFO is TestBadBottleInputFIFO.)
// Each bad input must be reported by name, every good record delivered,
// and the exit status non-zero.
func TestBadBottleInput(t *testing.T) {
	testutil.Long(t)
	b := newBroker(t)
	root := testutil.RepoRoot(t)
	in := t.TempDir()
	read := func(p string) []byte {
		data, err := os.ReadFile(filepath.Join(root, "testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(in, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Good: the Hour fixture (hour 00, 3600 records) and the Day set (144).
	for _, ch := range []string{"CH0", "CH1", "CH2", "CH3"} {
		write("B0092118200"+ch, read("hour/B0092118200"+ch))
	}
	days, err := os.ReadDir(filepath.Join(root, "testdata", "day"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range days {
		write(d.Name(), read("day/"+d.Name()))
	}
	hour := read("hour/B0092118200CH0")
	write("B0092118201CH0", hour[:100]) // truncated
	wrong := append([]byte(nil), hour...)
	wrong[0], wrong[1] = 0x7f, 0x7f
	write("B0092118202CH0", wrong) // wrong magic
	// An archive with one good Min member (1200 records), a junk member
	// under a bottle name, and a member that is not a bottle by name.
	tarb, err := fixture.Tar(
		fixture.Member{Name: "B009211820000CH0_20", Body: read("min/B009211820000CH0_20")},
		fixture.Member{Name: "B009211820001CH0_20", Body: []byte("this is not a bottle file at all, just junk bytes......")},
		fixture.Member{Name: "README", Body: []byte("hello")},
	)
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := fixture.Gzip(tarb)
	if err != nil {
		t.Fatal(err)
	}
	write("B009.2021182_20.tgz", tgz)
	write("B009.2021183_20.tgz", []byte("not gzip"))
	if err := os.Symlink(filepath.Join(in, "nowhere"), filepath.Join(in, "B0092118203CH0")); err != nil {
		t.Fatal(err)
	}

	code, out := b.produce(t, in)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, bad := range []string{"B0092118201CH0", "B0092118202CH0", "B009211820001CH0_20", "B009.2021183_20.tgz", "B0092118203CH0"} {
		if !strings.Contains(out, bad) {
			t.Errorf("no report naming %s", bad)
		}
	}
	if !strings.Contains(out, "unreadable input(s) skipped: 5") {
		t.Errorf("summary does not count 5 unreadable inputs")
	}
	const want = 3600 + 144 + 1200
	if n := b.messages(t, topic); n != want {
		t.Errorf("%d records delivered, want %d (every good record)", n, want)
	}
	t.Logf("gtsm produce output:\n%s", out)
}

// TestBadBottleInputFIFO: a FIFO under a bottle name in an input directory
// must be reported like any unreadable input, not read (with no writer the
// read blocks forever, and SIGTERM would not stop the blocked walk).
// (Found by this test: bottle.ReadFile used to read the FIFO and block;
// bottle now refuses non-regular files.)
func TestBadBottleInputFIFO(t *testing.T) {
	in := t.TempDir()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "testdata", "hour", "B0092118200CH0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "B0092118200CH0"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(in, "B0092118204CH0"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, gtsm(t), "produce", "--dry-run", in)
	lines := 0
	for range p.lines {
		lines++
	}
	err = p.wait(20 * time.Second)
	if exitCode(err) != 1 || !strings.Contains(p.stderr.String(), "B0092118204CH0") || lines != 3600 {
		t.Errorf("produce with a FIFO: %v, %d lines, want exit 1, 3600 lines and the FIFO reported\n%s", err, lines, p.stderr)
	}
}
