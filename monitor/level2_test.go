package monitor

import (
	"database/sql"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// l2row is one time of B009's Level-2 rows, as stored.
type l2row struct {
	ms       int64
	u        [4]sql.NullFloat64 // microstrain per gauge
	corr     [4][3]sql.NullFloat64
	regional [3]sql.NullFloat64 // of the matrix asked for
	version  string
}

// l2Expect computes, in Go from the stored rows (not by the endpoint's SQL),
// what /api/level2 must answer per bucket and series: raw and corrected
// min/max/mean, the rows, the rows per correction and the masks. Corrected
// gauge strain: microstrain minus each correction; a correction the gauge has
// in no row of the range counts 0, one it lacks in a row it has elsewhere
// makes that row's corrected value missing. Corrected regional strain: the
// raw one minus the fixture's matrix of the row's version times the
// corrections that all four gauges have, missing likewise.
type l2bucket struct {
	raw, corr    [3]float64 // min, max, mean
	n, nc        int        // rows with a raw, a corrected value
	corrN        [3]int
	all, some    int
	sumRaw, sumC float64
}

func l2Expect(t *testing.T, db *sql.DB, site, matrix string, from, to, step int64) [7]map[int64]*l2bucket {
	t.Helper()
	rows, err := db.Query(`SELECT epoch_ms(g."time"), g.gauge, g.microstrain, g.atmp_c, g.tide_c, g.offset_c, g.metadata_version,
			r.eee_plus_enn, r.eee_minus_enn, r.two_ene
		FROM level2_gauge g LEFT JOIN level2_regional r ON r.site = g.site AND r."time" = g."time" AND r.matrix = ?
		WHERE g.site = ? AND epoch_ms(g."time") >= ? AND epoch_ms(g."time") < ? ORDER BY 1, 2`, matrix, site, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byT := map[int64]*l2row{}
	var order []int64
	for rows.Next() {
		var ms int64
		var g int
		var u sql.NullFloat64
		var c [3]sql.NullFloat64
		var v sql.NullString
		var reg [3]sql.NullFloat64
		if err := rows.Scan(&ms, &g, &u, &c[0], &c[1], &c[2], &v, &reg[0], &reg[1], &reg[2]); err != nil {
			t.Fatal(err)
		}
		r := byT[ms]
		if r == nil {
			r = &l2row{ms: ms, version: v.String, regional: reg}
			byT[ms] = r
			order = append(order, ms)
		}
		r.u[g], r.corr[g] = u, c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out [7]map[int64]*l2bucket
	for i := range out {
		out[i] = map[int64]*l2bucket{}
	}
	// the corrections each series has somewhere in the range
	var has [7][3]bool
	for _, ms := range order {
		r := byT[ms]
		for c := range 3 {
			all4 := true
			for g := range 4 {
				has[g][c] = has[g][c] || r.corr[g][c].Valid
				all4 = all4 && r.corr[g][c].Valid
			}
			for i := range 3 {
				has[4+i][c] = has[4+i][c] || all4
			}
		}
	}
	add := func(si int, k int64, raw, corr float64, applied [3]bool) {
		b := out[si][k]
		if b == nil {
			b = &l2bucket{raw: [3]float64{raw, raw}, corr: [3]float64{math.Inf(1), math.Inf(-1)}}
			out[si][k] = b
		}
		b.n++
		b.raw[0], b.raw[1] = math.Min(b.raw[0], raw), math.Max(b.raw[1], raw)
		b.sumRaw += raw
		missing := false
		for c, a := range applied {
			missing = missing || (has[si][c] && !a)
		}
		if !missing {
			b.nc++
			b.corr[0], b.corr[1] = math.Min(b.corr[0], corr), math.Max(b.corr[1], corr)
			b.sumC += corr
		}
		for c, a := range applied {
			if a {
				b.corrN[c]++
			}
		}
	}
	for _, ms := range order {
		r := byT[ms]
		k := (ms - from) / step
		var d [4]float64 // the corrections all four gauges have
		var all4 [3]bool
		for c := range 3 {
			all4[c] = true
			for g := range 4 {
				all4[c] = all4[c] && r.corr[g][c].Valid
			}
		}
		for g := range 4 {
			if !r.u[g].Valid {
				continue
			}
			corr := r.u[g].Float64
			var applied [3]bool
			for c := range 3 {
				if r.corr[g][c].Valid {
					corr -= r.corr[g][c].Float64
					applied[c] = true
				}
				if all4[c] {
					d[g] += r.corr[g][c].Float64
				}
			}
			add(g, k, r.u[g].Float64, corr, applied)
		}
		m := l2Matrix(r.version, matrix)
		for i := range 3 {
			if !r.regional[i].Valid {
				continue
			}
			corr := r.regional[i].Float64
			for g := range 4 {
				corr -= m[i][g] * d[g]
			}
			add(4+i, k, r.regional[i].Float64, corr, all4)
		}
	}
	for _, m := range out {
		for _, b := range m {
			b.raw[2], b.corr[2] = b.sumRaw/float64(b.n), b.sumC/float64(b.nc)
			for c, n := range b.corrN {
				if n > 0 {
					b.some |= 1 << c
				}
				if n == b.n {
					b.all |= 1 << c
				}
			}
		}
	}
	return out
}

// TestLevel2API checks /api/level2 against the stored Level-2 rows: the
// range and bucket width chosen, and for every bucket of the four gauges and
// three regional strains the raw and corrected min/max/mean, which
// corrections were applied (all rows, some, none: a NULL correction is
// never applied) and the per-series totals, computed in Go from the rows.
func TestLevel2API(t *testing.T) {
	f := newFixture(t)
	addLevel2(t, f.db)
	tests := []struct {
		name, query string
		matrix      string
		from, to    string
		step        float64
		buckets     int // entries in T
		nulls       int // separators (the gap)
		rows        int // gauge 0's rows with a value
		atmpN       [4]int
		regAtmpN    int // regional rows corrected by atmp_c (all four gauges)
		truncated   bool
	}{
		// The default 30 days, clamped to the 3 days there are: every
		// 300 s output, 864 - 12 in the gap, and one null for the gap.
		// atmp_c: 2 days less the gap's 12; gauge 3 also lacks 7 (12:10..12:40).
		{"default", "site=B009", "lab", "2021-07-01 00:00:00", "2021-07-04 00:00:00", 300, 853, 1, 852, [4]int{564, 564, 564, 557}, 557, false},
		// 100 points: hourly buckets; the gap hour is a bucket without rows.
		{"hourly", "site=B009&points=100", "lab", "2021-07-01 00:00:00", "2021-07-04 00:00:00", 3600, 72, 1, 852, [4]int{564, 564, 564, 557}, 557, false},
		{"ER2010 zoomed", "site=B009&matrix=ER2010&from=" + itoa(utcMS("2021-07-02 00:00:00")) + "&to=" + itoa(utcMS("2021-07-03 00:00:00")),
			"ER2010", "2021-07-02 00:00:00", "2021-07-03 00:00:00", 300, 277, 1, 276, [4]int{276, 276, 276, 276}, 276, false},
		{"one day before the end", "site=B009&span=86400000", "lab", "2021-07-03 00:00:00", "2021-07-04 00:00:00", 300, 288, 0, 288, [4]int{288, 288, 288, 281}, 281, false},
		// B011: six years apart: cut to the last 250,000 outputs
		// (2018-08-16 22:45, in 12 h buckets).
		{"B011 all, over the bound", "site=B011&span=all", "", "2018-08-16 12:00:00", "2021-01-01 00:05:00", 43200, 1, 0, 1, [4]int{}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, f.srv.URL+"/api/level2?"+tc.query)
			if code != 200 {
				t.Fatalf("GET %s = %d: %s", tc.query, code, body)
			}
			var r level2Response
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			wantFrom := utcMS(tc.from) / int64(tc.step*1000) * int64(tc.step*1000)
			if got := int64(r.From * 1000); got != wantFrom {
				t.Errorf("From = %s, want %s", time.UnixMilli(got).UTC(), time.UnixMilli(wantFrom).UTC())
			}
			if got, want := r.To, float64(utcMS(tc.to))/1000; got != want {
				t.Errorf("To = %v, want %v (%s)", got, want, tc.to)
			}
			if r.StepS != tc.step || r.Unit != "µε" || r.Matrix != tc.matrix || r.Truncated != tc.truncated {
				t.Errorf("step %v s, unit %q, matrix %q, truncated %v; want %v s, µε, %q, %v", r.StepS, r.Unit, r.Matrix, r.Truncated, tc.step, tc.matrix, tc.truncated)
			}
			if r.Corrections != corrections {
				t.Errorf("corrections %v", r.Corrections)
			}
			if len(r.T) != tc.buckets {
				t.Errorf("%d points, want %d", len(r.T), tc.buckets)
			}
			nseries := 7
			if tc.matrix == "" {
				nseries = 4
			}
			if len(r.Series) != nseries {
				t.Fatalf("%d series, want %d", len(r.Series), nseries)
			}
			step := int64(r.StepS * 1000)
			want := l2Expect(t, f.db, r.Site, tc.matrix, int64(r.From*1000), int64(r.To*1000), step)
			for si, s := range r.Series {
				if len(s.Raw.Mean) != len(r.T) || len(s.Corr.Min) != len(r.T) || len(s.All) != len(r.T) || len(s.Some) != len(r.T) {
					t.Fatalf("%s: %d/%d/%d/%d values for %d times", s.Name, len(s.Raw.Mean), len(s.Corr.Min), len(s.All), len(s.Some), len(r.T))
				}
				nulls, n, corrN, nocorr := 0, 0, [3]int{}, 0
				for i, ts := range r.T {
					if i > 0 && ts <= r.T[i-1] {
						t.Fatalf("times not increasing at %d", i)
					}
					k := (int64(ts*1000) - int64(r.From*1000)) / step
					w := want[si][k]
					if s.Raw.Mean[i] == nil {
						nulls++
						if w != nil {
							t.Fatalf("%s %s: null, want %+v", s.Name, time.UnixMilli(int64(ts*1000)).UTC(), *w)
						}
						continue
					}
					if w == nil {
						t.Fatalf("%s %s: a value where the rows have none", s.Name, time.UnixMilli(int64(ts*1000)).UTC())
					}
					got := [6]*float64{s.Raw.Min[i], s.Raw.Max[i], s.Raw.Mean[i], s.Corr.Min[i], s.Corr.Max[i], s.Corr.Mean[i]}
					exp := [6]float64{w.raw[0], w.raw[1], w.raw[2], w.corr[0], w.corr[1], w.corr[2]}
					if w.nc == 0 {
						// no row of the bucket has every correction it needs
						if got[3] != nil || got[4] != nil || got[5] != nil {
							t.Fatalf("%s %s: corrected %v %v %v, want none", s.Name, time.UnixMilli(int64(ts*1000)).UTC(), got[3], got[4], got[5])
						}
						got, exp = [6]*float64{got[0], got[1], got[2], got[0], got[1], got[2]}, [6]float64{exp[0], exp[1], exp[2], exp[0], exp[1], exp[2]}
						nocorr++
					}
					for j := range got {
						if got[j] == nil {
							t.Fatalf("%s %s: raw/corrected min,max,mean[%d] = null, want %v", s.Name, time.UnixMilli(int64(ts*1000)).UTC(), j, exp[j])
						}
						if math.Abs(*got[j]-exp[j]) > 1e-9 {
							t.Fatalf("%s %s: raw/corrected min,max,mean[%d] = %v, want %v", s.Name, time.UnixMilli(int64(ts*1000)).UTC(), j, *got[j], exp[j])
						}
					}
					if s.All[i] != w.all || s.Some[i] != w.some {
						t.Errorf("%s %s: masks all %03b some %03b, want %03b %03b", s.Name, time.UnixMilli(int64(ts*1000)).UTC(), s.All[i], s.Some[i], w.all, w.some)
					}
					n += w.n
					for c := range corrN {
						corrN[c] += w.corrN[c]
					}
				}
				if si == 0 && tc.name == "default" && nocorr != 288 {
					// 2021-07-01 has no pressure: no corrected value
					// rather than a step of the whole atmp_c
					t.Errorf("%s: %d buckets without a corrected value, want 288 (the day without pressure)", s.Name, nocorr)
				}
				if nulls != tc.nulls {
					t.Errorf("%s: %d nulls, want %d", s.Name, nulls, tc.nulls)
				}
				if s.Rows != n || s.CorrN != corrN {
					t.Errorf("%s: %d rows, per correction %v; the rows say %d, %v", s.Name, s.Rows, s.CorrN, n, corrN)
				}
				if nb := len(r.T) - nulls; nb > 2000 {
					t.Errorf("%s: %d buckets with values, more than the 2000 asked for", s.Name, nb)
				}
				// The fixture's own counts: a check on the check.
				switch {
				case si < 4 && (s.Rows != tc.rows || s.CorrN[0] != tc.atmpN[si]):
					t.Errorf("%s: %d rows, atmp_c in %d; want %d, %d", s.Name, s.Rows, s.CorrN[0], tc.rows, tc.atmpN[si])
				case si >= 4 && (s.Rows != tc.rows || s.CorrN[0] != tc.regAtmpN):
					t.Errorf("%s: %d rows, atmp_c in %d; want %d, %d", s.Name, s.Rows, s.CorrN[0], tc.rows, tc.regAtmpN)
				}
				if s.CorrN[1] != 0 || s.CorrN[2] != s.Rows {
					t.Errorf("%s: tide_c in %d rows (all NULL), offset_c in %d of %d (all)", s.Name, s.CorrN[1], s.CorrN[2], s.Rows)
				}
			}
		})
	}

	// B010 has no metadata: four gauges without µε, no regional series.
	t.Run("no metadata", func(t *testing.T) {
		code, body := get(t, f.srv.URL+"/api/level2?site=B010")
		var r level2Response
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("GET = %d: %s", code, body)
		}
		if len(r.Series) != 4 || r.Matrix != "" || len(r.Matrices) != 0 || len(r.T) != 0 {
			t.Fatalf("%d series, matrix %q %v, %d points; want 4 empty gauge series", len(r.Series), r.Matrix, r.Matrices, len(r.T))
		}
		for _, s := range r.Series {
			if s.Rows != 0 {
				t.Errorf("%s: %d rows with µε", s.Name, s.Rows)
			}
		}
	})

	errs := []struct {
		query string
		code  int
		msg   string
	}{
		{"", 400, "site= is required"},
		{"site=NOPE", 404, `level2 site "NOPE": no samples`},
		{"site=B009&matrix=NOPE", 400, `matrix="NOPE": site B009 has [lab ER2010]`},
		{"site=B009&points=0", 400, "points"},
		{"site=B009&span=-1", 400, "span"},
		{"site=B009&from=0&to=1000", 400, "empty range: the Level-2 data of B009 spans 2021-07-01 00:00:00 .. 2021-07-03 23:55:00 UTC"},
	}
	for _, e := range errs {
		t.Run("error "+e.query, func(t *testing.T) {
			code, body := get(t, f.srv.URL+"/api/level2?"+e.query)
			if code != e.code || !strings.Contains(body, e.msg) {
				t.Errorf("GET %s = %d %q, want %d with %q", e.query, code, body, e.code, e.msg)
			}
		})
	}

	// Regional rows whose metadata version station_metadata lacks: raw
	// values, no corrected ones, no correction counted, and the version
	// named. (Last: it changes the fixture.)
	t.Run("matrix of the version unknown", func(t *testing.T) {
		if _, err := f.db.Exec(`UPDATE level2_regional_data SET metadata_version = 'v0' WHERE site = 'B009' AND "time" < TIMESTAMP '2021-07-02'`); err != nil {
			t.Fatal(err)
		}
		code, body := get(t, f.srv.URL+"/api/level2?site=B009&from="+itoa(utcMS("2021-07-01 00:00:00"))+"&to="+itoa(utcMS("2021-07-02 00:00:00")))
		var r level2Response
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("GET = %d: %s", code, body)
		}
		if len(r.MissingMatrix) != 1 || r.MissingMatrix[0] != "v0" || len(r.Series) != 7 || len(r.T) != 288 {
			t.Fatalf("missing matrix %v, %d series, %d points; want [v0], 7, 288", r.MissingMatrix, len(r.Series), len(r.T))
		}
		for _, s := range r.Series[4:] {
			if s.Rows != 288 || s.CorrN != [3]int{} {
				t.Errorf("%s: %d rows, corrections %v; want 288, none", s.Name, s.Rows, s.CorrN)
			}
			for i := range r.T {
				if s.Raw.Mean[i] == nil || s.Corr.Mean[i] != nil {
					t.Fatalf("%s at %v: raw %v corrected %v; want a raw value and no corrected one", s.Name, r.T[i], s.Raw.Mean[i], s.Corr.Mean[i])
				}
			}
		}
		if r.Series[0].Corr.Mean[0] == nil {
			t.Errorf("gauge 0 lost its corrected values")
		}
	})

	// The page lists the Level-2 sites in its picker.
	_, page := get(t, f.srv.URL+"/")
	for _, s := range []string{`<select id="l2site"><option value="B009">B009</option><option value="B010">B010</option><option value="B011">B011</option></select>`,
		`<section class="level2" data-site="B009">`} {
		if !strings.Contains(page, s) {
			t.Errorf("status page lacks %q", s)
		}
	}
}
