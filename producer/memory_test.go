package producer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// addressReserve is the address space the gtsm binary reserves but never
// touches (measured: with MALLOC_ARENA_MAX=1 it fails below ~900-1000 MiB of
// address space on a small input): the Go runtime's heap-arena and
// page-summary reservations, and a stack reservation per thread (the binary
// links DuckDB through cgo). prlimit
// --as limits address space, not resident memory, so the limit in
// TestProduceMemoryBounded is the resident bound plus this.
const addressReserve = 1024 << 20

// TestProduceMemoryBounded runs the real `gtsm produce` binary under
// prlimit --as on inputs far larger than its bound, and checks that it
// succeeds, publishes every record, and stays within --buffer-mb +
// MemoryConstant of resident memory (its peak RSS, from the kernel). Before
// records were streamed, a 16 MiB file (4.2M samples) took ~2.6 GB in Kafka
// mode (~630 bytes per sample) and a dry run ~3 KB per sample: both fail
// here. GTSM_MEMTEST_MIB overrides the size of the big dry-run file
// (default 256 MiB, 67M records, ~1.5 min).
func TestProduceMemoryBounded(t *testing.T) {
	testutil.Long(t)
	prlimit, err := exec.LookPath("prlimit") // util-linux, in every Debian
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	bigMiB := 256
	if s := os.Getenv("GTSM_MEMTEST_MIB"); s != "" {
		if bigMiB, err = strconv.Atoi(s); err != nil || bigMiB < 1 {
			t.Fatalf("GTSM_MEMTEST_MIB=%q: want a positive number of MiB", s)
		}
	}
	bin := buildGtsm(t)
	// The bound is stated where users look: --help (text and flag).
	if MemoryConstantText != fmt.Sprintf("%d MiB", MemoryConstant>>20) {
		t.Fatalf("MemoryConstantText %q disagrees with MemoryConstant %d", MemoryConstantText, MemoryConstant)
	}
	help, _ := exec.Command(bin, "produce", "-h").CombinedOutput()
	for _, want := range []string{"stays within --buffer-mb + " + MemoryConstantText + " (RSS)", "stays within this + " + MemoryConstantText} {
		if !strings.Contains(string(help), want) {
			t.Errorf("gtsm produce -h does not say %q", want)
		}
	}
	st := startStack(t)
	dir := t.TempDir()
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)

	// One Day CH0 file with 1 ms samples: 2^18 samples per MiB; 256 MiB
	// span 18.6 h of the named day, so every time is plausible.
	big := filepath.Join(dir, "big", strainName("B009", bottle.Day, t0, 0))
	bigRecords := writeLongFile(t, big, t0, bigMiB<<18)
	mid := filepath.Join(dir, "mid", strainName("B009", bottle.Day, t0, 0))
	midRecords := writeLongFile(t, mid, t0, 16<<18)
	// The 16 MiB file as an archive member: spilled to a temporary file
	// (spillOver), not held in memory.
	tarPath := filepath.Join(dir, "B009.2021182.tar")
	writeTar(t, tarPath, mid)
	// Many small files (20-sps minutes, read whole) that fill the 8 MiB
	// buffer twice over: the buffer itself is then in use.
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	var smallRecords int64
	for _, site := range []string{"B001", "B002"} {
		writeStrain(t, small, site, bottle.Min, t0, 450)
		smallRecords += 450 * 1200
	}

	const bufferMiB = 8
	bound := int64(bufferMiB<<20) + MemoryConstant
	for _, c := range []struct {
		name    string
		input   string
		records int64
		kafka   bool
	}{
		{fmt.Sprintf("dry-run %d MiB file", bigMiB), big, bigRecords, false},
		{"kafka 16 MiB file", mid, midRecords, true},
		{"dry-run 16 MiB archive member", tarPath, midRecords, false},
		{"kafka small files filling the buffer", small, smallRecords, true},
		{"dry-run small files filling the buffer", small, smallRecords, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := "mem_" + strings.NewReplacer(" ", "_", "-", "_").Replace(c.name)
			args := []string{"--as=" + strconv.FormatInt(bound+addressReserve, 10), bin, "produce",
				"--buffer-mb", strconv.Itoa(bufferMiB), "--topic", topic}
			if c.kafka {
				args = append(args, "--bootstrap-servers", st.BootstrapServers, "--registry", st.RegistryURL)
			} else {
				args = append(args, "--dry-run")
			}
			cmd := exec.Command(prlimit, append(args, c.input)...)
			// GOMEMLIMIT empty: the binary's own limit, not one from the
			// caller. MALLOC_ARENA_MAX=1: glibc reserves a 64 MiB malloc
			// arena per thread (the binary is cgo), ~450 MiB of untouched
			// address space that varies with the thread count; one arena
			// makes the address-space floor steady (~900 MiB measured).
			cmd.Env = append(os.Environ(), "GOMEMLIMIT=", "MALLOC_ARENA_MAX=1")
			var stderr strings.Builder
			cmd.Stderr = &stderr // stdout: /dev/null
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The peak RSS is the kernel's high-water mark of the process's
			// memory (VmHWM), polled while it runs. (The rusage of the
			// child cannot be used: os/exec starts it with CLONE_VM, so
			// its ru_maxrss starts at this test process's peak.)
			peak := make(chan int64)
			stop := make(chan struct{})
			go func() { peak <- pollHWM(cmd.Process.Pid, bin, stop) }()
			err := cmd.Wait()
			close(stop)
			rss := <-peak
			if err == nil && rss < 8<<20 {
				t.Fatalf("peak RSS of gtsm not measured (%d bytes)", rss)
			}
			if err != nil {
				t.Fatalf("gtsm produce under prlimit --as=%d MiB: %v\n%s", (bound+addressReserve)>>20, err, tail(stderr.String()))
			}
			t.Logf("%d records in %v, peak RSS %.1f MiB (bound %d MiB)", c.records, time.Since(start).Round(time.Millisecond), float64(rss)/(1<<20), bound>>20)
			m := regexp.MustCompile(`(\d+) records (written|delivered)`).FindStringSubmatch(stderr.String())
			if m == nil || m[1] != strconv.FormatInt(c.records, 10) {
				t.Fatalf("summary %q, want %d records\n%s", m, c.records, tail(stderr.String()))
			}
			if c.kafka {
				if n := topicRecords(t, st.BootstrapServers, topic); n != c.records {
					t.Fatalf("topic %s holds %d records, want %d", topic, n, c.records)
				}
			}
			if rss > bound {
				t.Fatalf("peak RSS %d MiB exceeds --buffer-mb %d + MemoryConstant %d MiB", rss>>20, bufferMiB, MemoryConstant>>20)
			}
		})
	}
}

// pollHWM returns the largest VmHWM (peak resident set) seen in
// /proc/pid/status, read every 5 ms until stop is closed, counting only
// while the process runs exe: prlimit execs gtsm, and VmHWM is per address
// space, so the exec resets it. Before the exec the child may still share
// this test process's address space (os/exec starts it with CLONE_VM), and
// its VmHWM is then this process's: found as a 197 MiB outlier in 1 of 20
// runs before the exe check.
func pollHWM(pid int, exe string, stop <-chan struct{}) int64 {
	var peak int64
	dir := fmt.Sprintf("/proc/%d", pid)
	for {
		// exe is read before status: once it is gtsm, it stays gtsm (a pid
		// is not reused before Wait reaps it), so the status read next is
		// gtsm's.
		if target, err := os.Readlink(dir + "/exe"); err == nil && target == exe {
			b, _ := os.ReadFile(dir + "/status")
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					peak = max(peak, kb<<10)
				}
			}
		}
		select {
		case <-stop:
			return peak
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// writeLongFile writes a Day CH0 bottle file of n 1-ms int32 samples
// starting at t0, with the bottle writer, and returns the record count.
func writeLongFile(t *testing.T, path string, t0 time.Time, n int) int64 {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(48_000_000 + i%100_000)
	}
	b, err := bottle.Encode(&bottle.File{Header: bottle.Header{Start: float64(t0.Unix()), Interval: 0.001,
		DataType: bottle.Int32, Missing: 999999}, Ints: v})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	debug.FreeOSMemory() // this test process runs the broker; give back the 2×n×4 bytes
	return int64(n)
}

// writeTar writes a plain tar holding the file at src under its base name.
func writeTar(t *testing.T, path, src string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(out)
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(src), Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tw, in); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildGtsm builds the gtsm binary into a temporary directory.
func buildGtsm(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gtsm")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gtsm")
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gtsm: %v\n%s", err, out)
	}
	return bin
}

// topicRecords is the number of records on topic: the sum of its
// partitions' end offsets (nothing is ever deleted from the test broker).
func topicRecords(t *testing.T, brokers, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s/%d: %v", topic, o.Partition, o.Err)
		}
		n += o.Offset
	})
	return n
}

// tail is the start and end of a long output, for failure messages.
func tail(s string) string {
	if len(s) > 4000 {
		return s[:2000] + "\n...\n" + s[len(s)-2000:]
	}
	return s
}
