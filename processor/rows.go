// A batch's rows, held column by column as records are applied (issue 16).

package processor

import (
	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

// row is one record to store in gtsm_etl through the row appender: the rare
// records that set more than their session's strain channels (Day records).
type row struct {
	keySite   string
	rec       record.Record
	partition int32
	offset    int64
	late      bool
}

// narrowRows are one site's and session's narrow rows of a batch (records
// that set only site, time, timestamp and the session's four strain
// channels: all Min and Hour records), column by column. A batch used to
// hold a ~320-byte row (a whole record.Record) per record; these columns
// take ~50 bytes plus the timestamp string, and the sink hands them to
// DuckDB as data chunks (land.go). The site and session are the same for
// every row, so they are SQL parameters of the landing INSERT, not columns.
type narrowRows struct {
	site    string
	session bottle.Session
	time    []int64
	ts      []string
	strain  [4][]int32
	null    []uint8 // bit j: strain channel j is NULL
	off     []int64
	late    []bool
}

func (n *narrowRows) len() int { return len(n.time) }

func (n *narrowRows) add(rec *record.Record, strain *[4]int, off int64, late bool) {
	n.time = append(n.time, rec.Time)
	n.ts = append(n.ts, rec.Timestamp)
	var null uint8
	for j, f := range strain {
		v := rec.Ints[f-record.FirstInt]
		if !rec.IsSet(f) {
			null |= 1 << j
			v = 0
		}
		n.strain[j] = append(n.strain[j], v)
	}
	n.null = append(n.null, null)
	n.off = append(n.off, off)
	n.late = append(n.late, late)
}

func (n *narrowRows) reset() {
	clear(n.ts) // drop the timestamp strings for the GC
	n.time, n.ts, n.null, n.off, n.late = n.time[:0], n.ts[:0], n.null[:0], n.off[:0], n.late[:0]
	for j := range n.strain {
		n.strain[j] = n.strain[j][:0]
	}
}

type narrowKey struct {
	site    string
	session bottle.Session
}

// rowSet is a batch's rows: narrow ones in columns per site and session, in
// the order their site and session first appeared, the others as rows. It is
// reused from batch to batch (processor.rowPool): growing the slices anew
// for every batch dominated the profile.
type rowSet struct {
	narrow []*narrowRows
	wide   []row
	n      int // rows in narrow and wide

	by   map[narrowKey]*narrowRows
	last *narrowRows // records come in runs of one site and session
	free []*narrowRows
}

func newRowSet() rowSet { return rowSet{by: map[narrowKey]*narrowRows{}} }

// isNarrow: the record sets only site, time, timestamp (all three) and its
// session's strain fields, so it fits the narrow columns. Its site must be
// the key's site (plausible checks that), so one site column serves both
// key_site and site.
func isNarrow(rec *record.Record) bool {
	s := rec.Session
	return rec.Set&^narrowMask(s) == 0 && rec.IsSet(record.FieldSite) &&
		rec.IsSet(record.FieldTime) && rec.IsSet(record.FieldTimestamp)
}

// add appends a stored record. It copies what it keeps: rec is reused for
// the next message.
func (rs *rowSet) add(keySite string, rec *record.Record, part int32, off int64, late bool) {
	rs.n++
	if !isNarrow(rec) || rec.Site != keySite {
		rs.wide = append(rs.wide, row{keySite: keySite, rec: *rec, partition: part, offset: off, late: late})
		return
	}
	n := rs.last
	if n == nil || n.site != keySite || n.session != rec.Session {
		if rs.by == nil {
			rs.by = map[narrowKey]*narrowRows{}
		}
		k := narrowKey{keySite, rec.Session}
		n = rs.by[k]
		if n == nil {
			if l := len(rs.free); l > 0 {
				n, rs.free = rs.free[l-1], rs.free[:l-1]
			} else {
				n = &narrowRows{}
			}
			n.site, n.session = keySite, rec.Session
			rs.by[k] = n
			rs.narrow = append(rs.narrow, n)
		}
		rs.last = n
	}
	strain := record.StrainFields(rec.Session)
	n.add(rec, &strain, off, late)
}

// reset empties the set, keeping its memory for the next batch: column
// buffers of up to twice this batch's rows (a full batch's worth, split
// over its sites and sessions, and some slack); more would accumulate one
// batch size per site seen.
func (rs *rowSet) reset() rowSet {
	kept := 0
	for _, n := range rs.free {
		kept += cap(n.time)
	}
	for _, n := range rs.narrow {
		n.reset()
		if kept+cap(n.time) <= 2*max(rs.n, 1<<16) {
			kept += cap(n.time)
			rs.free = append(rs.free, n)
		}
	}
	clear(rs.narrow)
	clear(rs.by)
	clear(rs.wide)
	return rowSet{narrow: rs.narrow[:0], wide: rs.wide[:0], by: rs.by, free: rs.free}
}
