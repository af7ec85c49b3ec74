// Package metadata owns EarthScope station metadata for GTSM borehole
// strainmeters: the network table bsm_metadata.txt (one line a station:
// position, instrument gap, CH0 orientation, linearization references) and
// each station's Level-2 <STA>.README.txt (calibration matrices, barometric
// response, tidal constituents, borehole trend models). It parses both formats
// exactly as EarthScope's gtsm_metadata.py reads them (see
// ../shared/reference/earthscopestraintools/gtsm_metadata.py), combines them
// into one Station record, and encodes that record as Avro
// (avro_schemas/gtsm_metadata-value.avsc) for the compacted gtsm_metadata topic.
//
// Every parse error names the file and the 1-based line it is about.
package metadata

import (
	"fmt"
	"math"
)

// Diameter is the GTSM sensing diameter in metres; gtsm_metadata.py hard-codes
// it (self.diameter = 0.087) and processing.linearize divides the gap by it.
const Diameter = 0.087

// DefaultGap is the instrument gap (m) gtsm_metadata.get_gap falls back to when
// the table has none for a station.
const DefaultGap = 0.0001

// Matrix names, in the order GtsmMetadata builds strain_matrices. CH_prelim is
// a deprecated alias of CH2024 in gtsm_metadata.py and is not repeated here.
const (
	MatrixLab    = "lab"
	MatrixER2010 = "ER2010"
	MatrixKH2013 = "KH2013"
	MatrixCH2024 = "CH2024"
	MatrixEM2024 = "EM2024"
)

// Matrix is a 3x4 calibration matrix: rows are areal (Eee+Enn), differential
// (Eee-Enn) and engineering shear (2Ene); columns gauges CH0..CH3.
type Matrix struct {
	Name   string
	Values [3][4]float64
}

// Constituent is one line of the README's "Tidal Constituents" block: the
// amplitude (nanostrain, as hartid takes it) and local phase (degrees) of one
// tidal constituent on one gauge, with the Doodson number gtsm_metadata.py
// assigns to its name.
type Constituent struct {
	Gauge     int // 0..3
	Name      string
	Doodson   string // exactly as gtsm_metadata.get_tidal_params writes it, e.g. "1-1 0 0 0 0"
	Phase     float64
	Amplitude float64
}

// TrendModel is one gauge's double-exponential borehole trend:
// F + A1*exp(T1*days) + M*days + A2*exp(T2*days) (processing.py
// calculate_double_exponential_trend_correction).
type TrendModel struct {
	F, A1, T1, M, A2, T2 float64
}

// Trend is the README's "Borehole Trend Models" block.
type Trend struct {
	Date   string // detrend start, "%Y-%m-%dT%H:%M:%S"; "" when the README has none
	Gauges [4]TrendModel
}

// Station is everything Level-2 processing needs to know about one station.
// Pointer and slice fields are nil when the station's metadata lacks them.
type Station struct {
	Network     string
	Site        string
	Latitude    float64
	Longitude   float64
	Elevation   float64 // m
	Gap         float64 // m
	Diameter    float64 // m
	Orientation float64 // CH0 degrees east of north
	DataStart   string  // "YYYY:DDD" as in the table
	LinearDate  string  // "YYYY:DDD": the date the references were taken
	Reference   [4]int64
	Matrices    []Matrix      // lab first (from the README, else computed from Orientation)
	Atmp        *[4]float64   // barometric response, microstrain per hPa
	Tides       []Constituent // empty when the README has no tidal constituents
	Trend       *Trend
	Sources     []string // the files this record was built from
}

// Matrix returns the named calibration matrix, or nil.
func (s *Station) Matrix(name string) *Matrix {
	for i := range s.Matrices {
		if s.Matrices[i].Name == name {
			return &s.Matrices[i]
		}
	}
	return nil
}

// LabMatrix computes the manufacturer's isotropic strain matrix from the CH0
// orientation, as GtsmMetadata.make_weighted_strain_matrix does with all four
// gauges weighted 1: inv(diag(1.5, 3, 3)) * pinv(O), where O's rows are
// (0.5, 0.5cos2θi, 0.5sin2θi) for the gauge azimuths θi = 90, -30, -150, -120
// degrees minus the orientation. pinv(O) = (OᵀO)⁻¹Oᵀ since O has full column
// rank for any orientation (the four gauges are 60° and 30° apart).
func LabMatrix(orientation float64) [3][4]float64 {
	az := [4]float64{90, -30, -150, -120}
	var o [4][3]float64
	for i, a := range az {
		r := 2 * (a - orientation) * math.Pi / 180
		o[i] = [3]float64{0.5, 0.5 * math.Cos(r), 0.5 * math.Sin(r)}
	}
	var ata [3][3]float64
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				ata[i][j] += o[k][i] * o[k][j]
			}
		}
	}
	inv := inverse3(ata)
	scale := [3]float64{1.5, 3, 3}
	var m [3][4]float64
	for i := 0; i < 3; i++ {
		for g := 0; g < 4; g++ {
			var v float64
			for k := 0; k < 3; k++ {
				v += inv[i][k] * o[g][k]
			}
			m[i][g] = v / scale[i]
		}
	}
	return m
}

func inverse3(a [3][3]float64) [3][3]float64 {
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) -
		a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) +
		a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	var r [3][3]float64
	r[0][0] = (a[1][1]*a[2][2] - a[1][2]*a[2][1]) / det
	r[0][1] = (a[0][2]*a[2][1] - a[0][1]*a[2][2]) / det
	r[0][2] = (a[0][1]*a[1][2] - a[0][2]*a[1][1]) / det
	r[1][0] = (a[1][2]*a[2][0] - a[1][0]*a[2][2]) / det
	r[1][1] = (a[0][0]*a[2][2] - a[0][2]*a[2][0]) / det
	r[1][2] = (a[0][2]*a[1][0] - a[0][0]*a[1][2]) / det
	r[2][0] = (a[1][0]*a[2][1] - a[1][1]*a[2][0]) / det
	r[2][1] = (a[0][1]*a[2][0] - a[0][0]*a[2][1]) / det
	r[2][2] = (a[0][0]*a[1][1] - a[0][1]*a[1][0]) / det
	return r
}

// Combine builds a station's record from its table row and its README (nil
// when the station has none). Without a README lab matrix the lab matrix is
// computed from the table's CH0 orientation.
func Combine(row TableRow, rd *Readme) Station {
	s := Station{
		Network:     row.Network,
		Site:        row.Site,
		Latitude:    row.Latitude,
		Longitude:   row.Longitude,
		Elevation:   row.Elevation,
		Gap:         row.Gap,
		Diameter:    Diameter,
		Orientation: row.Orientation,
		DataStart:   row.DataStart,
		LinearDate:  row.LinearDate,
		Reference:   row.Reference,
		Sources:     []string{fmt.Sprintf("%s:%d", row.File, row.Line)},
	}
	if rd != nil {
		s.Sources = append(s.Sources, rd.File)
		s.Atmp = rd.Atmp
		s.Tides = rd.Tides
		s.Trend = rd.Trend
	}
	if rd != nil && rd.Matrix(MatrixLab) != nil {
		s.Matrices = append(s.Matrices, *rd.Matrix(MatrixLab))
	} else {
		s.Matrices = append(s.Matrices, Matrix{Name: MatrixLab, Values: LabMatrix(row.Orientation)})
	}
	if rd != nil {
		for _, m := range rd.Matrices {
			if m.Name != MatrixLab {
				s.Matrices = append(s.Matrices, m)
			}
		}
	}
	return s
}
