package processor

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestRowSetLands writes batches whose rows interleave sites and sessions,
// with NULL strain values, late rows and wide (Day) rows, through the sink
// (both the data-chunk table function and the row appenders), into a real
// DuckDB file, and compares every column of every row read back with the
// records: the columnar batch (rows.go) must store exactly what the per-row
// path stored.
func TestRowSetLands(t *testing.T) {
	const t0 = 1625097600000
	var recs []record.Record
	recs = append(recs, synth("AAA1", bottle.Min, t0, 300)...)
	recs = append(recs, synth("BBB2", bottle.Hour, t0, 200)...)
	recs = append(recs, synth("AAA1", bottle.Min, t0+300*50, 300)...) // AAA1/Min again after another site
	day := synth("BBB2", bottle.Day, t0, 3)
	for i := range day { // Day records with ancillary fields: wide rows
		day[i].SetInt(record.FirstInt+20, int32(1000+i))
	}
	recs = append(recs, day...)
	recs = append(recs, synth("CCC3", bottle.Min, t0, 5)...)
	null := synth("CCC3", bottle.Min, t0+5*50, 1)[0]
	null.Set &^= 1<<record.NumFields - 1<<record.FirstInt // every channel NULL
	recs = append(recs, null)
	// A site name over 12 bytes (not inlined in DuckDB's string_t), in a
	// run longer than a data chunk (2048 rows).
	recs = append(recs, synth("LONG_SITE_NAME_7", bottle.Min, t0, 2500)...)

	for _, tc := range []struct {
		name    string
		way     string // "capi" (the C appender's data chunks, the default), "table function", "appender"
		batches int    // the records split over this many batches of one transaction
	}{
		{"capi, one batch", "capi", 1},
		{"capi, three batches", "capi", 3},
		{"table function, one batch", "table function", 1},
		{"table function, three batches", "table function", 3},
		{"appender, two batches", "appender", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "rows.duckdb"), false)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := gtsmsql.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			k, err := openSink(ctx, db, testTopic, "256MB")
			if err != nil {
				t.Fatal(err)
			}
			if k.chunks[bottle.Min] == nil {
				t.Fatal("the sink has no C appender: narrow rows would go through the table function (did a duckdb-go upgrade rename its connection's field? see rawConn)")
			}
			if tc.way != "capi" {
				for i, c := range k.chunks {
					c.close()
					k.chunks[i] = nil
				}
			}
			if tc.way == "appender" {
				k.land = ""
			}
			var bs []*batch
			per := (len(recs) + tc.batches - 1) / tc.batches
			for lo := 0; lo < len(recs); lo += per {
				b := &batch{partition: int32(lo / per), rows: newRowSet()}
				for i := lo; i < min(lo+per, len(recs)); i++ {
					b.rows.add(recs[i].Site, &recs[i], b.partition, int64(i), i%7 == 0)
					b.next = int64(i + 1)
				}
				bs = append(bs, b)
			}
			if err := k.write(ctx, bs); err != nil {
				t.Fatal(err)
			}
			if err := k.close(); err != nil {
				t.Fatal(err)
			}
			got := readRows(t, db)
			if len(got) != len(recs) {
				t.Fatalf("%d rows in gtsm_etl, want %d", len(got), len(recs))
			}
			for i := range recs {
				want := rowString(&recs[i], recs[i].Site, int32(i/per), int64(i), i%7 == 0)
				if got[int64(i)] != want {
					t.Fatalf("offset %d:\n got %s\nwant %s", i, got[int64(i)], want)
				}
			}
		})
	}
}

// rowString renders a gtsm_etl row as the test compares it.
func rowString(r *record.Record, keySite string, part int32, off int64, late bool) string {
	s := fmt.Sprintf("%s|%s|%d|%s|", keySite, r.Site, r.Time, r.Timestamp)
	for i := 0; i < record.NumInts; i++ {
		if v, ok := r.Int(record.FirstInt + i); ok {
			s += fmt.Sprint(v)
		} else {
			s += "NULL"
		}
		s += ","
	}
	return s + fmt.Sprintf("|%s|%d|%d|%v", r.Session, part, off, late)
}

func readRows(t *testing.T, db *sql.DB) map[int64]string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM gtsm_etl`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var keySite, sess string
		var site, ts sql.NullString
		var tm sql.NullInt64
		var ints [record.NumInts]sql.NullInt32
		var part int32
		var off int64
		var late bool
		dst := []any{&keySite, &site, &tm, &ts}
		for i := range ints {
			dst = append(dst, &ints[i])
		}
		dst = append(dst, &sess, &part, &off, &late)
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
		var r record.Record
		r.Site, r.Time, r.Timestamp = site.String, tm.Int64, ts.String
		for i, v := range ints {
			if v.Valid {
				r.SetInt(record.FirstInt+i, v.Int32)
			}
		}
		r.Session, _ = bottle.ParseSession(sess)
		out[off] = rowString(&r, keySite, part, off, late)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRowSetReuse: a reset set keeps its column buffers for the next batch
// (bounded to twice a batch), and what it held is gone.
func TestRowSetReuse(t *testing.T) {
	rs := newRowSet()
	for _, site := range []string{"AAA1", "BBB2", "CCC3"} {
		recs := synth(site, bottle.Min, 1625097600000, 1000)
		for i := range recs {
			rs.add(site, &recs[i], 0, int64(i), false)
		}
	}
	if rs.n != 3000 || len(rs.narrow) != 3 {
		t.Fatalf("n %d, %d site/session columns; want 3000, 3", rs.n, len(rs.narrow))
	}
	next := rs.reset()
	if next.n != 0 || len(next.narrow) != 0 || len(next.wide) != 0 || len(next.by) != 0 {
		t.Fatalf("reset set not empty: %+v", next)
	}
	if len(next.free) != 3 || cap(next.free[0].time) < 1000 || next.free[0].len() != 0 {
		t.Fatalf("reset kept %d column sets (want 3, emptied, capacity kept)", len(next.free))
	}
	recs := synth("DDD4", bottle.Hour, 1625097600000, 10)
	for i := range recs {
		next.add("DDD4", &recs[i], 1, int64(i), false)
	}
	if n := next.narrow[0]; n.site != "DDD4" || n.session != bottle.Hour || n.len() != 10 || cap(n.time) < 1000 {
		t.Fatalf("reused columns: site %s session %s len %d cap %d", n.site, n.session, n.len(), cap(n.time))
	}
}

// TestLoaderSurvivesRevocation: apply's lazy DuckDB reads (day index and
// window of a site whose state is in DuckDB) must not fail when goka
// cancels the partition's context (a rebalance), which stopped the
// processor; a plain dbLoader on that context fails.
func TestLoaderSurvivesRevocation(t *testing.T) {
	ctx := context.Background()
	db, err := gtsmsql.Open(ctx, filepath.Join(t.TempDir(), "load.duckdb"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO gtsm_etl (key_site, site, "time", session, kafka_partition, kafka_offset, late)
		VALUES ('KL02', 'KL02', 1625097600000, 'Min', 0, 7, false), ('KL02', 'KL02', 1625097600050, 'Min', 0, 8, false)`); err != nil {
		t.Fatal(err)
	}
	revoked, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name    string
		l       loader
		wantErr bool
	}{
		{"dbLoader on the revoked context", dbLoader{ctx: revoked, db: db}, true},
		{"loaderFor the revoked context", loaderFor(revoked, db), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := tc.l.times("KL02", bottle.Min, 1625097600000, 1625097600000+dayMs)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("times on a canceled context: %v, no error", ts)
				}
				return
			}
			if err != nil || len(ts) != 2 || ts[0]+ts[1] != 2*1625097600000+50 {
				t.Fatalf("times: %v, %v; want the 2 stored times", ts, err)
			}
			if _, ok, err := tc.l.window("KL02", bottle.Min, 0, 1625097600000); err != nil || ok {
				t.Fatalf("window: found %v, %v; want none, no error", ok, err)
			}
		})
	}
}
