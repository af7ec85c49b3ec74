package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// fakeOwner writes a migrated DuckDB file the way the processor does, as
// far as the lake can tell: gtsm_etl rows with their partition and offset,
// kafka_offsets in the same transaction, and upserted windows, gaps and
// site_state recomputed from the rows (late rows change an old day).
type fakeOwner struct {
	t    testing.TB
	db   *sql.DB
	next map[int32]int64
}

func newFakeOwner(t testing.TB) *fakeOwner {
	t.Helper()
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "owner.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	return &fakeOwner{t: t, db: db, next: map[int32]int64{}}
}

// commit stores n records of site (on partition part) at the given event
// times (unix seconds, one per record, cycling) in one transaction.
func (o *fakeOwner) commit(site string, part int32, n int, secs ...int64) {
	o.t.Helper()
	if err := o.commitNoFatal(site, part, n, secs...); err != nil {
		o.t.Fatal(err)
	}
}

// commitNoFatal is commit for other goroutines than the test's.
func (o *fakeOwner) commitNoFatal(site string, part int32, n int, secs ...int64) error {
	tx, err := o.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := 0; i < n; i++ {
		off := o.next[part]
		o.next[part]++
		if _, err := tx.Exec(`INSERT INTO gtsm_etl (key_site, site, "time", session, ls1_t0, kafka_partition, kafka_offset, late)
			VALUES (?, ?, ?, 'Hour', ?, ?, ?, false)`, site, site, secs[i%len(secs)]*1000+int64(i), 48_000_000+i, part, off); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`INSERT OR REPLACE INTO kafka_offsets VALUES ('gtsm_etl', ?, ?)`,
	} {
		if _, err := tx.Exec(q, part, o.next[part]); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`INSERT OR REPLACE INTO windows SELECT key_site, session, '1d', date_trunc('day', epoch_ms("time")),
			date_trunc('day', epoch_ms("time")) + INTERVAL 1 DAY, 'ls1_t0', count(*), 0, min(ls1_t0), max(ls1_t0), avg(ls1_t0),
			NULL, NULL, NULL, false, 0, sum(ls1_t0), NULL, NULL, 0, 0 FROM gtsm_etl WHERE key_site = $1 GROUP BY ALL`,
		`INSERT OR REPLACE INTO site_state SELECT key_site, session, epoch_ms(min("time")), epoch_ms(max("time")), count(*), 0, 0, 0, 0,
			any_value(kafka_partition), max(kafka_offset), TIMESTAMP '2024-01-01' FROM gtsm_etl WHERE key_site = $1 GROUP BY ALL`,
		// One gap per site and day with fewer than 10 rows: filled (deleted) by later rows.
		`DELETE FROM gaps WHERE site = $1`,
		`INSERT INTO gaps SELECT key_site, session, date_trunc('day', epoch_ms("time")), date_trunc('day', epoch_ms("time")), 1
			FROM gtsm_etl WHERE key_site = $1 GROUP BY ALL HAVING count(*) < 10`,
	} {
		if _, err := tx.Exec(q, site); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return tx.Commit()
}

const day1, day2 = int64(1709251200), int64(1709337600) // 2024-03-01, 2024-03-02 UTC

// checkLake asserts the lake holds exactly the owner's rows: every
// published table equal as a multiset, no (partition, offset) twice.
func checkLake(t *testing.T, dir string, db *sql.DB, upTo string) {
	t.Helper()
	ctx := context.Background()
	q, err := OpenQuery(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var n, distinct int
	if err := q.DB().QueryRow(`SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM gtsm_etl`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != distinct {
		t.Errorf("%s: gtsm_etl has %d rows for %d offsets: duplicates", upTo, n, distinct)
	}
	for _, tb := range []string{"gtsm_etl", "windows", "gaps", "site_state", "kafka_offsets"} {
		diff(t, upTo+": "+tb, sqlLines(t, q.DB(), "SELECT * FROM "+tb), sqlLines(t, db, "SELECT * FROM "+tb))
	}
}

var errCrash = errors.New("simulated crash")

// TestCrashReplay: a publish that dies at each stage (data files written
// but nothing committed; after the first table's commit; after every commit
// but before the checksum bookkeeping), followed by more commits of the
// owner and a publish by a fresh Publisher (a restarted or new owner),
// leaves every table equal to the owner's file: no row twice, none
// missing, the emptied span removed; while crashed, the lake never shows a
// row twice; and the independent reader agrees.
func TestCrashReplay(t *testing.T) {
	testutil.Long(t)
	for _, stage := range []string{"copied", "committed-one", "committed"} {
		t.Run(stage, func(t *testing.T) {
			ctx := context.Background()
			o := newFakeOwner(t)
			dir := filepath.Join(t.TempDir(), "lake")
			pub, err := New(dir, Logger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			o.commit("A", 0, 5, day1+100)
			o.commit("B", 1, 20, day1+200, day2+200)
			for p := int32(0); p < 2; p++ {
				if err := pub.Publish(ctx, o.db, p); err != nil {
					t.Fatal(err)
				}
			}
			checkLake(t, dir, o.db, "first publish")

			// Late rows on day1 (already published) fill A's gap; new rows on day2.
			o.commit("A", 0, 20, day1+300, day2+300)
			crashing, err := New(dir, Logger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			crashing.crash = func(s string) error {
				if s == stage {
					return errCrash
				}
				return nil
			}
			if err := crashing.Publish(ctx, o.db, 0); !errors.Is(err, errCrash) {
				t.Fatalf("publish with a crash at %s: %v", stage, err)
			}
			// The crashed lake: rows may be missing, never twice.
			q, err := OpenQuery(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{
				`SELECT count(*) - count(DISTINCT (kafka_partition, kafka_offset)) FROM gtsm_etl`,
				`SELECT count(*) - count(DISTINCT (site, session, width, window_start, channel)) FROM windows`,
				`SELECT count(*) - count(DISTINCT (site, session)) FROM site_state`,
			} {
				var dup int
				if err := q.DB().QueryRow(c).Scan(&dup); err != nil || dup != 0 {
					t.Errorf("crashed lake: %s = %d, %v", c, dup, err)
				}
			}
			q.Close()

			// The owner goes on; then a fresh publisher publishes.
			o.commit("A", 0, 7, day2+400)
			pub2, err := New(dir, Logger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if err := pub2.Publish(ctx, o.db, 0); err != nil {
				t.Fatal(err)
			}
			checkLake(t, dir, o.db, "after the replay")
			checkIndependent(t, dir, []*sql.DB{o.db}, "after the replay")
		})
	}
}
