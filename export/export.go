// Package export owns writing Level-2 strain out of the database in
// EarthScope's published Level-2 ASCII layout, the one
// earthscopestraintools.ascii_tools.read_l2_ascii reads: per station and
// year a directory <STA>.<YEAR>.bsm.level2 holding one gzipped,
// whitespace-separated file per gauge, <STA>.<YEAR>.xml.Gauge<N>.txt.gz, with
// the header
//
//	date gaugeN(mstrain) strain_quality s_offset tide_c detrend_c atmp_c atmp_c_quality version level atmp
//
// and one row per 300 s. Missing values are EarthScope's fill value 999999
// (read_l2_ascii turns them into NaN with remove_fill_values). The rows come
// from the level2_gauge view through any shell.Backend (a DuckDB file or the
// processor's SQL endpoint); all formatting is done in SQL so the output does
// not depend on the backend.
//
// What the contract tables do not hold is written as fill: detrend_c (trend
// correction: trends are whole-series fits, provided as SQL macros instead)
// and atmp (the pressure itself). tide_c is the processor's tide correction
// (level2/tide.go), fill where the gauge has no tidal constituents.
package export

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/earthscope/gtsm-stream/shell"
	"github.com/earthscope/gtsm-stream/sitecode"
)

// Fill is EarthScope's missing-value marker.
const Fill = "999999"

// Level is the level column: EarthScope's processed Level-2 is "2a".
const Level = "2a"

// Header returns the header line of gauge g's file.
func Header(g int) string {
	return fmt.Sprintf("date gauge%d(mstrain) strain_quality s_offset tide_c detrend_c atmp_c atmp_c_quality version level atmp", g)
}

// query formats every value in SQL: date as ISO 8601 (pandas parse_dates
// reads it as one whitespace-free token), microstrain and corrections to
// 1e-6 µε with printf, the version as the metadata version (or "none").
// The quality flags: strain_quality g where the gauge value exists, m where
// it is fill; atmp_c_quality likewise for atmp_c.
const query = `SELECT year(time) AS y, gauge,
  strftime(time, '%Y-%m-%dT%H:%M:%S') AS date,
  coalesce(printf('%.6f', microstrain), '999999') AS ms,
  CASE WHEN microstrain IS NULL THEN 'm' ELSE 'g' END AS sq,
  coalesce(printf('%.6f', offset_c), '999999') AS off,
  coalesce(printf('%.6f', tide_c), '999999') AS tide,
  coalesce(printf('%.6f', atmp_c), '999999') AS atmp_c,
  CASE WHEN atmp_c IS NULL THEN 'm' ELSE 'g' END AS aq,
  coalesce(metadata_version, 'none') AS version
FROM level2_gauge
WHERE site = $1::VARCHAR
  AND ($2::VARCHAR IS NULL OR time >= CAST($2::VARCHAR AS TIMESTAMP))
  AND ($3::VARCHAR IS NULL OR time < CAST($3::VARCHAR AS TIMESTAMP))
ORDER BY y, gauge, time`

// Options select what to export.
type Options struct {
	Site     string
	From, To time.Time // zero: unbounded; To is exclusive
	Dir      string    // output directory (created); "" = current directory
}

// File is one written file and its row count.
type File struct {
	Path string
	Rows int
}

// Level2 writes the site's gauge files, one set per year with data, and
// returns them in order. A site without rows is an error (a typo should not
// look like an empty success).
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
	res, err := b.Exec(ctx, query, o.Site, ts(o.From), ts(o.To))
	if err != nil {
		return nil, fmt.Errorf("export level2 %s: query level2_gauge: %w", o.Site, err)
	}
	if len(res.Rows) == 0 {
		return nil, fmt.Errorf("export level2: no Level-2 rows for site %s in the range given", o.Site)
	}
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
	for i, r := range res.Rows {
		year, gauge := r[0].Text, r[1].Text
		dir := filepath.Join(o.Dir, o.Site+"."+year+".bsm.level2")
		name := filepath.Join(dir, o.Site+"."+year+".xml.Gauge"+gauge+".txt.gz")
		if name != cur {
			if err := closeCur(); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("export level2: %w", err)
			}
			if f, err = os.Create(name); err != nil {
				return nil, fmt.Errorf("export level2: %w", err)
			}
			cur = name
			zw = gzip.NewWriter(f)
			var g int
			fmt.Sscan(gauge, &g)
			if _, err := fmt.Fprintln(zw, Header(g)); err != nil {
				return nil, fmt.Errorf("export level2: %s: %w", name, err)
			}
			files = append(files, File{Path: name})
		}
		cells := make([]string, 0, 11)
		for _, c := range r[2:] {
			if c.Null {
				return nil, fmt.Errorf("export level2: row %d of %s: unexpected NULL", i, o.Site)
			}
			cells = append(cells, c.Text)
		}
		// date ms sq off tide | detrend_c | atmp_c aq version | level atmp
		line := strings.Join(cells[:5], " ") + " " + Fill + " " + strings.Join(cells[5:], " ") + " " + Level + " " + Fill
		if _, err := fmt.Fprintln(zw, line); err != nil {
			return nil, fmt.Errorf("export level2: %s: %w", name, err)
		}
		files[len(files)-1].Rows++
	}
	return files, closeCur()
}
