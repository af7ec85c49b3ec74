package testutil

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGQueryInt runs a one-value query on a fresh connection to the Postgres
// URL (a gtsm SQL endpoint), so that a restarted server is seen.
func PGQueryInt(ctx context.Context, url, query string) (int64, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int64
	err = c.QueryRow(ctx, query).Scan(&n)
	return n, err
}

// PGAnswers polls the endpoint with SELECT 1 every 50 ms until it answers
// or bound has passed, and returns how long that took and the last error.
func PGAnswers(ctx context.Context, url string, bound time.Duration) (time.Duration, error) {
	t0 := time.Now()
	var last error
	for time.Since(t0) < bound {
		if _, last = PGQueryInt(ctx, url, "SELECT 1"); last == nil {
			return time.Since(t0), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(t0), last
}
