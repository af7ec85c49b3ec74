package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/earthscope/gtsm-stream/metadata"
)

// The status page's Level-2 plots load from GET /api/level2 (one site, a time
// range): the four gauges of the level2_gauge view and the three regional
// strains of one calibration matrix of level2_regional, each raw and
// corrected, bucketed here like /api/series (min, max and mean per bucket, at
// most `points` buckets).
//
// Corrected means minus the corrections. A correction a series has nowhere in
// the range asked for (no barometric response, no tidal constituents) is not
// applied; one it has in some rows but not in a row makes that row's
// corrected value missing (atmp_c and tide_c are absolute: atmp_c is about
// −7.5 µε at 1013 hPa, so leaving it out of one row would plot a 7.5 µε step
// at the live edge and in every pressure gap). The answer says which were
// applied: per series, how many rows had each correction, and per bucket
// which corrections were applied to every row of it and which to some (bit
// masks, corrBits). A regional strain mixes the four gauges, so a correction
// counts as present at a time only when all four gauges have it; the
// corrected regional strain is then the raw one minus the matrix times the
// gauges' corrections (the matrix is linear: M·(u−c) = M·u − M·c), with the
// matrix of the row's metadata version read from station_metadata.

const (
	level2StepMS = 300_000
	// level2SlotLimit bounds the range one request scans: 250,000 300 s
	// slots (~2.4 years) hold 1,000,000 gauge rows and 250,000 regional
	// rows per matrix, whose corrections need the gauge rows grouped by
	// time and joined (BenchmarkLevel2: half the cost of the 2,000,000
	// samples /api/series may scan). A longer range is cut to its last
	// level2SlotLimit slots (Truncated).
	level2SlotLimit   = 250_000
	level2DefaultSpan = 30 * 86_400_000
)

// corrections are the correction columns of level2_gauge, in the order of
// their bits in the masks.
var corrections = [3]string{"atmp_c", "tide_c", "offset_c"}

// regionalColumns are level2_regional's strains, in the matrices' row order.
var regionalColumns = [3]struct{ col, name string }{
	{"eee_plus_enn", "areal Eee+Enn"},
	{"eee_minus_enn", "differential Eee−Enn"},
	{"two_ene", "shear 2Ene"},
}

type level2Response struct {
	Site          string
	From, To      float64 // the range answered, [From, To), s
	First, Last   float64 // the site's first and last Level-2 time, s
	StepS         float64 // bucket width, s (300: every Level-2 output)
	Truncated     bool    // the range asked for was longer than the bound: this is its end
	Unit          string  // "µε"
	Matrix        string  // the calibration matrix of the regional series
	Matrices      []string
	Corrections   [3]string // the names of the mask bits, bit 0 first
	T             []float64
	Series        []level2Series // gauge 0..3, then the regional strains
	MissingMatrix []string       // metadata versions of regional rows whose matrix station_metadata lacks
}

type level2Series struct {
	Name  string // "gauge 0" … or "areal Eee+Enn" …
	Kind  string // "gauge" or "regional"
	Raw   band
	Corr  band
	Rows  int    // rows with a raw value in the range
	CorrN [3]int // rows with each correction present (and applied)
	// All and Some are per bucket: the corrections (bit i: Corrections[i])
	// applied to every row of the bucket, and to at least one.
	All, Some []int
}

type band struct {
	Min, Max, Mean []*float64
}

// serveLevel2 answers GET /api/level2?site=[&matrix=][&from=&to=(ms)|&span=(ms)|&span=all][&points=].
func serveLevel2(db *sql.DB) http.HandlerFunc { return serveLoaded(db, loadLevel2) }

// matrixVersion is one metadata version's calibration matrix.
type matrixVersion struct {
	version string
	m       [3][4]float64
}

func loadLevel2(ctx context.Context, db *sql.DB, q url.Values) (*level2Response, error) {
	site := q.Get("site")
	if err := checkSite(site); err != nil {
		return nil, err
	}
	points, err := parsePoints(q)
	if err != nil {
		return nil, err
	}
	rng, err := parseRange(q, level2DefaultSpan)
	if err != nil {
		return nil, err
	}
	resp := &level2Response{Site: site, Unit: "µε", Corrections: corrections}
	err = readTx(ctx, db, func(tx *sql.Conn) error {
		var first, last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT epoch_ms(min("time")), epoch_ms(max("time")) FROM level2_gauge_data WHERE site = ?`,
			site).Scan(&first, &last); err != nil {
			return fmt.Errorf("level2 %s: read level2_gauge_data: %w", site, err)
		}
		if !last.Valid {
			return fmt.Errorf("level2 site %q: %w", site, errNoData)
		}
		end := last.Int64 + level2StepMS
		from, to := rng.clamp(first.Int64, end)
		if to <= from {
			return badRequest{fmt.Sprintf("empty range: the Level-2 data of %s spans %s .. %s UTC", site,
				time.UnixMilli(first.Int64).UTC().Format(time.DateTime), time.UnixMilli(last.Int64).UTC().Format(time.DateTime))}
		}
		if (to-from)/level2StepMS > level2SlotLimit {
			from, resp.Truncated = to-level2SlotLimit*level2StepMS, true
		}
		step := pickStep(to-from, level2StepMS, points)
		from = from / step * step
		resp.First, resp.Last = float64(first.Int64)/1000, float64(last.Int64)/1000
		resp.From, resp.To, resp.StepS = float64(from)/1000, float64(to)/1000, float64(step)/1000

		mats, names, err := loadMatrices(ctx, tx, site, q.Get("matrix"))
		if err != nil {
			return err
		}
		resp.Matrices = names
		resp.Matrix = q.Get("matrix")
		if resp.Matrix == "" && len(names) > 0 {
			resp.Matrix = names[0] // lab first, as metadata.Station lists them
		}
		if q.Get("matrix") != "" && !contains(names, resp.Matrix) {
			return badRequest{fmt.Sprintf("matrix=%q: site %s has %v", resp.Matrix, site, names)}
		}
		b := newBucketer(from, step)
		if err := level2Gauges(ctx, tx, resp, b, from, to, step); err != nil {
			return err
		}
		if resp.Matrix != "" {
			if err := level2Regional(ctx, tx, resp, b, mats, from, to, step); err != nil {
				return err
			}
		}
		b.finish(resp)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// loadMatrices reads the site's station_metadata versions (one row each, a
// handful per site): the named matrix of each version, and the matrix names
// of the newest version (then any older names), lab first.
func loadMatrices(ctx context.Context, tx *sql.Conn, site, name string) ([]matrixVersion, []string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, record_json FROM station_metadata WHERE site = ? ORDER BY received_at DESC, version`, site)
	if err != nil {
		return nil, nil, fmt.Errorf("level2 %s: read station_metadata: %w", site, err)
	}
	defer rows.Close()
	var mats []matrixVersion
	var names []string
	for rows.Next() {
		var v, j string
		if err := rows.Scan(&v, &j); err != nil {
			return nil, nil, fmt.Errorf("level2 %s: scan station_metadata: %w", site, err)
		}
		var st metadata.Station
		if err := json.Unmarshal([]byte(j), &st); err != nil {
			// Data, not a fault of the server: the version's matrices
			// are unknown, and its rows are listed in missing_matrix.
			continue
		}
		for _, m := range st.Matrices {
			if !contains(names, m.Name) {
				names = append(names, m.Name)
			}
		}
		want := name
		if want == "" && len(st.Matrices) > 0 && len(names) > 0 {
			want = names[0]
		}
		if m := st.Matrix(want); m != nil {
			mats = append(mats, matrixVersion{v, m.Values})
		}
	}
	return mats, names, rows.Err()
}

// bucketer collects the series' buckets by bucket index; finish lays them
// out on one time axis with a null entry where buckets without values lie
// between two with (the line breaks), as /api/series does.
type bucketer struct {
	from, step int64
	series     []*level2Series
	vals       []map[int64]*bucketVals
}

type bucketVals struct {
	raw, corr [3]*float64 // min, max, mean
	all, some int
}

func newBucketer(from, step int64) *bucketer { return &bucketer{from: from, step: step} }

func (b *bucketer) add(s *level2Series) int {
	b.series = append(b.series, s)
	b.vals = append(b.vals, map[int64]*bucketVals{})
	return len(b.series) - 1
}

func (b *bucketer) finish(resp *level2Response) {
	seen := map[int64]bool{}
	var idx []int64
	for _, m := range b.vals {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				idx = append(idx, k)
			}
		}
	}
	slices.Sort(idx)
	// slots are the bucket indices on the time axis; a separator (no
	// values: the line breaks) is the index after a bucket, marked sep.
	type slot struct {
		k   int64
		sep bool
	}
	var slots []slot
	for i, k := range idx {
		if i > 0 && k > idx[i-1]+1 {
			slots = append(slots, slot{idx[i-1] + 1, true})
		}
		slots = append(slots, slot{k, false})
	}
	// Empty arrays, not null, when there are no values (JSON for the page).
	resp.T = make([]float64, 0, len(slots))
	for _, sl := range slots {
		resp.T = append(resp.T, float64(b.from+sl.k*b.step)/1000)
	}
	if resp.Matrices == nil {
		resp.Matrices = []string{}
	}
	for si, s := range b.series {
		n := len(slots)
		s.Raw = band{make([]*float64, 0, n), make([]*float64, 0, n), make([]*float64, 0, n)}
		s.Corr = band{make([]*float64, 0, n), make([]*float64, 0, n), make([]*float64, 0, n)}
		s.All, s.Some = make([]int, 0, n), make([]int, 0, n)
		for _, sl := range slots {
			v := b.vals[si][sl.k] // nil for a bucket this series lacks
			if v == nil || sl.sep {
				v = &bucketVals{}
			}
			s.Raw.Min, s.Raw.Max, s.Raw.Mean = append(s.Raw.Min, v.raw[0]), append(s.Raw.Max, v.raw[1]), append(s.Raw.Mean, v.raw[2])
			s.Corr.Min, s.Corr.Max, s.Corr.Mean = append(s.Corr.Min, v.corr[0]), append(s.Corr.Max, v.corr[1]), append(s.Corr.Mean, v.corr[2])
			s.All, s.Some = append(s.All, v.all), append(s.Some, v.some)
		}
		resp.Series = append(resp.Series, *s)
	}
}

// put records series si's bucket k: raw and corrected min, max, mean (v),
// its rows with a value (n) and the rows each correction was applied to.
func (b *bucketer) put(si int, k int64, v [6]sql.NullFloat64, n int, corrN [3]int) {
	s := b.series[si]
	bv := &bucketVals{}
	for i := range 3 {
		bv.raw[i], bv.corr[i] = ptr(v[i]), ptr(v[3+i])
	}
	for c, nc := range corrN {
		if nc > 0 {
			bv.some |= 1 << c
			if nc == n {
				bv.all |= 1 << c
			}
		}
		s.CorrN[c] += nc
	}
	s.Rows += n
	b.vals[si][k] = bv
}

func ptr(v sql.NullFloat64) *float64 {
	if !v.Valid {
		return nil
	}
	return finite(v.Float64)
}

// level2Gauges buckets level2_gauge: per bucket and gauge the raw
// microstrain and microstrain minus the corrections present in each row.
func level2Gauges(ctx context.Context, tx *sql.Conn, resp *level2Response, b *bucketer, from, to, step int64) error {
	var si [4]int
	for g := range si {
		si[g] = b.add(&level2Series{Name: fmt.Sprintf("gauge %d", g), Kind: "gauge"})
	}
	rows, err := tx.QueryContext(ctx, `SELECT (epoch_ms("time") - ?) // ? AS b, gauge,
			min(microstrain), max(microstrain), avg(microstrain), min(c), max(c), avg(c),
			count(microstrain), count(atmp_c), count(tide_c), count(offset_c)
		FROM (SELECT "time", gauge, microstrain,
		             -- corrections only where there is a value to correct
		             CASE WHEN microstrain IS NOT NULL THEN atmp_c END AS atmp_c,
		             CASE WHEN microstrain IS NOT NULL THEN tide_c END AS tide_c,
		             CASE WHEN microstrain IS NOT NULL THEN offset_c END AS offset_c,
		             -- minus the corrections: one the gauge has nowhere in the
		             -- range counts 0, one missing in this row only makes c NULL
		             microstrain - CASE WHEN count(atmp_c) OVER w = 0 THEN 0 ELSE atmp_c END
		                         - CASE WHEN count(tide_c) OVER w = 0 THEN 0 ELSE tide_c END
		                         - CASE WHEN count(offset_c) OVER w = 0 THEN 0 ELSE offset_c END AS c
		      FROM level2_gauge
		      WHERE site = ? AND "time" >= epoch_ms(?::BIGINT) AND "time" < epoch_ms(?::BIGINT)
		      WINDOW w AS (PARTITION BY gauge))
		GROUP BY ALL ORDER BY b, gauge`, from, step, resp.Site, from, to)
	if err != nil {
		return fmt.Errorf("level2 %s gauges (step %d ms): %w", resp.Site, step, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k int64
		var g, n int
		var v [6]sql.NullFloat64
		var c [3]int
		if err := rows.Scan(&k, &g, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &n, &c[0], &c[1], &c[2]); err != nil {
			return fmt.Errorf("level2 %s gauges: scan: %w", resp.Site, err)
		}
		if g < 0 || g > 3 {
			return fmt.Errorf("level2 %s: gauge %d in level2_gauge, want 0..3", resp.Site, g)
		}
		if n > 0 {
			b.put(si[g], k, v, n, c)
		}
	}
	return rows.Err()
}

// level2Regional buckets level2_regional for resp.Matrix: the raw strains
// and the strains minus M times the corrections present on all four gauges.
func level2Regional(ctx context.Context, tx *sql.Conn, resp *level2Response, b *bucketer, mats []matrixVersion, from, to, step int64) error {
	var si [3]int
	for i, rc := range regionalColumns {
		si[i] = b.add(&level2Series{Name: rc.name, Kind: "regional"})
	}
	q, args := level2RegionalQuery(mats, resp.Site, resp.Matrix, from, to, step)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("level2 %s regional %s (step %d ms): %w", resp.Site, resp.Matrix, step, err)
	}
	defer rows.Close()
	missing := map[string]bool{}
	for rows.Next() {
		var k int64
		var v [3][6]sql.NullFloat64
		var n [3]int
		var c [3]int
		var miss sql.NullString
		dest := []any{&k}
		for i := range 3 {
			for j := range 6 {
				dest = append(dest, &v[i][j])
			}
			dest = append(dest, &n[i])
		}
		dest = append(dest, &c[0], &c[1], &c[2], &miss)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("level2 %s regional: scan: %w", resp.Site, err)
		}
		for i := range 3 {
			if n[i] > 0 {
				// A correction applies to a row with a value only
				// (c counts rows; a row has all three strains or none).
				b.put(si[i], k, v[i], n[i], [3]int{min(c[0], n[i]), min(c[1], n[i]), min(c[2], n[i])})
			}
		}
		if miss.Valid {
			for _, s := range strings.Split(miss.String, ",") {
				if !missing[s] {
					missing[s] = true
					resp.MissingMatrix = append(resp.MissingMatrix, s)
				}
			}
		}
	}
	return rows.Err()
}

// level2RegionalQuery is level2Regional's SQL and its arguments.
func level2RegionalQuery(mats []matrixVersion, site, matrix string, from, to, step int64) (string, []any) {
	// The matrices by metadata version, as parameters.
	var args []any
	mv := `SELECT NULL::VARCHAR AS version` + strings.Repeat(", NULL::DOUBLE", 12) + ` WHERE false`
	if len(mats) > 0 {
		var vals []string
		for _, m := range mats {
			vals = append(vals, "(?"+strings.Repeat(", ?::DOUBLE", 12)+")")
			args = append(args, m.version)
			for i := range 3 {
				for g := range 4 {
					args = append(args, m.m[i][g])
				}
			}
		}
		mv = `SELECT * FROM (VALUES ` + strings.Join(vals, ", ") + `)`
	}
	var cols []string
	for i := range 3 {
		for g := range 4 {
			cols = append(cols, fmt.Sprintf("m%d%d", i, g))
		}
	}
	// d_g: gauge g's corrections present on all four gauges at the time.
	var d [4]string
	for g := range 4 {
		d[g] = fmt.Sprintf(`(CASE WHEN ha THEN a%[1]d ELSE 0 END + CASE WHEN ht THEN t%[1]d ELSE 0 END + CASE WHEN ho THEN o%[1]d ELSE 0 END)`, g)
	}
	var corr, cnull, agg []string
	for i, rc := range regionalColumns {
		terms := make([]string, 4)
		for g := range 4 {
			terms[g] = fmt.Sprintf("m%d%d * %s", i, g, d[g])
		}
		corr = append(corr, fmt.Sprintf("%s - (%s) AS c%d", rc.col, strings.Join(terms, " + "), i))
		// NULL where a correction the range has at other times is missing
		// at this one (see the top of the file)
		cnull = append(cnull, fmt.Sprintf("CASE WHEN (bool_or(ha) OVER () AND NOT ha) OR (bool_or(ht) OVER () AND NOT ht) OR (bool_or(ho) OVER () AND NOT ho) THEN NULL ELSE c%[1]d END AS c%[1]d", i))
		agg = append(agg, fmt.Sprintf("min(%[1]s), max(%[1]s), avg(%[1]s), min(c%[2]d), max(c%[2]d), avg(c%[2]d), count(%[1]s)", rc.col, i))
	}
	var pivot []string
	for g := range 4 {
		pivot = append(pivot, fmt.Sprintf("any_value(atmp_c) FILTER (gauge = %[1]d) AS a%[1]d, any_value(tide_c) FILTER (gauge = %[1]d) AS t%[1]d, any_value(offset_c) FILTER (gauge = %[1]d) AS o%[1]d", g))
	}
	q := `WITH m AS (` + mv + `),
		mm AS (SELECT * FROM m AS mm(version, ` + strings.Join(cols, ", ") + `)),
		g AS (SELECT "time", ` + strings.Join(pivot, ", ") + `,
		             count(atmp_c) = 4 AS ha, count(tide_c) = 4 AS ht, count(offset_c) = 4 AS ho
		      FROM level2_gauge_data
		      WHERE site = ? AND "time" >= epoch_ms(?::BIGINT) AND "time" < epoch_ms(?::BIGINT)
		      GROUP BY "time"),
		r AS (SELECT r."time", r.eee_plus_enn, r.eee_minus_enn, r.two_ene, mm.m00 IS NOT NULL AS known,
		             coalesce(g.ha, false) AND mm.m00 IS NOT NULL AS ha, coalesce(g.ht, false) AND mm.m00 IS NOT NULL AS ht,
		             coalesce(g.ho, false) AND mm.m00 IS NOT NULL AS ho, r.metadata_version,
		             ` + strings.Join(corr, ", ") + `
		      FROM level2_regional r LEFT JOIN g ON g."time" = r."time" LEFT JOIN mm ON mm.version = r.metadata_version
		      WHERE r.site = ? AND r.matrix = ? AND r."time" >= epoch_ms(?::BIGINT) AND r."time" < epoch_ms(?::BIGINT)),
		r2 AS (SELECT * REPLACE (` + strings.Join(cnull, ", ") + `) FROM r)
		SELECT (epoch_ms("time") - ?) // ? AS b, ` + strings.Join(agg, ", ") + `,
		       count(*) FILTER (ha), count(*) FILTER (ht), count(*) FILTER (ho),
		       string_agg(DISTINCT CASE WHEN NOT known THEN coalesce(metadata_version, 'NULL') END, ',')
		FROM r2 GROUP BY b ORDER BY b`
	args = append(args, site, from, to, site, matrix, from, to, from, step)
	return q, args
}
