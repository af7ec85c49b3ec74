package pgwire

import (
	"context"
	"errors"
	"testing"
)

// TestSessionCancelStates: which statement a cancel request stops, by when
// it arrives. A request is never lost while the client waits for an answer,
// and never stops a statement the client sent after its session went idle.
func TestSessionCancelStates(t *testing.T) {
	type step int
	const (
		received  step = iota // bytes read from the client
		describe              // a statement registered and unregistered (the describe of a simple query)
		cancelReq             // the cancel request
		idle                  // ReadyForQuery
	)
	cases := []struct {
		name     string
		before   []step
		canceled bool // the statement started after the steps is canceled
	}{
		{"while idle: dropped", []step{cancelReq, received}, false},
		{"after the message was read, before its statement started", []step{received, cancelReq}, true},
		{"between the describe and the execution", []step{received, describe, cancelReq}, true},
		{"after ReadyForQuery: dropped", []step{received, cancelReq, idle, received}, false},
		{"for the previous message, then idle", []step{received, describe, idle, cancelReq, received}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			se := &session{}
			for _, s := range tc.before {
				switch s {
				case received:
					se.received()
				case describe:
					ctx, cancel := context.WithCancelCause(context.Background())
					se.running(cancel)()
					if ctx.Err() != nil {
						t.Fatal("describe canceled before any request")
					}
				case cancelReq:
					se.requestCancel()
				case idle:
					se.idle()
				}
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := se.running(cancel)
			if got := ctx.Err() != nil; got != tc.canceled {
				t.Fatalf("statement canceled = %v, want %v", got, tc.canceled)
			}
			if tc.canceled && !errors.Is(context.Cause(ctx), errClientCancel) {
				t.Errorf("cause %v, want %v", context.Cause(ctx), errClientCancel)
			}
			// A request while the statement runs always stops it.
			se.requestCancel()
			if !errors.Is(context.Cause(ctx), errClientCancel) {
				t.Errorf("running statement not canceled by a request: %v", context.Cause(ctx))
			}
			done()
		})
	}
}
