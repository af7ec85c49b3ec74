package processor

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
)

type deadLetter struct {
	// topic is the source topic when it is not the input topic (a station
	// metadata record met through the lookup table, metaintake.go); its
	// partition and offset are then those of the input message at which
	// the processor met it.
	topic      string
	partition  int32
	offset     int64
	err        string
	reason     string // dlq.reason
	key, value []byte
	headers    map[string][]byte // the message's own headers, kept in the dead-letter topic
}

// batch is everything one partition applied since its last cut: the rows,
// the state changes as of its last message, and the deferred Kafka commits of
// its messages. It is written to DuckDB in one transaction.
type batch struct {
	seq       uint64
	partition int32
	next      int64         // Kafka offset after the last message of the batch
	rows      rowSet        // rows.go
	scratch   record.Record // the message being applied (consume.go apply)
	loader    dbLoader      // ditto, DuckDB's state for it (loaderFor)
	loaderOf  context.Context
	states    []stateRow
	windows   []windowRow
	gaps      []gapRow
	dead      []deadLetter
	commits   []func(error)
	messages  int
	dups      int
	late      int
	firstAt   time.Time // when the first message of the batch was applied
	l2        l2Batch   // Level-2 inputs (level2.go)
}

// sink writes batches to DuckDB on one dedicated connection, with appenders
// that live as long as the connection.
type sink struct {
	topic string
	conn  *sql.Conn

	rows    *duckdb.Appender    // gtsm_etl, all columns
	narrow  [3]*duckdb.Appender // gtsm_etl, key/site/time/timestamp + the session's 4 strain channels + source columns
	windows *duckdb.Appender    // INSERT OR REPLACE INTO windows
	states  *duckdb.Appender    // INSERT OR REPLACE INTO site_state
	gapsUp  *duckdb.Appender    // INSERT OR REPLACE INTO gaps
	gapsDel *duckdb.Appender    // DELETE FROM gaps USING ...

	level2 *l2proc // Level-2, written in the same transaction (level2.go); nil: off

	args  []driver.Value // reused argument vector for gtsm_etl rows
	nargs []driver.Value

	// land is the table function that feeds narrow rows to DuckDB a data
	// chunk at a time (see landSource); pend holds the columns of the
	// INSERT being executed, read by the function's scan.
	land    string
	landSQL [3]string // per session
	pend    *narrowRows

	// chunks append narrow rows a data chunk at a time through DuckDB's C
	// appender (chunks.go), per session; nil: land or the narrow appender.
	chunks [3]*chunkAppender
}

// narrowColumns are the columns of the narrow appender of a session. Most
// records (all of Hour and Min) set only their four strain fields; appending
// the other 52 as NULLs costs one cgo call each in the driver, so such rows
// go through an appender of these columns only and DuckDB fills the rest
// with their default, NULL, in bulk (3-4x faster).
func narrowColumns(s bottle.Session) []string {
	cols := []string{"key_site", "site", "time", "timestamp"}
	for _, f := range record.StrainFields(s) {
		cols = append(cols, record.FieldNames[f])
	}
	return append(cols, "session", "kafka_partition", "kafka_offset", "late")
}

// narrowMask: the fields a record may set to use the narrow appender.
func narrowMask(s bottle.Session) uint64 {
	m := uint64(1<<record.FieldSite | 1<<record.FieldTime | 1<<record.FieldTimestamp)
	for _, f := range record.StrainFields(s) {
		m |= 1 << uint(f)
	}
	return m
}

func newSinkArgs() *sink {
	return &sink{args: make([]driver.Value, 4+record.NumInts+4), nargs: make([]driver.Value, 4+4+4)}
}

func openSink(ctx context.Context, db *sql.DB, topic, memoryLimit string) (*sink, error) {
	if !sizeRE.MatchString(memoryLimit) {
		return nil, fmt.Errorf("DuckDB memory limit %q: want a size like 512MB or 1GB", memoryLimit)
	}
	if _, err := db.ExecContext(ctx, "SET memory_limit = '"+memoryLimit+"'"); err != nil {
		return nil, fmt.Errorf("SET memory_limit = %s: %w", memoryLimit, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("DuckDB connection: %w", err)
	}
	k := newSinkArgs()
	k.topic, k.conn = topic, conn
	err = conn.Raw(func(dc any) error {
		c := dc.(driver.Conn)
		var err error
		if k.rows, err = duckdb.NewAppender(c, "", "", "gtsm_etl"); err != nil {
			return fmt.Errorf("appender gtsm_etl: %w", err)
		}
		for _, s := range bottle.Sessions {
			if k.narrow[s], err = duckdb.NewAppenderWithColumns(c, "", "", "gtsm_etl", narrowColumns(s)); err != nil {
				return fmt.Errorf("appender gtsm_etl (%s columns): %w", s, err)
			}
		}
		if k.windows, err = duckdb.NewTableAppender(c, `INSERT OR REPLACE INTO windows SELECT * FROM appended_data`, "", "", "windows", nil); err != nil {
			return fmt.Errorf("appender windows: %w", err)
		}
		if k.states, err = duckdb.NewTableAppender(c, `INSERT OR REPLACE INTO site_state SELECT * FROM appended_data`, "", "", "site_state", nil); err != nil {
			return fmt.Errorf("appender site_state: %w", err)
		}
		if k.gapsUp, err = duckdb.NewTableAppender(c, `INSERT OR REPLACE INTO gaps SELECT * FROM appended_data`, "", "", "gaps", nil); err != nil {
			return fmt.Errorf("appender gaps: %w", err)
		}
		if k.gapsDel, err = duckdb.NewTableAppender(c,
			`DELETE FROM gaps USING appended_data a WHERE gaps.site = a.col1 AND gaps.session = a.col2 AND gaps.gap_start = a.col3`,
			"", "", "gaps", []string{"site", "session", "gap_start"}); err != nil {
			return fmt.Errorf("appender gaps delete: %w", err)
		}
		raw, err := rawConn(c)
		if err != nil {
			return nil // the table function lands narrow rows (land.go)
		}
		for _, s := range bottle.Sessions {
			if k.chunks[s], err = newChunkAppender(raw, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = k.registerLand() // outside Raw: it takes the connection itself
	}
	if err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

// close closes the appenders, then the connection (DuckDB skips the shutdown
// checkpoint if appenders outlive their connection).
func (k *sink) close() error {
	var first error
	for _, c := range k.chunks {
		if c != nil {
			if err := c.close(); err != nil && first == nil {
				first = err
			}
		}
	}
	for _, a := range []*duckdb.Appender{k.rows, k.narrow[0], k.narrow[1], k.narrow[2], k.windows, k.states, k.gapsUp, k.gapsDel} {
		if a != nil {
			if err := a.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := k.conn.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func ms(t int64) time.Time { return time.UnixMilli(t).UTC() }

// write commits the batches in ONE transaction: rows, state, windows, gaps,
// dead letters and the Kafka offsets they cover become visible together, or
// (crash, error) not at all.
func (k *sink) write(ctx context.Context, bs []*batch) (err error) {
	if _, err := k.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("DuckDB begin: %w", err)
	}
	defer func() {
		if err != nil {
			for _, c := range k.chunks {
				if c != nil {
					c.clear()
				}
			}
			k.conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	next := map[int32]int64{}
	for _, b := range bs {
		for i := range b.rows.wide {
			r := &b.rows.wide[i]
			if err := k.appendRow(r); err != nil {
				return fmt.Errorf("append gtsm_etl row (partition %d offset %d): %w", r.partition, r.offset, err)
			}
		}
		if b.next > next[b.partition] {
			next[b.partition] = b.next
		}
	}
	if err := k.flushRows(); err != nil {
		return err
	}
	for _, b := range bs {
		for _, n := range b.rows.narrow {
			if err := k.landNarrow(ctx, n, b.partition); err != nil {
				return err
			}
		}
	}
	if err := k.flushRows(); err != nil {
		return err
	}
	// Batches of one partition follow each other; each batch's upserts are
	// flushed before the next so a key never appears twice in one statement.
	now := time.Now().UTC()
	for _, b := range bs {
		if err := k.upserts(b, now); err != nil {
			return err
		}
		for _, d := range b.dead {
			if _, err := k.conn.ExecContext(ctx, `INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)`,
				cmp.Or(d.topic, k.topic), d.partition, d.offset, d.err, nullBytes(d.key), nullBytes(d.value), now); err != nil {
				return fmt.Errorf("dead letter (partition %d offset %d): %w", d.partition, d.offset, err)
			}
		}
	}
	if k.level2 != nil { // Level-2 hook: after the rows, before the offsets
		if err := k.level2.write(ctx, k.conn, bs); err != nil {
			return err
		}
	}
	var sb strings.Builder
	var args []any
	sb.WriteString(`INSERT OR REPLACE INTO kafka_offsets VALUES `)
	i := 0
	for p, n := range next {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?)")
		args = append(args, k.topic, p, n)
		i++
	}
	if i > 0 {
		if _, err := k.conn.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("kafka_offsets: %w", err)
		}
	}
	if _, err := k.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("DuckDB commit: %w", err)
	}
	return nil
}

func (k *sink) flushRows() error {
	for _, c := range k.chunks {
		if c != nil {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	for _, a := range []*duckdb.Appender{k.rows, k.narrow[0], k.narrow[1], k.narrow[2]} {
		if a == nil {
			continue
		}
		if err := a.Flush(); err != nil {
			return fmt.Errorf("flush gtsm_etl rows: %w", err)
		}
	}
	return nil
}

func (k *sink) appendRow(r *row) error {
	rec := &r.rec
	s := rec.Session
	if n := k.narrow[s]; n != nil && isNarrow(rec) {
		a := k.nargs
		a[0], a[1], a[2], a[3] = r.keySite, rec.Site, rec.Time, rec.Timestamp
		for i, f := range record.StrainFields(s) {
			a[4+i] = nullInt(rec.IsSet(f), rec.Ints[f-record.FirstInt])
		}
		a[8], a[9], a[10], a[11] = s.String(), r.partition, r.offset, r.late
		return n.AppendRow(a...)
	}
	a := k.args
	a[0] = r.keySite
	a[1], a[2], a[3] = nil, nil, nil
	if rec.IsSet(record.FieldSite) {
		a[1] = rec.Site
	}
	if rec.IsSet(record.FieldTime) {
		a[2] = rec.Time
	}
	if rec.IsSet(record.FieldTimestamp) {
		a[3] = rec.Timestamp
	}
	for i := 0; i < record.NumInts; i++ {
		if rec.Set&(1<<uint(record.FirstInt+i)) != 0 {
			a[4+i] = rec.Ints[i]
		} else {
			a[4+i] = nil
		}
	}
	j := 4 + record.NumInts
	a[j], a[j+1], a[j+2], a[j+3] = rec.Session.String(), r.partition, r.offset, r.late
	return k.rows.AppendRow(a...)
}

// nullBytes is NULL for a nil slice (a tombstone's value), not an empty
// BLOB: the driver would store nil []byte as ”.
func nullBytes(b []byte) driver.Value {
	if b == nil {
		return nil
	}
	return b
}

func nullInt(ok bool, v int32) driver.Value {
	if !ok {
		return nil
	}
	return v
}

func nullTime(ok bool, t int64) driver.Value {
	if !ok {
		return nil
	}
	return ms(t)
}

func nullMs(ok bool, t int64) driver.Value {
	if !ok {
		return nil
	}
	return t
}

func (k *sink) upserts(b *batch, now time.Time) error {
	for _, s := range b.states {
		if err := k.states.AppendRow(s.site, s.session, nullTime(s.has, s.first), nullTime(s.has, s.last),
			s.records, s.duplicates, s.late, s.gapCount, s.missing, s.partition, s.offset, now); err != nil {
			return fmt.Errorf("stage site_state %s/%s: %w", s.site, s.session, err)
		}
	}
	if err := k.states.Flush(); err != nil {
		return fmt.Errorf("upsert site_state: %w", err)
	}
	for _, wr := range b.windows {
		w := &wr.w
		sess, _ := bottle.ParseSession(wr.session)
		strain := record.StrainFields(sess)
		for ci := range w.ch {
			a := &w.ch[ci]
			nn := w.n - a.nNull
			var mean, micro driver.Value
			if nn > 0 {
				mean = float64(a.sum) / float64(nn)
			}
			if a.nMicro > 0 {
				micro = a.sumMicro / float64(a.nMicro)
			}
			if err := k.windows.AppendRow(wr.site, wr.session, widths[w.width].name, ms(w.start), ms(w.end()),
				record.FieldNames[strain[ci]], w.n, a.nNull, nullInt(nn > 0, a.min), nullInt(nn > 0, a.max), mean,
				nullInt(nn > 0, a.first), nullInt(nn > 0, a.last), micro, w.final, w.lateUpdates,
				a.sum, nullMs(nn > 0, a.firstT), nullMs(nn > 0, a.lastT), a.nMicro, a.sumMicro); err != nil {
				return fmt.Errorf("stage window %s/%s %s %d: %w", wr.site, wr.session, widths[w.width].name, w.start, err)
			}
		}
	}
	if err := k.windows.Flush(); err != nil {
		return fmt.Errorf("upsert windows: %w", err)
	}
	nDel := 0
	for _, g := range b.gaps {
		if g.deleted {
			nDel++
			if err := k.gapsDel.AppendRow(g.site, g.session, ms(g.start)); err != nil {
				return fmt.Errorf("stage gap delete: %w", err)
			}
		}
	}
	if nDel > 0 {
		if err := k.gapsDel.Flush(); err != nil {
			return fmt.Errorf("delete gaps: %w", err)
		}
	}
	for _, g := range b.gaps {
		if !g.deleted {
			if err := k.gapsUp.AppendRow(g.site, g.session, ms(g.g.prev+g.iv), ms(g.g.next-g.iv), g.g.missing(g.iv)); err != nil {
				return fmt.Errorf("stage gap: %w", err)
			}
		}
	}
	if err := k.gapsUp.Flush(); err != nil {
		return fmt.Errorf("upsert gaps: %w", err)
	}
	return nil
}
