// Narrow rows into gtsm_etl through DuckDB's C appender, a whole data chunk
// at a time.

package processor

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/mapping"

	"github.com/earthscope/gtsm-stream/bottle"
)

// Why not the table function of land.go: an INSERT … SELECT runs through
// DuckDB's executor, whose pipeline for a single-threaded source runs on one
// of DuckDB's worker threads while the calling thread busy-polls for the
// result (PendingQueryResult::ExecuteTask in a loop, locking and unlocking
// the client context's mutex): measured with perf, 35-40 % of the landing's
// CPU was that poll, and under load the landing took 2.4x the CPU it takes
// with DuckDB's threads set to 1. An appender does not go through the
// executor: duckdb_append_data_chunk and duckdb_appender_flush append to the
// transaction's local storage on the calling thread. duckdb-go's Appender
// only appends row by row (a driver.Value per cell), so the chunks are
// built here with the C API of duckdb-go's mapping package: fixed-width
// columns are copied into the vectors with copy(), short strings (site,
// session) are written as inlined duckdb_string_t, and only strings over
// 12 bytes (the timestamp) cost a C call per row.

// chunkCols are the appender's columns, in narrowColumns order.
const (
	ccKeySite   = 0
	ccSite      = 1
	ccTime      = 2
	ccTimestamp = 3
	ccStrain    = 4 // 4 columns
	ccSession   = 8
	ccPartition = 9
	ccOffset    = 10
	ccLate      = 11
	ccCount     = 12
)

var chunkTypes = [ccCount]mapping.Type{mapping.TypeVarchar, mapping.TypeVarchar, mapping.TypeBigInt, mapping.TypeVarchar,
	mapping.TypeInteger, mapping.TypeInteger, mapping.TypeInteger, mapping.TypeInteger,
	mapping.TypeVarchar, mapping.TypeInteger, mapping.TypeBigInt, mapping.TypeBoolean}

// chunkAppender appends one session's narrow rows to gtsm_etl on the sink's
// connection, so they belong to the sink's open transaction.
type chunkAppender struct {
	app   mapping.Appender
	chunk mapping.DataChunk
	size  int // rows per chunk (DuckDB's vector size)
	open  bool
}

// rawConn is the C connection behind a duckdb-go connection. duckdb-go does
// not export it (its Arrow interface, which does, needs a build tag), so it
// is read from the unexported field by name and type; if a duckdb-go
// version renames or retypes it, this fails and the sink keeps the table
// function (TestChunkAppenderInUse fails too, so the upgrade is noticed).
func rawConn(dc driver.Conn) (mapping.Connection, error) {
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return mapping.Connection{}, fmt.Errorf("not a duckdb-go connection: %T", dc)
	}
	if _, ok := dc.(*duckdb.Conn); !ok {
		return mapping.Connection{}, fmt.Errorf("not a duckdb-go connection: %T", dc)
	}
	f := v.Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeFor[mapping.Connection]() {
		return mapping.Connection{}, errors.New("duckdb-go connection has no C connection field")
	}
	c := *(*mapping.Connection)(unsafe.Pointer(f.UnsafeAddr()))
	if c.Ptr == nil {
		return mapping.Connection{}, errors.New("duckdb-go connection is closed")
	}
	return c, nil
}

// newChunkAppender opens an appender of session s's narrow columns of
// gtsm_etl on conn, and one data chunk of the appender's own column types
// (checked against the types the fill writes).
func newChunkAppender(conn mapping.Connection, s bottle.Session) (*chunkAppender, error) {
	c := &chunkAppender{size: int(mapping.VectorSize())}
	if mapping.AppenderCreateExt(conn, "", "", "gtsm_etl", &c.app) == mapping.StateError {
		err := fmt.Errorf("appender gtsm_etl: %s", mapping.AppenderError(c.app))
		mapping.AppenderDestroy(&c.app)
		return nil, err
	}
	c.open = true
	for _, col := range narrowColumns(s) {
		if mapping.AppenderAddColumn(c.app, col) == mapping.StateError {
			err := fmt.Errorf("appender gtsm_etl column %s: %s", col, mapping.AppenderError(c.app))
			c.close()
			return nil, err
		}
	}
	if n := int(mapping.AppenderColumnCount(c.app)); n != ccCount {
		c.close()
		return nil, fmt.Errorf("appender gtsm_etl (%s): %d columns, want %d", s, n, ccCount)
	}
	types := make([]mapping.LogicalType, ccCount)
	defer func() {
		for i := range types {
			if types[i].Ptr != nil {
				mapping.DestroyLogicalType(&types[i])
			}
		}
	}()
	for i := range types {
		types[i] = mapping.AppenderColumnType(c.app, mapping.IdxT(i))
		if t := mapping.GetTypeId(types[i]); t != chunkTypes[i] {
			c.close()
			return nil, fmt.Errorf("gtsm_etl column %s has DuckDB type %d, want %d", narrowColumns(s)[i], t, chunkTypes[i])
		}
	}
	c.chunk = mapping.CreateDataChunk(types)
	return c, nil
}

// land appends n's rows (partition part) a data chunk at a time. They are
// in the transaction once flush returns.
func (c *chunkAppender) land(n *narrowRows, part int32) error {
	session := n.session.String()
	for lo := 0; lo < n.len(); lo += c.size {
		hi := min(lo+c.size, n.len())
		mapping.DataChunkReset(c.chunk)
		c.fill(n, lo, hi, session, part)
		mapping.DataChunkSetSize(c.chunk, mapping.IdxT(hi-lo))
		if mapping.AppendDataChunk(c.app, c.chunk) == mapping.StateError {
			return fmt.Errorf("append %d rows of site %s %s (partition %d offsets %d..%d) to gtsm_etl: %s",
				hi-lo, n.site, n.session, part, n.off[lo], n.off[hi-1], mapping.AppenderError(c.app))
		}
	}
	return nil
}

// fill writes rows lo..hi of n into the chunk.
func (c *chunkAppender) fill(n *narrowRows, lo, hi int, session string, part int32) {
	rows := hi - lo
	vec := func(col int) mapping.Vector { return mapping.DataChunkGetVector(c.chunk, mapping.IdxT(col)) }
	setConstString(vec(ccKeySite), rows, n.site)
	setConstString(vec(ccSite), rows, n.site)
	setConstString(vec(ccSession), rows, session)
	copy(vecData[int64](vec(ccTime), rows), n.time[lo:hi])
	setStrings(vec(ccTimestamp), n.ts[lo:hi])
	for j := range n.strain {
		v := vec(ccStrain + j)
		copy(vecData[int32](v, rows), n.strain[j][lo:hi])
		if anyNull(n.null[lo:hi], j) {
			mapping.VectorEnsureValidityWritable(v)
			mask := unsafe.Slice((*uint64)(mapping.VectorGetValidity(v)), (rows+63)/64)
			for i, m := range n.null[lo:hi] {
				if m&(1<<j) != 0 {
					mask[i/64] &^= 1 << (i % 64)
				}
			}
		}
	}
	p := vecData[int32](vec(ccPartition), rows)
	for i := range p {
		p[i] = part
	}
	copy(vecData[int64](vec(ccOffset), rows), n.off[lo:hi])
	copy(vecData[bool](vec(ccLate), rows), n.late[lo:hi])
}

func anyNull(null []uint8, j int) bool {
	for _, m := range null {
		if m&(1<<j) != 0 {
			return true
		}
	}
	return false
}

// vecData is a vector's data as a Go slice of its first rows elements (C
// memory owned by the chunk).
func vecData[T any](v mapping.Vector, rows int) []T {
	return unsafe.Slice((*T)(mapping.VectorGetData(v)), rows)
}

// duckString is the C API's duckdb_string_t: a length, then either the
// string itself (up to 12 bytes, "inlined") or a 4-byte prefix and a
// pointer to memory DuckDB owns.
type duckString struct {
	length uint32
	inline [12]byte
}

const maxInline = 12

// setConstString writes s into the first rows entries of a VARCHAR vector.
func setConstString(v mapping.Vector, rows int, s string) {
	if len(s) > maxInline {
		b := []byte(s)
		for i := 0; i < rows; i++ {
			mapping.VectorAssignStringElementLen(v, mapping.IdxT(i), b)
		}
		return
	}
	d := duckString{length: uint32(len(s))}
	copy(d.inline[:], s)
	out := vecData[duckString](v, rows)
	for i := range out {
		out[i] = d
	}
}

// setStrings writes ss into a VARCHAR vector: inlined when short, else
// through DuckDB, which copies the bytes into the vector's own heap.
func setStrings(v mapping.Vector, ss []string) {
	out := vecData[duckString](v, len(ss))
	for i, s := range ss {
		if len(s) <= maxInline {
			out[i] = duckString{length: uint32(len(s))}
			copy(out[i].inline[:], s)
			continue
		}
		mapping.VectorAssignStringElementLen(v, mapping.IdxT(i), unsafe.Slice(unsafe.StringData(s), len(s)))
	}
}

// flush moves the appended rows into the transaction.
func (c *chunkAppender) flush() error {
	if mapping.AppenderFlush(c.app) == mapping.StateError {
		return fmt.Errorf("flush gtsm_etl rows: %s", mapping.AppenderError(c.app))
	}
	return nil
}

// clear drops rows appended but not flushed (a failed transaction's).
func (c *chunkAppender) clear() { mapping.AppenderClear(c.app) }

func (c *chunkAppender) close() error {
	var err error
	if c.chunk.Ptr != nil {
		mapping.DestroyDataChunk(&c.chunk)
	}
	if c.open {
		c.open = false
		if mapping.AppenderDestroy(&c.app) == mapping.StateError {
			err = errors.New("close gtsm_etl chunk appender")
		}
	}
	return err
}
