// Package lake owns the Parquet lake of gtsm-stream (issue 14): the
// immutable files that the owners of the Kafka partitions publish from their
// DuckDB files, and the query service's view of them, so that psql, Grafana,
// `gtsm sql`, `gtsm compare` and the named queries see every site in one
// place, with the single-file table names and SQL, however many processors
// share the topic.
//
// Layout (hive): DIR/<table>/site=<S>/date=<YYYY-MM-DD>/<file>.parquet for
// the tables with a site and a time, DIR/<table>/site=<S>/ for per-site
// tables, DIR/<table>/kafka_partition=<P>/ for per-partition ones. Every
// file holds all the table's columns (site included), so Trino, Spark or
// DuckDB elsewhere read it with or without the directory names.
//
// Publisher (Publish) writes them; the bookkeeping of what is published
// lives in the partition's own DuckDB (sql/ddl/0004_lake.sql), committed
// after the files are renamed into place and fsynced: see Publish for why a
// crash anywhere never shows a row twice or loses one. Query (OpenQuery) is
// an in-memory DuckDB whose views read the files.
package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DefaultRetention is how long a replaced file stays on disk: longer than
// any query (the SQL endpoint's default timeout is 30 s) that listed the
// directory before the replacement was renamed in.
const DefaultRetention = 10 * time.Minute

// Publisher writes partitions' rows into the lake directory. It keeps no
// state of its own (all of it is in each partition's DuckDB), so one
// Publisher may serve many partitions; Publish must not run concurrently
// for the same partition.
type Publisher struct {
	dir       string
	topic     string
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time

	// crash, when set (tests), is called at each stage of a round
	// ("copied": before the pending round commits; "renamed-one": after
	// the first file is renamed into the lake; "renamed": after all,
	// before the bookkeeping commit); an error stops Publish there, as a
	// crash would.
	crash func(stage string) error
}

// Option configures a Publisher.
type Option func(*Publisher)

// Topic is the input topic whose kafka_offsets and dead_letters rows are
// published (default gtsm_etl).
func Topic(t string) Option { return func(p *Publisher) { p.topic = t } }

// Retention is how long replaced files are kept (default DefaultRetention).
func Retention(d time.Duration) Option { return func(p *Publisher) { p.retention = d } }

// Logger receives one debug line per publish (default slog.Default()).
func Logger(l *slog.Logger) Option { return func(p *Publisher) { p.log = l } }

// New returns a Publisher into dir, creating it if needed.
func New(dir string, opts ...Option) (*Publisher, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lake directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("lake directory: %w", err)
	}
	p := &Publisher{dir: abs, topic: "gtsm_etl", retention: DefaultRetention, log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Dir is the lake directory (absolute). A processor whose DuckDB is locked
// down (its SQL endpoint is on) must list it in the lockdown's allowed
// directories, or DuckDB refuses the COPY ... TO.
func (p *Publisher) Dir() string { return p.dir }

// roundState is the partition's lake_rounds row.
type roundState struct {
	round, published int64
	pending          bool
	pRound, pFrom    int64
	pTo              int64
}

// Publish writes the partition's new and changed rows to the lake.
//
// One publish is a round: (1) in one DuckDB transaction, so one snapshot:
// read the partition's next_offset N and published_offset W; COPY the
// append-only tables' rows with offsets in [W, N) and every upserted span
// whose checksum changed (or that vanished: an empty file) into
// DIR/_tmp/p<P>/; record the round as pending (round, W, N); commit. (2)
// fsync each file, rename it into its span directory, fsync the directory.
// (3) In a second transaction: the spans' new files, the replaced files
// (deleted after the retention), published_offset = N, pending cleared.
//
// A crash before (1) commits leaves nothing visible (only _tmp, cleared
// next time). A crash after it leaves the round pending: the next Publish
// first redoes exactly [W, N) under the same file names (a rename over an
// identical file) and rewrites every span that has a file of the pending
// round, then records it; so a row is never in two files and never
// missing. Readers see a span's old file or its new one (rename is atomic,
// and the view takes the newest round of each span), never both or half.
func (p *Publisher) Publish(ctx context.Context, db *sql.DB, partition int32) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lake publish partition %d: %w", partition, err)
	}
	defer conn.Close()
	st, err := readRound(ctx, conn, partition)
	if err != nil {
		return err
	}
	if st.pending {
		if err := p.round(ctx, conn, partition, st, true); err != nil {
			return fmt.Errorf("lake publish partition %d: redo pending round %d [%d, %d): %w", partition, st.pRound, st.pFrom, st.pTo, err)
		}
		if st, err = readRound(ctx, conn, partition); err != nil {
			return err
		}
	}
	if err := p.round(ctx, conn, partition, st, false); err != nil {
		return fmt.Errorf("lake publish partition %d: %w", partition, err)
	}
	return p.collect(ctx, conn, partition)
}

func (p *Publisher) crashAt(stage string) error {
	if p.crash == nil {
		return nil
	}
	return p.crash(stage)
}

func readRound(ctx context.Context, conn *sql.Conn, partition int32) (roundState, error) {
	var st roundState
	var pr, pf, pt sql.NullInt64
	err := conn.QueryRowContext(ctx, `SELECT round, published_offset, pending_round, pending_from, pending_to
		FROM lake_rounds WHERE kafka_partition = ?`, partition).Scan(&st.round, &st.published, &pr, &pf, &pt)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("lake publish partition %d: read lake_rounds (is the database migrated to 0004_lake?): %w", partition, err)
	}
	st.pending = pr.Valid
	st.pRound, st.pFrom, st.pTo = pr.Int64, pf.Int64, pt.Int64
	return st, nil
}

// spanWrite is one span a round writes.
type spanWrite struct {
	tbl, span string
	rows      int64
	checksum  string
	old       string // the file prefix it replaces ("" for none)
}

func (p *Publisher) round(ctx context.Context, conn *sql.Conn, part int32, st roundState, redo bool) (err error) {
	tmp := filepath.Join(p.dir, "_tmp", fmt.Sprintf("p%04d", part))
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("temp directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	from, to, round := st.published, st.published, st.round+1
	if redo {
		from, to, round = st.pFrom, st.pTo, st.pRound
	} else {
		var next sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(next_offset) FROM kafka_offsets WHERE topic = ? AND kafka_partition = ?`,
			p.topic, part).Scan(&next); err != nil {
			return fmt.Errorf("read kafka_offsets: %w", err)
		}
		if next.Valid {
			to = next.Int64
		}
		if to < from {
			return fmt.Errorf("kafka_offsets next_offset %d is below the published offset %d: this is not the database the lake was published from", to, from)
		}
	}
	prefix := fmt.Sprintf("p%04d_r%012d_o%020d", part, round, to)
	var writes []spanWrite
	for _, t := range tables {
		if t.kind != upserted {
			continue
		}
		ws, err := p.changedSpans(ctx, tx, t, part, redo, round)
		if err != nil {
			return err
		}
		writes = append(writes, ws...)
	}
	if !redo && to == from && len(writes) == 0 {
		return nil // nothing new: no round
	}
	start := time.Now()
	for _, t := range tables {
		switch {
		case t.kind == appendOnly && to > from:
			if err := p.copyAppend(ctx, tx, t, part, from, to, tmp); err != nil {
				return err
			}
		case t.kind == upserted:
			if err := p.copySpans(ctx, tx, t, part, writes, tmp); err != nil {
				return err
			}
		}
	}
	if err := p.crashAt("copied"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO lake_rounds
		(kafka_partition, round, published_offset, pending_round, pending_from, pending_to, published_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, part, st.round, st.published, round, from, to, p.now().UTC()); err != nil {
		return fmt.Errorf("record pending round %d: %w", round, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit pending round %d: %w", round, err)
	}
	tx = nil
	copied := time.Since(start)

	files, err := p.moveIn(tmp, from, to, prefix, part)
	if err != nil {
		return err
	}
	if err := p.crashAt("renamed"); err != nil {
		return err
	}
	if err := p.record(ctx, conn, part, round, to, prefix, writes); err != nil {
		return err
	}
	p.log.Debug("lake round published", "partition", part, "round", round, "from", from, "to", to,
		"spans", len(writes), "files", files, "copy", copied, "total", time.Since(start), "redo", redo)
	return nil
}

// changedSpans compares the checksum of every span of the partition's rows
// of t with the one recorded for its file. In a redo, spans with a file of
// the pending round are rewritten whatever their checksum says (that file
// may hold rows of a snapshot newer than the recorded checksum).
func (p *Publisher) changedSpans(ctx context.Context, tx *sql.Tx, t table, part int32, redo bool, round int64) ([]spanWrite, error) {
	cols, err := columns(ctx, tx, t.name)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT %s AS span, count(*), CAST(sum(hash(%s)) AS VARCHAR) FROM %s WHERE %s GROUP BY ALL`,
		t.spanExpr(), strings.Join(cols, ", "), quoteIdent(t.name), fmt.Sprintf(t.where, part, quoteLiteral(p.topic)))
	type sum struct {
		rows     int64
		checksum string
	}
	cur := map[string]sum{}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("checksum %s spans: %w", t.name, err)
	}
	for rows.Next() {
		var span string
		var s sum
		if err := rows.Scan(&span, &s.rows, &s.checksum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checksum %s spans: %w", t.name, err)
		}
		cur[span] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checksum %s spans: %w", t.name, err)
	}
	type rec struct {
		file     string
		rows     int64
		checksum string
	}
	old := map[string]rec{}
	rows, err = tx.QueryContext(ctx, `SELECT span, file, rows, checksum FROM lake_spans WHERE tbl = ? AND kafka_partition = ?`, t.name, part)
	if err != nil {
		return nil, fmt.Errorf("read lake_spans of %s: %w", t.name, err)
	}
	for rows.Next() {
		var span string
		var r rec
		if err := rows.Scan(&span, &r.file, &r.rows, &r.checksum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read lake_spans of %s: %w", t.name, err)
		}
		old[span] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lake_spans of %s: %w", t.name, err)
	}
	forced := map[string]bool{}
	if redo {
		pat := filepath.Join(p.dir, t.name, strings.Repeat("*/", len(t.keys))+fmt.Sprintf("p%04d_r%012d_*.parquet", part, round))
		ms, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("find files of round %d: %w", round, err)
		}
		for _, m := range ms {
			rel, _ := filepath.Rel(filepath.Join(p.dir, t.name), filepath.Dir(m))
			forced[filepath.ToSlash(rel)] = true
		}
	}
	var out []spanWrite
	for span, s := range cur {
		o, had := old[span]
		if had && o.checksum == s.checksum && o.rows == s.rows && !forced[span] {
			continue
		}
		out = append(out, spanWrite{tbl: t.name, span: span, rows: s.rows, checksum: s.checksum, old: o.file})
	}
	for span, o := range old {
		if _, ok := cur[span]; ok {
			continue
		}
		if o.rows > 0 || forced[span] { // the span's rows were deleted: an empty file replaces its file
			out = append(out, spanWrite{tbl: t.name, span: span, checksum: "0", old: o.file})
		}
	}
	for span := range forced {
		if _, ok := cur[span]; !ok {
			if _, ok := old[span]; !ok { // written by the crashed round only
				out = append(out, spanWrite{tbl: t.name, span: span, checksum: "0"})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].span < out[j].span })
	return out, nil
}

// columns are the table's quoted column names in table order.
func columns(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, tbl string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT column_name FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? ORDER BY column_index`, tbl)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", tbl, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", tbl, err)
		}
		cols = append(cols, quoteIdent(c))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", tbl, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s not found (is the database migrated?)", tbl)
	}
	return cols, nil
}

// copyAppend writes the rows of offsets [from, to) of an append-only
// table into tmp/<table>/lake_k0=.../lake_k1=.../data_<i>.parquet.
func (p *Publisher) copyAppend(ctx context.Context, tx *sql.Tx, t table, part int32, from, to int64, tmp string) error {
	cols, err := columns(ctx, tx, t.name)
	if err != nil {
		return err
	}
	sel, names := t.keyCols()
	q := fmt.Sprintf(`COPY (SELECT %s, %s FROM %s WHERE %s AND kafka_offset >= %d AND kafka_offset < %d)
		TO %s (FORMAT parquet, PARTITION_BY (%s), FILENAME_PATTERN 'data_{i}')`,
		strings.Join(cols, ", "), sel, quoteIdent(t.name), fmt.Sprintf(t.where, part, quoteLiteral(p.topic)), from, to,
		quoteLiteral(filepath.Join(tmp, t.name)), names)
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("copy %s offsets [%d, %d) to %s: %w", t.name, from, to, tmp, err)
	}
	return nil
}

// copySpans writes the given spans of an upserted table: their rows with
// one COPY (through a temporary table of span names), and a tombstone file
// (one row of NULLs) for each span whose rows are gone.
func (p *Publisher) copySpans(ctx context.Context, tx *sql.Tx, t table, part int32, writes []spanWrite, tmp string) error {
	var spans, empty []string
	for _, w := range writes {
		if w.tbl != t.name {
			continue
		}
		if w.rows > 0 {
			spans = append(spans, w.span)
		} else {
			empty = append(empty, w.span)
		}
	}
	if len(spans)+len(empty) == 0 {
		return nil
	}
	cols, err := columns(ctx, tx, t.name)
	if err != nil {
		return err
	}
	if len(spans) > 0 {
		if _, err := tx.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE lake_changed (span VARCHAR)`); err != nil {
			return fmt.Errorf("spans of %s: %w", t.name, err)
		}
		for i := 0; i < len(spans); i += 500 {
			chunk := spans[i:min(i+500, len(spans))]
			args := make([]any, len(chunk))
			for j, s := range chunk {
				args[j] = s
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO lake_changed VALUES `+strings.TrimSuffix(strings.Repeat("(?), ", len(chunk)), ", "), args...); err != nil {
				return fmt.Errorf("spans of %s: %w", t.name, err)
			}
		}
		sel, names := t.keyCols()
		q := fmt.Sprintf(`COPY (SELECT %s, %s FROM %s WHERE %s AND (%s) IN (SELECT span FROM lake_changed))
			TO %s (FORMAT parquet, PARTITION_BY (%s), FILENAME_PATTERN 'data_{i}')`,
			strings.Join(cols, ", "), sel, quoteIdent(t.name), fmt.Sprintf(t.where, part, quoteLiteral(p.topic)), t.spanExpr(),
			quoteLiteral(filepath.Join(tmp, t.name)), names)
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("copy %d changed spans of %s: %w", len(spans), t.name, err)
		}
	}
	if len(empty) > 0 {
		// A file with no row would not replace the span's old file in the
		// view (which finds a span's newest file through its rows), so a
		// span whose rows were all deleted gets one row of NULLs (its key
		// columns are NOT NULL in the table: no real row looks like it).
		proto := filepath.Join(tmp, "empty_"+t.name+".parquet")
		q := fmt.Sprintf(`COPY (SELECT t.* FROM (SELECT 1) one LEFT JOIN (SELECT %s FROM %s WHERE false) t ON true) TO %s (FORMAT parquet)`,
			strings.Join(cols, ", "), quoteIdent(t.name), quoteLiteral(proto))
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("copy empty %s: %w", t.name, err)
		}
		for _, s := range empty {
			d := filepath.Join(tmp, t.name, filepath.FromSlash(tmpSpan(t, s)))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			if err := copyFile(proto, filepath.Join(d, "data_0.parquet")); err != nil {
				return fmt.Errorf("empty span %s/%s: %w", t.name, s, err)
			}
		}
		if err := os.Remove(proto); err != nil {
			return err
		}
	}
	return nil
}

// tmpSpan maps a span (site=X/date=Y) to COPY's directory (lake_k0=X/lake_k1=Y).
func tmpSpan(t table, span string) string {
	parts := strings.Split(span, "/")
	for i, k := range t.keys {
		if i < len(parts) {
			parts[i] = fmt.Sprintf("lake_k%d=", i) + strings.TrimPrefix(parts[i], k.name+"=")
		}
	}
	return strings.Join(parts, "/")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// moveIn fsyncs every file COPY wrote under tmp and renames it into its
// span directory, then fsyncs the directories it touched (a rename is
// durable once its directory is). Append-only tables' files are named by
// the offset range, upserted tables' by the round (prefix).
func (p *Publisher) moveIn(tmp string, from, to int64, prefix string, part int32) (int, error) {
	dirs := map[string]bool{}
	n := 0
	for _, t := range tables {
		root := filepath.Join(tmp, t.name)
		if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			if len(parts) != len(t.keys)+1 {
				return fmt.Errorf("unexpected file %s from COPY", path)
			}
			for i, k := range t.keys {
				v, ok := strings.CutPrefix(parts[i], fmt.Sprintf("lake_k%d=", i))
				if !ok {
					return fmt.Errorf("unexpected directory %s from COPY", path)
				}
				parts[i] = k.name + "=" + v
			}
			idx := strings.TrimSuffix(strings.TrimPrefix(parts[len(parts)-1], "data_"), ".parquet")
			name := prefix + "_" + idx + ".parquet"
			if t.kind == appendOnly {
				name = fmt.Sprintf("p%04d_o%020d-%020d_%s.parquet", part, from, to, idx)
			}
			dst := filepath.Join(p.dir, t.name, filepath.FromSlash(strings.Join(parts[:len(parts)-1], "/")), name)
			if err := syncFile(path); err != nil {
				return err
			}
			if err := mkdirs(filepath.Dir(dst), dirs); err != nil {
				return err
			}
			if err := os.Rename(path, dst); err != nil {
				return fmt.Errorf("rename into the lake: %w", err)
			}
			dirs[filepath.Dir(dst)] = true
			n++
			if n == 1 {
				return p.crashAt("renamed-one")
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("move %s files into %s: %w", t.name, p.dir, err)
		}
	}
	for d := range dirs {
		if err := syncFile(d); err != nil {
			return n, err
		}
	}
	return n, nil
}

// mkdirs creates dir and its missing parents, marking each parent of a
// created directory for fsync (its new entry).
func mkdirs(dir string, dirs map[string]bool) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirs(filepath.Dir(dir), dirs); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	dirs[filepath.Dir(dir)] = true
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// record commits the round: each written span's file and checksum, the
// files they replace (for collect), the new published offset.
func (p *Publisher) record(ctx context.Context, conn *sql.Conn, part int32, round, to int64, prefix string, writes []spanWrite) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record round %d: %w", round, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	now := p.now().UTC()
	for i := 0; i < len(writes); i += 500 {
		chunk := writes[i:min(i+500, len(writes))]
		var args, gargs []any
		for _, w := range chunk {
			file := w.tbl + "/" + w.span + "/" + prefix
			args = append(args, w.tbl, part, w.span, file, w.rows, w.checksum)
			if w.old != "" && w.old != file {
				gargs = append(gargs, w.old, part, now)
			}
		}
		if _, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO lake_spans VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(chunk)), ", "), args...); err != nil {
			return fmt.Errorf("record round %d spans: %w", round, err)
		}
		if len(gargs) > 0 {
			if _, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO lake_garbage VALUES `+
				strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(gargs)/3), ", "), gargs...); err != nil {
				return fmt.Errorf("record round %d replaced files: %w", round, err)
			}
		}
	}
	if _, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO lake_rounds
		(kafka_partition, round, published_offset, pending_round, pending_from, pending_to, published_at)
		VALUES (?, ?, ?, NULL, NULL, NULL, ?)`, part, round, to, now); err != nil {
		return fmt.Errorf("record round %d: %w", round, err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("record round %d: commit: %w", round, err)
	}
	return nil
}

// collect deletes the partition's replaced files older than the retention.
func (p *Publisher) collect(ctx context.Context, conn *sql.Conn, part int32) error {
	cut := p.now().UTC().Add(-p.retention)
	rows, err := conn.QueryContext(ctx, `SELECT file FROM lake_garbage WHERE kafka_partition = ? AND superseded_at <= ?`, part, cut)
	if err != nil {
		return fmt.Errorf("lake collect partition %d: %w", part, err)
	}
	var files []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return fmt.Errorf("lake collect partition %d: %w", part, err)
		}
		files = append(files, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lake collect partition %d: %w", part, err)
	}
	for _, f := range files {
		ms, err := filepath.Glob(filepath.Join(p.dir, filepath.FromSlash(f)) + "_*.parquet")
		if err != nil {
			return fmt.Errorf("lake collect %s: %w", f, err)
		}
		for _, m := range ms {
			if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("lake collect: %w", err)
			}
		}
		// A crash here leaves the row: the next collect finds no file.
		if _, err := conn.ExecContext(ctx, `DELETE FROM lake_garbage WHERE file = ?`, f); err != nil {
			return fmt.Errorf("lake collect %s: %w", f, err)
		}
	}
	return nil
}
