package querysvc

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/earthscope/gtsm-stream/pgwire"
)

// refuser answers connections on the supervisor's listener while no query
// process serves: FATAL 57P03 (cannot_connect_now), as Postgres answers
// while it starts up, instead of leaving the client in the listen backlog.
type refuser struct {
	ln   *net.TCPListener
	once sync.Once
	quit chan struct{}
	done chan struct{}
}

func startRefusing(ln *net.TCPListener, log *slog.Logger) *refuser {
	r := &refuser{ln: ln, quit: make(chan struct{}), done: make(chan struct{})}
	ln.SetDeadline(time.Time{})
	go func() {
		defer close(r.done)
		for {
			c, err := ln.Accept()
			select {
			case <-r.quit:
				if c != nil {
					go refuse(c)
				}
				return
			default:
			}
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				log.Warn("SQL endpoint: accept while the query process is down", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			log.Info("SQL endpoint: query process not serving; refusing a connection", "remote", c.RemoteAddr().String())
			go refuse(c)
		}
	}()
	return r
}

func refuse(c net.Conn) {
	pgwire.RefuseConn(c, "57P03", "the SQL endpoint's query process is starting up (or restarting after a failure); try again in a moment")
}

// stop ends the refusing (Accept is woken by a deadline in the past; the
// socket itself stays open for the query process).
func (r *refuser) stop() {
	r.once.Do(func() {
		close(r.quit)
		r.ln.SetDeadline(time.Now())
		// An accept caught in the kernel (the socket was briefly blocking
		// while a query process started, see Supervisor.once) sees no
		// deadline: a connection of our own wakes it, whichever process
		// takes it.
		for {
			select {
			case <-r.done:
				r.ln.SetDeadline(time.Time{})
				return
			case <-time.After(100 * time.Millisecond):
				if c, err := net.DialTimeout("tcp", r.ln.Addr().String(), time.Second); err == nil {
					c.Close()
				}
			}
		}
	})
}
