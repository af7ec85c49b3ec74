package metadata

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/earthscope/gtsm-stream/sitecode"
)

// Bounds of a valid station record. The loader builds at most one matrix of
// each known name, one tidal constituent per gauge and name, and two
// sources; a record from the topic is held to the same (a real one is about
// 2 KB).
const (
	// MaxRecordBytes bounds an encoded record (Avro, with or without the
	// registry's 5-byte frame): a real record is about 2 KB.
	MaxRecordBytes = 64 << 10
	// MaxMatrices is one matrix per known name (lab, ER2010, KH2013,
	// CH2024, EM2024).
	MaxMatrices = 5
	// MaxConstituents is one constituent per gauge and known name (4 x 6).
	MaxConstituents = 4 * 6
	// MaxSources bounds the list of files a record was built from.
	MaxSources = 16
	// maxText bounds every free string (network, source file names).
	maxText = 1024
	// MinGap and MaxGap bound a plausible instrument gap (m): GTSM gaps
	// are 100-200 µm (bsm_metadata.txt; gtsm_metadata.py's default is
	// 100 µm); a factor ten either side is allowed. A gap of 0 would make
	// every microstrain exactly 0, a NaN gap every one NaN.
	MinGap = 1e-5
	MaxGap = 1e-3
	// MaxReference is one past the largest reference count: linearization
	// uses x0 = counts/1e8 in x0/(1-x0), which needs 0 < x0 < 1 (real
	// references are about 5e7).
	MaxReference = 100_000_000
)

// ErrInvalid is what every Validate and CheckSize error matches with
// errors.Is.
var ErrInvalid = errors.New("invalid station metadata")

var dayRE = regexp.MustCompile(`^[0-9]{4}:[0-9]{3}$`)

// knownMatrix is the set of matrix names the loader produces.
var knownMatrix = map[string]bool{MatrixLab: true, MatrixER2010: true, MatrixKH2013: true, MatrixCH2024: true, MatrixEM2024: true}

// CheckSize refuses an encoded record larger than MaxRecordBytes, before it
// is decoded.
func CheckSize(n int) error {
	if n > MaxRecordBytes {
		return fmt.Errorf("%w: record of %d bytes exceeds %d bytes", ErrInvalid, n, MaxRecordBytes)
	}
	return nil
}

// Validate is the one check of a station record, applied by `gtsm metadata
// load` to what it read from files before publishing and by the processor
// to every record it reads from the topic before using it: a site code,
// finite numbers in plausible ranges (gap, reference counts, coordinates,
// diameter), "YYYY:DDD" dates, known and unique matrix names with a lab
// matrix, known tidal constituents with their Doodson numbers, and bounded
// counts of matrices, constituents and sources. The error names the station
// and the field.
func Validate(s *Station) error {
	if err := sitecode.Check(s.Site); err != nil {
		return fmt.Errorf("%w: site: %w", ErrInvalid, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: station %s: %s", ErrInvalid, s.Site, fmt.Sprintf(format, a...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	within := func(name string, v, lo, hi float64) error {
		if !finite(v) || v < lo || v > hi {
			return bad("%s %v is not a number in [%v, %v]", name, v, lo, hi)
		}
		return nil
	}
	if len(s.Network) > maxText {
		return bad("network name of %d bytes", len(s.Network))
	}
	for _, c := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"latitude", s.Latitude, -90, 90},
		{"longitude", s.Longitude, -360, 360},
		{"elevation (m)", s.Elevation, -12000, 9000},
		{"gap (m)", s.Gap, MinGap, MaxGap},
		{"diameter (m)", s.Diameter, 0.01, 1},
		{"CH0 orientation (degrees)", s.Orientation, -360, 360},
	} {
		if err := within(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	for _, d := range []struct{ name, v string }{{"data start", s.DataStart}, {"linearization date", s.LinearDate}} {
		if !dayRE.MatchString(d.v) {
			return bad("%s %q: want YYYY:DDD", d.name, truncText(d.v))
		}
		if _, err := time.Parse("2006:002", d.v); err != nil {
			return bad("%s %q: not a day of the year", d.name, d.v)
		}
	}
	for g, r := range s.Reference {
		if r <= 0 || r >= MaxReference {
			return bad("reference counts of CH%d: %d is not in (0, %d)", g, r, MaxReference)
		}
	}
	if len(s.Matrices) > MaxMatrices {
		return bad("%d calibration matrices, at most %d (one per known name)", len(s.Matrices), MaxMatrices)
	}
	seen := map[string]bool{}
	for _, m := range s.Matrices {
		if !knownMatrix[m.Name] {
			return bad("calibration matrix %q: not one of lab, ER2010, KH2013, CH2024, EM2024", truncText(m.Name))
		}
		if seen[m.Name] {
			return bad("calibration matrix %s given twice", m.Name)
		}
		seen[m.Name] = true
		for i, row := range m.Values {
			for g, v := range row {
				if !finite(v) {
					return bad("calibration matrix %s row %d CH%d: %v is not a finite number", m.Name, i+1, g, v)
				}
			}
		}
	}
	if !seen[MatrixLab] {
		return bad("no lab matrix")
	}
	if s.Atmp != nil {
		for g, v := range s.Atmp {
			if !finite(v) {
				return bad("barometric response CH%d: %v is not a finite number", g, v)
			}
		}
	}
	if len(s.Tides) > MaxConstituents {
		return bad("%d tidal constituents, at most %d (one per gauge and constituent)", len(s.Tides), MaxConstituents)
	}
	type tideKey struct {
		g    int
		name string
	}
	tides := map[tideKey]bool{}
	for _, t := range s.Tides {
		if t.Gauge < 0 || t.Gauge > 3 {
			return bad("tidal constituent on gauge %d: not CH0..CH3", t.Gauge)
		}
		d, ok := doodson[t.Name]
		if !ok {
			return bad("tidal constituent %q: not one of M2 O1 P1 K1 N2 S2", truncText(t.Name))
		}
		if t.Doodson != d {
			return bad("tidal constituent CH%d %s: Doodson number %q, want %q", t.Gauge, t.Name, truncText(t.Doodson), d)
		}
		if !finite(t.Phase) || !finite(t.Amplitude) {
			return bad("tidal constituent CH%d %s: phase %v amplitude %v: not finite numbers", t.Gauge, t.Name, t.Phase, t.Amplitude)
		}
		k := tideKey{t.Gauge, t.Name}
		if tides[k] {
			return bad("tidal constituent CH%d %s given twice", t.Gauge, t.Name)
		}
		tides[k] = true
	}
	if s.Trend != nil {
		if s.Trend.Date != "" {
			if _, err := time.Parse("2006-01-02T15:04:05", s.Trend.Date); err != nil {
				return bad("detrend date %q: want YYYY-MM-DDTHH:MM:SS", truncText(s.Trend.Date))
			}
		}
		for g, m := range s.Trend.Gauges {
			for _, v := range []float64{m.F, m.A1, m.T1, m.M, m.A2, m.T2} {
				if !finite(v) {
					return bad("borehole trend model CH%d: %v is not a finite number", g, v)
				}
			}
		}
	}
	if len(s.Sources) > MaxSources {
		return bad("%d source files, at most %d", len(s.Sources), MaxSources)
	}
	for _, src := range s.Sources {
		if len(src) > maxText {
			return bad("source file name of %d bytes", len(src))
		}
	}
	return nil
}

// truncText cuts a hostile string before it goes into an error message.
func truncText(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// DecodeValid is how a consumer reads a gtsm_metadata value it will use:
// CheckSize, DecodeMessage, then Validate. It returns the station and the
// version the record carries.
func (c *Codec) DecodeValid(b []byte) (*Station, string, error) {
	if err := CheckSize(len(b)); err != nil {
		return nil, "", err
	}
	s, v, err := c.DecodeMessage(b)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := Validate(s); err != nil {
		return nil, "", err
	}
	// The version names the content in station_metadata and every
	// Level-2 row: it must be the one the loader computes.
	want, err := c.Version(s)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if v != want {
		return nil, "", fmt.Errorf("%w: station %s: version %q is not the content's version %s", ErrInvalid, s.Site, truncText(v), want)
	}
	return s, v, nil
}
