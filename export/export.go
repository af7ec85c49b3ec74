// Package export owns writing Level-2 strain out of the database in
// EarthScope's published Level-2 ASCII layout, the one
// earthscopestraintools.ascii_tools.read_l2_ascii reads: per station and
// year a directory <STA>.<YEAR>.bsm.level2 holding one gzipped,
// whitespace-separated file per gauge, <STA>.<YEAR>.xml.Gauge<N>.txt.gz, and
// per regional strain, <STA>.<YEAR>.xml.<Eee+Enn|Eee-Enn|2Ene>.txt.gz, with
// the header
//
//	date <strain>(mstrain) strain_quality s_offset tide_c detrend_c atmp_c atmp_c_quality version level atmp
//
// and one row per 300 s epoch from the first to the last one exported, gap
// epochs included (every value 999999, quality m). Missing values are
// EarthScope's fill value 999999 (read_l2_ascii turns them into NaN with
// remove_fill_values). strain_quality is EarthScope's flag: g, i (the 1 s
// sample at that time was missing and interpolated), m (missing). The rows
// come from the level2_gauge and level2_regional_strain views through any
// shell.Backend (a DuckDB file or the processor's SQL endpoint); all
// formatting is done in SQL so the output does not depend on the backend.
//
// detrend_c is trend_c (the README's trend model, else level2.ipynb's linear
// fit), atmp the pressure in hPa the barometric correction was made from.
// Regional files use one calibration matrix (Options.Matrix, default lab,
// which every station has).
package export

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/earthscope/gtsm-stream/shell"
	"github.com/earthscope/gtsm-stream/sitecode"
)

// Fill is EarthScope's missing-value marker.
const Fill = "999999"

// Level is the level column: EarthScope's processed Level-2 is "2a".
const Level = "2a"

// Period is the Level-2 sample period.
const Period = 300 * time.Second

// DefaultMatrix is the calibration matrix of the regional files when none
// is asked for: the manufacturer's (lab), which every station has.
const DefaultMatrix = "lab"

// Components are the regional strains, in read_l2_ascii's order.
var Components = []string{"Eee+Enn", "Eee-Enn", "2Ene"}

// Header returns the header line of gauge g's file.
func Header(g int) string {
	return header(fmt.Sprintf("gauge%d", g))
}

// RegionalHeader returns the header line of a regional strain's file
// (component Eee+Enn, Eee-Enn or 2Ene).
func RegionalHeader(component string) string { return header(component) }

func header(strain string) string {
	return "date " + strain + "(mstrain) strain_quality s_offset tide_c detrend_c atmp_c atmp_c_quality version level atmp"
}

// cells formats every value of a row in SQL from the columns of
// level2_gauge / level2_regional_strain (l, left-joined to the 300 s grid
// g): date as ISO 8601 (pandas parse_dates reads it as one whitespace-free
// token), microstrain and corrections to 1e-6 µε with printf, atmp to 1e-3
// hPa, the version as the metadata version (or "none").
const cells = `strftime(g."time", '%Y-%m-%dT%H:%M:%S') AS date,
  coalesce(printf('%.6f', l.microstrain), '999999') AS ms,
  coalesce(l.strain_quality, 'm') AS sq,
  coalesce(printf('%.6f', l.offset_c), '999999') AS off,
  coalesce(printf('%.6f', l.tide_c), '999999') AS tide,
  coalesce(printf('%.6f', l.trend_c), '999999') AS trend,
  coalesce(printf('%.6f', l.atmp_c), '999999') AS atmp_c,
  CASE WHEN l.atmp_c IS NULL THEN 'm' ELSE 'g' END AS aq,
  coalesce(l.metadata_version, 'none') AS version,
  coalesce(printf('%.3f', l.atmp), '999999') AS atmp`

// grid is every 300 s epoch from $2 to $3 (inclusive).
const grid = `t AS (SELECT unnest(generate_series($2::TIMESTAMP, $3::TIMESTAMP, INTERVAL 300 SECOND)) AS "time")`

const gaugeQuery = `WITH ` + grid + `,
  g AS (SELECT t."time", k.gauge FROM t, (SELECT unnest([0, 1, 2, 3]) AS gauge) k)
SELECT year(g."time") AS y, 'Gauge' || g.gauge AS file, ` + cells + `
FROM g LEFT JOIN (SELECT * FROM level2_gauge WHERE site = $1::VARCHAR AND "time" BETWEEN $2::TIMESTAMP AND $3::TIMESTAMP) l
  ON l."time" = g."time" AND l.gauge = g.gauge
ORDER BY g.gauge, g."time"`

const regionalQuery = `WITH ` + grid + `,
  g AS (SELECT t."time", k.component, k.i FROM t, (SELECT unnest(['Eee+Enn', 'Eee-Enn', '2Ene']) AS component, unnest([1, 2, 3]) AS i) k)
SELECT year(g."time") AS y, g.component AS file, ` + cells + `
FROM g LEFT JOIN (SELECT * FROM level2_regional_strain WHERE site = $1::VARCHAR AND matrix = $4::VARCHAR
    AND "time" BETWEEN $2::TIMESTAMP AND $3::TIMESTAMP) l ON l."time" = g."time" AND l.component = g.component
ORDER BY g.i, g."time"`

// summary is the selection's extent and whether any value is not fill
// (the regional values are made from the gauge ones).
const summary = `SELECT count(*), count(*) FILTER (WHERE coalesce(microstrain, offset_c, tide_c, trend_c, atmp_c, atmp) IS NOT NULL),
  strftime(min("time"), '%Y-%m-%d %H:%M:%S'), strftime(max("time"), '%Y-%m-%d %H:%M:%S')
FROM level2_gauge
WHERE site = $1::VARCHAR
  AND ($2::VARCHAR IS NULL OR "time" >= CAST($2::VARCHAR AS TIMESTAMP))
  AND ($3::VARCHAR IS NULL OR "time" < CAST($3::VARCHAR AS TIMESTAMP))`

// Options select what to export.
type Options struct {
	Site     string
	From, To time.Time // zero: unbounded; To is exclusive
	Dir      string    // output directory (created); "" = current directory
	// Matrix is the calibration matrix of the regional files ("" =
	// DefaultMatrix). A site without regional strains (no metadata) gets
	// gauge files only.
	Matrix string
}

// File is one written file and its row count.
type File struct {
	Path string
	Rows int
}

// Level2 writes the site's gauge and regional files, one set per year with
// data, and returns them in order. A site without rows is an error (a typo
// should not look like an empty success), and so is a selection in which
// every value would be fill (no metadata: nothing but 999999 to write);
// then nothing is written.
func Level2(ctx context.Context, b shell.Backend, o Options) ([]File, error) {
	if o.Site == "" {
		return nil, fmt.Errorf("export level2: no site")
	}
	// The site names the files written under Dir: only a site code, never
	// a path.
	if err := sitecode.Check(o.Site); err != nil {
		return nil, fmt.Errorf("export level2: --site: %w", err)
	}
	ts := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	matrix := o.Matrix
	if matrix == "" {
		matrix = DefaultMatrix
	}
	sum, err := b.Exec(ctx, summary, o.Site, ts(o.From), ts(o.To))
	if err != nil {
		return nil, fmt.Errorf("export level2 %s: query level2_gauge: %w", o.Site, err)
	}
	if len(sum.Rows) != 1 || sum.Rows[0][0].Text == "0" {
		return nil, fmt.Errorf("export level2: no Level-2 rows for site %s in the range given", o.Site)
	}
	if sum.Rows[0][1].Text == "0" {
		return nil, fmt.Errorf("export level2: every value for site %s in the range given would be the fill value %s "+
			"(no microstrain and no correction: has its station metadata been loaded?); nothing written", o.Site, Fill)
	}
	lo, err := time.Parse(time.DateTime, sum.Rows[0][2].Text)
	if err != nil {
		return nil, fmt.Errorf("export level2 %s: first time %q: %w", o.Site, sum.Rows[0][2].Text, err)
	}
	hi, err := time.Parse(time.DateTime, sum.Rows[0][3].Text)
	if err != nil {
		return nil, fmt.Errorf("export level2 %s: last time %q: %w", o.Site, sum.Rows[0][3].Text, err)
	}
	mats, err := b.Exec(ctx, `SELECT DISTINCT matrix FROM level2_regional_data WHERE site = $1::VARCHAR ORDER BY matrix`, o.Site)
	if err != nil {
		return nil, fmt.Errorf("export level2 %s: query level2_regional_data: %w", o.Site, err)
	}
	var have []string
	for _, r := range mats.Rows {
		have = append(have, r[0].Text)
	}
	regional := len(have) > 0
	switch {
	case !regional && o.Matrix != "":
		return nil, fmt.Errorf("export level2: site %s has no regional strains (no station metadata), so no matrix %s", o.Site, o.Matrix)
	case regional && !slices.Contains(have, matrix):
		return nil, fmt.Errorf("export level2: site %s has no matrix %s; it has %s", o.Site, matrix, strings.Join(have, ", "))
	}
	// One year at a time, so memory holds one year's rows; every 300 s
	// epoch from the first to the last selected is written.
	var files []File
	for y := lo.Year(); y <= hi.Year(); y++ {
		ylo, yhi := lo, hi
		if y0 := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC); y0.After(ylo) {
			ylo = y0
		}
		if y1 := time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC).Add(-Period); y1.Before(yhi) {
			yhi = y1
		}
		from, to := ylo.Format(time.DateTime), yhi.Format(time.DateTime)
		sets := make([]*shell.Result, 0, 2)
		res, err := b.Exec(ctx, gaugeQuery, o.Site, from, to)
		if err != nil {
			return files, fmt.Errorf("export level2 %s %d: query level2_gauge: %w", o.Site, y, err)
		}
		sets = append(sets, res)
		if regional {
			if res, err = b.Exec(ctx, regionalQuery, o.Site, from, to, matrix); err != nil {
				return files, fmt.Errorf("export level2 %s %d: query level2_regional_strain: %w", o.Site, y, err)
			}
			sets = append(sets, res)
		}
		fs, err := write(o, sets...)
		files = append(files, fs...)
		if err != nil {
			return files, err
		}
	}
	return files, nil
}

// write writes one year's gauge rows, then its regional ones, into a file
// per strain (the queries order them by strain and time).
func write(o Options, sets ...*shell.Result) ([]File, error) {
	var (
		files []File
		f     *os.File
		zw    *gzip.Writer
		cur   string
	)
	closeCur := func() error {
		if f == nil {
			return nil
		}
		err := zw.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		f = nil
		if err != nil {
			return fmt.Errorf("export level2: %s: %w", cur, err)
		}
		return nil
	}
	defer closeCur()
	for _, set := range sets {
		if set == nil {
			continue
		}
		for i, r := range set.Rows {
			year, strain := r[0].Text, r[1].Text
			dir := filepath.Join(o.Dir, o.Site+"."+year+".bsm.level2")
			name := filepath.Join(dir, o.Site+"."+year+".xml."+strain+".txt.gz")
			if name != cur {
				if err := closeCur(); err != nil {
					return nil, err
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, fmt.Errorf("export level2: %w", err)
				}
				var err error
				if f, err = os.Create(name); err != nil {
					return nil, fmt.Errorf("export level2: %w", err)
				}
				cur = name
				zw = gzip.NewWriter(f)
				h := RegionalHeader(strain)
				if g, ok := strings.CutPrefix(strain, "Gauge"); ok {
					h = header("gauge" + g)
				}
				if _, err := fmt.Fprintln(zw, h); err != nil {
					return nil, fmt.Errorf("export level2: %s: %w", name, err)
				}
				files = append(files, File{Path: name})
			}
			cells := make([]string, 0, 11)
			for _, c := range r[2:12] {
				if c.Null {
					return nil, fmt.Errorf("export level2: row %d of %s (%s): unexpected NULL", i, o.Site, strain)
				}
				cells = append(cells, c.Text)
			}
			// date ms sq off tide trend atmp_c aq version | level | atmp
			line := strings.Join(cells[:9], " ") + " " + Level + " " + cells[9]
			if _, err := fmt.Fprintln(zw, line); err != nil {
				return nil, fmt.Errorf("export level2: %s: %w", name, err)
			}
			files[len(files)-1].Rows++
		}
	}
	return files, closeCur()
}
