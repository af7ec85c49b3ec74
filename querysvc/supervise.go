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
//   - a standby query process is kept started and ready, so one that exits
//     is replaced at once; a standby that dies before it is ready is
//     restarted with a doubling backoff;
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

// Descriptors of the query process: the inherited listening socket, the
// pipe it announces readiness on, and the pipe it waits on for the word to
// serve (a standby waits there, ready).
const (
	ListenerFD = 3
	ReadyFD    = 4
	ActivateFD = 5
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
	// MinBackoff (default 100ms) is the wait before starting another
	// query process after one died before it was ready; it doubles per
	// such death, up to MaxBackoff (default 5s), and is reset when one
	// gets ready.
	MinBackoff, MaxBackoff time.Duration
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

// child is one query process: started, ready once it has said so on its
// ready pipe, serving once activated (a line on its go pipe).
type child struct {
	cmd     *exec.Cmd
	pid     int
	ready   chan struct{} // closed when it says it is ready to serve
	exited  chan error    // its end
	goW     *os.File      // activation pipe (fd 5 in the child)
	started time.Time
}

// run keeps one query process serving and one standby ready: a query
// process's start (a DuckDB database, the lake's views, the endpoint's
// parser) took 1-6 s at load 30-50, so after a crash the standby, already
// started, is activated at once and a new standby is started behind it.
// A standby that dies before it is ready is restarted after a backoff that
// doubles (MinBackoff to MaxBackoff) until one gets ready.
func (s *Supervisor) run(ctx context.Context) {
	defer close(s.done)
	backoff := s.cfg.MinBackoff
	var cur, spare *child
	defer func() {
		for _, c := range []*child{cur, spare} {
			if c != nil {
				s.terminate(c)
			}
		}
	}()
	for ctx.Err() == nil {
		if spare == nil {
			c, err := s.spawn()
			if err != nil {
				s.cfg.Logger.Error("query process did not start", "err", err, "retry_in", backoff)
				if !s.sleep(ctx, backoff, cur == nil) {
					return
				}
				backoff = min(2*backoff, s.cfg.MaxBackoff)
				continue
			}
			spare = c
		}
		if cur == nil {
			// Nobody serves: refuse until the standby is ready.
			ref := startRefusing(s.cfg.Listener, s.cfg.Logger)
			startup := time.NewTimer(s.cfg.StartTimeout)
			select {
			case <-spare.ready:
				startup.Stop()
				ref.stop()
				if err := spare.activate(); err != nil {
					s.cfg.Logger.Error("query process: activate", "pid", spare.pid, "err", err)
				}
				cur, spare = spare, nil
				backoff = s.cfg.MinBackoff
				s.setServing(cur.pid)
				s.cfg.Logger.Info("query process serving", "pid", cur.pid, "addr", s.Addr().String())
			case err := <-spare.exited:
				startup.Stop()
				s.failed(spare, err, backoff)
				spare = nil
				ok := s.sleep(ctx, backoff, false)
				ref.stop()
				if !ok {
					return
				}
				backoff = min(2*backoff, s.cfg.MaxBackoff)
				s.restarts.Add(1)
			case <-startup.C:
				ref.stop()
				s.cfg.Logger.Error("query process did not get ready; killing it", "pid", spare.pid, "waited", s.cfg.StartTimeout)
				spare.cmd.Process.Kill()
			case <-ctx.Done():
				startup.Stop()
				ref.stop()
				return
			}
			continue
		}
		select {
		case err := <-cur.exited:
			s.setServing(0)
			s.failed(cur, err, 0)
			cur = nil
			s.restarts.Add(1)
		case err := <-spare.exited:
			s.failed(spare, err, backoff)
			spare = nil
			if !s.sleep(ctx, backoff, false) {
				return
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
		case <-ctx.Done():
			return
		}
	}
}

// sleep waits d (refusing connections meanwhile when refuse); false when
// ctx ended first.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration, refuse bool) bool {
	if refuse {
		ref := startRefusing(s.cfg.Listener, s.cfg.Logger)
		defer ref.stop()
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (s *Supervisor) failed(c *child, err error, backoff time.Duration) {
	err = describeExit(err)
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if backoff > 0 {
		s.cfg.Logger.Error("standby query process exited before serving; starting another", "pid", c.pid, "err", err,
			"ran", time.Since(c.started).Round(time.Millisecond), "restart_in", backoff)
		return
	}
	s.cfg.Logger.Error("query process exited; restarting it", "pid", c.pid, "err", err,
		"ran", time.Since(c.started).Round(time.Millisecond))
}

// spawn starts a query process on the listening socket (fd 3), with its
// ready pipe (fd 4) and activation pipe (fd 5).
func (s *Supervisor) spawn() (*child, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ready pipe: %w", err)
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, fmt.Errorf("activation pipe: %w", err)
	}
	cmd := exec.Command(s.cfg.Path, s.cfg.Args...)
	cmd.Env = append(append(os.Environ(), s.cfg.Env...), fmt.Sprintf("%s=%d", EnvSupervisor, os.Getpid()))
	cmd.Stdout, cmd.Stderr = s.cfg.Stderr, s.cfg.Stderr
	cmd.ExtraFiles = []*os.File{s.lnf, readyW, goR} // fds 3, 4 and 5
	// Its own process group: a Ctrl-C in the terminal reaches the
	// supervisor, which stops the query process itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	c := &child{cmd: cmd, ready: make(chan struct{}), exited: make(chan error, 1), goW: goW, started: time.Now()}
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
		c.exited <- cmd.Wait()
	}()
	err = <-startErr
	readyW.Close()
	goR.Close()
	// os/exec took the socket's descriptor with Fd(), which makes it
	// blocking, and that flag is the socket's, shared with our listener:
	// make it non-blocking again, or our refuser's accept would block in
	// the kernel where no deadline reaches it.
	setNonblock(s.cfg.Listener)
	if err != nil {
		readyR.Close()
		goW.Close()
		return nil, fmt.Errorf("start %s: %w", s.cfg.Path, err)
	}
	c.pid = cmd.Process.Pid
	go func() {
		defer readyR.Close()
		if sc := bufio.NewScanner(readyR); sc.Scan() {
			close(c.ready)
		}
	}()
	return c, nil
}

// activate tells a ready query process to serve.
func (c *child) activate() error {
	_, err := c.goW.WriteString("serve\n")
	c.goW.Close()
	return err
}

// terminate stops a query process: SIGTERM, then SIGKILL after
// StopTimeout.
func (s *Supervisor) terminate(c *child) {
	c.goW.Close() // a standby waiting for activation reads EOF and exits
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(s.cfg.StopTimeout):
		s.cfg.Logger.Warn("query process did not stop after SIGTERM; killing it", "pid", c.pid, "waited", s.cfg.StopTimeout)
		c.cmd.Process.Kill()
		<-c.exited
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
