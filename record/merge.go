package record

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/earthscope/gtsm-stream/bottle"
)

// Merge turns the bottle files of one site and one session into gtsm_etl
// records: one record per distinct sample time found in any file, in time
// order, each carrying every channel that has a sample at that instant. On the
// Day session the 1800 s ancillary and the hourly RTSetting/Cal channels thus
// join the 600 s strain records at the same instants. Missing samples (the
// header's fill value) are null; an instant at which every channel is missing
// still gives a record, so consumers see the logger's timeline and its gaps.
//
// Float channels are carried as ScaleFloat(v): round(v × 10000), the SEED
// convention. Two files giving different values for the same field at the
// same instant are an error, as is a value that does not fit an Avro int.
//
// Merge returns all records at once; Merger gives the same records a chunk at
// a time, in memory that does not grow with the files' length.
func Merge(files []*bottle.File) ([]Record, error) {
	if len(files) == 0 {
		return nil, nil
	}
	m, err := NewMerger(files)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	total := 0
	for _, f := range files {
		total += f.Len()
	}
	out := make([]Record, 0, max(1024, min(total, 1<<20)))
	for {
		if cap(out)-len(out) < 1024 {
			out = slices.Grow(out, len(out))
		}
		n, err := m.Next(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Merger is Merge as a stream: each file's samples are read in chunks
// (bottle.Samples) and merged by time, so memory is a chunk per file plus the
// records asked for, whatever the files' length. A file's sample times
// increase strictly (start + i × interval, interval > 0), so merging the
// files' cursors by their current time gives every distinct instant once, in
// order.
type Merger struct {
	site    string
	session bottle.Session
	curs    []cursor
	ts      []byte // timestamps of the records of one Next call
	ends    []int
	err     error // sticky
}

// cursor is one file's position in a Merger.
type cursor struct {
	f           *bottle.File
	field       int
	s           *bottle.Samples
	start, step int64 // sample 0's time and the interval, ms
	ints        []int32
	floats      []float32
	first, pos  int   // sample index of the chunk's start; position in it
	t           int64 // time of the current sample
	done        bool
}

// NewMerger checks that files are of one site and session, with channels
// that map to gtsm_etl int fields, and opens their samples. Close releases
// them.
func NewMerger(files []*bottle.File) (*Merger, error) {
	if len(files) == 0 {
		return &Merger{}, nil
	}
	m := &Merger{site: files[0].Info.Site, session: files[0].Info.Session}
	fields := make([]int, len(files))
	for k, f := range files {
		if f.Info.Site == "" || f.Info.Field == "" {
			return nil, fmt.Errorf("merge %s: file has no name info (site/channel); read it with bottle.ReadFile or bottle.Walk", f.Name)
		}
		if f.Info.Site != m.site || f.Info.Session != m.session {
			return nil, fmt.Errorf("merge: %s is %s %s but %s is %s %s; merge one site and session at a time",
				f.Name, f.Info.Site, f.Info.Session, files[0].Name, m.site, m.session)
		}
		i, ok := FieldIndex(f.Info.Field)
		if !ok || i < FirstInt {
			return nil, fmt.Errorf("merge %s: channel %s maps to %q, not a gtsm_etl int field", f.Name, f.Info.Channel, f.Info.Field)
		}
		fields[k] = i
	}
	m.curs = make([]cursor, len(files))
	for k, f := range files {
		s, err := f.Samples()
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("merge %s: %w", f.Name, err)
		}
		c := &m.curs[k]
		*c = cursor{f: f, field: fields[k], s: s, start: f.Header.StartMs(), step: f.Header.IntervalMs()}
		if err := c.load(); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// load reads the cursor's next chunk, or marks it done.
func (c *cursor) load() error {
	first, ints, floats, err := c.s.Next()
	if err == io.EOF {
		c.done = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("merge %s: %w", c.f.Name, err)
	}
	c.first, c.pos, c.ints, c.floats = first, 0, ints, floats
	c.t = c.start + int64(first)*c.step
	return nil
}

// advance moves to the next sample.
func (c *cursor) advance() error {
	c.pos++
	if c.pos == len(c.ints)+len(c.floats) {
		return c.load()
	}
	c.t += c.step
	return nil
}

// value is the current sample as an Avro int, and whether it is the fill value.
func (c *cursor) value() (v int32, missing bool, err error) {
	h := &c.f.Header
	if c.floats == nil {
		v := c.ints[c.pos]
		return v, h.MissingInt(v), nil
	}
	x := c.floats[c.pos]
	if h.MissingFloat(x) {
		return 0, true, nil
	}
	v, ok := ScaleFloat(x)
	if !ok {
		return 0, false, fmt.Errorf("%s: sample %d: float %v × 10000 does not fit an Avro int", c.f.Name, c.first+c.pos, x)
	}
	return v, false, nil
}

// Next fills dst with the next records in time order and returns how many.
// At the end it returns 0, io.EOF; after an error it returns that error
// again. The records' Timestamp strings share one allocation per call.
func (m *Merger) Next(dst []Record) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	m.ts, m.ends = m.ts[:0], m.ends[:0]
	n := 0
	for n < len(dst) {
		t, found := int64(math.MaxInt64), false
		for k := range m.curs {
			if c := &m.curs[k]; !c.done && c.t <= t {
				t, found = c.t, true
			}
		}
		if !found {
			break
		}
		r := &dst[n]
		*r = Record{Site: m.site, Time: t, Session: m.session, Set: 1<<FieldSite | 1<<FieldTime | 1<<FieldTimestamp}
		for k := range m.curs {
			c := &m.curs[k]
			if c.done || c.t != t {
				continue
			}
			v, missing, err := c.value()
			if err != nil {
				m.err = err
				return 0, err
			}
			if !missing {
				bit := uint64(1) << uint(c.field)
				if r.Set&bit != 0 && r.Ints[c.field-FirstInt] != v {
					m.err = fmt.Errorf("merge %s: sample %d (%s) gives %s = %d, but another file gave %d at the same instant",
						c.f.Name, c.first+c.pos, FormatTimestamp(t), FieldNames[c.field], v, r.Ints[c.field-FirstInt])
					return 0, m.err
				}
				r.SetInt(c.field, v)
			}
			if err := c.advance(); err != nil {
				m.err = err
				return 0, err
			}
		}
		m.ts = appendTimestamp(m.ts, t)
		m.ends = append(m.ends, len(m.ts))
		n++
	}
	if n == 0 {
		return 0, io.EOF
	}
	// One string for all the timestamps of this call: one allocation
	// instead of one per record.
	all := string(m.ts)
	start := 0
	for i := range n {
		dst[i].Timestamp = all[start:m.ends[i]]
		start = m.ends[i]
	}
	return n, nil
}

// Close releases the files' samples.
func (m *Merger) Close() error {
	var errs []error
	for k := range m.curs {
		if s := m.curs[k].s; s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// FloatScale is the factor float channels are multiplied by before rounding:
// the SEED convention the EarthScope tools use (0.0001 units per count; for
// PressureKPa that is 0.1 Pa, i.e. 0.001 hPa per count).
const FloatScale = 10000

// ScaleFloat converts a float32 channel sample to the int carried in the
// record: round(float64(v) × 10000), half away from zero (math.Round), as the
// SEED convention prescribes. ok is false for NaN, ±Inf and values whose
// scaled form does not fit an int32.
func ScaleFloat(v float32) (int32, bool) {
	x := math.Round(float64(v) * FloatScale)
	if math.IsNaN(x) || x < math.MinInt32 || x > math.MaxInt32 {
		return 0, false
	}
	return int32(x), true
}

// InferSession tells a record's session from which fields are set: rs*,
// ancillary and calibration fields are Day, ls* Hour, bs* Min. A record with
// no data field set is Min when its time has milliseconds (only 20 sps
// samples fall between seconds) and unknown otherwise; a record mixing the
// fields of two sessions is unknown.
func InferSession(r *Record) (bottle.Session, bool) {
	const (
		hour = uint64(0xF) << (FirstInt + 4)
		min  = uint64(0xF) << (FirstInt + 8)
		data = (uint64(1)<<NumFields - 1) &^ (1<<FirstInt - 1)
		day  = data &^ hour &^ min
	)
	d, h, m := r.Set&day != 0, r.Set&hour != 0, r.Set&min != 0
	switch {
	case d && !h && !m:
		return bottle.Day, true
	case h && !d && !m:
		return bottle.Hour, true
	case m && !d && !h:
		return bottle.Min, true
	case !d && !h && !m && r.IsSet(FieldTime) && r.Time%1000 != 0:
		return bottle.Min, true
	}
	return 0, false
}
