// Package querysvc owns the query process: the separate OS process that runs
// every SQL statement a client sends, so that no client statement ever runs
// in the process that consumes Kafka and writes DuckDB (a statement that
// crashes DuckDB, exhausts memory or ignores its interrupt then ends only
// the query process), and its supervision by the process that starts it:
//
//   - the supervisor binds the SQL address and keeps the listening socket
//     across restarts; the query process serves it as file descriptor 3 and
//     writes one line on descriptor 4 once it serves;
//   - while no query process serves (starting, or restarting after a
//     crash) the supervisor answers connections itself with SQLSTATE 57P03
//     ("starting up"), so a client gets an error, never a hang;
//   - a query process that exits on its own is restarted with a doubling
//     backoff (reset once one has served for a while);
//   - the query process dies with its supervisor (Pdeathsig: SIGKILL when
//     the supervising thread ends), and bounds itself (Harden: the kernel's
//     address-space limit, and the first pick of the OOM killer).
//
// cmd/gtsm runs `gtsm process`, `gtsm demo --serve` and `gtsm query-service`
// as supervisors of a re-executed `gtsm query-service` worker.
package querysvc

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Descriptors of the query process: the inherited listening socket and the
// pipe it announces readiness on.
const (
	ListenerFD = 3
	ReadyFD    = 4
)

// EnvSupervisor names the supervisor's process id in the query process's
// environment, so it can tell at start that its supervisor died already.
const EnvSupervisor = "GTSM_QUERY_SUPERVISOR"

// Config says what to run.
type Config struct {
	// Listener is the bound SQL address; the supervisor owns it (closed by
	// Close).
	Listener *net.TCPListener
	// Path is the executable (default: this one, os.Executable) and Args
	// its arguments; Env is added to this process's environment.
	Path string
	Args []string
	Env  []string
	// Logger receives restarts and the query process's fate.
	Logger *slog.Logger
	// MinBackoff (default 100ms) is the wait before restarting a query
	// process that exited; it doubles per exit, up to MaxBackoff (default
	// 5s), and is reset once one has served for Healthy (default 10s).
	MinBackoff, MaxBackoff, Healthy time.Duration
	// StopTimeout is how long Close waits after SIGTERM before SIGKILL
	// (default 10s); StartTimeout how long a query process may take to
	// serve before it is killed and started again (default 1m).
	StopTimeout, StartTimeout time.Duration
	// Stderr receives the query process's output, its logs (default
	// os.Stderr).
	Stderr io.Writer
}

// Supervisor runs and restarts the query process; see the package comment.
type Supervisor struct {
	cfg  Config
	lnf  *os.File // the listening socket, dup'ed for the children
	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	ready    chan struct{} // closed while a query process serves
	pid      int
	restarts atomic.Int64
	lastErr  error
}

// Start starts the first query process and returns; Ready waits for it.
func Start(cfg Config) (*Supervisor, error) {
	if cfg.Listener == nil {
		return nil, errors.New("query process: no listener")
	}
	if cfg.Path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("query process: find this executable: %w", err)
		}
		cfg.Path = exe
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 5*time.Second)
	cfg.Healthy = cmp.Or(cfg.Healthy, 10*time.Second)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, 10*time.Second)
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, time.Minute)
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	lnf, err := cfg.Listener.File()
	if err != nil {
		return nil, fmt.Errorf("query process: the listening socket: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Supervisor{cfg: cfg, lnf: lnf, stop: stop, done: make(chan struct{}), ready: make(chan struct{})}
	go s.run(ctx)
	return s, nil
}

// Addr is the SQL address.
func (s *Supervisor) Addr() net.Addr { return s.cfg.Listener.Addr() }

// Restarts counts the query processes started after the first.
func (s *Supervisor) Restarts() int64 { return s.restarts.Load() }

// Pid is the serving query process's id (0 while none serves).
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Ready waits until a query process serves.
func (s *Supervisor) Ready(ctx context.Context) error {
	for {
		s.mu.Lock()
		ready, pid, last := s.ready, s.pid, s.lastErr
		s.mu.Unlock()
		if pid != 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("query process not serving: %w (last exit: %v)", ctx.Err(), last)
			}
			return fmt.Errorf("query process not serving: %w", ctx.Err())
		case <-s.done:
			return errors.New("query process supervisor stopped")
		case <-ready:
		}
	}
}

// Close stops the query process (SIGTERM, then SIGKILL after StopTimeout)
// and closes the listener.
func (s *Supervisor) Close() error {
	s.stop()
	<-s.done
	return errors.Join(s.lnf.Close(), s.cfg.Listener.Close())
}

func (s *Supervisor) setServing(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pid = pid
	if pid != 0 {
		close(s.ready)
	} else {
		s.ready = make(chan struct{})
	}
}

func (s *Supervisor) run(ctx context.Context) {
	defer close(s.done)
	backoff := s.cfg.MinBackoff
	for n := 0; ; n++ {
		ref := startRefusing(s.cfg.Listener, s.cfg.Logger)
		started := time.Now()
		served, err := s.once(ctx, ref)
		ref.stop()
		if ctx.Err() != nil {
			return
		}
		if served && time.Since(started) >= s.cfg.Healthy {
			backoff = s.cfg.MinBackoff
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		s.cfg.Logger.Error("query process exited; restarting it", "err", err, "served", served,
			"ran", time.Since(started).Round(time.Millisecond), "restart_in", backoff)
		ref = startRefusing(s.cfg.Listener, s.cfg.Logger)
		select {
		case <-ctx.Done():
			ref.stop()
			return
		case <-time.After(backoff):
		}
		ref.stop()
		backoff = min(2*backoff, s.cfg.MaxBackoff)
		s.restarts.Add(1)
	}
}

// once runs one query process until it exits or ctx ends. ref refuses
// connections until the process says it serves.
func (s *Supervisor) once(ctx context.Context, ref *refuser) (served bool, err error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return false, fmt.Errorf("ready pipe: %w", err)
	}
	defer readyR.Close()
	cmd := exec.Command(s.cfg.Path, s.cfg.Args...)
	cmd.Env = append(append(os.Environ(), s.cfg.Env...), fmt.Sprintf("%s=%d", EnvSupervisor, os.Getpid()))
	cmd.Stdout, cmd.Stderr = s.cfg.Stderr, s.cfg.Stderr
	cmd.ExtraFiles = []*os.File{s.lnf, readyW} // fds 3 and 4
	// Its own process group: a Ctrl-C in the terminal reaches the
	// supervisor, which stops the query process itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	exited := make(chan error, 1)
	startErr := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child ends,
		// not the process: keep this goroutine on its thread until the
		// child is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		startErr <- err
		if err != nil {
			return
		}
		exited <- cmd.Wait()
	}()
	err = <-startErr
	readyW.Close()
	// os/exec took the socket's descriptor with Fd(), which makes it
	// blocking, and that flag is the socket's, shared with our listener:
	// make it non-blocking again, or our refuser's accept would block in
	// the kernel where no deadline reaches it.
	setNonblock(s.cfg.Listener)
	if err != nil {
		return false, fmt.Errorf("start %s: %w", s.cfg.Path, err)
	}
	readyc := make(chan struct{})
	go func() {
		if sc := bufio.NewScanner(readyR); sc.Scan() {
			close(readyc)
		}
	}()
	pid := cmd.Process.Pid
	defer s.setServing(0)
	startup := time.NewTimer(s.cfg.StartTimeout)
	defer startup.Stop()
	for {
		select {
		case <-startup.C:
			s.cfg.Logger.Error("query process did not start serving; killing it", "pid", pid, "waited", s.cfg.StartTimeout)
			cmd.Process.Kill()
		case <-readyc:
			startup.Stop()
			ref.stop()
			s.setServing(pid)
			served = true
			s.cfg.Logger.Info("query process serving", "pid", pid, "addr", s.Addr().String())
			readyc = nil
		case err := <-exited:
			return served, describeExit(err)
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(s.cfg.StopTimeout):
				s.cfg.Logger.Warn("query process did not stop after SIGTERM; killing it", "pid", pid, "waited", s.cfg.StopTimeout)
				cmd.Process.Kill()
				<-exited
			}
			return served, nil
		}
	}
}

func setNonblock(ln *net.TCPListener) {
	if rc, err := ln.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), true) })
	}
}

func describeExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("killed by signal %v", ws.Signal())
		}
		return fmt.Errorf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return errors.New("exited with status 0 before being asked to stop")
	}
	return err
}
