package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/earthscope/gtsm-stream/metadata/publish"
)

const level2ReprocessHelp = `Asks the running processor(s) to recompute a station's Level-2 strain from the
raw 1-sps counts they have stored, with the station's current metadata: every
Level-2 row of the site at or after --from (default: the whole series) is
rewritten and then carries that metadata version.

You rarely need it: the processor reprocesses a station by itself when its
metadata first arrives after its data, or when a new version is loaded with
gtsm metadata load (then always the whole series, so that no step appears
where the version changed). Use it after a processor ran with a faulty
build, to redo a period, or to check that Level-2 is reproducible.

How the request travels: the station's newest record on the metadata topic is
published again, unchanged (same key, same value, same version), with the
Kafka header gtsm-level2-reprocess=<request id> (and
gtsm-level2-reprocess-from=<unix seconds> with --from). Every processor reads
the whole topic; the one holding the site's data starts the job, records the
request id with it, and never runs that request again, also after a restart
(compaction keeps the request as the site's newest record). The command
returns once the broker has the request; the processor logs
"level2 reprocess started", then "level2 reprocess progress" lines (done_s and
total_s: seconds of data reprocessed and stored), then "level2 reprocess done".
Progress is also in the level2_reprocess table (gtsm sql) and on /metrics
(gtsm_level2_reprocess_done_seconds, gtsm_level2_reprocess_total_seconds).

While a site is reprocessed its raw data keep being stored; its Level-2 rows
after the job's cursor appear when the job reaches them, within seconds to
minutes (docs/performance.md, "Level-2 reprocess"). The job survives restarts
and kill -9: it resumes where its last transaction committed.

The site must have metadata on the topic: without it there is nothing to
recompute Level-2 with (the command fails with exit status 1).

Examples:
  gtsm level2 reprocess --site B004
  gtsm level2 reprocess --site B004 --from 2024-03-01
  gtsm sql -c "SELECT site, reason, cursor, finished_at FROM level2_reprocess"`

func runLevel2Reprocess(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "level2 reprocess", "level2 reprocess --site SITE [--from TIME] [flags]", level2ReprocessHelp)
	var (
		c     connFlags
		topic string
		site  string
		from  string
		quiet bool
	)
	c.register(fs, env)
	for _, f := range []string{"registry", "registry-username", "registry-password", "registry-ca", "registry-insecure"} {
		fs.MarkHidden(f) // the request reuses the site's record as it is: no registry needed
	}
	fs.StringVar(&site, "site", "", "the station (site code as on the metadata topic, e.g. B004); required")
	fs.StringVar(&from, "from", "", "rewrite the rows at or after this UTC date or time (2024-03-01, 2024-03-01T06:00:00); default: the whole series")
	fs.StringVar(&topic, "topic", publish.DefaultTopic, "the station metadata topic the processors read")
	fs.BoolVarP(&quiet, "quiet", "q", false, "no summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q; see gtsm level2 reprocess -h", fs.Arg(0))}
	}
	if site = strings.TrimSpace(site); site == "" {
		return usageError{"--site is required (the station to reprocess, e.g. --site B004)"}
	}
	t, err := parseUTC("--from", from)
	if err != nil {
		return err
	}
	if !t.IsZero() && t.Unix() <= 0 {
		return usageError{fmt.Sprintf("--from %q: before 1970", from)}
	}
	if err := c.resolve(env); err != nil {
		return err
	}
	req, err := publish.RequestReprocess(ctx, c.kafka, topic, site, t)
	if err != nil {
		return err
	}
	if !quiet {
		what := "the whole series"
		if !t.IsZero() {
			what = "rows from " + t.Format(time.RFC3339)
		}
		fmt.Fprintf(env.stderr, "reprocess of %s requested (%s, metadata version %s): request %s, topic %s partition %d offset %d\n",
			req.Site, what, req.Version, req.ID, topic, req.Partition, req.Offset)
	}
	return nil
}
