-- Level-2 reprocessing (processor/reprocess.go, docs/level2.md "Reprocessing"):
-- when a station's metadata first arrives or changes version, or
-- `gtsm level2 reprocess` asks, the site's Level-2 is recomputed from its
-- stored 1-sps counts (gtsm_etl) by a fresh level2.Machine under the new
-- version, a chunk of data per DuckDB transaction, while the live data keep
-- flowing. One row per site: the running job (finished_at NULL) or the last
-- one. Each chunk's rows, checkpoints and this row's cursor and machine state
-- commit together, so a killed processor resumes exactly where the last chunk
-- committed.
CREATE TABLE level2_reprocess (
    site           VARCHAR PRIMARY KEY,
    target_version VARCHAR,            -- metadata version the rows are recomputed with; NULL: no metadata
    metadata       BLOB,               -- that version's record as read from the metadata topic; NULL: none
    from_time      BIGINT  NOT NULL,   -- unix s: rows at or after it are rewritten (0: the whole series)
    request_id     VARCHAR,            -- the `gtsm level2 reprocess` request that started it; NULL: a metadata change
    reason         VARCHAR NOT NULL,   -- why: "metadata first arrived", "metadata version changed", "request"
    first_second   BIGINT,             -- first stored 1-sps second of the site (progress: done = cursor - first)
    cursor         BIGINT,             -- every stored second <= cursor is pushed; NULL: nothing yet
    cleared        BIGINT  NOT NULL,   -- old rows at times in [from_time, cleared] are gone or rewritten
    state          BLOB,               -- the machine after cursor (level2.Machine.MarshalBinary); NULL: fresh
    last_ck        BIGINT,             -- newest checkpoint written by the job
    chunks         BIGINT  NOT NULL,   -- transactions so far
    points         BIGINT  NOT NULL,   -- 300 s points written so far
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP           -- NULL while it runs
);
