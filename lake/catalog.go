package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	icetable "github.com/apache/iceberg-go/table"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver of a Postgres SQL catalog
	_ "modernc.org/sqlite"             // the "sqlite" driver of the default catalog (no cgo)

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// Namespace is the Iceberg namespace of the lake's tables.
const Namespace = "gtsm"

// CatalogFile is the default catalog: an Iceberg SQL catalog in a SQLite
// file inside the lake directory.
const CatalogFile = "catalog.sqlite"

// lakeCatalog is the Iceberg catalog of a lake directory and the schema of
// its tables (from sql/ddl, so a migration that adds a column is seen).
type lakeCatalog struct {
	dir  string
	uri  string // "" for the default SQLite file
	cat  catalog.Catalog
	sch  map[string]*tableSchema
	mu   sync.Mutex
	tbls map[string]*icetable.Table // loaded or created tables (refreshed by callers)
}

// tableSchema is one table's columns as DuckDB declares them and as the
// lake stores them.
type tableSchema struct {
	cols    []column
	iceberg *iceberg.Schema
	spec    iceberg.PartitionSpec
}

type column struct {
	name   string
	duck   string // DuckDB type of the processor's table (the query view casts back to it)
	stored string // DuckDB type written to Parquet (the Iceberg type's)
	id     int
}

// openCatalog opens the lake's catalog: uri "" is the SQLite file
// DIR/catalog.sqlite; postgres://... an SQL catalog on Postgres;
// http(s)://... a REST catalog.
func openCatalog(ctx context.Context, dir, uri string) (*lakeCatalog, error) {
	sch, err := lakeSchemas(ctx)
	if err != nil {
		return nil, err
	}
	var cat catalog.Catalog
	switch {
	case uri == "":
		dsn := "file:" + filepath.Join(dir, CatalogFile) +
			"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("lake catalog %s: %w", filepath.Join(dir, CatalogFile), err)
		}
		c, err := sqlcat.NewCatalog("gtsm", db, sqlcat.SQLite, iceberg.Properties{})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("lake catalog %s: %w", filepath.Join(dir, CatalogFile), err)
		}
		cat = c
	case strings.HasPrefix(uri, "postgres://") || strings.HasPrefix(uri, "postgresql://"):
		db, err := sql.Open("pgx", uri)
		if err != nil {
			return nil, fmt.Errorf("lake catalog (Postgres): %w", err)
		}
		c, err := sqlcat.NewCatalog("gtsm", db, sqlcat.Postgres, iceberg.Properties{})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("lake catalog (Postgres): %s", redact(err.Error(), uri))
		}
		cat = c
	case strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://"):
		c, err := rest.NewCatalog(ctx, "gtsm", uri)
		if err != nil {
			return nil, fmt.Errorf("lake catalog (REST): %s", redact(err.Error(), uri))
		}
		cat = c
	default:
		return nil, fmt.Errorf("lake catalog %q: want postgres://..., http(s)://... or nothing (the SQLite catalog in the lake directory)", safeURI(uri))
	}
	lc := &lakeCatalog{dir: dir, uri: uri, cat: cat, sch: sch, tbls: map[string]*icetable.Table{}}
	if err := cat.CreateNamespace(ctx, catalog.ToIdentifier(Namespace), iceberg.Properties{}); err != nil &&
		!errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return nil, fmt.Errorf("lake catalog: create namespace %s: %w", Namespace, err)
	}
	return lc, nil
}

// safeURI is uri without its user information (a password).
func safeURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable URI)"
	}
	u.User = nil
	return u.String()
}

func redact(msg, uri string) string {
	if u, err := url.Parse(uri); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

func (c *lakeCatalog) close() error {
	if cl, ok := c.cat.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}

func ident(name string) icetable.Identifier { return icetable.Identifier{Namespace, name} }

// location is the table's directory, as a file:// URI.
func (c *lakeCatalog) location(name string) string {
	return fileURI(filepath.Join(c.dir, name))
}

// fileURI is the file:// URI of a local path.
func fileURI(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// tableProps are the properties the lake's tables are created with.
func tableProps() iceberg.Properties {
	return iceberg.Properties{
		"format-version": "2",
		// Stats of every column in full (no truncated string bounds), so a
		// file's partition inferred from its bounds is exact.
		"write.metadata.metrics.default": "full",
		// Bounded metadata: merge manifests on append once there are 16
		// (a publish lists the current files of its table); list 20 old
		// metadata files (the older ones are orphans, deleted by
		// maintenance: deleting them at commit races between owners).
		icetable.ManifestMergeEnabledKey:             "true",
		icetable.ManifestMinMergeCountKey:            "16",
		icetable.MetadataDeleteAfterCommitEnabledKey: "false",
		icetable.MetadataPreviousVersionsMaxKey:      "20",
		"write.delete.mode":                          "copy-on-write",
		"write.update.mode":                          "copy-on-write",
		"write.parquet.compression-codec":            "zstd",
	}
}

// load returns the table, creating it if it does not exist (several
// owners may race to create it: the loser loads the winner's).
func (c *lakeCatalog) load(ctx context.Context, name string) (*icetable.Table, error) {
	tb, err := c.cat.LoadTable(ctx, ident(name))
	if err == nil {
		if err := c.checkSchema(name, tb); err != nil {
			return nil, err
		}
		return tb, nil
	}
	if !errors.Is(err, catalog.ErrNoSuchTable) {
		return nil, fmt.Errorf("lake table %s: %w", name, err)
	}
	s, ok := c.sch[name]
	if !ok {
		return nil, fmt.Errorf("lake table %s: not in sql/ddl", name)
	}
	tb, err = c.cat.CreateTable(ctx, ident(name), s.iceberg,
		catalog.WithLocation(c.location(name)), catalog.WithPartitionSpec(&s.spec), catalog.WithProperties(tableProps()))
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		tb, err = c.cat.LoadTable(ctx, ident(name))
	}
	if err != nil {
		return nil, fmt.Errorf("lake table %s: create: %w", name, err)
	}
	return tb, nil
}

// checkSchema refuses a table whose columns are not the DDL's (a lake
// written by another version): better an error than wrong columns.
func (c *lakeCatalog) checkSchema(name string, tb *icetable.Table) error {
	s, ok := c.sch[name]
	if !ok {
		return nil
	}
	have := tb.Schema()
	for _, col := range s.cols {
		f, ok := have.FindFieldByName(col.name)
		if !ok {
			return fmt.Errorf("lake table %s has no column %s (it was created by an older version; the lake's schema must be evolved, or the lake republished)", name, col.name)
		}
		if f.ID != col.id {
			return fmt.Errorf("lake table %s: column %s has field id %d, want %d", name, col.name, f.ID, col.id)
		}
	}
	return nil
}

var (
	schemaOnce sync.Once
	schemaMap  map[string]*tableSchema
	schemaErr  error
)

// lakeSchemas derives every published table's Iceberg schema and
// partition spec from sql/ddl, applied to a throwaway in-memory DuckDB.
// Computed once per process (the DDL is compiled in).
func lakeSchemas(ctx context.Context) (map[string]*tableSchema, error) {
	schemaOnce.Do(func() { schemaMap, schemaErr = buildSchemas(ctx) })
	return schemaMap, schemaErr
}

func buildSchemas(ctx context.Context) (map[string]*tableSchema, error) {
	db, err := gtsmsql.Open(ctx, "", false)
	if err != nil {
		return nil, fmt.Errorf("lake schema: %w", err)
	}
	defer db.Close()
	if err := gtsmsql.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("lake schema: %w", err)
	}
	out := map[string]*tableSchema{}
	for _, t := range tables {
		rows, err := db.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
			WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index`, t.name)
		if err != nil {
			return nil, fmt.Errorf("lake schema of %s: %w", t.name, err)
		}
		s := &tableSchema{}
		var fields []iceberg.NestedField
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return nil, fmt.Errorf("lake schema of %s: %w", t.name, err)
			}
			it, stored, err := icebergType(typ)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("lake schema of %s.%s: %w", t.name, name, err)
			}
			id := len(fields) + 1
			s.cols = append(s.cols, column{name: name, duck: typ, stored: stored, id: id})
			// Optional: a Parquet column DuckDB writes is optional, and a
			// reader needs no NOT NULL to read it.
			fields = append(fields, iceberg.NestedField{ID: id, Name: name, Type: it})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("lake schema of %s: %w", t.name, err)
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("lake schema: table %s is not in sql/ddl", t.name)
		}
		s.iceberg = iceberg.NewSchema(0, fields...)
		var pfs []iceberg.PartitionField
		for i, k := range t.keys {
			f, ok := s.iceberg.FindFieldByName(k.col)
			if !ok {
				return nil, fmt.Errorf("lake schema of %s: no partition column %s", t.name, k.col)
			}
			pfs = append(pfs, iceberg.PartitionField{SourceIDs: []int{f.ID}, FieldID: 1000 + i, Name: k.name(), Transform: k.transform()})
		}
		s.spec = iceberg.NewPartitionSpec(pfs...)
		out[t.name] = s
	}
	return out, nil
}

// icebergType maps a DuckDB column type to the Iceberg type the lake
// stores, and the DuckDB type written to Parquet for it.
func icebergType(duck string) (iceberg.Type, string, error) {
	switch duck {
	case "VARCHAR":
		return iceberg.PrimitiveTypes.String, "VARCHAR", nil
	case "BOOLEAN":
		return iceberg.PrimitiveTypes.Bool, "BOOLEAN", nil
	case "TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT":
		return iceberg.PrimitiveTypes.Int32, "INTEGER", nil
	case "BIGINT", "UINTEGER":
		return iceberg.PrimitiveTypes.Int64, "BIGINT", nil
	case "FLOAT":
		return iceberg.PrimitiveTypes.Float32, "FLOAT", nil
	case "DOUBLE":
		return iceberg.PrimitiveTypes.Float64, "DOUBLE", nil
	case "DATE":
		return iceberg.PrimitiveTypes.Date, "DATE", nil
	case "TIMESTAMP":
		return iceberg.PrimitiveTypes.Timestamp, "TIMESTAMP", nil
	case "TIMESTAMP WITH TIME ZONE":
		return iceberg.PrimitiveTypes.TimestampTz, "TIMESTAMP WITH TIME ZONE", nil
	case "BLOB":
		return iceberg.PrimitiveTypes.Binary, "BLOB", nil
	}
	return nil, "", fmt.Errorf("type %s has no Iceberg mapping in package lake", duck)
}

// localPath is the local file of a file:// (or plain) location, refused
// when it is not inside the lake directory or reaches outside it through
// a symbolic link.
func localPath(dir, loc string) (string, error) {
	p := loc
	if strings.Contains(loc, "://") {
		u, err := url.Parse(loc)
		if err != nil {
			return "", fmt.Errorf("lake file %q: %w", loc, err)
		}
		if u.Scheme != "file" {
			return "", fmt.Errorf("lake file %s: only file:// locations are read", loc)
		}
		p = u.Path
	}
	p = filepath.Clean(filepath.FromSlash(p))
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("lake file %s is outside the lake directory %s: refused", loc, dir)
	}
	if err := noSymlink(dir, rel); err != nil {
		return "", fmt.Errorf("lake file %s: %w", loc, err)
	}
	return p, nil
}

// noSymlink refuses a path below dir any component of which (that exists)
// is a symbolic link: the lake never follows one out of itself.
func noSymlink(dir, rel string) error {
	cur := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "" || part == "." {
			continue
		}
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: the lake does not follow links", cur)
		}
	}
	return nil
}

// partitionKey is the canonical text of a span's partition values, the
// same from DuckDB (VARCHAR casts) and from an Iceberg data file.
func partitionKey(vals []sql.NullString) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteByte('|')
		}
		if !v.Valid {
			b.WriteString("n")
			continue
		}
		b.WriteString(strconv.Itoa(len(v.String)))
		b.WriteByte(':')
		b.WriteString(v.String)
	}
	return b.String()
}

func partitionText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case iceberg.Date:
		return strconv.FormatInt(int64(x), 10), nil
	case *string:
		if x == nil {
			return "", nil
		}
		return *x, nil
	case *int32:
		return strconv.FormatInt(int64(*x), 10), nil
	case *int64:
		return strconv.FormatInt(*x, 10), nil
	case *iceberg.Date:
		return strconv.FormatInt(int64(*x), 10), nil
	}
	return "", fmt.Errorf("unexpected partition value %v (%T)", v, v)
}

// dataFile is the Iceberg description of a Parquet file the lake wrote:
// statistics (counts, bounds) read from its footer, and the partition
// values of its span given by the caller, never inferred from the bounds
// (a writer may truncate the bounds of a long string).
func dataFile(ctx context.Context, fsys icebergio.IO, loc string, t table, s *tableSchema, vals []sql.NullString, props iceberg.Properties) (iceberg.DataFile, error) {
	st, err := icetable.FileToDataFile(ctx, fsys, loc, s.iceberg, *iceberg.UnpartitionedSpec, 0, props)
	if err != nil {
		return nil, fmt.Errorf("lake file %s: %w", loc, err)
	}
	part := map[int]any{}
	logical := map[int]string{}
	i := 0
	for _, f := range s.spec.Fields() {
		k := t.keys[i]
		v := vals[i]
		i++
		if !v.Valid {
			continue
		}
		var err error
		switch k.tr {
		case identity:
			col, _ := s.iceberg.FindFieldByName(k.col)
			if _, ok := col.Type.(iceberg.Int32Type); ok {
				var n int64
				n, err = strconv.ParseInt(v.String, 10, 32)
				part[f.FieldID] = int32(n)
			} else {
				part[f.FieldID] = v.String
			}
		case day:
			var n int64
			n, err = strconv.ParseInt(v.String, 10, 32)
			part[f.FieldID] = iceberg.Date(n)
			logical[f.FieldID] = "date"
		case dayMillis:
			var n int64
			n, err = strconv.ParseInt(v.String, 10, 64)
			part[f.FieldID] = n
		}
		if err != nil {
			return nil, fmt.Errorf("lake file %s: partition value %q of %s: %w", loc, v.String, f.Name, err)
		}
	}
	b, err := iceberg.NewDataFileBuilder(s.spec, iceberg.EntryContentData, loc, iceberg.ParquetFile, part, logical, nil, st.Count(), st.FileSizeBytes())
	if err != nil {
		return nil, fmt.Errorf("lake file %s: %w", loc, err)
	}
	b.ColumnSizes(st.ColumnSizes()).ValueCounts(st.ValueCounts()).NullValueCounts(st.NullValueCounts()).
		NaNValueCounts(st.NaNValueCounts()).LowerBoundValues(st.LowerBoundValues()).UpperBoundValues(st.UpperBoundValues()).
		SplitOffsets(st.SplitOffsets())
	return b.Build(), nil
}
