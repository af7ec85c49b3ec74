package main

import (
	"context"
	"fmt"

	"github.com/earthscope/gtsm-stream/lake"
)

const lakeMaintainHelp = `Maintains the lake's Apache Iceberg tables (package lake, docs/scale-out-query.md):
compacts every span (a site-day, a site, or a Kafka partition) into one data file, expires
the snapshots no query can still be reading (those replaced more than --retention ago) with
the files only they listed, and deletes orphan files (written by a publish that crashed
before its commit) older than --retention. Safe while processors publish and clients
query: each step is an Iceberg commit that is retried when another commit got in first.
Partition owners compact their own sites and expire snapshots every 2 minutes; the orphan
scan is this command's only: run it from cron (e.g. hourly).

Examples:
  gtsm lake maintain --lake /data/lake
  gtsm lake maintain --lake /data/lake --catalog postgres://gtsm@db/lake   # the cluster's catalog

Environment: GTSM_LAKE (--lake), GTSM_LAKE_CATALOG (--catalog)`

func runLakeMaintain(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "lake maintain", "lake maintain --lake DIR [flags]", lakeMaintainHelp)
	dir := fs.String("lake", envOr(env, "GTSM_LAKE", ""), "the lake directory (env GTSM_LAKE)")
	cat := fs.String("catalog", envOr(env, "GTSM_LAKE_CATALOG", ""), "Iceberg catalog: postgres://... or http(s)://... (REST); default the SQLite file in the lake directory (env GTSM_LAKE_CATALOG)")
	retention := fs.Duration("retention", lake.DefaultRetention, "keep replaced files and snapshots this long (longer than any query: the SQL timeout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if *dir == "" {
		return usageError{"--lake DIR is required"}
	}
	if *retention < 0 {
		return usageError{"--retention must not be negative"}
	}
	rep, err := lake.Maintain(ctx, *dir, lake.Catalog(*cat), lake.Retention(*retention), lake.Logger(env.log))
	fmt.Fprintf(env.stdout, "compacted %d spans (%d files replaced), expired %d snapshots, deleted %d orphan files; at most %d data files per span\n",
		rep.Compacted, rep.FilesRemoved, rep.SnapshotsExpired, rep.OrphansDeleted, rep.FilesPerSpan)
	if err != nil {
		return fmt.Errorf("lake maintain %s: %w", *dir, err)
	}
	return nil
}
