package querysvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// DefaultMemoryLimit is the query process's DuckDB memory_limit when none is
// given: DuckDB's own default (80% of the machine) would leave the
// address-space bound derived from it no bound at all.
const DefaultMemoryLimit = "1GB"

// ParseSize reads a DuckDB size ("512MB", "2GiB", "1.5 GB", "1000"): KB,
// MB, GB, TB are powers of 1000 and KiB, MiB, GiB, TiB of 1024, as DuckDB
// reads them; a bare number is bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToUpper(strings.TrimSpace(t[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number and a unit, e.g. 2GB or 512MiB", s)
	}
	mult := map[string]float64{"": 1, "B": 1, "BYTES": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, unit)
	}
	return int64(f * mult), nil
}

// AddressSpace is the query process's address-space limit (RLIMIT_AS) for
// a DuckDB memory_limit and a connection limit. DuckDB does not account
// everything against memory_limit (string results of repeat() reached 2-6
// GB of RSS with a smaller limit), so the kernel's bound is the real one:
// an allocation beyond it fails (DuckDB answers "Out of Memory Error", the
// statement fails) or, in the Go runtime, ends the query process, which
// its supervisor restarts; the ingesting process is another process.
//
// Measured on linux/amd64 (2 CPUs): an idle query process maps 1.9 GB
// (Go runtime reservations, DuckDB's threads and allocator), peaking at 2.0
// GB. The limit is that base with room (2.5 GiB), 64 MiB per CPU (DuckDB's
// worker threads and allocator arenas), 8 MiB per connection (a thread
// stack each while in DuckDB) and twice memory_limit (DuckDB's pool plus
// what it does not account): 5.1 GiB with the defaults (1GB, 64
// connections) on 2 CPUs, where the 2.5 GB string of
// repeat(repeat('x',1000000),2500) fails with "Out of Memory Error".
func AddressSpace(memoryLimit int64, maxConns int) uint64 {
	return uint64(5<<29 + 64<<20*int64(runtime.NumCPU()) + 8<<20*int64(max(maxConns, 1)) + 2*memoryLimit)
}

// Harden is called by the query process at start: it refuses to run when
// its supervisor is gone already (it died before Pdeathsig was armed), sets
// its address-space limit (0: none), and makes itself the OOM killer's
// first choice, so that under a container's memory limit the kernel ends a
// hungry query, not the ingestion.
func Harden(addressSpace uint64) error {
	if want := os.Getenv(EnvSupervisor); want != "" && strconv.Itoa(os.Getppid()) != want {
		return fmt.Errorf("query process: its supervisor (pid %s) is gone", want)
	}
	if addressSpace > 0 {
		lim := &syscall.Rlimit{Cur: addressSpace, Max: addressSpace}
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
			return fmt.Errorf("query process: address-space limit %d bytes: %w", addressSpace, err)
		}
	}
	// Raising one's own oom_score_adj needs no privilege; a system without
	// /proc just keeps the default.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("query process: oom_score_adj: %w", err)
	}
	return nil
}

// Inherited returns the listening socket the supervisor passed, the
// function that tells it this query process is ready, and the one that
// waits for the word to serve (nil), or for ctx or the supervisor's end
// (an error).
func Inherited() (ln *net.TCPListener, ready func(), activated func(context.Context) error, err error) {
	f := os.NewFile(ListenerFD, "sql-listener")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("query process: inherited listener (fd %d): %w", ListenerFD, err)
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		l.Close()
		return nil, nil, nil, fmt.Errorf("query process: fd %d is not a TCP listener", ListenerFD)
	}
	w := os.NewFile(ReadyFD, "ready")
	r := os.NewFile(ActivateFD, "activate")
	ready = func() {
		w.WriteString("ready\n")
		w.Close()
	}
	activated = func(ctx context.Context) error {
		got := make(chan error, 1)
		go func() {
			line, err := bufio.NewReader(r).ReadString('\n')
			if err == nil && line != "serve\n" {
				err = fmt.Errorf("unexpected %q", line)
			}
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				return fmt.Errorf("query process: waiting to serve: %w (the supervisor is gone or stopped this standby)", err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return tl, ready, activated, nil
}
