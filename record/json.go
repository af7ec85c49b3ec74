package record

import (
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the dry-run line for r (no trailing newline):
//
//	{"topic":"gtsm_etl","key":{"site":"B009"},"value":{"site":{"string":"B009"},"time":{"long":1625097600000},"timestamp":{"string":"2021-07-01 00:00:00"},"rs1_t0":null,...,"ls1_t0":{"int":48116355},...}}
//
// key and value are in the Avro JSON encoding of the key and value schemas
// (unions wrapped as {"branch":value}, null as null), every one of the 59
// value fields present in schema order. The shape is a contract of
// `gtsm produce --dry-run`: keep it stable.
func AppendJSON(dst []byte, topic string, r *Record) []byte {
	dst = append(dst, `{"topic":`...)
	dst = appendJSONString(dst, topic)
	dst = append(dst, `,"key":{"site":`...)
	dst = appendJSONString(dst, r.Site)
	dst = append(dst, `},"value":{`...)
	// Most fields of a record are null: copy each run of nulls from the
	// all-null template in one append, and write only the set fields (a
	// record is ~950 bytes, of which a 20-sps record sets 7 fields).
	prev := 0 // template offset where the next field begins
	for set := r.Set & (1<<NumFields - 1); set != 0; set &= set - 1 {
		i := bits.TrailingZeros64(set)
		dst = append(dst, nullTemplate[prev:fieldStart[i]]...)
		dst = append(dst, fieldPrefix[i]...)
		switch i {
		case FieldSite:
			dst = append(dst, `{"string":`...)
			dst = appendJSONString(dst, r.Site)
		case FieldTime:
			dst = append(dst, `{"long":`...)
			dst = strconv.AppendInt(dst, r.Time, 10)
		case FieldTimestamp:
			dst = append(dst, `{"string":`...)
			dst = appendJSONString(dst, r.Timestamp)
		default:
			dst = append(dst, `{"int":`...)
			dst = strconv.AppendInt(dst, int64(r.Ints[i-FirstInt]), 10)
		}
		dst = append(dst, '}')
		prev = fieldStart[i+1]
	}
	dst = append(dst, nullTemplate[prev:]...)
	return append(dst, "}}"...)
}

// nullTemplate is the value object's fields with every one null, without
// the braces: "site":null,"time":null,... fieldStart[i] is where field i's
// text begins (after the comma that separates it from field i-1), and
// fieldStart[NumFields] the template's length; fieldPrefix[i] is the
// comma (for i > 0) and "name": that start field i. Field names are plain
// identifiers, so they need no escaping.
var nullTemplate, fieldStart, fieldPrefix = func() (string, [NumFields + 1]int, [NumFields]string) {
	var b []byte
	var start [NumFields + 1]int
	var prefix [NumFields]string
	for i, name := range FieldNames {
		start[i] = len(b)
		p := `"` + name + `":`
		if i > 0 {
			p = "," + p
		}
		prefix[i] = p
		b = append(b, p...)
		b = append(b, "null"...)
	}
	start[NumFields] = len(b)
	return string(b), start, prefix
}()

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and control
// characters escaped, other UTF-8 passed through, invalid bytes as U+FFFD
// (what encoding/json does too).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
