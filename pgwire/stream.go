package pgwire

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	bindings "github.com/duckdb/duckdb-go-bindings"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/mapping"
	"github.com/jeroenrinzema/psql-wire/codes"
)

// Results are read from DuckDB as a stream, one data chunk (2,048 rows) at
// a time, so a statement's memory is bounded whatever the size of its
// result: duckdb-go's database/sql rows materialise the whole result before
// the first row is read. The streams run on the endpoint's own native DuckDB
// connections to the same instance (the driver's instance cache hands out
// the open database), each in a read-only transaction.

// streamPoolSize is how many idle native connections are kept for reuse.
const streamPoolSize = 8

// streamer hands out native DuckDB connections for streamed statements.
type streamer struct {
	db   mapping.Database
	idle chan mapping.Connection
}

// newStreamer opens the DuckDB file at path through the driver's instance
// cache (readOnly must repeat the instance's access mode, or the cache
// refuses).
func newStreamer(path string, readOnly bool) (*streamer, error) {
	var cfg mapping.Config
	if mapping.CreateConfig(&cfg) == mapping.StateError {
		mapping.DestroyConfig(&cfg)
		return nil, errors.New("SQL endpoint: create a DuckDB config")
	}
	defer mapping.DestroyConfig(&cfg)
	mapping.SetConfig(cfg, "duckdb_api", "go")
	if readOnly {
		mapping.SetConfig(cfg, "access_mode", "read_only")
	}
	st := &streamer{idle: make(chan mapping.Connection, streamPoolSize)}
	var msg string
	if mapping.GetOrCreateFromCache(duckdb.GetInstanceCache(), path, &st.db, cfg, &msg) == mapping.StateError {
		mapping.Close(&st.db)
		return nil, fmt.Errorf("SQL endpoint: open %s for streaming: %s", path, msg)
	}
	return st, nil
}

// conn returns an idle native connection or a new one, with the catalog
// compatibility macros (compat.go) created on it.
func (sm *streamer) conn() (mapping.Connection, error) {
	select {
	case c := <-sm.idle:
		return c, nil
	default:
	}
	var c mapping.Connection
	if mapping.Connect(sm.db, &c) == mapping.StateError {
		return c, errors.New("connect to DuckDB")
	}
	for _, m := range compatMacros {
		if err := execNative(c, m); err != nil {
			mapping.Disconnect(&c)
			return c, fmt.Errorf("SQL endpoint connection setup: %s: %w", m, err)
		}
	}
	return c, nil
}

// release returns a connection whose transaction ended cleanly to the pool.
func (sm *streamer) release(c mapping.Connection) {
	select {
	case sm.idle <- c:
	default:
		mapping.Disconnect(&c)
	}
}

func (sm *streamer) close() {
	for {
		select {
		case c := <-sm.idle:
			mapping.Disconnect(&c)
		default:
			mapping.Close(&sm.db)
			return
		}
	}
}

// execNative runs one statement without a result on c.
func execNative(c mapping.Connection, text string) error {
	var res mapping.Result
	defer mapping.DestroyResult(&res)
	if mapping.Query(c, text, &res) == mapping.StateError {
		return nativeError(mapping.ResultError(&res))
	}
	return nil
}

// nativeError is DuckDB's error as duckdb-go reports it (classed by the
// message's "<class> Error: " prefix), so sqlState maps it to a SQLSTATE.
func nativeError(msg string) error {
	typ := duckdb.ErrorTypeInvalid
	if prefix, _, ok := strings.Cut(msg, ": "); ok {
		if t, ok := errorPrefixes[prefix]; ok {
			typ = t
		}
	}
	return &duckdb.Error{Type: typ, Msg: msg}
}

// errorPrefixes are the DuckDB error classes sqlState tells apart.
var errorPrefixes = map[string]duckdb.ErrorType{
	"Parser Error": duckdb.ErrorTypeParser, "Syntax Error": duckdb.ErrorTypeSyntax,
	"Catalog Error": duckdb.ErrorTypeCatalog, "Binder Error": duckdb.ErrorTypeBinder,
	"TransactionContext Error": duckdb.ErrorTypeTransaction, "Divide by Zero Error": duckdb.ErrorTypeDivideByZero,
	"Out of Range Error": duckdb.ErrorTypeOutOfRange, "Conversion Error": duckdb.ErrorTypeConversion,
	"Invalid Input Error": duckdb.ErrorTypeInvalidInput, "Mismatch Type Error": duckdb.ErrorTypeMismatchType,
	"Invalid type Error": duckdb.ErrorTypeInvalidType, "Parameter Not Resolved Error": duckdb.ErrorTypeParameterNotResolved,
	"INTERRUPT Error": duckdb.ErrorTypeInterrupt, "Out of Memory Error": duckdb.ErrorTypeOutOfMemory,
	"Permission Error": duckdb.ErrorTypePermission, "Not implemented Error": duckdb.ErrorTypeNotImplemented,
	"IO Error": duckdb.ErrorTypeIO,
}

// stream is one running statement's result.
type stream struct {
	sm      *streamer
	c       mapping.Connection
	stmt    mapping.PreparedStatement
	res     mapping.Result
	hasRes  bool
	decs    []decoder
	mu      sync.Mutex // guards closed against the interrupter
	closed  bool
	stopInt func() bool
	broken  bool // the connection saw an error or an interrupt: not reused
	done    bool // all rows were read
}

// openStream starts text (already guarded and described) with args on a
// native connection in a read-only transaction. ctx interrupts it whenever
// it ends, until close.
func (sm *streamer) openStream(ctx context.Context, text string, kind duckdb.StmtType, args []any) (*stream, error) {
	c, err := sm.conn()
	if err != nil {
		return nil, err
	}
	st := &stream{sm: sm, c: c}
	st.stopInt = context.AfterFunc(ctx, func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !st.closed {
			mapping.Interrupt(st.c)
		}
	})
	if err := st.open(ctx, text, kind, args); err != nil {
		st.broken = true
		st.close()
		return nil, err
	}
	return st, nil
}

func (st *stream) open(ctx context.Context, text string, kind duckdb.StmtType, args []any) error {
	if err := execNative(st.c, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return err
	}
	if err := st.prepare(text); err != nil {
		return err
	}
	if kind == duckdb.STATEMENT_TYPE_SELECT {
		// Columns of types the stream does not decode are cast to VARCHAR by
		// DuckDB (nested values, enums, uuids, intervals, times: all sent as
		// text anyway).
		if casts := st.castList(); casts != "" {
			mapping.DestroyPrepare(&st.stmt)
			if err := st.prepare("SELECT " + casts + " FROM (" + text + "\n) AS gtsm_stream"); err != nil {
				return err
			}
		}
	}
	if err := st.bind(args); err != nil {
		return err
	}
	var pending mapping.PendingResult
	if bindings.PendingPreparedStreaming(st.stmt, &pending) == mapping.StateError {
		msg := mapping.PendingError(pending)
		mapping.DestroyPending(&pending)
		return nativeError(msg)
	}
	defer mapping.DestroyPending(&pending)
	// An interrupt that came before the pending result existed was cleared
	// by it: look at the context once more.
	if err := ctx.Err(); err != nil {
		return err
	}
	if mapping.ExecutePending(pending, &st.res) == mapping.StateError {
		err := nativeError(mapping.ResultError(&st.res))
		mapping.DestroyResult(&st.res)
		return err
	}
	st.hasRes = true
	// The result's types, not the prepared statement's: a parameter's type
	// (WHERE s = $1 OR $1 IS NULL) may be known only once bound.
	n := int(mapping.ColumnCount(&st.res))
	for i := 0; i < n; i++ {
		lt := mapping.ColumnLogicalType(&st.res, mapping.IdxT(i))
		d, ok := decoderFor(lt)
		typ := mapping.GetTypeId(lt)
		mapping.DestroyLogicalType(&lt)
		if !ok {
			// Only a column typed by its parameters gets here (the others
			// were cast to VARCHAR): never read memory as the wrong type.
			return pgError(fmt.Errorf("result column %d has DuckDB type %d, which the endpoint cannot send without a cast", i+1, typ),
				codes.FeatureNotSupported, "cast the column, e.g. CAST(x AS VARCHAR)")
		}
		st.decs = append(st.decs, d)
	}
	return nil
}

func (st *stream) prepare(text string) error {
	if mapping.Prepare(st.c, text, &st.stmt) == mapping.StateError {
		msg := mapping.PrepareError(st.stmt)
		mapping.DestroyPrepare(&st.stmt)
		return nativeError(msg)
	}
	return nil
}

// castList is the select list that casts undecodable columns to VARCHAR
// ("#1, CAST(#2 AS VARCHAR)"), or "" when every column decodes.
func (st *stream) castList() string {
	n := int(mapping.PreparedStatementColumnCount(st.stmt))
	parts := make([]string, n)
	cast := false
	for i := 0; i < n; i++ {
		lt := mapping.PreparedStatementColumnLogicalType(st.stmt, mapping.IdxT(i))
		_, ok := decoderFor(lt)
		unknown := mapping.GetTypeId(lt) == mapping.TypeInvalid // typed once bound
		mapping.DestroyLogicalType(&lt)
		parts[i] = "#" + strconv.Itoa(i+1)
		if !ok && !unknown {
			parts[i] = "CAST(" + parts[i] + " AS VARCHAR)"
			cast = true
		}
	}
	if !cast {
		return ""
	}
	return strings.Join(parts, ", ")
}

// bind binds the client's values: text-format values as VARCHAR (DuckDB
// casts them to the parameter's type, as Postgres does), binary ones by type.
func (st *stream) bind(args []any) error {
	for i, a := range args {
		idx := mapping.IdxT(i + 1)
		var state mapping.State
		switch v := a.(type) {
		case nil:
			state = mapping.BindNull(st.stmt, idx)
		case string:
			state = mapping.BindVarchar(st.stmt, idx, v)
		case []byte:
			state = mapping.BindBlob(st.stmt, idx, v)
		case bool:
			state = mapping.BindBoolean(st.stmt, idx, v)
		case int16:
			state = mapping.BindInt16(st.stmt, idx, v)
		case int32:
			state = mapping.BindInt32(st.stmt, idx, v)
		case int64:
			state = mapping.BindInt64(st.stmt, idx, v)
		case float32:
			state = mapping.BindFloat(st.stmt, idx, v)
		case float64:
			state = mapping.BindDouble(st.stmt, idx, v)
		case time.Time:
			state = mapping.BindVarchar(st.stmt, idx, v.UTC().Format("2006-01-02 15:04:05.999999")+"+00")
		default:
			state = mapping.BindVarchar(st.stmt, idx, fmt.Sprint(v))
		}
		if state == mapping.StateError {
			return pgError(fmt.Errorf("parameter $%d: DuckDB refused the value %v (%T)", i+1, a, a), codeBadParam, "")
		}
	}
	return nil
}

// next returns the next chunk's rows (nil at the end). The values are what
// toWire takes for the column's oid.
func (st *stream) next(ctx context.Context) ([][]any, error) {
	if st.done {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		st.broken = true
		return nil, err
	}
	chunk := mapping.FetchChunk(st.res)
	if chunk.Ptr == nil {
		if msg := mapping.ResultError(&st.res); msg != "" {
			st.broken = true
			return nil, nativeError(msg)
		}
		if err := ctx.Err(); err != nil {
			st.broken = true
			return nil, err
		}
		st.done = true
		return nil, nil
	}
	defer mapping.DestroyDataChunk(&chunk)
	size := int(mapping.DataChunkGetSize(chunk))
	if size == 0 {
		st.done = true
		return nil, nil
	}
	ncol := len(st.decs)
	cells := make([]any, size*ncol)
	rows := make([][]any, size)
	for r := range rows {
		rows[r] = cells[r*ncol : (r+1)*ncol : (r+1)*ncol]
	}
	for col, dec := range st.decs {
		vec := mapping.DataChunkGetVector(chunk, mapping.IdxT(col))
		data := mapping.VectorGetData(vec)
		valid := mapping.VectorGetValidity(vec)
		for r := 0; r < size; r++ {
			if valid != nil && !mapping.ValidityRowIsValid(valid, mapping.IdxT(r)) {
				continue
			}
			rows[r][col] = dec(data, r)
		}
	}
	return rows, nil
}

// close ends the transaction and returns the connection to the pool, or
// discards it when it saw an error or interrupt.
func (st *stream) close() {
	st.stopInt()
	st.mu.Lock()
	st.closed = true
	st.mu.Unlock()
	if st.hasRes {
		mapping.DestroyResult(&st.res)
		st.hasRes = false
	}
	if st.stmt.Ptr != nil {
		mapping.DestroyPrepare(&st.stmt)
	}
	if st.broken || execNative(st.c, "ROLLBACK") != nil {
		mapping.Disconnect(&st.c)
		return
	}
	st.sm.release(st.c)
}

// A decoder reads row r of a flat vector's data.
type decoder func(data unsafe.Pointer, r int) any

func at[T any](data unsafe.Pointer, r int) T {
	var zero T
	return *(*T)(unsafe.Add(data, uintptr(r)*unsafe.Sizeof(zero)))
}

func decodeText(data unsafe.Pointer, r int) any {
	return mapping.StringTData((*mapping.StringT)(unsafe.Add(data, uintptr(r)*unsafe.Sizeof(mapping.StringT{}))))
}

func decodeHuge(data unsafe.Pointer, r int) any {
	h := at[mapping.HugeInt](data, r)
	lower, upper := mapping.HugeIntMembers(&h)
	v := new(big.Int).Lsh(big.NewInt(upper), 64)
	return v.Add(v, new(big.Int).SetUint64(lower))
}

// decoderFor returns the decoder of a column of type lt, or false for the
// types the stream leaves to DuckDB's VARCHAR cast.
func decoderFor(lt mapping.LogicalType) (decoder, bool) {
	switch t := mapping.GetTypeId(lt); t {
	case mapping.TypeBoolean:
		return func(d unsafe.Pointer, r int) any { return at[bool](d, r) }, true
	case mapping.TypeTinyInt:
		return func(d unsafe.Pointer, r int) any { return at[int8](d, r) }, true
	case mapping.TypeSmallInt:
		return func(d unsafe.Pointer, r int) any { return at[int16](d, r) }, true
	case mapping.TypeInteger:
		return func(d unsafe.Pointer, r int) any { return at[int32](d, r) }, true
	case mapping.TypeBigInt:
		return func(d unsafe.Pointer, r int) any { return at[int64](d, r) }, true
	case mapping.TypeUTinyInt:
		return func(d unsafe.Pointer, r int) any { return at[uint8](d, r) }, true
	case mapping.TypeUSmallInt:
		return func(d unsafe.Pointer, r int) any { return at[uint16](d, r) }, true
	case mapping.TypeUInteger:
		return func(d unsafe.Pointer, r int) any { return at[uint32](d, r) }, true
	case mapping.TypeUBigInt:
		return func(d unsafe.Pointer, r int) any { return at[uint64](d, r) }, true
	case mapping.TypeFloat:
		return func(d unsafe.Pointer, r int) any { return at[float32](d, r) }, true
	case mapping.TypeDouble:
		return func(d unsafe.Pointer, r int) any { return at[float64](d, r) }, true
	case mapping.TypeDate:
		return func(d unsafe.Pointer, r int) any {
			return time.Unix(int64(at[int32](d, r))*86400, 0).UTC()
		}, true
	case mapping.TypeTimestamp, mapping.TypeTimestampTZ:
		return func(d unsafe.Pointer, r int) any { return time.UnixMicro(at[int64](d, r)).UTC() }, true
	case mapping.TypeTimestampS:
		return func(d unsafe.Pointer, r int) any { return time.Unix(at[int64](d, r), 0).UTC() }, true
	case mapping.TypeTimestampMS:
		return func(d unsafe.Pointer, r int) any { return time.UnixMilli(at[int64](d, r)).UTC() }, true
	case mapping.TypeTimestampNS:
		return func(d unsafe.Pointer, r int) any { return time.Unix(0, at[int64](d, r)).UTC() }, true
	case mapping.TypeVarchar:
		if mapping.LogicalTypeGetAlias(lt) != "" {
			return nil, false // JSON and other aliases: DuckDB's rendering
		}
		return decodeText, true
	case mapping.TypeBlob:
		return func(d unsafe.Pointer, r int) any {
			s := decodeText(d, r).(string)
			return []byte(s)
		}, true
	case mapping.TypeHugeInt:
		return decodeHuge, true
	case mapping.TypeDecimal:
		scale := mapping.DecimalScale(lt)
		width := mapping.DecimalWidth(lt)
		var raw func(unsafe.Pointer, int) *big.Int
		switch mapping.DecimalInternalType(lt) {
		case mapping.TypeSmallInt:
			raw = func(d unsafe.Pointer, r int) *big.Int { return big.NewInt(int64(at[int16](d, r))) }
		case mapping.TypeInteger:
			raw = func(d unsafe.Pointer, r int) *big.Int { return big.NewInt(int64(at[int32](d, r))) }
		case mapping.TypeBigInt:
			raw = func(d unsafe.Pointer, r int) *big.Int { return big.NewInt(at[int64](d, r)) }
		case mapping.TypeHugeInt:
			raw = func(d unsafe.Pointer, r int) *big.Int { return decodeHuge(d, r).(*big.Int) }
		default:
			return nil, false
		}
		return func(d unsafe.Pointer, r int) any {
			return duckdb.Decimal{Width: width, Scale: scale, Value: raw(d, r)}
		}, true
	}
	return nil, false
}
