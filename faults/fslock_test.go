package faults

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestDuckDBLockIsFcntl (docs/scale-out.md, "Shared-filesystem lock
// semantics"): the lock that keeps a second process, and so a zombie
// partition owner, out of a DuckDB file is a POSIX record lock (fcntl
// F_SETLK over the whole file), not flock(2). The test process holds each
// kind of lock on a real DuckDB file and a separate process (the real
// `gtsm sql --db FILE`, which opens it read-only, as DuckDB's shared lock)
// tries to open it: an fcntl write lock refuses it, naming this process's PID
// (DuckDB asked the kernel who holds it: F_GETLK); an fcntl read lock lets a
// reader in; flock(2), whatever its mode, is not seen at all. Which matters on
// a shared filesystem: NFS carries fcntl locks to the server (NLM on v3, the
// protocol's own locks on v4), flock locks only since Linux emulates them as
// fcntl locks there.
func TestDuckDBLockIsFcntl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0.duckdb")
	db, err := gtsmsql.Open(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		lock    func(fd int) error
		refused bool
	}{
		{"fcntl write lock", func(fd int) error {
			return syscall.FcntlFlock(uintptr(fd), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0})
		}, true},
		{"fcntl read lock", func(fd int) error {
			return syscall.FcntlFlock(uintptr(fd), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_RDLCK, Whence: 0, Start: 0, Len: 0})
		}, false},
		{"flock exclusive", func(fd int) error { return syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Closing the descriptor drops both kinds of lock.
			defer f.Close()
			if err := tc.lock(int(f.Fd())); err != nil {
				t.Fatalf("taking the lock: %v", err)
			}
			p := start(t, nil, gtsm(t), "sql", "--db", path, "--addr", freeAddr(t), "-q", "--mode", "csv", "-c", "SELECT 40 + 2 AS answer")
			var out []string
			for l := range p.lines {
				out = append(out, l)
			}
			err = p.wait(time.Minute)
			stderr := p.stderr.String()
			if tc.refused {
				pid := "(PID " + strconv.Itoa(os.Getpid()) + ")"
				if err == nil || !strings.Contains(stderr, "Could not set lock") || !strings.Contains(stderr, pid) {
					t.Fatalf("gtsm sql opened a file this process holds an fcntl write lock on: %v %q\n%s", err, out, stderr)
				}
				t.Logf("refused: %s", lastLine(stderr))
				return
			}
			if err != nil || !strings.Contains(strings.Join(out, "\n"), "42") {
				t.Fatalf("gtsm sql could not read the file under a %s: %v %q\n%s", tc.name, err, out, stderr)
			}
		})
	}
}
