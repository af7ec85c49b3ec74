package processor

// The processor's intake of station metadata (the gtsm_metadata topic, read
// through a goka lookup table): every value is held to metadata.DecodeValid,
// the check `gtsm metadata load` applies to files before it publishes. A
// value that fails it becomes a dead letter with its reason, and the version
// in force before it stays in force: the one this process last accepted for
// the site, or after a restart the one DuckDB's level2_state names.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/earthscope/gtsm-stream/level2"
	"github.com/earthscope/gtsm-stream/metadata"
)

// metaReason is the dlq.reason of a refused station metadata record.
const metaReason = "metadata_invalid"

// acceptMeta decodes and validates the table's value raw for site. It
// returns the station and its version, or an error saying why raw cannot be
// used.
func (l *l2proc) acceptMeta(site string, raw []byte) (*metadata.Station, string, error) {
	st, v, err := l.codec.DecodeValid(raw)
	if err != nil {
		return nil, "", err
	}
	if st.Site != site {
		return nil, "", fmt.Errorf("%w: record for station %s under the key of %s", metadata.ErrInvalid, st.Site, site)
	}
	return st, v, nil
}

// rejectMeta handles a value acceptMeta refused: it queues a dead letter in
// b (in the dead-letter topic and dead_letters with the batch, as the
// records of the input topic are), and returns the metadata to go on with:
// prev (the last version this process accepted for the site) if any, else
// the version in force in DuckDB, else none. The result is cached under raw,
// so the same refused value is reported once, not per sample.
func (l *l2proc) rejectMeta(site string, raw []byte, b *batch, off int64, prev *l2Meta, cause error) *l2Meta {
	keep := &l2Meta{cfg: level2.ConfigFrom(nil)}
	switch {
	case prev != nil && prev.version != "":
		*keep = *prev
	case b.loader.db != nil:
		if m, err := inForce(b.loader.ctx, b.loader.db, l.codec, site); err != nil {
			l.log.Warn("station metadata in force unreadable", "site", site, "err", err)
		} else if m != nil {
			*keep = *m
		}
	}
	keep.raw, keep.rejected = bytes.Clone(raw), true
	kept := "none (Level-2 without metadata)"
	if keep.version != "" {
		kept = "version " + keep.version
	}
	msg := fmt.Sprintf("%s key %s (met at input partition %d offset %d): %v; keeping %s", l.table, site, b.partition, off, cause, kept)
	b.dead = append(b.dead, deadLetter{topic: string(l.table), partition: b.partition, offset: off, err: msg, reason: metaReason,
		key: []byte(site), value: bytes.Clone(raw)})
	l.log.Warn("station metadata refused; dead letter", "topic", string(l.table), "site", site, "reason", metaReason, "keeping", kept, "err", cause)
	return keep
}

// inForce reads the site's metadata version in force from DuckDB: the one
// level2_state names, as station_metadata stored it. nil when the site has
// none. A stored version that does not pass metadata.Validate (written by an
// older processor that did not check) is not used.
func inForce(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, c *metadata.Codec, site string) (*l2Meta, error) {
	var version, js string
	err := db.QueryRowContext(ctx, `SELECT m.version, m.record_json FROM level2_state s
		JOIN station_metadata m ON m.site = s.site AND m.version = s.metadata_version WHERE s.site = ?`, site).Scan(&version, &js)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read level2_state and station_metadata of %s: %w", site, err)
	}
	var st metadata.Station
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		return nil, fmt.Errorf("station_metadata %s version %s: %w", site, version, err)
	}
	if err := metadata.Validate(&st); err != nil {
		return nil, fmt.Errorf("station_metadata %s version %s: %w", site, version, err)
	}
	return &l2Meta{version: version, cfg: level2.ConfigFrom(&st), json: js}, nil
}
