package record

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// This file is a hand-written Avro binary codec specialised to the gtsm_etl
// schemas (avro_schemas/*.avsc). goavro's generic path costs ~8 µs and 57
// allocations per record; this one writes into a reused buffer with no
// allocation. A property test (avro_test.go) proves its bytes identical to
// goavro's in both directions, so goavro stays the reference.
//
// Value layout: every field is a union whose branch 0 is the value and branch
// 1 is null (["string","null"], ["long","null"], ["int","null"]). A union is
// written as its branch index (a zig-zag varint: 0x00 or 0x02) followed by the
// branch's value; ints and longs are zig-zag varints, strings a zig-zag
// varint length and the UTF-8 bytes.

// Errors returned by DecodeAvro and DecodeKeyAvro, for errors.Is.
var (
	ErrTruncated = errors.New("avro body truncated")
	ErrCorrupt   = errors.New("avro body corrupt")
)

// Union branch indexes as written on the wire (zig-zag varints of 0 and 1).
const (
	branchValue = 0x00
	branchNull  = 0x02
)

// maxVarint is the longest zig-zag varint of an int64.
const maxVarint = 10

// AppendAvro appends the Avro binary encoding of r's value fields (no
// Confluent framing) to dst. It does not allocate when dst has room.
func AppendAvro(dst []byte, r *Record) []byte {
	// Grow once for the worst case, then write by index: cheaper than 59
	// appends, each with its own capacity check.
	need := 3*(1+maxVarint) + len(r.Site) + len(r.Timestamp) + NumInts*6
	dst = slices.Grow(dst, need)
	n := len(dst)
	b := dst[:n+need]
	set := r.Set
	if set&(1<<FieldSite) != 0 {
		b[n] = branchValue
		n = putLong(b, n+1, int64(len(r.Site)))
		n += copy(b[n:], r.Site)
	} else {
		b[n] = branchNull
		n++
	}
	if set&(1<<FieldTime) != 0 {
		b[n] = branchValue
		n = putLong(b, n+1, r.Time)
	} else {
		b[n] = branchNull
		n++
	}
	if set&(1<<FieldTimestamp) != 0 {
		b[n] = branchValue
		n = putLong(b, n+1, int64(len(r.Timestamp)))
		n += copy(b[n:], r.Timestamp)
	} else {
		b[n] = branchNull
		n++
	}
	for i, v := range &r.Ints {
		if set&(1<<uint(FirstInt+i)) == 0 {
			b[n] = branchNull
			n++
			continue
		}
		b[n] = branchValue
		n++
		u := uint32(v<<1) ^ uint32(v>>31) // zig-zag
		for u >= 0x80 {
			b[n] = byte(u) | 0x80
			u >>= 7
			n++
		}
		b[n] = byte(u)
		n++
	}
	return b[:n]
}

// putLong writes the zig-zag varint of v at b[n:] and returns the new end.
func putLong(b []byte, n int, v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		b[n] = byte(u) | 0x80
		u >>= 7
		n++
	}
	b[n] = byte(u)
	return n + 1
}

// DecodeAvro decodes one value from the start of b into r and returns the
// number of bytes it used. Every Avro field of r is overwritten (nulls clear
// the field to its zero value); r.Session is not in the Avro body and is left
// alone. Errors wrap ErrTruncated or ErrCorrupt and give the byte offset;
// after an error the contents of r are unspecified.
//
// r.Site is reused when it already holds the same text, so decoding a stream
// of one site's records allocates only the timestamp string.
func DecodeAvro(b []byte, r *Record) (int, error) {
	d := decoder{b: b}
	var set uint64
	if d.branch(FieldSite) {
		s := d.bytes(FieldSite)
		if string(s) != r.Site { // the comparison does not allocate
			r.Site = string(s)
		}
		set |= 1 << FieldSite
	} else {
		r.Site = ""
	}
	if d.branch(FieldTime) {
		r.Time = d.long(FieldTime)
		set |= 1 << FieldTime
	} else {
		r.Time = 0
	}
	if d.branch(FieldTimestamp) {
		s := d.bytes(FieldTimestamp)
		if string(s) != r.Timestamp {
			r.Timestamp = string(s)
		}
		set |= 1 << FieldTimestamp
	} else {
		r.Timestamp = ""
	}
	if d.err != nil {
		return d.off, d.err
	}
	// The 56 ints are most of the work: decode them inline, falling back
	// to the general (checking) code for anything but a well-formed union
	// with a varint of at most 5 bytes.
	off := d.off
ints:
	for i := range NumInts {
		if off < len(b) {
			switch b[off] {
			case branchNull:
				off++
				r.Ints[i] = 0
				continue
			case branchValue:
				var u uint64
				p := off + 1
				for shift := 0; shift < 35 && p < len(b); shift += 7 {
					c := b[p]
					p++
					u |= uint64(c&0x7f) << shift
					if c < 0x80 {
						if u>>32 != 0 {
							break // out of int32 range: the slow path says so
						}
						r.Ints[i] = int32(uint32(u>>1) ^ -uint32(u&1))
						set |= 1 << uint(FirstInt+i)
						off = p
						continue ints
					}
				}
			}
		}
		d.off = off
		if f := FirstInt + i; d.branch(f) {
			v := d.long(f)
			if d.err == nil && (v < -1<<31 || v > 1<<31-1) {
				d.fail(ErrCorrupt, f, "int value %d out of int32 range", v)
			}
			r.Ints[i] = int32(v)
			set |= 1 << uint(f)
		} else {
			r.Ints[i] = 0
		}
		if d.err != nil {
			return d.off, d.err
		}
		off = d.off
	}
	r.Set = set
	return off, nil
}

// AppendKeyAvro appends the Avro binary encoding of the key record {site}.
func AppendKeyAvro(dst []byte, site string) []byte { return appendString(dst, site) }

// DecodeKeyAvro decodes the key record {site} from the start of b and returns
// the site and the number of bytes used.
func DecodeKeyAvro(b []byte) (string, int, error) {
	d := decoder{b: b, key: true}
	s := d.bytes(0)
	if d.err != nil {
		return "", d.off, d.err
	}
	return string(s), d.off, nil
}

func appendLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63) // zig-zag
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func appendString(dst []byte, s string) []byte {
	dst = appendLong(dst, int64(len(s)))
	return append(dst, s...)
}

// decoder reads the body sequentially; the first error sticks and later
// reads return zero values, so the field code stays linear.
type decoder struct {
	b   []byte
	off int
	err error
	key bool // decoding the key record (error messages)
}

func (d *decoder) fail(kind error, field int, format string, args ...any) {
	if d.err != nil {
		return
	}
	name := "site"
	if !d.key {
		name = FieldNames[field]
	}
	d.err = fmt.Errorf("%w: field %q at offset %d: %s", kind, name, d.off, fmt.Sprintf(format, args...))
}

// long reads a zig-zag varint of at most 10 bytes.
func (d *decoder) long(field int) int64 {
	if d.err != nil {
		return 0
	}
	var u uint64
	start := d.off
	for shift := uint(0); ; shift += 7 {
		if d.off >= len(d.b) {
			d.off = start
			d.fail(ErrTruncated, field, "varint needs more than the %d bytes left", len(d.b)-start)
			return 0
		}
		c := d.b[d.off]
		d.off++
		if shift == 63 && c > 1 {
			d.off = start
			d.fail(ErrCorrupt, field, "varint overflows 64 bits")
			return 0
		}
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	return int64(u>>1) ^ -int64(u&1)
}

// branch reads a union index: true for the value branch, false for null.
func (d *decoder) branch(field int) bool {
	if d.err != nil {
		return false
	}
	// Fast path: the index is a single byte in every well-formed message.
	if d.off < len(d.b) {
		switch d.b[d.off] {
		case branchValue:
			d.off++
			return true
		case branchNull:
			d.off++
			return false
		}
	}
	start := d.off
	idx := d.long(field)
	if d.err == nil && idx != 0 && idx != 1 {
		d.off = start
		d.fail(ErrCorrupt, field, "union branch %d (want 0 for the value or 1 for null)", idx)
	}
	return idx == 0 && d.err == nil
}

// bytes reads a length-prefixed string. The length is checked against the
// bytes actually left, so a corrupt prefix can never cause a huge allocation.
func (d *decoder) bytes(field int) []byte {
	start := d.off
	n := d.long(field)
	if d.err != nil {
		return nil
	}
	if n < 0 {
		d.off = start
		d.fail(ErrCorrupt, field, "negative string length %d", n)
		return nil
	}
	if left := len(d.b) - d.off; n > int64(left) {
		d.off = start
		d.fail(ErrTruncated, field, "string of %d bytes, only %d left", n, left)
		return nil
	}
	s := d.b[d.off : d.off+int(n)]
	if !utf8.Valid(s) {
		d.fail(ErrCorrupt, field, "string is not valid UTF-8")
		return nil
	}
	d.off += int(n)
	return s
}
