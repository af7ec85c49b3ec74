// Package record is the gtsm_etl message: one record per (site, session,
// sample time), with the fields of the original Avro value schema.
package record

import (
	"github.com/earthscope/gtsm-stream/bottle"
)

// Field positions in the value schema.
const (
	FieldSite      = 0
	FieldTime      = 1
	FieldTimestamp = 2
	FirstInt       = 3  // first of the nullable int fields
	NumFields      = 59 // all value fields
	NumInts        = NumFields - FirstInt
)

// FieldNames are the gtsm_etl value fields in schema order. A test checks them
// against avro_schemas/gtsm_etl-value.avsc.
var FieldNames = [NumFields]string{
	"site", "time", "timestamp",
	"rs1_t0", "rs2_t0", "rs3_t0", "rs4_t0",
	"ls1_t0", "ls2_t0", "ls3_t0", "ls4_t0",
	"bs1_t0", "bs2_t0", "bs3_t0", "bs4_t0",
	"re1_t0", "rkd_t0", "rk1_t0", "rk2_t0", "rdo_ts", "rro_ts", "reo_t0", "re2_t0",
	"rca_t0", "rcb_t0", "rcc_t0", "rcd_t0",
	"rca_t1", "rca_t2", "rca_t3", "rcb_t1", "rcb_t2", "rcb_t3",
	"rcc_t1", "rcc_t2", "rcc_t3", "rcd_t1", "rcd_t2", "rcd_t3",
	"rca_t4", "rca_t5", "rca_t6", "rcb_t4", "rcb_t5", "rcb_t6",
	"rcc_t4", "rcc_t5", "rcc_t6", "rcd_t4", "rcd_t5", "rcd_t6",
	"rca_t7", "rcb_t7", "rcc_t7", "rcd_t7",
	"rca_t8", "rcb_t8", "rcc_t8", "rcd_t8",
}

// FieldIndex returns the schema position of a value field name.
func FieldIndex(name string) (int, bool) {
	for i, n := range FieldNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// StrainFields returns the schema positions of the four strain channels
// (CH0..CH3) of a session: rs* for Day, ls* for Hour, bs* for Min.
func StrainFields(s bottle.Session) [4]int {
	first := FirstInt + 4*int(s) // rs1_t0, ls1_t0, bs1_t0 follow each other
	return [4]int{first, first + 1, first + 2, first + 3}
}

// SessionHeader is the Kafka record header that carries the session name
// ("Day", "Hour", "Min") next to the Avro value; consumers that do not know it
// (Flink) ignore it, and ours fall back to inferring it from the set fields.
const SessionHeader = "gtsm_session"

// Record is one gtsm_etl value, plus the session it belongs to. Session is not
// an Avro field: it travels as a Kafka header (and can be inferred from which
// fields are set), because a record whose channels are all missing still
// belongs to a session's timeline.
type Record struct {
	Site      string
	Time      int64  // epoch milliseconds
	Timestamp string // YYYY-MM-DD HH:MM:SS[.fff], UTC
	Set       uint64 // bit i set: field i is not null
	Ints      [NumInts]int32
	Session   bottle.Session
}

// IsSet reports whether field i is not null.
func (r *Record) IsSet(i int) bool { return r.Set&(1<<uint(i)) != 0 }

// Int returns int field i (a schema position ≥ FirstInt) and whether it is set.
func (r *Record) Int(i int) (int32, bool) { return r.Ints[i-FirstInt], r.IsSet(i) }

// SetInt sets int field i (a schema position ≥ FirstInt).
func (r *Record) SetInt(i int, v int32) {
	r.Ints[i-FirstInt] = v
	r.Set |= 1 << uint(i)
}

// SetTime sets both time and timestamp from epoch milliseconds.
func (r *Record) SetTime(ms int64) {
	r.Time, r.Timestamp = ms, FormatTimestamp(ms)
	r.Set |= 1<<FieldTime | 1<<FieldTimestamp
}

// SetSite sets the site field.
func (r *Record) SetSite(site string) {
	r.Site = site
	r.Set |= 1 << FieldSite
}

// FormatTimestamp renders epoch milliseconds as the original producer did:
// "YYYY-MM-DD HH:MM:SS", with ".fff" only when the milliseconds are not zero.
func FormatTimestamp(ms int64) string {
	var buf [32]byte
	return string(appendTimestamp(buf[:0], ms))
}
