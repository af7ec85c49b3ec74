package metadata

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/linkedin/goavro/v2"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
)

// Codec encodes and decodes Station as gtsm_metadata-value.avsc (plain Avro
// binary, no Confluent framing: the registry framing is the producer's job).
type Codec struct {
	c *goavro.Codec
}

// NewCodec compiles the embedded schema.
func NewCodec() (*Codec, error) {
	c, err := goavro.NewCodec(avroschemas.Metadata)
	if err != nil {
		return nil, fmt.Errorf("gtsm_metadata-value.avsc: %w", err)
	}
	return &Codec{c: c}, nil
}

// Version is the station record's content version: the first 16 hex digits
// of sha256 over its Avro encoding with the version field and the source
// file names empty. The same metadata always gets the same version, wherever
// its files were loaded from, so a Level-2 row can name the metadata it was
// computed with.
func (c *Codec) Version(s *Station) (string, error) {
	content := *s
	content.Sources = nil
	b, err := c.c.BinaryFromNative(nil, native(&content, ""))
	if err != nil {
		return "", fmt.Errorf("station %s: encode: %w", s.Site, err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8]), nil
}

// Encode returns the Avro binary of s with its version filled in, and the version.
func (c *Codec) Encode(s *Station) ([]byte, string, error) {
	v, err := c.Version(s)
	if err != nil {
		return nil, "", err
	}
	b, err := c.c.BinaryFromNative(nil, native(s, v))
	if err != nil {
		return nil, "", fmt.Errorf("station %s: encode: %w", s.Site, err)
	}
	return b, v, nil
}

// DecodeMessage decodes a gtsm_metadata Kafka value: Confluent-framed (magic
// byte 0 and a 4-byte schema id, as gtsm metadata load writes it) or bare
// Avro. The frame's schema id is not resolved: gtsm_metadata-value has one
// schema, this package's. A bare record cannot start with byte 0: its first
// field is the 16-character version string (Avro length byte 0x20).
func (c *Codec) DecodeMessage(b []byte) (*Station, string, error) {
	if len(b) >= 5 && b[0] == 0 {
		b = b[5:]
	}
	return c.Decode(b)
}

// Decode parses an Avro binary record; it returns the station and the
// version it carries. Trailing bytes are an error.
func (c *Codec) Decode(b []byte) (*Station, string, error) {
	n, rest, err := c.c.NativeFromBinary(b)
	if err != nil {
		return nil, "", fmt.Errorf("gtsm_metadata record: decode: %w", err)
	}
	if len(rest) != 0 {
		return nil, "", fmt.Errorf("gtsm_metadata record: %d trailing bytes", len(rest))
	}
	m := n.(map[string]any)
	s := &Station{
		Network:     m["network"].(string),
		Site:        m["site"].(string),
		Latitude:    m["latitude"].(float64),
		Longitude:   m["longitude"].(float64),
		Elevation:   m["elevation_m"].(float64),
		Gap:         m["gap_m"].(float64),
		Diameter:    m["diameter_m"].(float64),
		Orientation: m["ch0_east_of_north"].(float64),
		DataStart:   m["data_start"].(string),
		LinearDate:  m["linear_date"].(string),
	}
	refs := m["reference_counts"].([]any)
	if len(refs) != 4 {
		return nil, "", fmt.Errorf("gtsm_metadata record %s: %d reference counts, want 4", s.Site, len(refs))
	}
	for g := range refs {
		s.Reference[g] = refs[g].(int64)
	}
	for _, x := range m["matrices"].([]any) {
		mm := x.(map[string]any)
		vals := mm["values"].([]any)
		if len(vals) != 12 {
			return nil, "", fmt.Errorf("gtsm_metadata record %s: matrix %v has %d values, want 12", s.Site, mm["name"], len(vals))
		}
		mat := Matrix{Name: mm["name"].(string)}
		for k, v := range vals {
			mat.Values[k/4][k%4] = v.(float64)
		}
		s.Matrices = append(s.Matrices, mat)
	}
	if u, ok := m["atmp_response"].(map[string]any); ok && u != nil {
		a := u["array"].([]any)
		if len(a) != 4 {
			return nil, "", fmt.Errorf("gtsm_metadata record %s: %d barometric coefficients, want 4", s.Site, len(a))
		}
		var v [4]float64
		for g := range a {
			v[g] = a[g].(float64)
		}
		s.Atmp = &v
	}
	for _, x := range m["tides"].([]any) {
		t := x.(map[string]any)
		s.Tides = append(s.Tides, Constituent{Gauge: int(t["gauge"].(int32)), Name: t["name"].(string), Doodson: t["doodson"].(string),
			Phase: t["phase_deg"].(float64), Amplitude: t["amplitude_nanostrain"].(float64)})
	}
	if u, ok := m["trend"].(map[string]any); ok && u != nil {
		tr := u["gtsm_metadata.trend"].(map[string]any)
		gs := tr["gauges"].([]any)
		if len(gs) != 4 {
			return nil, "", fmt.Errorf("gtsm_metadata record %s: %d trend models, want 4", s.Site, len(gs))
		}
		t := &Trend{Date: tr["date"].(string)}
		for g, x := range gs {
			tm := x.(map[string]any)
			t.Gauges[g] = TrendModel{F: tm["F"].(float64), A1: tm["A1"].(float64), T1: tm["T1"].(float64),
				M: tm["M"].(float64), A2: tm["A2"].(float64), T2: tm["T2"].(float64)}
		}
		s.Trend = t
	}
	for _, x := range m["sources"].([]any) {
		s.Sources = append(s.Sources, x.(string))
	}
	return s, m["version"].(string), nil
}

func native(s *Station, version string) map[string]any {
	refs := make([]any, 4)
	for g, r := range s.Reference {
		refs[g] = r
	}
	mats := make([]any, 0, len(s.Matrices))
	for _, m := range s.Matrices {
		vals := make([]any, 0, 12)
		for _, row := range m.Values {
			for _, v := range row {
				vals = append(vals, v)
			}
		}
		mats = append(mats, map[string]any{"name": m.Name, "values": vals})
	}
	var atmp any
	if s.Atmp != nil {
		a := make([]any, 4)
		for g, v := range s.Atmp {
			a[g] = v
		}
		atmp = goavro.Union("array", a)
	}
	tides := make([]any, 0, len(s.Tides))
	for _, t := range s.Tides {
		tides = append(tides, map[string]any{"gauge": int32(t.Gauge), "name": t.Name, "doodson": t.Doodson,
			"phase_deg": t.Phase, "amplitude_nanostrain": t.Amplitude})
	}
	var trend any
	if s.Trend != nil {
		gs := make([]any, 4)
		for g, m := range s.Trend.Gauges {
			gs[g] = map[string]any{"F": m.F, "A1": m.A1, "T1": m.T1, "M": m.M, "A2": m.A2, "T2": m.T2}
		}
		trend = goavro.Union("gtsm_metadata.trend", map[string]any{"date": s.Trend.Date, "gauges": gs})
	}
	src := make([]any, len(s.Sources))
	for i, x := range s.Sources {
		src[i] = x
	}
	return map[string]any{
		"version": version, "network": s.Network, "site": s.Site,
		"latitude": s.Latitude, "longitude": s.Longitude, "elevation_m": s.Elevation,
		"gap_m": s.Gap, "diameter_m": s.Diameter, "ch0_east_of_north": s.Orientation,
		"data_start": s.DataStart, "linear_date": s.LinearDate, "reference_counts": refs,
		"matrices": mats, "atmp_response": atmp, "tides": tides, "trend": trend, "sources": src,
	}
}
