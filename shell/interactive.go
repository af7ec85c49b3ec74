package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/chzyer/readline"
)

// Terminal is the terminal an interactive session runs on: normally
// os.Stdin/os.Stdout, a pseudo-terminal in tests.
type Terminal struct {
	In  *os.File
	Out *os.File
}

// IsTerminal reports whether f is a terminal (and so gets prompts and line
// editing rather than plain reading).
func IsTerminal(f *os.File) bool { return readline.IsTerminal(int(f.Fd())) }

const (
	prompt     = "gtsm> "
	contPrompt = "  ..> "
)

// Interactive reads statements with line editing until .quit or Ctrl-D.
// Ctrl-C drops the statement being typed, or interrupts the one running
// (give a ctx that SIGINT does not cancel, or Ctrl-C ends the session). A finished statement is saved to
// historyFile ("" = no history) as one entry, so arrow-up brings back a
// whole multi-line statement (joined on one line).
func (s *Shell) Interactive(ctx context.Context, term Terminal, historyFile string) error {
	fd := int(term.In.Fd())
	var saved *readline.State
	rl, err := readline.NewEx(&readline.Config{
		Prompt:                 prompt,
		HistoryFile:            historyFile,
		DisableAutoSaveHistory: true,
		HistorySearchFold:      true,
		InterruptPrompt:        "^C",
		EOFPrompt:              ".quit",
		Stdin:                  term.In,
		Stdout:                 term.Out,
		Stderr:                 term.Out,
		FuncIsTerminal:         func() bool { return true },
		FuncMakeRaw: func() error {
			st, err := readline.MakeRaw(fd)
			saved = st
			return err
		},
		FuncExitRaw: func() error {
			if saved == nil {
				return nil
			}
			return readline.Restore(fd, saved)
		},
		FuncGetWidth: func() int {
			if w, _, err := readline.GetSize(int(term.Out.Fd())); err == nil && w > 0 {
				return w
			}
			return 80
		},
	})
	if err != nil {
		return fmt.Errorf("start line editing: %w", err)
	}
	defer rl.Close()
	fmt.Fprintln(term.Out, "End statements with ';'. .help lists the commands, Ctrl-D leaves.")
	var entry []string // lines of the statement being typed, for history
	for !s.quit && ctx.Err() == nil {
		if s.Pending() {
			rl.SetPrompt(contPrompt)
		} else {
			rl.SetPrompt(prompt)
		}
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			s.ClearPending()
			entry = nil
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("read terminal: %w", err)
		}
		if strings.TrimSpace(line) == "" && !s.Pending() {
			continue
		}
		entry = append(entry, strings.TrimSpace(line))
		// Ctrl-C while a statement runs interrupts that statement only.
		lctx, stop := signal.NotifyContext(ctx, os.Interrupt)
		s.Line(lctx, line)
		stop()
		if !s.Pending() {
			if err := rl.SaveHistory(strings.Join(entry, " ")); err != nil {
				fmt.Fprintf(s.Err, "history: %v\n", err)
			}
			entry = nil
		}
	}
	return ctx.Err()
}
