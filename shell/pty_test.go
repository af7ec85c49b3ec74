package shell_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/earthscope/gtsm-stream/shell"
)

// screen collects what the terminal shows.
type screen struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.ReplaceAll(s.buf.String(), "\r", "")
}

// waitFor waits until the screen, after position from, shows want; it
// returns the position after it. The deadline only turns a hang into a
// failure message.
func (s *screen) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		txt := s.text()
		if from <= len(txt) {
			if i := strings.Index(txt[from:], want); i >= 0 {
				return from + i + len(want)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("terminal never showed %q after position %d; screen:\n%s", want, from, s.text())
	return 0
}

// TestInteractiveOnPseudoTerminal types into the shell as a person would:
// a statement over two lines, a mode change, arrow-up to recall the
// statement from history, Ctrl-C on a half-typed line, Ctrl-D to leave.
func TestInteractiveOnPseudoTerminal(t *testing.T) {
	ctx := context.Background()
	b, err := shell.OpenLocal(ctx, demoFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	scr := &screen{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			scr.mu.Lock()
			scr.buf.Write(buf[:n])
			scr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	hist := filepath.Join(t.TempDir(), "history")
	sh := shell.New(b, tty, tty)
	done := make(chan error, 1)
	go func() { done <- sh.Interactive(ctx, shell.Terminal{In: tty, Out: tty}, hist) }()

	typeKeys := func(s string) {
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	pos := scr.waitFor(t, 0, ".help lists the commands")
	pos = scr.waitFor(t, pos, "gtsm> ")
	typeKeys("SELECT site, records\r")
	pos = scr.waitFor(t, pos, "  ..> ")
	typeKeys("FROM site_state ORDER BY site;\r")
	pos = scr.waitFor(t, pos, "site | records\n-----+--------\nA001 |     144\nB009 |   86400\n(2 rows)\n")
	pos = scr.waitFor(t, pos, "gtsm> ")
	typeKeys(".mode csv\r")
	pos = scr.waitFor(t, pos, "gtsm> ")
	// Ctrl-C drops a half-typed statement: the next prompt is a fresh one.
	typeKeys("SELECT 'never run'\x03")
	pos = scr.waitFor(t, pos, "^C")
	pos = scr.waitFor(t, pos, "gtsm> ")
	// Arrow up twice: past ".mode csv" to the two-line SELECT, recalled as one line.
	typeKeys("\x1b[A")
	pos = scr.waitFor(t, pos, ".mode csv")
	typeKeys("\x1b[A")
	pos = scr.waitFor(t, pos, "SELECT site, records FROM site_state ORDER BY site;")
	typeKeys("\r")
	pos = scr.waitFor(t, pos, "site,records\nA001,144\nB009,86400\n")
	pos = scr.waitFor(t, pos, "gtsm> ")
	// An error is shown and the shell goes on.
	typeKeys("SELECT * FROM nope;\r")
	pos = scr.waitFor(t, pos, "Error: ")
	scr.waitFor(t, pos, "gtsm> ")
	typeKeys("\x04") // Ctrl-D
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Interactive: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Ctrl-D did not end the session; screen:\n%s", scr.text())
	}
	if strings.Contains(scr.text(), "never run\n") {
		t.Errorf("the interrupted statement ran; screen:\n%s", scr.text())
	}
	h, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT site, records FROM site_state ORDER BY site;\n.mode csv\nSELECT site, records FROM site_state ORDER BY site;\nSELECT * FROM nope;\n"
	if string(h) != want {
		t.Errorf("history file:\n%q\nwant\n%q", h, want)
	}
}
