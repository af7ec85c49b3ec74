package main

import (
	"context"
	"fmt"
	"time"

	"github.com/earthscope/gtsm-stream/export"
	"github.com/earthscope/gtsm-stream/pgwire"
	"github.com/earthscope/gtsm-stream/shell"
	"github.com/earthscope/gtsm-stream/sitecode"
)

const exportLevel2Help = `Writes one site's Level-2 strain (the level2_gauge and level2_regional_strain
views) in EarthScope's published Level-2 ASCII layout, so scripts written for
EarthScope's files (earthscopestraintools.ascii_tools.read_l2_ascii with
strain_type 'gauge' or 'regional', or pandas.read_csv with sep='\s+',
index_col='date', parse_dates=True) read it unchanged:

  DIR/<STA>.<YEAR>.bsm.level2/<STA>.<YEAR>.xml.Gauge<N>.txt.gz   (N = 0..3)
  DIR/<STA>.<YEAR>.bsm.level2/<STA>.<YEAR>.xml.<Eee+Enn|Eee-Enn|2Ene>.txt.gz

columns: date <strain>(mstrain) strain_quality s_offset tide_c detrend_c atmp_c
atmp_c_quality version level atmp. Every 300 s epoch from the first to the last
one selected is written; missing values are 999999 (EarthScope's fill), so a
gap epoch is a row of 999999 with strain_quality m. strain_quality is g, i (the
gauge's 1 s sample at that time was missing and interpolated) or m. detrend_c is
the trend correction (the station README's trend model, else the linear fit
level2.ipynb makes), atmp the barometric pressure in hPa, version the station
metadata version the row was computed with. Regional files use one calibration
matrix (--matrix, default lab); a site without metadata gets gauge files only.

A selection in which every value would be 999999 (no station metadata loaded:
decimated counts only) is an error and writes nothing.

The data come from the processor's SQL endpoint when one answers at --addr,
else from the DuckDB file (read-only), as with gtsm sql.

Examples:
  gtsm export level2 --site B009 --out l2/
  gtsm export level2 --site TSM5 --matrix CH2024 --from 2022-01-01 --to 2022-02-01 --db gtsm.duckdb`

func runExportLevel2(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "export level2", "export level2 --site S [--from T] [--to T] [--out DIR] [--db FILE | --addr HOST:PORT]", exportLevel2Help)
	addr := fs.String("addr", envOr(env, "GTSM_SQL_ADDR", pgwire.DefaultAddr), "the processor's SQL endpoint (env GTSM_SQL_ADDR)")
	db := fs.String("db", envOr(env, "GTSM_DB", "gtsm.duckdb"), "DuckDB file to open read-only when no endpoint answers (env GTSM_DB)")
	var o export.Options
	var from, to string
	fs.StringVar(&o.Site, "site", "", "site code, e.g. B009 (required)")
	fs.StringVar(&from, "from", "", "first time included, UTC (2022-01-01 or 2022-01-01T06:00:00)")
	fs.StringVar(&to, "to", "", "first time excluded, UTC")
	fs.StringVar(&o.Dir, "out", ".", "directory to write the <STA>.<YEAR>.bsm.level2 directories into")
	fs.StringVar(&o.Matrix, "matrix", "", "calibration matrix of the regional files, e.g. CH2024 (default lab)")
	quiet := fs.BoolP("quiet", "q", false, "do not list the files written")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Site == "" {
		return usageError{"--site is required"}
	}
	if err := sitecode.Check(o.Site); err != nil {
		return usageError{"--site: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	var err error
	if o.From, err = parseUTC("--from", from); err != nil {
		return err
	}
	if o.To, err = parseUTC("--to", to); err != nil {
		return err
	}
	b, err := shell.Open(ctx, shell.Options{Addr: *addr, Password: env.getenv("GTSM_SQL_PASSWORD"),
		DBPath: *db, DBExplicit: env.getenv("GTSM_DB") != "" || fs.Changed("db")})
	if err != nil {
		return err
	}
	defer b.Close()
	files, err := export.Level2(ctx, b, o)
	if err != nil {
		return err
	}
	if !*quiet {
		for _, f := range files {
			fmt.Fprintf(env.stderr, "%s: %d rows\n", f.Path, f.Rows)
		}
	}
	return nil
}

// parseUTC reads a date or date-time, UTC; "" is the zero time (unbounded).
func parseUTC(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageError{fmt.Sprintf("%s %q: want a UTC date or time such as 2022-01-01 or 2022-01-01T06:00:00", flag, s)}
}
