package level2

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// State is a station machine's entire state. Its size is bounded (see
// docs/level2.md): a few kilobytes of filter delay lines and offset window,
// plus up to InterpLimit buffered seconds while a hole is open.
type State struct {
	Started bool
	LastT   int64 // last pushed second
	Gauge   [4]gaugeState
	// Buf holds the seconds, in order, from the first one still waiting for
	// a hole on some gauge to close (Pending bit set) up to the last pushed.
	Buf   []bufRow
	Seg   segment
	Off   offsets
	Trend trendFit
	Press pressure
}

// gaugeState is one gauge's interpolation state: its last valid sample and
// the run of missing seconds after it.
type gaugeState struct {
	HasLast  bool
	LastT    int64
	LastV    float64
	InRun    bool
	RunStart int64
}

type bufRow struct {
	T       int64
	V       [4]float64
	Pending uint8 // bit g: gauge g is NaN here, to be interpolated when its hole closes
	Interp  uint8 // bit g: gauge g was missing here (Pending as first buffered)
}

// segment is the decimation of one continuous run of valid seconds.
type segment struct {
	Open    bool
	Aligned bool
	LastT   int64
	Initial [4]float64
	Z       [5][4][]float64 // FIR delay lines per stage and gauge
	Count   [5]int          // position within each stage's decimation factor
}

func newSegment() segment {
	var s segment
	for i, stg := range stages {
		for g := range s.Z[i] {
			s.Z[i][g] = make([]float64, len(stg.b)-1)
		}
	}
	return s
}

type pressure struct {
	Has   bool
	LastT int64
	LastV float64
}

func newState() State {
	return State{Seg: newSegment()}
}

// MarshalBinary encodes the machine's state (encoding/gob).
func (m *Machine) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&m.st); err != nil {
		return nil, fmt.Errorf("level2: encode state: %w", err)
	}
	return b.Bytes(), nil
}

// UnmarshalBinary restores a state MarshalBinary encoded.
func (m *Machine) UnmarshalBinary(data []byte) error {
	var st State
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&st); err != nil {
		return fmt.Errorf("level2: decode state (%d bytes): %w", len(data), err)
	}
	for i, stg := range stages {
		for g := range st.Seg.Z[i] {
			if len(st.Seg.Z[i][g]) != len(stg.b)-1 {
				// gob omits zero-length slices; a segment not yet started
				// has none. Any other length is corrupt.
				if len(st.Seg.Z[i][g]) != 0 {
					return fmt.Errorf("level2: decode state: stage %d gauge %d delay line has %d taps, want %d", i, g, len(st.Seg.Z[i][g]), len(stg.b)-1)
				}
				st.Seg.Z[i][g] = make([]float64, len(stg.b)-1)
			}
		}
	}
	m.st = st
	return nil
}
