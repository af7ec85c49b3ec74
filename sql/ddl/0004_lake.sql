-- Lake publishing (issue 14, package lake): what of this database's rows is
-- already in the Parquet lake, kept in the database itself, so whoever owns
-- the partition next (another process, after a crash) continues exactly
-- where the last publish committed. Only package lake writes these tables.

-- One row per Kafka partition published from this file. Rows of the
-- append-only tables (gtsm_etl, dead_letters) with kafka_offset below
-- published_offset are in the lake. round numbers the publishes (it names
-- the files of the upserted tables). pending_* is a publish that was begun
-- (its files may be partly renamed into the lake) and not yet recorded: the
-- next publish redoes exactly that offset range under the same file names,
-- so a crash between rename and this row never duplicates a row.
CREATE TABLE lake_rounds (
    kafka_partition  INTEGER PRIMARY KEY,
    round            BIGINT  NOT NULL,
    published_offset BIGINT  NOT NULL,
    pending_round    BIGINT,
    pending_from     BIGINT,
    pending_to       BIGINT,
    published_at     TIMESTAMP NOT NULL
);

-- The file that currently holds each span (table, hive directory such as
-- site=B009/date=2024-01-01) of the upserted tables, with a checksum of its
-- rows: a span whose checksum changed is written again under a newer name.
CREATE TABLE lake_spans (
    tbl             VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    span            VARCHAR NOT NULL,
    file            VARCHAR NOT NULL, -- path relative to the lake directory
    rows            BIGINT  NOT NULL,
    checksum        VARCHAR NOT NULL,
    PRIMARY KEY (tbl, kafka_partition, span)
);

-- Files replaced by a newer one of their span, deleted once older than the
-- publisher's retention (readers that listed the directory before the
-- rename may still be reading them).
CREATE TABLE lake_garbage (
    file            VARCHAR PRIMARY KEY,
    kafka_partition INTEGER NOT NULL,
    superseded_at   TIMESTAMP NOT NULL
);
