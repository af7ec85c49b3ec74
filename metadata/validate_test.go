package metadata

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate: every field the loader checks, attacked one at a time on a
// station built from the real test files.
func TestValidate(t *testing.T) {
	good := loadTSM5(t)
	if err := Validate(&good); err != nil {
		t.Fatalf("TSM5 from its files: %v", err)
	}
	clone := func() Station {
		s := good
		s.Matrices = append([]Matrix(nil), good.Matrices...)
		s.Tides = append([]Constituent(nil), good.Tides...)
		if good.Trend != nil {
			tr := *good.Trend
			s.Trend = &tr
		}
		if good.Atmp != nil {
			a := *good.Atmp
			s.Atmp = &a
		}
		return s
	}
	for _, tc := range []struct {
		name string
		edit func(*Station)
		want string
	}{
		{"site path", func(s *Station) { s.Site = "x/../../etc" }, "not a site code"},
		{"site lower case", func(s *Station) { s.Site = "tsm5" }, "not a site code"},
		{"NaN gap", func(s *Station) { s.Gap = math.NaN() }, "gap (m) NaN"},
		{"gap 0", func(s *Station) { s.Gap = 0 }, "gap (m) 0"},
		{"gap 1 m", func(s *Station) { s.Gap = 1 }, "gap (m) 1"},
		{"Inf latitude", func(s *Station) { s.Latitude = math.Inf(1) }, "latitude +Inf"},
		{"diameter 0", func(s *Station) { s.Diameter = 0 }, "diameter (m) 0"},
		{"reference 0", func(s *Station) { s.Reference[2] = 0 }, "reference counts of CH2"},
		{"reference 1e8", func(s *Station) { s.Reference[1] = 100_000_000 }, "reference counts of CH1"},
		{"NaN matrix", func(s *Station) { s.Matrices[0].Values[2][3] = math.NaN() }, "matrix lab row 3 CH3: NaN"},
		{"unknown matrix", func(s *Station) { s.Matrices = append(s.Matrices, Matrix{Name: "evil"}) }, `"evil": not one of`},
		{"matrix twice", func(s *Station) { s.Matrices = append(s.Matrices, s.Matrices[0]) }, "lab given twice"},
		{"8000 matrices", func(s *Station) {
			for i := range 8000 {
				s.Matrices = append(s.Matrices, Matrix{Name: fmt.Sprint(i)})
			}
		}, "8003 calibration matrices"},
		{"no lab", func(s *Station) { s.Matrices = s.Matrices[1:] }, "no lab matrix"},
		{"NaN barometric", func(s *Station) { s.Atmp[1] = math.NaN() }, "barometric response CH1"},
		{"tide gauge 7", func(s *Station) { s.Tides[0].Gauge = 7 }, "gauge 7"},
		{"tide doodson", func(s *Station) { s.Tides[0].Doodson = "9 9 9 9 9 9" }, "Doodson number"},
		{"tide NaN", func(s *Station) { s.Tides[0].Amplitude = math.NaN() }, "not finite"},
		{"too many tides", func(s *Station) {
			for range 30 {
				s.Tides = append(s.Tides, s.Tides[0])
			}
		}, "tidal constituents, at most 24"},
		{"tide twice", func(s *Station) { s.Tides[len(s.Tides)-1] = s.Tides[0] }, "given twice"},
		{"trend Inf", func(s *Station) { s.Trend.Gauges[3].T2 = math.Inf(-1) }, "trend model CH3"},
		{"trend date", func(s *Station) { s.Trend.Date = "yesterday" }, "detrend date"},
		{"linear date", func(s *Station) { s.LinearDate = "2022-06-03" }, "linearization date"},
		{"day 400", func(s *Station) { s.DataStart = "2022:400" }, "not a day of the year"},
		{"sources", func(s *Station) { s.Sources = make([]string, 100) }, "100 source files"},
		{"network", func(s *Station) { s.Network = strings.Repeat("N", 5000) }, "network name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := clone()
			tc.edit(&s)
			err := Validate(&s)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalid saying %q", err, tc.want)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
		})
	}
}

func loadTSM5(t *testing.T) Station {
	t.Helper()
	st, err := LoadFiles([]string{"testdata/bsm_metadata.txt", "testdata/TSM5.README.txt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Site == "TSM5" {
			return s
		}
	}
	t.Fatal("no TSM5")
	return Station{}
}

// TestDecodeValid: the processor's intake refuses an oversize record before
// decoding it, and a record whose version is not its content's.
func TestDecodeValid(t *testing.T) {
	c, err := NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	s := loadTSM5(t)
	b, v, err := c.Encode(&s)
	if err != nil {
		t.Fatal(err)
	}
	if got, gv, err := c.DecodeValid(b); err != nil || gv != v || got.Site != "TSM5" {
		t.Fatalf("DecodeValid(valid) = %v, %q, %v", got, gv, err)
	}
	if _, _, err := c.DecodeValid(make([]byte, MaxRecordBytes+1)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize: %v", err)
	}
	forged, err := c.c.BinaryFromNative(nil, native(&s, "0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.DecodeValid(forged); err == nil || !strings.Contains(err.Error(), "not the content's version") {
		t.Fatalf("forged version: %v", err)
	}
}

// TestLoaderRefusesWhatProcessorRefuses: a table row that parses but fails
// validation (a site code that is not one, a gap of 1 m) is refused by
// LoadFiles, naming the file and line.
func TestLoaderRefusesWhatProcessorRefuses(t *testing.T) {
	head := "BNUM LAT LONG ELEV(m) GAP(m) CH0(EofN) DATA_START L_DATE L0(cnts) L1(cnts) L2(cnts) L3(cnts)\n"
	for _, tc := range []struct{ row, want string }{
		{"b009 40.6 -124.2 48.0 0.0001 15.0 2006:060 2006:061 48000000 49000000 50000000 51000000\n", "not a site code"},
		{"B009 40.6 -124.2 48.0 1.0 15.0 2006:060 2006:061 48000000 49000000 50000000 51000000\n", "gap (m) 1"},
		{"B009 40.6 -124.2 48.0 0.0001 15.0 2006:060 2006:061 0 49000000 50000000 51000000\n", "reference counts of CH0"},
	} {
		p := filepath.Join(t.TempDir(), "bsm_metadata.txt")
		if err := os.WriteFile(p, []byte(head+tc.row), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadFiles([]string{p})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p+":2") {
			t.Errorf("LoadFiles(%q) = %v, want %q naming %s:2", tc.row, err, tc.want, p)
		}
	}
}
