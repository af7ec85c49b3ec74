package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/linkedin/goavro/v2"
)

// A writer decodes messages written with one schema id. Schemas with our
// exact layout take the specialised codec; any other is decoded by goavro
// with the writer's schema and resolved to record.Record by field name, the
// way an Avro reader resolves a writer schema against its own:
//   - writer fields we do not know are skipped;
//   - our fields the writer lacks are null (Flink writes only the columns of
//     its table, as ["null","int"] unions);
//   - unions in any order or none at all (a plain "int" field), and the
//     promotions Avro allows into our types: int -> long for time,
//     bytes -> string for site and timestamp.
type writer struct {
	fast  bool
	codec *goavro.Codec
	index map[string]int // writer field name -> our value field position
	key   bool
}

var fastKey = &writer{fast: true, key: true}

// avroField is a record field of a parsed schema.
type avroField struct {
	Name string          `json:"name"`
	Type json.RawMessage `json:"type"`
}

type avroRecord struct {
	Type   any         `json:"type"`
	Fields []avroField `json:"fields"`
}

// parseRecordSchema parses a schema that must be a record.
func parseRecordSchema(schema string) (*avroRecord, error) {
	var rec avroRecord
	if err := json.Unmarshal([]byte(schema), &rec); err != nil {
		// A bare primitive such as "string" is valid Avro but not a record.
		return nil, fmt.Errorf("not an Avro record schema: %w", err)
	}
	if rec.Type != "record" {
		return nil, fmt.Errorf("not an Avro record schema (type %v)", rec.Type)
	}
	return &rec, nil
}

// branches lists the types of a field: the members of a union, or the one
// type. Each is the primitive name, with "/logicalType" appended when set;
// complex types are given by their "type" (record, array, ...).
func branches(raw json.RawMessage) (types []string, err error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	one := func(m any) string {
		switch t := m.(type) {
		case string:
			return t
		case map[string]any:
			name, _ := t["type"].(string)
			if lt, ok := t["logicalType"].(string); ok {
				return name + "/" + lt
			}
			return name
		}
		return fmt.Sprintf("%v", m)
	}
	if u, ok := v.([]any); ok {
		for _, m := range u {
			types = append(types, one(m))
		}
		return types, nil
	}
	return []string{one(v)}, nil
}

// checkValueLayout says whether schema is the gtsm_etl value layout that
// record.AppendAvro writes: the 59 fields in order, each a [T, "null"] union
// with T string, long (or timestamp-millis long) or int.
func checkValueLayout(schema string) error {
	rec, err := parseRecordSchema(schema)
	if err != nil {
		return err
	}
	if len(rec.Fields) != record.NumFields {
		return fmt.Errorf("has %d fields, the gtsm_etl layout has %d", len(rec.Fields), record.NumFields)
	}
	for i, f := range rec.Fields {
		if f.Name != record.FieldNames[i] {
			return fmt.Errorf("field %d is %q, want %q", i, f.Name, record.FieldNames[i])
		}
		want := "int"
		switch i {
		case record.FieldSite, record.FieldTimestamp:
			want = "string"
		case record.FieldTime:
			want = "long"
		}
		ts, err := branches(f.Type)
		if err != nil {
			return fmt.Errorf("field %q: %w", f.Name, err)
		}
		if len(ts) != 2 || ts[1] != "null" || (ts[0] != want && !(want == "long" && ts[0] == "long/timestamp-millis")) {
			return fmt.Errorf("field %q has type %s, want [%q,\"null\"]", f.Name, f.Type, want)
		}
	}
	return nil
}

// checkKeyLayout says whether schema is the key record {site: string}.
func checkKeyLayout(schema string) error {
	rec, err := parseRecordSchema(schema)
	if err != nil {
		return err
	}
	if len(rec.Fields) != 1 || rec.Fields[0].Name != "site" {
		return fmt.Errorf("want exactly one field, site")
	}
	if ts, err := branches(rec.Fields[0].Type); err != nil || len(ts) != 1 || ts[0] != "string" {
		return fmt.Errorf("field site has type %s, want \"string\"", rec.Fields[0].Type)
	}
	return nil
}

// resolvable lists the writer types each of our field kinds can read.
var resolvable = map[string][]string{
	"string": {"string", "bytes"},
	"long":   {"long", "int", "long/timestamp-millis"},
	"int":    {"int"},
}

func ourType(i int) string {
	switch i {
	case record.FieldSite, record.FieldTimestamp:
		return "string"
	case record.FieldTime:
		return "long"
	}
	return "int"
}

func newWriter(schema string, key bool) (*writer, error) {
	if key {
		if checkKeyLayout(schema) == nil {
			return fastKey, nil
		}
	} else if checkValueLayout(schema) == nil {
		return &writer{fast: true}, nil
	}
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	w := &writer{codec: codec, key: key, index: map[string]int{}}
	if key {
		// A key is either a record with a site field or a bare string.
		if ts, err := branches(json.RawMessage(schema)); err == nil && len(ts) == 1 && ts[0] == "string" {
			return w, nil
		}
		rec, err := parseRecordSchema(schema)
		if err != nil {
			return nil, fmt.Errorf("key schema is neither a string nor a record with a site field: %w", err)
		}
		for _, f := range rec.Fields {
			if f.Name == "site" {
				return w, nil
			}
		}
		return nil, errors.New("key record has no site field")
	}
	rec, err := parseRecordSchema(schema)
	if err != nil {
		return nil, err
	}
	for _, f := range rec.Fields {
		i, ok := record.FieldIndex(f.Name)
		if !ok {
			continue // a field we do not read
		}
		ts, err := branches(f.Type)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		ok = false
		for _, t := range ts {
			for _, r := range resolvable[ourType(i)] {
				ok = ok || t == r
			}
		}
		if !ok {
			return nil, fmt.Errorf("field %q has type %s, which cannot be read as %s", f.Name, f.Type, ourType(i))
		}
		w.index[f.Name] = i
	}
	return w, nil
}

// goavroErr classifies a goavro decoding error.
func goavroErr(err error) error {
	if strings.Contains(err.Error(), "short buffer") {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %v", record.ErrCorrupt, err)
}

func (w *writer) native(body []byte) (any, error) {
	v, rest, err := w.codec.NativeFromBinary(body)
	if err != nil {
		return nil, goavroErr(err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over after the body at offset %d", record.ErrCorrupt, len(rest), len(body)-len(rest))
	}
	return v, nil
}

// unwrap takes the value out of goavro's union form {"branch": value}.
func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, x := range m {
			return x
		}
	}
	return v
}

func (w *writer) decodeKey(body []byte) (string, error) {
	if w.fast {
		site, n, err := record.DecodeKeyAvro(body)
		if err != nil {
			return "", err
		}
		if n != len(body) {
			return "", fmt.Errorf("%w: %d bytes left over after the key at offset %d", record.ErrCorrupt, len(body)-n, n)
		}
		return site, nil
	}
	v, err := w.native(body)
	if err != nil {
		return "", err
	}
	if m, ok := v.(map[string]any); ok {
		v = unwrap(m["site"])
	}
	switch s := v.(type) {
	case string:
		return s, nil
	case []byte:
		return string(s), nil
	}
	return "", fmt.Errorf("%w: key site is %T, not a string", record.ErrCorrupt, v)
}

func (w *writer) decodeValue(body []byte, r *record.Record) error {
	if w.fast {
		return decodeFast(body, r)
	}
	v, err := w.native(body)
	if err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: value is %T, not a record", record.ErrCorrupt, v)
	}
	*r = record.Record{Session: r.Session}
	for name, i := range w.index {
		x := unwrap(m[name])
		if x == nil {
			continue
		}
		if err := set(r, i, x); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
	}
	return nil
}

// set stores a goavro native value into field i of r.
func set(r *record.Record, i int, x any) error {
	switch i {
	case record.FieldSite, record.FieldTimestamp:
		var s string
		switch v := x.(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		default:
			return fmt.Errorf("%w: %T cannot be read as a string", record.ErrCorrupt, x)
		}
		if i == record.FieldSite {
			r.SetSite(s)
		} else {
			r.Timestamp = s
			r.Set |= 1 << record.FieldTimestamp
		}
	case record.FieldTime:
		switch v := x.(type) {
		case int64:
			r.Time = v
		case int32:
			r.Time = int64(v)
		case time.Time:
			r.Time = v.UnixMilli()
		default:
			return fmt.Errorf("%w: %T cannot be read as a long", record.ErrCorrupt, x)
		}
		r.Set |= 1 << record.FieldTime
	default:
		v, ok := x.(int32)
		if !ok {
			return fmt.Errorf("%w: %T cannot be read as an int", record.ErrCorrupt, x)
		}
		r.SetInt(i, v)
	}
	return nil
}
