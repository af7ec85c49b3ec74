package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Offsets are next offsets by partition of the gtsm_etl topic: the offset
// after the last message that was (or will be) read. A partition missing
// from the map is at offset 0.
type Offsets map[int32]int64

// String lists the partitions in order: "0:1234 1:0 2:567".
func (o Offsets) String() string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(o)) {
		parts = append(parts, fmt.Sprintf("%d:%d", p, o[p]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// Total is the number of messages below the offsets.
func (o Offsets) Total() int64 {
	var n int64
	for _, v := range o {
		n += v
	}
	return n
}

// Equal says whether both name the same offset for every partition of
// either (absent is 0).
func (o Offsets) Equal(p Offsets) bool {
	for k, v := range o {
		if p[k] != v {
			return false
		}
	}
	for k, v := range p {
		if o[k] != v {
			return false
		}
	}
	return true
}

// Flink renders the offsets as the Kafka connector's
// 'scan.bounded.specific-offsets' value: "partition:0,offset:1234;partition:1,offset:0".
func (o Offsets) Flink() string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(o)) {
		parts = append(parts, fmt.Sprintf("partition:%d,offset:%d", p, o[p]))
	}
	return strings.Join(parts, ";")
}

// AppliedOffsets reads what the processor has applied from its kafka_offsets
// table (every message of a partition below next_offset is stored, counted
// as a duplicate or dead-lettered), through either DuckDB source.
func AppliedOffsets(ctx context.Context, s Source, topic string) (Offsets, error) {
	t, err := s.Run(ctx, "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE topic = '"+strings.ReplaceAll(topic, "'", "''")+"'")
	if err != nil {
		return nil, fmt.Errorf("reading kafka_offsets: %w", err)
	}
	o := Offsets{}
	for i, r := range t.Rows {
		p, ok1 := r[0].(int64)
		n, ok2 := r[1].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("kafka_offsets row %d: %v", i, r)
		}
		o[int32(p)] = n
	}
	return o, nil
}

// Readiness is what `gtsm compare` waits for before comparing: the gateway
// answers, the topic's end offsets stay the same for two polls in a row (the
// producer is done), and the processor has applied exactly those offsets.
// Flink then scans up to the same offsets ('scan.bounded.specific-offsets'),
// so both sides read the same messages.
type Readiness struct {
	Gateway *Gateway // nil: not waited for
	// End returns the topic's end offsets (the offsets a bounded scan
	// started now would stop at).
	End func(context.Context) (Offsets, error)
	// Applied returns the processor's applied offsets (AppliedOffsets).
	Applied func(context.Context) (Offsets, error)
	// Poll is the pause between polls (default 1s).
	Poll time.Duration
	// Progress gets one line whenever the state changes, and at least every
	// ProgressEvery (default 10s) while it does not.
	Progress      io.Writer
	ProgressEvery time.Duration
	// GatewayHint follows "Flink SQL Gateway: <error>" while the gateway
	// does not answer (how to start it); Hint follows the error when the
	// wait runs out (how to wait longer). Both may be empty.
	GatewayHint, Hint string
}

// ErrAhead is returned when the processor has applied offsets beyond the
// topic's end: its database belongs to an older topic of the same name.
var ErrAhead = errors.New("the processor has applied offsets beyond the topic's end (was the topic deleted and re-created? start the processor on a fresh database)")

// Wait polls until ready and returns the offsets both sides will read; the
// context bounds the wait, and on timeout the error says what was missing.
func (r *Readiness) Wait(ctx context.Context) (Offsets, error) {
	poll := r.Poll
	if poll <= 0 {
		poll = time.Second
	}
	every := r.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	progress := r.Progress
	if progress == nil {
		progress = io.Discard
	}
	start := time.Now()
	var (
		lastMsg   string
		lastPrint time.Time
		prevEnd   Offsets
	)
	for {
		state, end, err := r.check(ctx, prevEnd)
		if err != nil {
			return nil, err
		}
		if state == "" {
			return end, nil
		}
		prevEnd = end
		if state != lastMsg || time.Since(lastPrint) >= every {
			// How long so far and, under a deadline, how long is left.
			waited := time.Since(start).Round(time.Second).String()
			if dl, ok := ctx.Deadline(); ok {
				waited += ", " + max(time.Until(dl), 0).Round(time.Second).String() + " left"
			}
			fmt.Fprintf(progress, "waiting (%s): %s\n", waited, state)
			lastMsg, lastPrint = state, time.Now()
		}
		select {
		case <-ctx.Done():
			hint := ""
			if r.Hint != "" {
				hint = "; " + r.Hint
			}
			return nil, fmt.Errorf("not ready after %s: %s%s: %w", time.Since(start).Round(time.Second), state, hint, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// check returns "" and the offsets when ready, else what is missing (and the
// end offsets seen, for the stability check of the next poll).
func (r *Readiness) check(ctx context.Context, prevEnd Offsets) (string, Offsets, error) {
	if r.Gateway != nil {
		if _, err := r.Gateway.Info(ctx); err != nil {
			if r.GatewayHint != "" {
				return "Flink SQL Gateway: " + oneLine(err) + " (" + r.GatewayHint + ")", nil, nil
			}
			return "Flink SQL Gateway: " + oneLine(err), nil, nil
		}
	}
	var pe *PermanentError
	end, err := r.End(ctx)
	if errors.As(err, &pe) {
		return "", nil, err
	} else if err != nil {
		return "topic end offsets: " + oneLine(err), nil, nil
	}
	applied, err := r.Applied(ctx)
	if errors.As(err, &pe) {
		return "", nil, err
	} else if err != nil {
		return "processor: " + oneLine(err), end, nil
	}
	var behind []string
	for _, p := range slices.Sorted(maps.Keys(end)) {
		if applied[p] < end[p] {
			behind = append(behind, fmt.Sprintf("%d:%d/%d", p, applied[p], end[p]))
		}
	}
	for p, n := range applied {
		if n > end[p] {
			return "", nil, fmt.Errorf("partition %d: applied %d, topic ends at %d: %w", p, n, end[p], ErrAhead)
		}
	}
	switch {
	case end.Total() == 0:
		return "topic is empty (is the producer running?)", end, nil
	case len(behind) > 0:
		return fmt.Sprintf("processor applied %d of %d messages (partition:applied/end %s)",
			applied.Total(), end.Total(), strings.Join(behind, " ")), end, nil
	case prevEnd == nil || !prevEnd.Equal(end):
		// Caught up, but the topic may still be growing: one more poll.
		return fmt.Sprintf("processor caught up at %d messages; checking the topic stopped growing", end.Total()), end, nil
	}
	return "", end, nil
}

// PermanentError is an error that waiting cannot fix (a wrong password, a
// bad address): Readiness.Wait returns it at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as one that waiting cannot fix.
func Permanent(err error) error { return &PermanentError{err} }

// oneLine keeps an error's first line.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// Info asks the gateway for its product name and version (GET /v1/info,
// present in every API version).
func (g *Gateway) Info(ctx context.Context) (string, error) {
	var out struct {
		ProductName string `json:"productName"`
		Version     string `json:"version"`
	}
	if err := g.do(ctx, "GET", "/v1/info", nil, &out); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.ProductName + " " + out.Version), nil
}
