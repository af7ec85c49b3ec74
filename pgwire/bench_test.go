package pgwire_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"

	"github.com/earthscope/gtsm-stream/pgwire"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// appendETL appends n gtsm_etl records of one site and session, one every
// step ms from t0, with the four strain channels set, in transactions of
// batch rows (Appender + Flush + COMMIT, as the processor writes).
func appendETL(ctx context.Context, db *sql.DB, site, session string, t0, step int64, n, batch int, stop *atomic.Bool) (int, error) {
	strain := map[string][]string{
		"Day":  {"rs1_t0", "rs2_t0", "rs3_t0", "rs4_t0"},
		"Hour": {"ls1_t0", "ls2_t0", "ls3_t0", "ls4_t0"},
		"Min":  {"bs1_t0", "bs2_t0", "bs3_t0", "bs4_t0"},
	}[session]
	cols := append([]string{"key_site", "site", "time", "timestamp", "session", "kafka_partition", "kafka_offset", "late"}, strain...)
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	written := 0
	for written < n && (stop == nil || !stop.Load()) {
		if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			return written, err
		}
		err := conn.Raw(func(dc any) error {
			a, err := duckdb.NewAppenderWithColumns(dc.(driver.Conn), "", "", "gtsm_etl", cols)
			if err != nil {
				return err
			}
			for i := 0; i < batch && written+i < n; i++ {
				ms := t0 + int64(written+i)*step
				ts := time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000")
				v := int32(48000000 + (written+i)%100000)
				if err := a.AppendRow(site, site, ms, ts, session, int32(0), int64(written+i), false, v, v+1, v+2, v+3); err != nil {
					a.Close()
					return err
				}
			}
			return a.Close() // flushes into the open transaction
		})
		if err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return written, err
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			return written, err
		}
		written = min(n, written+batch)
	}
	return written, nil
}

// benchDB builds the benchmark's file: B009 on 2021-07-01 with a 20-sps Min
// session (1,728,000 records), the Hour (86,400) and Day (144) sessions,
// and the processor's windows (10m/1h/1d for every int channel), gaps and
// site_state for them.
func benchDB(b *testing.B) *sql.DB {
	b.Helper()
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(b.TempDir(), "bench.duckdb"), false)
	if err != nil {
		b.Fatal(err)
	}
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	start := time.Now()
	for _, s := range []struct {
		session string
		step    int64
		n       int
	}{{"Min", 50, 1728000}, {"Hour", 1000, 86400}, {"Day", 600000, 144}} {
		if _, err := appendETL(ctx, db, "B009", s.session, t0, s.step, s.n, 200000, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO windows
		 SELECT 'B009', s.session, w.width, w.ws, w.ws + w.len, c.channel, 1000, 10, 1, 2, 1.5, 1, 2, NULL, true, 0, 1500, NULL, NULL, 0, 0
		 FROM (VALUES ('Day'), ('Hour'), ('Min')) s(session),
		      (SELECT 'rs1_t0' AS channel UNION ALL SELECT unnest(['rs2_t0','rs3_t0','rs4_t0','ls1_t0','ls2_t0','ls3_t0','ls4_t0','bs1_t0','bs2_t0','bs3_t0','bs4_t0','re1_t0','rkd_t0','rk1_t0','rk2_t0','rdo_ts','rro_ts','reo_t0','re2_t0','rca_t0','rcb_t0','rcc_t0','rcd_t0','rca_t1','rca_t2','rca_t3','rcb_t1','rcb_t2','rcb_t3','rcc_t1','rcc_t2','rcc_t3','rcd_t1','rcd_t2','rcd_t3','rca_t4','rca_t5','rca_t6','rcb_t4','rcb_t5','rcb_t6','rcc_t4','rcc_t5','rcc_t6','rcd_t4','rcd_t5','rcd_t6','rca_t7','rcb_t7','rcc_t7','rcd_t7','rca_t8','rcb_t8','rcc_t8','rcd_t8'])) c,
		      (SELECT '10m' AS width, INTERVAL 10 MINUTE AS len, TIMESTAMP '2021-07-01' + INTERVAL 10 MINUTE * range AS ws FROM range(144)
		       UNION ALL SELECT '1h', INTERVAL 1 HOUR, TIMESTAMP '2021-07-01' + INTERVAL 1 HOUR * range FROM range(24)
		       UNION ALL SELECT '1d', INTERVAL 1 DAY, TIMESTAMP '2021-07-01') w`,
		`INSERT INTO gaps SELECT 'B009', 'Min', TIMESTAMP '2021-07-01' + INTERVAL 1 MINUTE * range, TIMESTAMP '2021-07-01' + INTERVAL 1 MINUTE * range + INTERVAL 200 MILLISECOND, 5 FROM range(300)`,
		`INSERT INTO site_state (site, session, first_time, last_time, records, duplicates, late, gaps, missing, kafka_partition, kafka_offset, updated_at)
		 SELECT 'B009', session, TIMESTAMP '2021-07-01', TIMESTAMP '2021-07-01 23:59:59', count(*), 0, 0, 0, 0, 0, max(kafka_offset), now() FROM gtsm_etl GROUP BY session`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM gtsm_etl`).Scan(&n)
	b.Logf("generated %d gtsm_etl rows and windows/gaps/site_state in %v", n, time.Since(start).Round(time.Millisecond))
	return db
}

// BenchmarkNamedQueries runs every named query through the endpoint (pgx,
// extended protocol, all rows read) and, as the baseline of the same run,
// straight on DuckDB (database/sql, same process); first idle, then while a
// writer appends another site's records in 50,000-row transactions.
//
//	go test -run '^$' -bench NamedQueries -benchtime 20x -count 3 ./pgwire/
func BenchmarkNamedQueries(b *testing.B) {
	db := benchDB(b)
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", RowCap: 2000000, QueryTimeout: time.Minute, Logger: pgwire.Quiet()})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx)
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://bench@%s/gtsm?sslmode=disable", srv.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)

	type run struct {
		name, sql string
		args      []any
	}
	var runs []run
	for _, q := range gtsmsql.Queries() {
		if q.Name == "seed" {
			continue // unbounded (the whole table): seed_first_1000 below is its first page
		}
		args, _ := q.Args(nil)
		runs = append(runs, run{q.Name, q.SQL, args})
		if len(q.Params) == 1 {
			runs = append(runs, run{q.Name + "_B009", q.SQL, []any{"B009"}})
		}
	}
	runs = append(runs, run{"seed_first_1000", `SELECT key_site, "timestamp" FROM gtsm_etl ORDER BY key_site, "time" LIMIT 1000`, nil})
	measure := func(phase string) {
		for _, r := range runs {
			b.Run(phase+"/endpoint/"+r.name, func(b *testing.B) {
				rowsPerOp := 0
				for i := 0; i < b.N; i++ {
					rows, err := c.Query(ctx, r.sql, r.args...)
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for rows.Next() {
						n++
					}
					if err := rows.Err(); err != nil {
						b.Fatal(err)
					}
					rowsPerOp = n
				}
				b.ReportMetric(float64(rowsPerOp), "rows/op")
			})
			b.Run(phase+"/duckdb/"+r.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					rows, err := db.QueryContext(ctx, r.sql, r.args...)
					if err != nil {
						b.Fatal(err)
					}
					cols, _ := rows.Columns()
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					for rows.Next() {
						if err := rows.Scan(ptrs...); err != nil {
							b.Fatal(err)
						}
					}
					if err := rows.Err(); err != nil {
						b.Fatal(err)
					}
					rows.Close()
				}
			})
		}
	}
	measure("idle")
	// The writer: site W001, 20 sps, 50,000-row transactions, flat out
	// while the ingesting phase runs.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var ingested atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		t0 := time.Date(2021, 7, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
		for i := 0; !stop.Load(); i++ {
			n, err := appendETL(ctx, db, "W001", "Min", t0+int64(i)*50*50000, 50, 50000, 50000, &stop)
			if err != nil {
				if ctx.Err() == nil {
					b.Errorf("writer: %v", err)
				}
				return
			}
			ingested.Add(int64(n))
		}
	}()
	measure("ingesting")
	stop.Store(true)
	wg.Wait()
	b.Logf("writer ingested %d rows while the ingesting phase ran", ingested.Load())
}

// BenchmarkSeed streams the seed query (the original demo: every record of
// the site-day, 1,814,544 rows) through the endpoint and straight from DuckDB.
//
//	go test -run '^$' -bench Seed -benchtime 1x -count 3 ./pgwire/
func BenchmarkSeed(b *testing.B) {
	db := benchDB(b)
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := pgwire.Listen(db, pgwire.Config{Addr: "127.0.0.1:0", RowCap: 10000000, QueryTimeout: time.Hour, Logger: pgwire.Quiet()})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx)
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://bench@%s/gtsm?sslmode=disable", srv.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	q, _ := gtsmsql.QueryByName("seed")
	b.Run("endpoint", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rows, err := c.Query(ctx, q.SQL)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n != 1814544 {
				b.Fatalf("%d rows, %v", n, rows.Err())
			}
		}
	})
	b.Run("duckdb", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rows, err := db.QueryContext(ctx, q.SQL)
			if err != nil {
				b.Fatal(err)
			}
			var site, ts string
			n := 0
			for rows.Next() {
				if err := rows.Scan(&site, &ts); err != nil {
					b.Fatal(err)
				}
				n++
			}
			rows.Close()
			if rows.Err() != nil || n != 1814544 {
				b.Fatalf("%d rows, %v", n, rows.Err())
			}
		}
	})
}
