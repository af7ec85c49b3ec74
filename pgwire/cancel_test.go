package pgwire_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/pgwire"
)

// TestCancelWhileDescribing: a cancel request that arrives before the
// statement executes (while the endpoint splits it with DuckDB's parser or
// while DuckDB prepares it to learn its columns, neither of which DuckDB
// lets us interrupt) still stops it with 57014. Before, the request was
// either dropped (no statement registered yet) or consumed by the describe
// step, which then went on: the query ran and the client got its rows, or,
// when the request came just before DuckDB's prepare, the client got
// "context canceled" without a SQLSTATE (seen in 4 of 150 runs of
// TestCancelRequest under load).
func TestCancelWhileDescribing(t *testing.T) {
	// A 50,000-value IN list: DuckDB's parser needs about 0.1-0.5 s for it
	// and its prepare 0.3-3 s on this machine (measured under varying load;
	// a 20,000-value list was sometimes done, run included, within the
	// 300 ms), the query itself takes milliseconds.
	var b strings.Builder
	b.WriteString("SELECT count(*) FROM range(10) WHERE range IN (0")
	for i := 1; i < 50000; i++ {
		fmt.Fprintf(&b, ",%d", i)
	}
	b.WriteString(")")
	slowToPrepare := b.String()

	e := start(t, pgwire.Config{QueryTimeout: time.Hour})
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			queryCanceledAfter(t, cancelingConn(t, e, mode), 300*time.Millisecond, slowToPrepare)
		})
	}
}
