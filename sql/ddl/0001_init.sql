-- 0001_init: the processor's tables. Applied once by gtsmsql.Migrate, in one
-- transaction, and recorded in schema_migrations. Never edit an applied file:
-- add 0002_... instead (files already in users' databases are not re-run).

-- One row per stored gtsm_etl record (duplicates are not stored twice).
-- Columns: the Kafka key's site, then every Avro value field under its Avro
-- name in schema order (so Flink-style queries work unchanged), then where the
-- record came from. No primary key: it would triple the file and halve the
-- append rate; the processor deduplicates before appending.
CREATE TABLE gtsm_etl (
    key_site VARCHAR NOT NULL,
    site VARCHAR,
    "time" BIGINT,
    "timestamp" VARCHAR,
    rs1_t0 INTEGER,
    rs2_t0 INTEGER,
    rs3_t0 INTEGER,
    rs4_t0 INTEGER,
    ls1_t0 INTEGER,
    ls2_t0 INTEGER,
    ls3_t0 INTEGER,
    ls4_t0 INTEGER,
    bs1_t0 INTEGER,
    bs2_t0 INTEGER,
    bs3_t0 INTEGER,
    bs4_t0 INTEGER,
    re1_t0 INTEGER,
    rkd_t0 INTEGER,
    rk1_t0 INTEGER,
    rk2_t0 INTEGER,
    rdo_ts INTEGER,
    rro_ts INTEGER,
    reo_t0 INTEGER,
    re2_t0 INTEGER,
    rca_t0 INTEGER,
    rcb_t0 INTEGER,
    rcc_t0 INTEGER,
    rcd_t0 INTEGER,
    rca_t1 INTEGER,
    rca_t2 INTEGER,
    rca_t3 INTEGER,
    rcb_t1 INTEGER,
    rcb_t2 INTEGER,
    rcb_t3 INTEGER,
    rcc_t1 INTEGER,
    rcc_t2 INTEGER,
    rcc_t3 INTEGER,
    rcd_t1 INTEGER,
    rcd_t2 INTEGER,
    rcd_t3 INTEGER,
    rca_t4 INTEGER,
    rca_t5 INTEGER,
    rca_t6 INTEGER,
    rcb_t4 INTEGER,
    rcb_t5 INTEGER,
    rcb_t6 INTEGER,
    rcc_t4 INTEGER,
    rcc_t5 INTEGER,
    rcc_t6 INTEGER,
    rcd_t4 INTEGER,
    rcd_t5 INTEGER,
    rcd_t6 INTEGER,
    rca_t7 INTEGER,
    rcb_t7 INTEGER,
    rcc_t7 INTEGER,
    rcd_t7 INTEGER,
    rca_t8 INTEGER,
    rcb_t8 INTEGER,
    rcc_t8 INTEGER,
    rcd_t8 INTEGER,
    session VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    late BOOLEAN NOT NULL
);

-- Event-time tumbling windows per site, session, width and strain channel.
-- sum/n_micro/sum_micro/first_time/last_time let the processor resume a
-- window after a restart; mean = sum / (n - n_null).
CREATE TABLE windows (
    site VARCHAR NOT NULL,
    session VARCHAR NOT NULL,
    width VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    channel VARCHAR NOT NULL,
    n BIGINT NOT NULL,
    n_null BIGINT NOT NULL,
    min INTEGER,
    max INTEGER,
    mean DOUBLE,
    first INTEGER,
    last INTEGER,
    microstrain_mean DOUBLE,
    final BOOLEAN NOT NULL,
    late_updates BIGINT NOT NULL,
    sum BIGINT NOT NULL,
    first_time BIGINT,
    last_time BIGINT,
    n_micro BIGINT NOT NULL,
    sum_micro DOUBLE NOT NULL,
    PRIMARY KEY (site, session, width, window_start, channel)
);

-- Runs of expected samples that never came, between two stored samples.
CREATE TABLE gaps (
    site VARCHAR NOT NULL,
    session VARCHAR NOT NULL,
    gap_start TIMESTAMP NOT NULL,
    gap_end TIMESTAMP NOT NULL,
    missing BIGINT NOT NULL,
    PRIMARY KEY (site, session, gap_start)
);

-- Per site and session counters; committed together with the rows and the
-- Kafka offsets they reflect (kafka_partition/kafka_offset: last message applied).
CREATE TABLE site_state (
    site VARCHAR NOT NULL,
    session VARCHAR NOT NULL,
    first_time TIMESTAMP,
    last_time TIMESTAMP,
    records BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    late BIGINT NOT NULL,
    gaps BIGINT NOT NULL,
    missing BIGINT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (site, session)
);

-- Per-gauge reference counts for the level-2 linearization (users fill it):
-- microstrain = (x/(1-x) - x0/(1-x0)) * (gap_m/0.087) * 1e6, x = counts/1e8,
-- x0 = reference_counts/1e8. gauge 1..4 = strain channel CH0..CH3.
CREATE TABLE site_reference (
    site VARCHAR NOT NULL,
    gauge INTEGER NOT NULL CHECK (gauge BETWEEN 1 AND 4),
    reference_counts DOUBLE NOT NULL,
    gap_m DOUBLE NOT NULL DEFAULT 0.0001,
    PRIMARY KEY (site, gauge)
);

-- The truth about what is in this file: every message of a partition below
-- next_offset has been applied (stored, counted as a duplicate, or dead-lettered).
CREATE TABLE kafka_offsets (
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, kafka_partition)
);

-- Messages that could not be decoded, kept with the reason instead of being
-- dropped silently.
CREATE TABLE dead_letters (
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    error VARCHAR NOT NULL,
    key BLOB,
    value BLOB,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
