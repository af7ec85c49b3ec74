// Package lake owns the lake of gtsm-stream: Apache Iceberg tables (same
// names and columns as the processor's DuckDB tables) that the owners of
// the Kafka partitions publish from their DuckDB files, and the query
// service's view of them, so that psql, Grafana, `gtsm sql`, `gtsm
// compare` and the named queries see every site in one place, however many
// processors share the topic, and Trino, Spark, PyIceberg or DuckDB's
// iceberg extension read the same tables through the catalog.
//
// Catalog: an Iceberg SQL catalog, by default in the SQLite file
// DIR/catalog.sqlite (no server; its commits are compare-and-swap
// transactions, so owners in several processes commit safely), or on
// Postgres, or a REST catalog (Catalog option). Tables live in DIR/<table>
// (metadata/ and data/). Data file paths never contain data: DuckDB writes
// each span's file under a directory named by the md5 of its partition
// values, and the partition values are Iceberg metadata.
//
// Publisher (Publish) commits a partition's new and changed rows as
// Iceberg snapshots whose summary carries the Kafka offsets they cover,
// and records the offset reached in the table's properties in the same
// commit: see Publish for why a crash anywhere never shows a row twice or
// loses one. Query (OpenQuery) is a DuckDB whose views read the current
// snapshot's data files. Maintain compacts and expires.
package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	icetable "github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
)

// DefaultRetention is how long a data file that is no longer current, and
// the snapshots that still list it, stay: longer than any query (the SQL
// endpoint's default timeout is 30 s) that planned on an older snapshot.
const DefaultRetention = 5 * time.Minute

// DefaultMaintainEvery is how often an owner compacts its spans and
// expires old snapshots (Publisher option MaintainEvery): often, because
// every commit rewrites the table's metadata, whose size grows with the
// snapshots kept.
const DefaultMaintainEvery = 2 * time.Minute

// Publisher commits partitions' rows to the lake's Iceberg tables. It
// keeps no state of its own that matters (what is published is in the
// tables' metadata and in each partition's DuckDB), so one Publisher may
// serve many partitions; Publish must not run concurrently for the same
// partition.
type Publisher struct {
	dir string
	cfg config
	cat *lakeCatalog
	now func() time.Time

	// crash, when set (tests), is called at each stage ("copied": data
	// files written, nothing committed; "committed-one": after the first
	// table's commit; "committed": after every commit, before the
	// bookkeeping); an error stops Publish there, as a crash would.
	crash func(stage string) error

	mu         sync.Mutex
	maintained map[int32]time.Time
}

// config is what New and OpenQuery share.
type config struct {
	topic     string
	retention time.Duration
	catalog   string
	maintain  time.Duration
	log       *slog.Logger
	// now is the clock of snapshot expiry (tests freeze it).
	now func() time.Time
}

// Option configures a Publisher or a Query.
type Option func(*config)

// Topic is the input topic whose kafka_offsets and dead_letters rows are
// published (default gtsm_etl).
func Topic(t string) Option { return func(c *config) { c.topic = t } }

// Retention is how long files that are no longer current, and snapshots,
// are kept (default DefaultRetention). Keep it longer than the SQL
// timeout.
func Retention(d time.Duration) Option { return func(c *config) { c.retention = d } }

// Logger receives one debug line per publish (default slog.Default()).
func Logger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Catalog points the lake at an Iceberg catalog other than the SQLite
// file in the lake directory: postgres://... (an SQL catalog on Postgres,
// for processors on several machines sharing the directory) or
// http(s)://... (a REST catalog). "" is the default.
func Catalog(uri string) Option { return func(c *config) { c.catalog = uri } }

// MaintainEvery is how often Publish also compacts the partition's spans
// and expires snapshots (default DefaultMaintainEvery; 0 never). Orphan
// files are deleted by `gtsm lake maintain` (Maintain) only.
func MaintainEvery(d time.Duration) Option { return func(c *config) { c.maintain = d } }

func newConfig(opts []Option) config {
	// GTSM_LAKE_CATALOG is the catalog of every command that opens the
	// lake (process --lake, query-service, lake maintain) unless an
	// option says otherwise.
	c := config{topic: "gtsm_etl", retention: DefaultRetention, maintain: DefaultMaintainEvery, log: slog.Default(),
		catalog: os.Getenv("GTSM_LAKE_CATALOG"), now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// New returns a Publisher into dir, creating it and its catalog if needed.
func New(dir string, opts ...Option) (*Publisher, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lake directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("lake directory: %w", err)
	}
	cfg := newConfig(opts)
	cat, err := openCatalog(context.Background(), abs, cfg.catalog)
	if err != nil {
		return nil, err
	}
	return &Publisher{dir: abs, cfg: cfg, cat: cat, now: time.Now, maintained: map[int32]time.Time{}}, nil
}

// Dir is the lake directory (absolute). A processor whose DuckDB is locked
// down (its SQL endpoint is on) must list it in the lockdown's allowed
// directories, or DuckDB refuses the COPY ... TO.
func (p *Publisher) Dir() string { return p.dir }

// Close closes the catalog.
func (p *Publisher) Close() error { return p.cat.close() }

func (p *Publisher) crashAt(stage string) error {
	if p.crash == nil {
		return nil
	}
	return p.crash(stage)
}

// errReplan: the lake moved under a plan (another owner published the
// same offsets): plan again from the lake's new state.
var errReplan = errors.New("the lake changed under the publish: planning again")

// Publish commits the partition's new and changed rows to the lake.
//
// In one DuckDB transaction (one snapshot of the owner's state at its
// next_offset N), for each table: append-only tables read the offset W
// the table's properties say is published for the partition and write the
// rows of offsets [W, N); upserted tables compare each span's checksum
// (count and sum of row hashes) with what was last committed and with the
// spans the lake holds for the partition, and write every changed span
// whole. Then, per table, one Iceberg commit, pinned to the snapshot the
// plan was made on: append-only tables add the files and set the
// property to N; upserted tables replace the changed spans' data files
// (remove the old, add the new) and remove the spans whose rows are gone.
// The snapshot summary carries gtsm.kafka-partition, gtsm.kafka-offset-from
// and gtsm.kafka-offset-to.
//
// A crash before a table's commit leaves only unreferenced files (orphans,
// removed by maintenance after the retention); after it, the table holds
// exactly [W, N) more and its property says N, so the next publish starts
// there; an upserted span is replaced whole, so a span committed twice is
// the same rows. A commit that loses a race with another owner's is
// planned again on the new snapshot.
func (p *Publisher) Publish(ctx context.Context, db *sql.DB, partition int32) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lake publish partition %d: %w", partition, err)
	}
	defer conn.Close()
	for attempt := 0; ; attempt++ {
		err = p.publishOnce(ctx, conn, partition)
		if !errors.Is(err, errReplan) || attempt >= 30 {
			break
		}
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("lake publish partition %d: %w", partition, err)
	}
	if p.cfg.maintain > 0 {
		p.mu.Lock()
		last, ok := p.maintained[partition]
		due := !ok || p.now().Sub(last) >= p.cfg.maintain
		if !ok {
			// Spread the first maintenance over the interval.
			p.maintained[partition] = p.now().Add(-time.Duration(rand.Int64N(int64(p.cfg.maintain))))
			due = false
		}
		if due {
			p.maintained[partition] = p.now()
		}
		p.mu.Unlock()
		if due {
			sites, err := partitionSites(ctx, conn, partition)
			if err != nil {
				return err
			}
			// Compaction of the partition's spans and snapshot expiry; the
			// orphan scan is left to `gtsm lake maintain` (it reads every
			// snapshot's manifests).
			if _, err := maintain(ctx, p.cat, p.cfg, ownedBy(partition, sites), false); err != nil {
				p.cfg.log.Warn("lake maintenance", "partition", partition, "err", err)
			}
		}
	}
	return nil
}

// backoff is the wait before retrying a commit that lost a race: short
// (a retry only reloads the table's metadata; the files are written
// already) and jittered, so owners racing for one table spread out.
func backoff(attempt int) time.Duration {
	d := time.Duration(5<<min(attempt, 5)) * time.Millisecond
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// plan is one table's commit of a publish.
type plan struct {
	t        table
	base     *icetable.Table
	from, to int64 // append-only: offsets [from, to)
	add      []iceberg.DataFile
	dirs     []string        // directories of the written files (removed if the plan is dropped)
	replace  map[string]bool // upserted: partition keys whose current files are removed
	spans    map[string]spanSum
	gone     []string // upserted: partition keys no longer in DuckDB
}

// spanSum is a span's checksum in DuckDB.
type spanSum struct {
	id       string // md5 (spanID)
	vals     []sql.NullString
	rows     int64
	checksum string
}

func (p *Publisher) publishOnce(ctx context.Context, conn *sql.Conn, part int32) error {
	t0 := time.Now()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var plans []*plan
	drop := func() {
		for _, pl := range plans {
			pl.removeFiles()
		}
	}
	err = func() error {
		defer tx.Rollback()
		var next sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(next_offset) FROM kafka_offsets WHERE topic = ? AND kafka_partition = ?`,
			p.cfg.topic, part).Scan(&next); err != nil {
			return fmt.Errorf("read kafka_offsets: %w", err)
		}
		sites, err := partitionSites(ctx, tx, part)
		if err != nil {
			return err
		}
		for _, t := range tables {
			tb, err := p.cat.load(ctx, t.name)
			if err != nil {
				return err
			}
			var pl *plan
			if t.kind == appendOnly {
				pl, err = p.planAppend(ctx, tx, t, tb, part, next.Int64)
			} else {
				pl, err = p.planUpsert(ctx, tx, conn, t, tb, part, sites)
			}
			if err != nil {
				return err
			}
			if pl != nil {
				plans = append(plans, pl)
			}
		}
		return nil
	}()
	if err != nil {
		drop()
		return err
	}
	if len(plans) == 0 {
		return nil
	}
	if err := p.crashAt("copied"); err != nil {
		return err // the files stay: orphans, as after a real crash
	}
	start := time.Now()
	p.cfg.log.Debug("lake partition planned", "partition", part, "tables", len(plans), "took", time.Since(t0))
	for i, pl := range plans {
		if err := p.commit(ctx, pl, part); err != nil {
			// Files of a commit whose outcome is unknown stay (orphans
			// if it failed, removed by maintenance after the retention).
			if errors.Is(err, errReplan) {
				pl.removeFiles()
			}
			for _, rest := range plans[i+1:] {
				rest.removeFiles()
			}
			return err
		}
		if i == 0 {
			if err := p.crashAt("committed-one"); err != nil {
				return err
			}
		}
	}
	if err := p.crashAt("committed"); err != nil {
		return err
	}
	for _, pl := range plans {
		if pl.t.kind == upserted {
			if err := p.record(ctx, conn, pl, part); err != nil {
				return err
			}
		}
	}
	p.cfg.log.Debug("lake partition published", "partition", part, "tables", len(plans), "took", time.Since(start))
	return nil
}

func (pl *plan) removeFiles() {
	for _, d := range pl.dirs {
		os.RemoveAll(d)
	}
}

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// partitionSites are the sites the processor recorded for the partition.
func partitionSites(ctx context.Context, q querier, part int32) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT site FROM site_state WHERE kafka_partition = ?`, part)
	if err != nil {
		return nil, fmt.Errorf("sites of partition %d: %w", part, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("sites of partition %d: %w", part, err)
		}
		out[s] = true
	}
	return out, rows.Err()
}

// offsetKey is the table property holding the offset published for a
// partition of the topic.
func offsetKey(topic string, part int32) string {
	return fmt.Sprintf("gtsm.kafka-offset.%s.%d", topic, part)
}

func publishedOffset(tb *icetable.Table, topic string, part int32) (int64, error) {
	v, ok := tb.Properties()[offsetKey(topic, part)]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lake table %s: property %s = %q: %w", tb.Identifier(), offsetKey(topic, part), v, err)
	}
	return n, nil
}

func (p *Publisher) planAppend(ctx context.Context, tx *sql.Tx, t table, tb *icetable.Table, part int32, next int64) (*plan, error) {
	from, err := publishedOffset(tb, p.cfg.topic, part)
	if err != nil {
		return nil, err
	}
	if next < from {
		return nil, fmt.Errorf("kafka_offsets next_offset %d of partition %d is below the offset %d the lake table %s holds: this is not the database the lake was published from",
			next, part, from, t.name)
	}
	if next == from {
		return nil, nil
	}
	pl := &plan{t: t, base: tb, from: from, to: next}
	where := fmt.Sprintf(t.where, part, quoteLiteral(p.cfg.topic)) + fmt.Sprintf(" AND kafka_offset >= %d AND kafka_offset < %d", from, next)
	if err := p.writeFiles(ctx, tx, pl, where, nil); err != nil {
		return nil, err
	}
	return pl, nil
}

// writeFiles COPYs the rows of t matching where (and, for spans, whose
// span id is listed) into one Parquet file per span under the table's
// data directory, and reads each file's Iceberg metadata (bounds, counts,
// partition, checked against the span's values when known).
func (p *Publisher) writeFiles(ctx context.Context, tx *sql.Tx, pl *plan, where string, spans map[string]spanSum) error {
	s := p.cat.sch[pl.t.name]
	tblDir := filepath.Join(p.dir, pl.t.name)
	if err := noSymlink(p.dir, filepath.Join(pl.t.name, "data")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tblDir, "data"), 0o755); err != nil {
		return fmt.Errorf("lake table %s: %w", pl.t.name, err)
	}
	out := filepath.Join(tblDir, "data", uuid.NewString())
	pl.dirs = append(pl.dirs, out)
	if spans != nil {
		ids := make([]string, 0, len(spans))
		for _, sp := range spans {
			ids = append(ids, quoteLiteral(sp.id))
		}
		sort.Strings(ids)
		where += fmt.Sprintf(" AND %s IN (%s)", pl.t.spanID(), strings.Join(ids, ", "))
	}
	sel := make([]string, len(s.cols))
	fids := make([]string, len(s.cols))
	for i, c := range s.cols {
		sel[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", quoteIdent(c.name), c.stored, quoteIdent(c.name))
		fids[i] = fmt.Sprintf("%s: %d", quoteIdent(c.name), c.id)
	}
	q := fmt.Sprintf(`COPY (SELECT %s, %s AS lake_span FROM %s WHERE %s)
		TO %s (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (lake_span), FILENAME_PATTERN 'data_{i}', FIELD_IDS {%s})`,
		strings.Join(sel, ", "), pl.t.spanID(), quoteIdent(pl.t.name), where, quoteLiteral(out), strings.Join(fids, ", "))
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("copy %s rows to %s: %w", pl.t.name, out, err)
	}
	byID := map[string][]sql.NullString{}
	for _, sp := range spans {
		byID[sp.id] = sp.vals
	}
	if spans == nil { // an append: the spans of the rows copied
		rows, err := tx.QueryContext(ctx, fmt.Sprintf(`SELECT DISTINCT %s, %s FROM %s WHERE %s`,
			pl.t.spanID(), pl.t.spanCols(), quoteIdent(pl.t.name), where))
		if err != nil {
			return fmt.Errorf("spans of %s: %w", pl.t.name, err)
		}
		for rows.Next() {
			var id string
			vals := make([]sql.NullString, len(pl.t.keys))
			dst := []any{&id}
			for i := range vals {
				dst = append(dst, &vals[i])
			}
			if err := rows.Scan(dst...); err != nil {
				rows.Close()
				return fmt.Errorf("spans of %s: %w", pl.t.name, err)
			}
			byID[id] = vals
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("spans of %s: %w", pl.t.name, err)
		}
	}
	fsys, err := pl.base.FS(ctx)
	if err != nil {
		return err
	}
	es, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no rows
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", out, err)
	}
	for _, e := range es {
		id, ok := strings.CutPrefix(e.Name(), "lake_span=")
		vals, known := byID[id]
		if !ok || !e.IsDir() || !known {
			return fmt.Errorf("unexpected entry %s in %s", e.Name(), out)
		}
		// DuckDB named the directory lake_span=<md5>: a reader that
		// infers hive partitions from paths would add a column.
		spanDir := filepath.Join(out, id)
		if err := os.Rename(filepath.Join(out, e.Name()), spanDir); err != nil {
			return fmt.Errorf("rename %s: %w", e.Name(), err)
		}
		fs, err := os.ReadDir(spanDir)
		if err != nil {
			return fmt.Errorf("list %s: %w", out, err)
		}
		for _, f := range fs {
			path := filepath.Join(spanDir, f.Name())
			if err := syncFile(path); err != nil {
				return err
			}
			df, err := dataFile(ctx, fsys, fileURI(path), pl.t, s, vals, pl.base.Properties())
			if err != nil {
				return fmt.Errorf("lake table %s: %w", pl.t.name, err)
			}
			pl.add = append(pl.add, df)
		}
	}
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

// planUpsert finds the partition's spans of t whose rows differ from what
// the lake holds, and writes them.
func (p *Publisher) planUpsert(ctx context.Context, tx *sql.Tx, conn *sql.Conn, t table, tb *icetable.Table, part int32, sites map[string]bool) (*plan, error) {
	s := p.cat.sch[t.name]
	cols := make([]string, len(s.cols))
	for i, c := range s.cols {
		cols[i] = quoteIdent(c.name)
	}
	where := fmt.Sprintf(t.where, part, quoteLiteral(p.cfg.topic))
	q := fmt.Sprintf(`SELECT %s, %s, count(*), CAST(sum(hash(%s)) AS VARCHAR) FROM %s WHERE %s GROUP BY ALL`,
		t.spanID(), t.spanCols(), strings.Join(cols, ", "), quoteIdent(t.name), where)
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("checksum %s spans: %w", t.name, err)
	}
	cur := map[string]spanSum{}
	for rows.Next() {
		sp := spanSum{vals: make([]sql.NullString, len(t.keys))}
		dst := []any{&sp.id}
		for i := range sp.vals {
			dst = append(dst, &sp.vals[i])
		}
		dst = append(dst, &sp.rows, &sp.checksum)
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checksum %s spans: %w", t.name, err)
		}
		cur[partitionKey(sp.vals)] = sp
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checksum %s spans: %w", t.name, err)
	}
	rec, err := p.recorded(ctx, tx, t, part, tb.Metadata().TableUUID().String())
	if err != nil {
		return nil, err
	}
	inLake, err := p.lakeSpans(ctx, tb, t, ownedBy(part, sites))
	if err != nil {
		return nil, err
	}
	pl := &plan{t: t, base: tb, to: -1, replace: map[string]bool{}, spans: map[string]spanSum{}}
	for k, sp := range cur {
		r, ok := rec[k]
		if inLake[k] && ok && r.checksum == sp.checksum && r.rows == sp.rows {
			continue
		}
		pl.spans[k] = sp
		pl.replace[k] = true
	}
	for k := range inLake {
		if _, ok := cur[k]; !ok {
			pl.replace[k] = true
			pl.gone = append(pl.gone, k)
		}
	}
	// Spans recorded but neither in DuckDB nor in the lake: forget them.
	for k := range rec {
		if _, ok := cur[k]; !ok && !inLake[k] {
			pl.gone = append(pl.gone, k)
		}
	}
	if len(pl.spans) == 0 && len(pl.replace) == 0 && len(pl.gone) == 0 {
		return nil, nil
	}
	if len(pl.spans) > 0 {
		if err := p.writeFiles(ctx, tx, pl, where, pl.spans); err != nil {
			return nil, err
		}
	}
	var next sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(next_offset) FROM kafka_offsets WHERE topic = ? AND kafka_partition = ?`,
		p.cfg.topic, part).Scan(&next); err != nil {
		return nil, fmt.Errorf("read kafka_offsets: %w", err)
	}
	pl.to = next.Int64
	return pl, nil
}

// ownedBy says whether a span (its partition values) of a table is the
// partition's: its site is one of the partition's, or its kafka_partition
// is the partition.
func ownedBy(part int32, sites map[string]bool) func(t table, vals []sql.NullString) bool {
	ps := strconv.Itoa(int(part))
	return func(t table, vals []sql.NullString) bool {
		if len(vals) == 0 || !vals[0].Valid {
			return false
		}
		switch t.owned {
		case "kafka_partition":
			return vals[0].String == ps
		case "site":
			return sites[vals[0].String]
		}
		if t.keys[0].col == "key_site" {
			return sites[vals[0].String]
		}
		if t.keys[0].col == "kafka_partition" {
			return vals[0].String == ps
		}
		return false
	}
}

// lakeSpans are the partition keys of the table's current data files that
// owned accepts.
func (p *Publisher) lakeSpans(ctx context.Context, tb *icetable.Table, t table, owned func(table, []sql.NullString) bool) (map[string]bool, error) {
	files, err := liveFiles(ctx, tb)
	if err != nil {
		return nil, err
	}
	spec := tb.Spec()
	out := map[string]bool{}
	for _, df := range files {
		vals, err := partitionVals(spec, df.Partition())
		if err != nil {
			return nil, fmt.Errorf("lake table %s file %s: %w", t.name, df.FilePath(), err)
		}
		if owned(t, vals) {
			out[partitionKey(vals)] = true
		}
	}
	return out, nil
}

// partitionVals are a data file's partition values as text.
func partitionVals(spec iceberg.PartitionSpec, part map[int]any) ([]sql.NullString, error) {
	var vals []sql.NullString
	for _, f := range spec.Fields() {
		v, ok := part[f.FieldID]
		if !ok || v == nil {
			vals = append(vals, sql.NullString{})
			continue
		}
		s, err := partitionText(v)
		if err != nil {
			return nil, fmt.Errorf("partition field %s: %w", f.Name, err)
		}
		vals = append(vals, sql.NullString{String: s, Valid: true})
	}
	return vals, nil
}

// liveFiles are the data files of the table's current snapshot.
func liveFiles(ctx context.Context, tb *icetable.Table) ([]iceberg.DataFile, error) {
	snap := tb.CurrentSnapshot()
	if snap == nil {
		return nil, nil
	}
	fsys, err := tb.FS(ctx)
	if err != nil {
		return nil, err
	}
	mans, err := snap.Manifests(fsys)
	if err != nil {
		return nil, fmt.Errorf("lake table %s: manifests of snapshot %d: %w", tb.Identifier(), snap.SnapshotID, err)
	}
	var out []iceberg.DataFile
	for _, m := range mans {
		if m.ManifestContent() != iceberg.ManifestContentData {
			return nil, fmt.Errorf("lake table %s has delete files (manifest %s): the lake writes copy-on-write only", tb.Identifier(), m.FilePath())
		}
		es, err := m.FetchEntries(fsys, true)
		if err != nil {
			return nil, fmt.Errorf("lake table %s: manifest %s: %w", tb.Identifier(), m.FilePath(), err)
		}
		for _, e := range es {
			out = append(out, e.DataFile())
		}
	}
	return out, nil
}

// recordedSpan is a span's checksum as last committed.
type recordedSpan struct {
	rows     int64
	checksum string
}

func (p *Publisher) recorded(ctx context.Context, tx *sql.Tx, t table, part int32, tableUUID string) (map[string]recordedSpan, error) {
	rows, err := tx.QueryContext(ctx, `SELECT span, rows, checksum FROM lake_published WHERE tbl = ? AND kafka_partition = ? AND table_uuid = ?`,
		t.name, part, tableUUID)
	if err != nil {
		return nil, fmt.Errorf("read lake_published of %s (is the database migrated to 0007_lake_iceberg?): %w", t.name, err)
	}
	defer rows.Close()
	out := map[string]recordedSpan{}
	for rows.Next() {
		var k string
		var r recordedSpan
		if err := rows.Scan(&k, &r.rows, &r.checksum); err != nil {
			return nil, fmt.Errorf("read lake_published of %s: %w", t.name, err)
		}
		out[k] = r
	}
	return out, rows.Err()
}

// commit commits one plan, pinned to the snapshot it was planned on; on a
// conflict it reloads the table and commits again if the plan still holds
// (append-only: the property still says the plan's first offset).
func (p *Publisher) commit(ctx context.Context, pl *plan, part int32) error {
	tb := pl.base
	for attempt := 0; ; attempt++ {
		err := p.commitOnce(ctx, pl, tb, part)
		if attempt > 0 || err != nil {
			p.cfg.log.Debug("lake commit", "table", pl.t.name, "partition", part, "attempt", attempt, "err", err)
		}
		if err == nil || !isConflict(err) || attempt >= 30 {
			if err != nil && isConflict(err) {
				return fmt.Errorf("%w (%v)", errReplan, err)
			}
			return err
		}
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			return err
		}
		if tb, err = p.cat.load(ctx, pl.t.name); err != nil {
			return err
		}
	}
}

// isConflict says a commit lost a race and committed nothing: the catalog
// refused it (compare-and-swap, REST 409: ErrCommitFailed), or its pinned
// requirement no longer held when the catalog checked it (the SQL catalog
// checks the requirements against the current metadata before writing and
// reports "requirement failed: ...", not ErrCommitFailed).
func isConflict(err error) bool {
	return err != nil && (errors.Is(err, icetable.ErrCommitFailed) || strings.Contains(err.Error(), "requirement failed:"))
}

func (p *Publisher) commitOnce(ctx context.Context, pl *plan, tb *icetable.Table, part int32) error {
	summary := iceberg.Properties{
		"gtsm.topic":           p.cfg.topic,
		"gtsm.kafka-partition": strconv.Itoa(int(part)),
		"gtsm.kafka-offset-to": strconv.FormatInt(pl.to, 10),
	}
	txn := tb.NewTransaction()
	if err := txn.AssertRefSnapshotID(icetable.MainBranch); err != nil {
		return err
	}
	if pl.t.kind == appendOnly {
		from, err := publishedOffset(tb, p.cfg.topic, part)
		if err != nil {
			return err
		}
		if from != pl.from {
			if from >= pl.to {
				pl.removeFiles() // another owner published these offsets
				return nil
			}
			return errReplan
		}
		summary["gtsm.kafka-offset-from"] = strconv.FormatInt(pl.from, 10)
		if err := txn.SetProperties(iceberg.Properties{offsetKey(p.cfg.topic, part): strconv.FormatInt(pl.to, 10)}); err != nil {
			return err
		}
		if err := txn.AddDataFiles(ctx, pl.add, summary); err != nil {
			return fmt.Errorf("lake table %s: add files: %w", pl.t.name, err)
		}
	} else {
		files, err := liveFiles(ctx, tb)
		if err != nil {
			return err
		}
		spec := tb.Spec()
		var del []iceberg.DataFile
		for _, df := range files {
			vals, err := partitionVals(spec, df.Partition())
			if err != nil {
				return err
			}
			if pl.replace[partitionKey(vals)] {
				del = append(del, df)
			}
		}
		if len(del) == 0 && len(pl.add) == 0 {
			return nil
		}
		if pl.to >= 0 {
			if err := txn.SetProperties(iceberg.Properties{offsetKey(p.cfg.topic, part): strconv.FormatInt(pl.to, 10)}); err != nil {
				return err
			}
		}
		if err := txn.ReplaceDataFilesWithDataFiles(ctx, del, pl.add, summary); err != nil {
			return fmt.Errorf("lake table %s: replace files: %w", pl.t.name, err)
		}
	}
	if _, err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("lake table %s: commit: %w", pl.t.name, err)
	}
	return nil
}

// record stores the committed spans' checksums (and forgets the removed
// ones) in the partition's DuckDB, after the commit: a crash in between
// only makes the next publish replace those spans again with the same rows.
func (p *Publisher) record(ctx context.Context, conn *sql.Conn, pl *plan, part int32) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record %s: %w", pl.t.name, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	uuid := pl.base.Metadata().TableUUID().String()
	for _, k := range pl.gone {
		if _, err = tx.ExecContext(ctx, `DELETE FROM lake_published WHERE tbl = ? AND kafka_partition = ? AND span = ?`, pl.t.name, part, k); err != nil {
			return fmt.Errorf("record %s: %w", pl.t.name, err)
		}
	}
	keys := make([]string, 0, len(pl.spans))
	for k := range pl.spans {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i := 0; i < len(keys); i += 500 {
		chunk := keys[i:min(i+500, len(keys))]
		var args []any
		for _, k := range chunk {
			sp := pl.spans[k]
			args = append(args, pl.t.name, part, k, uuid, sp.rows, sp.checksum)
		}
		if _, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO lake_published VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(chunk)), ", "), args...); err != nil {
			return fmt.Errorf("record %s: %w", pl.t.name, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("record %s: %w", pl.t.name, err)
	}
	return nil
}
