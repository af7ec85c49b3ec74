package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icetable "github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
)

// MaintainReport is what a maintenance run did.
type MaintainReport struct {
	Compacted        int // spans rewritten into one file
	FilesRemoved     int // data files replaced by compaction
	SnapshotsExpired int
	OrphansDeleted   int
	// FilesPerSpan is the largest number of data files of one span
	// (partition) after the run, over every table.
	FilesPerSpan int
}

// Maintain compacts every span of every lake table into one data file,
// expires the snapshots no query can still be reading, and deletes
// orphan files (written by a publish that crashed before its commit)
// older than the retention. Safe while owners publish and clients query:
// each step is an Iceberg commit pinned to the snapshot it read (retried on
// a conflict), and no file a snapshot of the last retention needs is
// removed.
func Maintain(ctx context.Context, dir string, opts ...Option) (MaintainReport, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return MaintainReport{}, fmt.Errorf("lake directory %q: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return MaintainReport{}, fmt.Errorf("lake directory %s: not a directory (%v)", abs, err)
	}
	cfg := newConfig(opts)
	cat, err := openCatalog(ctx, abs, cfg.catalog)
	if err != nil {
		return MaintainReport{}, err
	}
	defer cat.close()
	return maintain(ctx, cat, cfg, func(table, []sql.NullString) bool { return true }, true)
}

// maintain compacts the spans owned accepts and expires snapshots; with
// orphans it also deletes orphan files, which reads the manifests of every
// snapshot (heavy: `gtsm lake maintain` does it, not the owners' schedule).
func maintain(ctx context.Context, cat *lakeCatalog, cfg config, owned func(table, []sql.NullString) bool, orphans bool) (MaintainReport, error) {
	var rep MaintainReport
	var errs []error
	for _, t := range tables {
		tb, err := cat.cat.LoadTable(ctx, ident(t.name))
		if err != nil {
			continue // not published yet
		}
		n, removed, err := compact(ctx, cat, t, owned)
		rep.Compacted += n
		rep.FilesRemoved += removed
		if err != nil {
			errs = append(errs, err)
		}
		exp, err := expire(ctx, cat, t, cfg.retention, cfg.now)
		rep.SnapshotsExpired += exp
		if err != nil {
			errs = append(errs, err)
		}
		if tb, err = cat.cat.LoadTable(ctx, ident(t.name)); err != nil {
			errs = append(errs, err)
			continue
		}
		if orphans {
			res, err := tb.DeleteOrphanFiles(ctx, icetable.WithFilesOlderThan(cfg.retention))
			if err != nil {
				errs = append(errs, fmt.Errorf("lake table %s: orphan files: %w", t.name, err))
			} else {
				rep.OrphansDeleted += len(res.DeletedFiles)
			}
			removeEmptyDirs(filepath.Join(cat.dir, t.name, "data"), cfg.retention)
		}
		files, err := liveFiles(ctx, tb)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		per := map[string]int{}
		spec := tb.Spec()
		for _, df := range files {
			vals, err := partitionVals(spec, df.Partition())
			if err != nil {
				errs = append(errs, err)
				break
			}
			k := partitionKey(vals)
			per[k]++
			rep.FilesPerSpan = max(rep.FilesPerSpan, per[k])
		}
	}
	return rep, errors.Join(errs...)
}

// compact rewrites each span of t (that owned accepts) with more than one
// data file into one, in one commit per table.
func compact(ctx context.Context, cat *lakeCatalog, t table, owned func(table, []sql.NullString) bool) (int, int, error) {
	s := cat.sch[t.name]
	for attempt := 0; ; attempt++ {
		tb, err := cat.load(ctx, t.name)
		if err != nil {
			return 0, 0, err
		}
		files, err := liveFiles(ctx, tb)
		if err != nil {
			return 0, 0, err
		}
		groups := map[string][]iceberg.DataFile{}
		vals := map[string][]sql.NullString{}
		spec := tb.Spec()
		for _, df := range files {
			v, err := partitionVals(spec, df.Partition())
			if err != nil {
				return 0, 0, err
			}
			if !owned(t, v) {
				continue
			}
			k := partitionKey(v)
			groups[k] = append(groups[k], df)
			vals[k] = v
		}
		var keys []string
		for k, g := range groups {
			if len(g) > 1 {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return 0, 0, nil
		}
		sort.Strings(keys)
		out := filepath.Join(cat.dir, t.name, "data", uuid.NewString())
		var del, add []iceberg.DataFile
		err = func() error {
			db, err := sql.Open("duckdb", "")
			if err != nil {
				return err
			}
			defer db.Close()
			if err := noSymlink(cat.dir, filepath.Join(t.name, "data")); err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			fsys, err := tb.FS(ctx)
			if err != nil {
				return err
			}
			fids := make([]string, len(s.cols))
			cols := make([]string, len(s.cols))
			for i, c := range s.cols {
				fids[i] = fmt.Sprintf("%s: %d", quoteIdent(c.name), c.id)
				cols[i] = quoteIdent(c.name)
			}
			for i, k := range keys {
				var lits []string
				for _, df := range groups[k] {
					p, err := localPath(cat.dir, df.FilePath())
					if err != nil {
						return err
					}
					lits = append(lits, quoteLiteral(p))
				}
				path := filepath.Join(out, fmt.Sprintf("compact_%d.parquet", i))
				q := fmt.Sprintf(`COPY (SELECT %s FROM read_parquet([%s])) TO %s (FORMAT parquet, COMPRESSION zstd, FIELD_IDS {%s})`,
					strings.Join(cols, ", "), strings.Join(lits, ", "), quoteLiteral(path), strings.Join(fids, ", "))
				if _, err := db.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("compact %s: %w", t.name, err)
				}
				if err := syncFile(path); err != nil {
					return err
				}
				df, err := dataFile(ctx, fsys, fileURI(path), t, s, vals[k], tb.Properties())
				if err != nil {
					return fmt.Errorf("compact %s: %w", t.name, err)
				}
				add = append(add, df)
				del = append(del, groups[k]...)
			}
			return nil
		}()
		if err != nil {
			os.RemoveAll(out)
			return 0, 0, err
		}
		txn := tb.NewTransaction()
		if err := txn.AssertRefSnapshotID(icetable.MainBranch); err != nil {
			os.RemoveAll(out)
			return 0, 0, err
		}
		if err := txn.ReplaceDataFilesWithDataFiles(ctx, del, add, iceberg.Properties{"gtsm.maintenance": "compaction"}); err != nil {
			os.RemoveAll(out)
			return 0, 0, fmt.Errorf("compact %s: %w", t.name, err)
		}
		_, err = txn.Commit(ctx)
		if err == nil {
			return len(keys), len(del), nil
		}
		if !isConflict(err) || attempt >= 10 {
			if isConflict(err) {
				os.RemoveAll(out)
			}
			return 0, 0, fmt.Errorf("compact %s: commit: %w", t.name, err)
		}
		os.RemoveAll(out)
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			return 0, 0, err
		}
	}
}

// expire removes the snapshots of t that no query can still be reading:
// those that stopped being current more than retention ago. (Age alone is
// not enough: a snapshot that was current for an hour and was replaced a
// second ago is old but may be what a running query planned on.) The
// files only they listed are deleted with them.
func expire(ctx context.Context, cat *lakeCatalog, t table, retention time.Duration, now func() time.Time) (int, error) {
	for attempt := 0; ; attempt++ {
		tb, err := cat.load(ctx, t.name)
		if err != nil {
			return 0, err
		}
		cut := now().Add(-retention).UnixMilli()
		// The newest snapshot at or before the cut was current at the
		// cut: keep it and everything after it.
		var keepFrom int64 = -1
		var older int
		snaps := tb.Metadata().Snapshots()
		for _, s := range snaps {
			if s.TimestampMs <= cut && s.TimestampMs > keepFrom {
				keepFrom = s.TimestampMs
			}
		}
		if keepFrom < 0 {
			return 0, nil
		}
		for _, s := range snaps {
			if s.TimestampMs < keepFrom {
				older++
			}
		}
		if older == 0 {
			return 0, nil
		}
		age := time.Duration(time.Now().UnixMilli()-keepFrom) * time.Millisecond
		txn := tb.NewTransaction()
		if err := txn.AssertRefSnapshotID(icetable.MainBranch); err != nil {
			return 0, err
		}
		if err := txn.ExpireSnapshots(icetable.WithOlderThan(age), icetable.WithRetainLast(1)); err != nil {
			return 0, fmt.Errorf("lake table %s: expire snapshots: %w", t.name, err)
		}
		nt, err := txn.Commit(ctx)
		if err == nil {
			return len(snaps) - len(nt.Metadata().Snapshots()), nil
		}
		if !isConflict(err) || attempt >= 10 {
			return 0, fmt.Errorf("lake table %s: expire snapshots: %w", t.name, err)
		}
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			return 0, err
		}
	}
}

// removeEmptyDirs removes empty directories under dir last modified
// before the retention (those a crashed or compacted write left).
func removeEmptyDirs(dir string, retention time.Duration) {
	cut := time.Now().Add(-retention)
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.ModTime().Before(cut) {
			os.Remove(d) // fails, harmlessly, if not empty
		}
	}
}
