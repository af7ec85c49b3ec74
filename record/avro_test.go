package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/linkedin/goavro/v2"
)

func TestFieldNamesMatchSchema(t *testing.T) {
	var s struct {
		Name      string
		Namespace string
		Fields    []struct {
			Name string
			Type any
		}
	}
	if err := json.Unmarshal([]byte(avroschemas.Value), &s); err != nil {
		t.Fatal(err)
	}
	if s.Name != "gtsm_etl" || s.Namespace != "gtsm_etl" || len(s.Fields) != NumFields {
		t.Fatalf("schema %s.%s with %d fields", s.Namespace, s.Name, len(s.Fields))
	}
	for i, f := range s.Fields {
		want := []any{"int", "null"}
		switch i {
		case FieldSite, FieldTimestamp:
			want[0] = "string"
		case FieldTime:
			want[0] = "long"
		}
		if f.Name != FieldNames[i] || !reflect.DeepEqual(f.Type, want) {
			t.Errorf("schema field %d is %s %v; FieldNames says %s %v", i, f.Name, f.Type, FieldNames[i], want)
		}
	}
}

func valueCodec(t testing.TB) *goavro.Codec {
	c, err := goavro.NewCodec(avroschemas.Value)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// native is r as goavro's native datum for the value schema.
func native(r *Record) map[string]any {
	m := make(map[string]any, NumFields)
	for i, name := range FieldNames {
		if !r.IsSet(i) {
			m[name] = nil
			continue
		}
		switch i {
		case FieldSite:
			m[name] = goavro.Union("string", r.Site)
		case FieldTime:
			m[name] = goavro.Union("long", r.Time)
		case FieldTimestamp:
			m[name] = goavro.Union("string", r.Timestamp)
		default:
			m[name] = goavro.Union("int", r.Ints[i-FirstInt])
		}
	}
	return m
}

// fromNative is the inverse of native.
func fromNative(t testing.TB, m map[string]any) Record {
	var r Record
	for i, name := range FieldNames {
		v, ok := m[name]
		if !ok {
			t.Fatalf("goavro datum lacks %s", name)
		}
		if v == nil {
			continue
		}
		u := v.(map[string]any)
		switch i {
		case FieldSite:
			r.SetSite(u["string"].(string))
		case FieldTime:
			r.Time = u["long"].(int64)
			r.Set |= 1 << FieldTime
		case FieldTimestamp:
			r.Timestamp = u["string"].(string)
			r.Set |= 1 << FieldTimestamp
		default:
			r.SetInt(i, u["int"].(int32))
		}
	}
	return r
}

var sites = []string{"", "B009", "B2", "B0241", "Ω€𝄞", "quote\"back\\slash\x01", strings.Repeat("long", 100)}

func randomRecord(rng *rand.Rand) Record {
	var r Record
	r.Set = rng.Uint64() & (1<<NumFields - 1)
	switch rng.IntN(4) { // null patterns beyond uniform: all set, none set
	case 0:
		r.Set = 1<<NumFields - 1
	case 1:
		r.Set = 0
	}
	if r.IsSet(FieldSite) {
		r.Site = sites[rng.IntN(len(sites))]
	}
	if r.IsSet(FieldTime) {
		times := []int64{0, -1, 1, math.MinInt64, math.MaxInt64, -86400000 * 365 * 60, 1625097600000, rng.Int64() - rng.Int64()}
		r.Time = times[rng.IntN(len(times))]
	}
	if r.IsSet(FieldTimestamp) {
		r.Timestamp = FormatTimestamp(rng.Int64N(1<<45) - 1<<44)
	}
	ints := []int32{0, -1, 1, 63, 64, -64, -65, math.MaxInt32, math.MinInt32, 48116355}
	for i := range NumInts {
		if r.IsSet(FirstInt + i) {
			if rng.IntN(2) == 0 {
				r.Ints[i] = ints[rng.IntN(len(ints))]
			} else {
				r.Ints[i] = int32(rng.Uint32())
			}
		}
	}
	return r
}

// TestAvroMatchesGoavro is the property that makes the specialised codec
// trustworthy: for random records, our bytes equal goavro's and each side
// decodes the other's bytes to the same record.
func TestAvroMatchesGoavro(t *testing.T) {
	codec := valueCodec(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for n := range 3000 {
		r := randomRecord(rng)
		buf = AppendAvro(buf[:0], &r)
		want, err := codec.BinaryFromNative(nil, native(&r))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("record %d %+v:\nours   % x\ngoavro % x", n, r, buf, want)
		}
		// goavro's bytes through our decoder.
		var got Record
		got.Site, got.Timestamp, got.Ints[0] = "stale", "stale", 7 // must be overwritten
		used, err := DecodeAvro(want, &got)
		if err != nil || used != len(want) || got != r {
			t.Fatalf("record %d: DecodeAvro(goavro bytes) = %+v, %d, %v; want %+v", n, got, used, err, r)
		}
		// Our bytes through goavro.
		nat, rest, err := codec.NativeFromBinary(buf)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro cannot read our bytes: %v (%d left)", err, len(rest))
		}
		if back := fromNative(t, nat.(map[string]any)); back != r {
			t.Fatalf("record %d: goavro read %+v, want %+v", n, back, r)
		}
	}
}

func TestKeyMatchesGoavro(t *testing.T) {
	codec, err := goavro.NewCodec(avroschemas.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range sites {
		ours := AppendKeyAvro(nil, site)
		want, err := codec.BinaryFromNative(nil, map[string]any{"site": site})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, want) {
			t.Errorf("key %q: ours % x goavro % x", site, ours, want)
		}
		got, n, err := DecodeKeyAvro(want)
		if got != site || n != len(want) || err != nil {
			t.Errorf("DecodeKeyAvro(%q) = %q, %d, %v", site, got, n, err)
		}
	}
}

func TestDecodeAvroErrors(t *testing.T) {
	var r Record
	r.SetSite("B009")
	r.SetTime(1625097600000)
	r.SetInt(7, 48116355)
	good := AppendAvro(nil, &r)
	for _, c := range []struct {
		name string
		b    []byte
		kind error
		text string
	}{
		{"empty", nil, ErrTruncated, `field "site" at offset 0`},
		{"cut in the site", good[:3], ErrTruncated, "string of 4 bytes, only 1 left"},
		{"cut in a varint", good[:8], ErrTruncated, `field "time" at offset 7`},
		{"cut before the last field", good[:len(good)-1], ErrTruncated, `field "rcd_t8"`},
		{"bad branch", append([]byte{0x04}, good[1:]...), ErrCorrupt, "union branch 2"},
		{"negative length", []byte{0, 0x01}, ErrCorrupt, "negative string length -1"},
		{"huge length", []byte{0, 0xfe, 0xff, 0xff, 0xff, 0x0f}, ErrTruncated, "string of 2147483647 bytes, only 0 left"},
		{"overlong varint", append([]byte{0, 0x08, 'B', '0', '0', '9', 0}, bytes.Repeat([]byte{0xff}, 10)...), ErrCorrupt, "varint overflows"},
		{"bad utf8", []byte{0, 0x02, 0xff}, ErrCorrupt, "not valid UTF-8"},
	} {
		_, err := DecodeAvro(c.b, &r)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: err %v; want %v saying %q", c.name, err, c.kind, c.text)
		}
	}
	// An int field holding a long out of int32 range. With every int null,
	// the last 56 bytes are the 56 null branches.
	var s Record
	s.SetSite("B009")
	nulls := AppendAvro(nil, &s)
	bad := append([]byte{}, nulls[:len(nulls)-56]...)
	bad = append(bad, 0)
	bad = appendLong(bad, 1<<40)
	bad = append(bad, nulls[len(nulls)-55:]...)
	if _, err := DecodeAvro(bad, &r); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"rs1_t0"`) {
		t.Errorf("out of range int: %v", err)
	}
}

func FuzzDecodeAvro(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		r := randomRecord(rng)
		f.Add(AppendAvro(nil, &r))
	}
	f.Add([]byte{0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	codec := valueCodec(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		n, err := DecodeAvro(b, &r)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What decodes re-encodes to the canonical bytes goavro writes, and
		// goavro agrees on the record.
		nat, _, gerr := codec.NativeFromBinary(b[:n])
		if gerr != nil {
			t.Fatalf("we decoded what goavro rejects: %v", gerr)
		}
		if back := fromNative(t, nat.(map[string]any)); back != r {
			t.Fatalf("goavro read %+v, we read %+v", back, r)
		}
		if _, _, err := DecodeKeyAvro(b); err != nil && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("untyped key error %v", err)
		}
	})
}

// A length prefix claiming gigabytes must fail without allocating them.
func TestDecodeAvroHugeLengthAllocatesLittle(t *testing.T) {
	msg := []byte{0, 0xfe, 0xff, 0xff, 0xff, 0x0f, 'B'} // site of 2^31-1 bytes
	var r Record
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := DecodeAvro(msg, &r); !errors.Is(err, ErrTruncated) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 4096 {
		t.Fatalf("%d bytes allocated per failed decode", per)
	}
}
