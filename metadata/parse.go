package metadata

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// TableRow is one station's line of bsm_metadata.txt.
type TableRow struct {
	File        string
	Line        int
	Network     string // from an optional NETWORK column; "" when the table has none
	Site        string
	Latitude    float64
	Longitude   float64
	Elevation   float64
	Gap         float64
	Orientation float64
	DataStart   string
	LinearDate  string
	Reference   [4]int64
}

// tableColumns are the columns gtsm_metadata.py reads from the table; every
// one but GAP(m) is required (get_gap alone has a fallback, DefaultGap).
var tableColumns = []string{"BNUM", "LAT", "LONG", "ELEV(m)", "GAP(m)", "CH0(EofN)", "DATA_START", "L_DATE", "L0(cnts)", "L1(cnts)", "L2(cnts)", "L3(cnts)"}

// ParseTable reads a bsm_metadata.txt network table: a header line of column
// names, then one whitespace-separated line per station (pandas.read_csv with
// sep="\s+" and index_col="BNUM", as gtsm_metadata.get_meta_table reads it).
// Blank lines are skipped, as pandas skips them. Columns it does not know are
// ignored. name is used in error messages.
func ParseTable(name string, r io.Reader) ([]TableRow, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var header []string
	col := map[string]int{}
	var rows []TableRow
	seen := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if header == nil {
			header = f
			for i, h := range f {
				if _, dup := col[h]; dup {
					return nil, fmt.Errorf("%s:%d: column %q appears twice", name, line, h)
				}
				col[h] = i
			}
			for _, c := range tableColumns {
				if _, ok := col[c]; !ok && c != "GAP(m)" {
					return nil, fmt.Errorf("%s:%d: header has no %s column", name, line, c)
				}
			}
			continue
		}
		if len(f) != len(header) {
			return nil, fmt.Errorf("%s:%d: %d fields, header has %d", name, line, len(f), len(header))
		}
		row := TableRow{File: name, Line: line, Site: f[col["BNUM"]], Gap: DefaultGap,
			DataStart: f[col["DATA_START"]], LinearDate: f[col["L_DATE"]]}
		if prev, dup := seen[row.Site]; dup {
			return nil, fmt.Errorf("%s:%d: station %s already on line %d", name, line, row.Site, prev)
		}
		seen[row.Site] = line
		if i, ok := col["NETWORK"]; ok {
			row.Network = f[i]
		}
		floats := []struct {
			col string
			dst *float64
		}{{"LAT", &row.Latitude}, {"LONG", &row.Longitude}, {"ELEV(m)", &row.Elevation}, {"GAP(m)", &row.Gap}, {"CH0(EofN)", &row.Orientation}}
		for _, c := range floats {
			i, ok := col[c.col]
			if !ok {
				continue
			}
			v, err := parseFinite(f[i])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: station %s column %s: %w", name, line, row.Site, c.col, err)
			}
			*c.dst = v
		}
		if row.Gap <= 0 {
			return nil, fmt.Errorf("%s:%d: station %s column GAP(m): %v is not a positive gap", name, line, row.Site, row.Gap)
		}
		for g := 0; g < 4; g++ {
			c := fmt.Sprintf("L%d(cnts)", g)
			v, err := parseCounts(f[col[c]])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: station %s column %s: %w", name, line, row.Site, c, err)
			}
			row.Reference[g] = v
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if header == nil {
		return nil, fmt.Errorf("%s:1: empty table: no header line", name)
	}
	return rows, nil
}

// parseFinite parses a float as Python's float() would, but refuses NaN and
// infinities: pandas would read "NaN"/"NA" into the table and
// gtsm_metadata.py would carry a NaN into every strain; here it is an error.
func parseFinite(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

// parseCounts reads a reference count as int(float) would: pandas may have
// read the column as float ("50858593.0"), so an integral float is accepted.
func parseCounts(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	v, err := parseFinite(s)
	if err != nil {
		return 0, err
	}
	if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		return 0, fmt.Errorf("%q is not a whole number of counts", s)
	}
	return int64(v), nil
}

// Readme is what a station's Level-2 README contributes.
type Readme struct {
	File     string
	Matrices []Matrix // in file order of the known blocks
	Atmp     *[4]float64
	Tides    []Constituent
	Trend    *Trend
}

// Matrix returns the named matrix, or nil.
func (r *Readme) Matrix(name string) *Matrix {
	for i := range r.Matrices {
		if r.Matrices[i].Name == name {
			return &r.Matrices[i]
		}
	}
	return nil
}

// matrixBlocks are the README's calibration blocks: the header line prefix
// (gtsm_metadata.py matches with startswith, two leading spaces included) and
// how many lines after the header the three matrix rows start (the tidal
// calibrations have two lines of description before the rows).
var matrixBlocks = []struct {
	prefix string
	name   string
	skip   int
	last   bool // get_lab_strain_matrix keeps the last such block; the others return the first
}{
	{"  Manufacturer's Isotropic Strain Matrix", MatrixLab, 1, true},
	{"  Roeloffs 2010 Tidal Calibration", MatrixER2010, 3, false},
	{"  Hodgkinson et al. (2013) Tidal Calibration", MatrixKH2013, 1, false},
	{"  CH Preliminary Tidal Calibration", MatrixCH2024, 3, false},
	{"  Mandler et al. 2024 Calibration", MatrixEM2024, 3, false},
}

const (
	headBaro  = "Barometric Response"
	headTides = "Tidal Constituents"
	headTrend = "Borehole Trend Models"
)

// doodson is gtsm_metadata.get_tidal_params's table of Doodson numbers.
var doodson = map[string]string{
	"M2": "2 0 0 0 0 0",
	"O1": "1-1 0 0 0 0",
	"P1": "1 1-2 0 0 0",
	"K1": "1 1 0 0 0 0",
	"N2": "2-1 0 1 0 0",
	"S2": "2 2-2 0 0 0",
}

func isHeader(l string) bool {
	for _, b := range matrixBlocks {
		if strings.HasPrefix(l, b.prefix) {
			return true
		}
	}
	return strings.HasPrefix(l, headBaro) || strings.HasPrefix(l, headTides) || strings.HasPrefix(l, headTrend)
}

// gaugeName parses "CH0".."CH3".
func gaugeName(s string) (int, bool) {
	if len(s) == 3 && s[:2] == "CH" && s[2] >= '0' && s[2] <= '3' {
		return int(s[2] - '0'), true
	}
	return 0, false
}

// ParseReadme reads a station's <STA>.README.txt. Blocks it does not find are
// left nil, as gtsm_metadata.py returns None for them; a block it finds but
// cannot read is an error naming the line. name is used in error messages.
//
// Where gtsm_metadata.py is lenient in a way that would corrupt the result,
// this parser refuses instead: a tidal line with a constituent outside M2, O1,
// P1, K1, N2, S2 (Python would reuse the previous line's Doodson number), and a
// "CH" line after the tidal block's end (Python keeps reading "CH" lines to
// the end of the file, so a trend block after the tides would be read as
// tides; here the tidal block ends at the next block header).
func ParseReadme(name string, r io.Reader) (*Readme, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), " \t\r\n\v\f"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, len(lines)+1, err)
	}
	rd := &Readme{File: name}
	at := func(i int) int { return i + 1 } // 1-based line numbers in errors
	for _, b := range matrixBlocks {
		found := -1
		for i, l := range lines {
			if strings.HasPrefix(l, b.prefix) {
				found = i
				if !b.last {
					break
				}
			}
		}
		if found < 0 {
			continue
		}
		m := Matrix{Name: b.name}
		for row := 0; row < 3; row++ {
			i := found + b.skip + row
			if i >= len(lines) {
				return nil, fmt.Errorf("%s:%d: %s matrix: file ends before row %d", name, at(found), b.name, row+1)
			}
			f := strings.Fields(lines[i])
			if len(f) != 5 {
				return nil, fmt.Errorf("%s:%d: %s matrix row %d: %d fields, want a label and 4 numbers", name, at(i), b.name, row+1, len(f))
			}
			for g := 0; g < 4; g++ {
				v, err := parseFinite(f[g+1])
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %s matrix row %d: %w", name, at(i), b.name, row+1, err)
				}
				m.Values[row][g] = v
			}
		}
		rd.Matrices = append(rd.Matrices, m)
	}
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, headBaro) && rd.Atmp == nil:
			a, err := parseBaro(name, lines, i)
			if err != nil {
				return nil, err
			}
			rd.Atmp = a
		case strings.HasPrefix(l, headTides) && rd.Tides == nil:
			t, err := parseTides(name, lines, i)
			if err != nil {
				return nil, err
			}
			rd.Tides = t
		case strings.HasPrefix(l, headTrend) && rd.Trend == nil:
			t, err := parseTrend(name, lines, i)
			if err != nil {
				return nil, err
			}
			rd.Trend = t
		}
	}
	return rd, nil
}

// parseBaro reads the "CH" lines after the header up to CH3, as
// get_atmp_response does; the README gives nanostrain/hPa and Python stores
// value*1e-3, microstrain per hPa.
func parseBaro(name string, lines []string, h int) (*[4]float64, error) {
	var a [4]float64
	var have [4]bool
	for i := h + 1; i < len(lines); i++ {
		l := lines[i]
		if isHeader(l) {
			break
		}
		if !strings.HasPrefix(l, "CH") {
			continue
		}
		f := strings.Fields(l)
		g, ok := gaugeName(f[0])
		if !ok || len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: barometric response: want \"CHn value\", got %q", name, i+1, l)
		}
		v, err := parseFinite(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: barometric response %s: %w", name, i+1, f[0], err)
		}
		a[g] = v * 1e-3
		have[g] = true
		if g == 3 {
			break
		}
	}
	for g, ok := range have {
		if !ok {
			return nil, fmt.Errorf("%s:%d: barometric response has no CH%d line", name, h+1, g)
		}
	}
	return &a, nil
}

// parseTides reads "CHn NAME phase amplitude" lines up to the next block
// header, as get_tidal_params does (phase is field 2, amplitude field 3).
func parseTides(name string, lines []string, h int) ([]Constituent, error) {
	var out []Constituent
	for i := h + 1; i < len(lines); i++ {
		l := lines[i]
		if isHeader(l) {
			break
		}
		if !strings.HasPrefix(l, "CH") {
			continue
		}
		f := strings.Fields(l)
		g, ok := gaugeName(f[0])
		if !ok || len(f) < 4 {
			return nil, fmt.Errorf("%s:%d: tidal constituent: want \"CHn NAME phase amplitude\", got %q", name, i+1, l)
		}
		d, ok := doodson[f[1]]
		if !ok {
			return nil, fmt.Errorf("%s:%d: tidal constituent %q: not one of M2 O1 P1 K1 N2 S2", name, i+1, f[1])
		}
		phz, err := parseFinite(f[2])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: tidal constituent %s %s phase: %w", name, i+1, f[0], f[1], err)
		}
		amp, err := parseFinite(f[3])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: tidal constituent %s %s amplitude: %w", name, i+1, f[0], f[1], err)
		}
		for _, c := range out {
			if c.Gauge == g && c.Name == f[1] {
				return nil, fmt.Errorf("%s:%d: tidal constituent %s %s given twice", name, i+1, f[0], f[1])
			}
		}
		out = append(out, Constituent{Gauge: g, Name: f[1], Doodson: d, Phase: phz, Amplitude: amp})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:%d: tidal constituents block has no CH lines", name, h+1)
	}
	return out, nil
}

// parseTrend reads the key line and four gauge lines after the header, and
// the detrend date as field 3 of the line after them (get_detrend_params).
func parseTrend(name string, lines []string, h int) (*Trend, error) {
	if h+5 >= len(lines) {
		return nil, fmt.Errorf("%s:%d: borehole trend models: file ends before the four gauge lines", name, h+1)
	}
	keys := strings.Fields(lines[h+1])
	if len(keys) < 7 {
		return nil, fmt.Errorf("%s:%d: borehole trend models: want a label and the keys F A1 T1 M A2 T2, got %q", name, h+2, lines[h+1])
	}
	keys = keys[1:7]
	var t Trend
	var have [4]bool
	for row := 0; row < 4; row++ {
		i := h + 2 + row
		f := strings.Fields(lines[i])
		if len(f) < 7 {
			return nil, fmt.Errorf("%s:%d: borehole trend model: want a gauge and 6 numbers, got %q", name, i+1, lines[i])
		}
		g, ok := gaugeName(f[0])
		if !ok {
			return nil, fmt.Errorf("%s:%d: borehole trend model: %q is not CH0..CH3", name, i+1, f[0])
		}
		have[g] = true
		m := &t.Gauges[g]
		for k, key := range keys {
			v, err := parseFinite(f[k+1])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: borehole trend model %s %s: %w", name, i+1, f[0], key, err)
			}
			switch key {
			case "F":
				m.F = v
			case "A1":
				m.A1 = v
			case "T1":
				m.T1 = v
			case "M":
				m.M = v
			case "A2":
				m.A2 = v
			case "T2":
				m.T2 = v
			default:
				return nil, fmt.Errorf("%s:%d: borehole trend models: unknown key %q", name, h+2, key)
			}
		}
	}
	for g, ok := range have {
		if !ok {
			return nil, fmt.Errorf("%s:%d: borehole trend models have no CH%d line", name, h+1, g)
		}
	}
	if h+6 < len(lines) {
		if f := strings.Fields(lines[h+6]); len(f) > 3 {
			// processing.py parses it with strptime('%Y-%m-%dT%H:%M:%S').
			if _, err := time.Parse("2006-01-02T15:04:05", f[3]); err != nil {
				return nil, fmt.Errorf("%s:%d: detrend date %q: want YYYY-MM-DDTHH:MM:SS", name, h+7, f[3])
			}
			t.Date = f[3]
		}
	}
	return &t, nil
}
