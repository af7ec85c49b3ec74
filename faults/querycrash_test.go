package faults

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// The statements that ended `gtsm process` when its SQL endpoint ran them in
// the process that writes DuckDB: one that crashes DuckDB (SIGSEGV in
// cgo: nesting built at run time, which no statement guard can see) and one
// whose strings DuckDB does not account against memory_limit (2-6 GB RSS).
var queryAttacks = []struct{ name, sql string }{
	{"json_structure crash", `SELECT length(json_structure(repeat('[',200000)||repeat(']',200000)))`},
	{"unaccounted memory", `SELECT length(repeat(repeat('x',1000000),2500))`},
}

// TestQueryCrashWhileIngesting is the quick variant (a small backfill, each
// attack once); TestQueryCrashDuringBackfill the full one.
func TestQueryCrashWhileIngesting(t *testing.T) {
	queryCrashRun(t, 3, 20, 1)
}

// TestQueryCrashDuringBackfill: while `gtsm process` drains a 1.8M-record
// backfill (12 sites x 125 minutes at 20 sps), each attack statement is
// sent 5 times through its SQL endpoint: the processor never restarts (the
// same process runs throughout), the endpoint answers again within 10 s of
// each attack, and every record lands exactly once.
func TestQueryCrashDuringBackfill(t *testing.T) {
	testutil.Long(t)
	queryCrashRun(t, 12, 125, 5)
}

func queryCrashRun(t *testing.T, sites, minutes, repeats int) {
	b := newBroker(t)
	files := t.TempDir()
	var names []string
	var produced int64
	for i := range sites {
		s := fmt.Sprintf("B%03d", i)
		names = append(names, s)
		produced += writeNoisySite(t, filepath.Join(files, s), s, uint64(i+1), minutes)
	}
	args := []string{"-q"}
	for _, s := range names {
		args = append(args, filepath.Join(files, s))
	}
	if code, errs := b.produce(t, args...); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errs)
	}
	if n := b.messages(t, topic); n != produced {
		t.Fatalf("topic holds %d records, want %d", n, produced)
	}

	db := filepath.Join(t.TempDir(), "gtsm.duckdb")
	sqlAddr := freeAddr(t)
	const group = "query-crash"
	p := start(t, nil, gtsm(t), "process", "--db", db, "--bootstrap-servers", b.kafka, "--registry", b.registry,
		"--group", group, "--sql-addr", sqlAddr, "--http-addr", "", "--progress-interval", "10s", "--flush-interval", "200ms")
	go func() {
		for range p.lines {
		}
	}()
	alive := func(when string) {
		t.Helper()
		select {
		case <-p.done:
			t.Fatalf("gtsm process exited %s: %v\n%s", when, p.err, tail(p.stderr.String(), 40))
		default:
		}
	}
	ctx := context.Background()
	url := fmt.Sprintf("postgres://gtsm@%s/gtsm?sslmode=disable&connect_timeout=5", sqlAddr)
	answers := func(bound time.Duration) (time.Duration, error) { return testutil.PGAnswers(ctx, url, bound) }
	count := func() (int64, error) { return testutil.PGQueryInt(ctx, url, `SELECT count(*) FROM gtsm_etl`) }
	if _, err := answers(60 * time.Second); err != nil {
		t.Fatalf("SQL endpoint never answered: %v\n%s", err, tail(p.stderr.String(), 40))
	}
	// The landing table function of the writer is not in the query
	// process's DuckDB at all.
	landing, err := testutil.PGQueryInt(ctx, url, `SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'gtsm_land%'`)
	if err != nil {
		t.Fatal(err)
	}
	if landing != 0 {
		t.Errorf("%d gtsm_land functions visible through the SQL endpoint", landing)
	}

	var during int
	for r := range repeats {
		for _, a := range queryAttacks {
			alive(fmt.Sprintf("before attack %q #%d", a.name, r+1))
			if b.groupOffsets(t, group) < produced {
				during++
			}
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatalf("attack %q #%d: connect: %v", a.name, r+1, err)
			}
			t0 := time.Now()
			_, qerr := c.Exec(ctx, a.sql)
			took := time.Since(t0)
			c.Close(ctx)
			if qerr == nil {
				t.Errorf("attack %q #%d: succeeded (want an error: it crashes DuckDB or exceeds the memory bound)", a.name, r+1)
			}
			back, err := answers(10 * time.Second)
			if err != nil {
				t.Fatalf("attack %q #%d: endpoint not answering 10 s later: %v\n%s", a.name, r+1, err, tail(p.stderr.String(), 40))
			}
			t.Logf("attack %q #%d: %v after %v; answering again %v later", a.name, r+1, short(qerr), took.Round(time.Millisecond), back.Round(time.Millisecond))
			alive(fmt.Sprintf("after attack %q #%d", a.name, r+1))
		}
	}
	if during == 0 {
		t.Errorf("no attack landed while the processor was ingesting (the backlog was drained before the first)")
	}
	t.Logf("%d of %d attacks sent while records were still being ingested", during, repeats*len(queryAttacks))

	// Every record committed (the group's Kafka offsets follow DuckDB's
	// commits), failing only if that stalls: how fast a loaded machine
	// drains is not what this test is about.
	last, lastAt := int64(-1), time.Now()
	for {
		alive("while catching up")
		n := b.groupOffsets(t, group)
		if n >= produced {
			break
		}
		if n != last {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) > 3*time.Minute {
			t.Fatalf("ingestion stalled at %d of %d records\n%s", n, produced, tail(p.stderr.String(), 40))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// ... then visible through the endpoint (published) within a minute.
	caught := time.Now()
	for {
		alive("while publishing")
		n, err := count()
		if err == nil && n == produced {
			break
		}
		if err == nil && n > produced {
			t.Fatalf("the endpoint shows %d records, %d were produced", n, produced)
		}
		if time.Since(caught) > time.Minute {
			t.Fatalf("a minute after every record was committed the endpoint shows %d of %d records (%v)\n%s", n, produced, err, tail(p.stderr.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("every record committed; all queryable through the endpoint %v later", time.Since(caught).Round(time.Millisecond))

	// Freshness: one more site-minute, produced now, is queryable within
	// the flush interval (200ms) + the publish interval (2s) + the publish
	// and the query process's refresh (about 1s): 15 s is the bound that
	// catches a partition never republished, not a performance claim.
	extra := filepath.Join(t.TempDir(), "fresh")
	produced += writeNoisyMinutes(t, extra, "B900", 99, 0, 1)
	if code, errs := b.produce(t, "-q", extra); code != 0 {
		t.Fatalf("produce: exit %d\n%s", code, errs)
	}
	t0 := time.Now()
	for {
		n, err := count()
		if err == nil && n == produced {
			break
		}
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("15 s after producing, the endpoint shows %d of %d records (%v)", n, produced, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("freshness: 1,200 records produced after catching up were queryable %v after the producer exited", time.Since(t0).Round(time.Millisecond))
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(2 * time.Minute); err != nil {
		t.Fatalf("gtsm process: %v\n%s", err, tail(p.stderr.String(), 40))
	}
	if strings.Contains(p.stderr.String(), "processor started") && strings.Count(p.stderr.String(), "processor started") != 1 {
		t.Errorf("the processor started %d times", strings.Count(p.stderr.String(), "processor started"))
	}
	rows := queryInt(t, db, `SELECT count(*) FROM gtsm_etl`)
	distinct := queryInt(t, db, `SELECT count(*) FROM (SELECT DISTINCT key_site, session, "time" FROM gtsm_etl)`)
	if rows != produced || distinct != produced {
		t.Errorf("gtsm_etl: %d rows, %d distinct (site, session, time); want %d each", rows, distinct, produced)
	}
	t.Logf("query process restarts: %d", strings.Count(p.stderr.String(), "query process exited; restarting it"))
}

// short is an error's SQLSTATE and first line.
func short(err error) string {
	if err == nil {
		return "no error"
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code + " " + strings.SplitN(pe.Message, "\n", 2)[0]
	}
	return strings.SplitN(err.Error(), "\n", 2)[0]
}
