-- Level-2 strain (issue 13): what the processor computes per site from the
-- 1-sps gauge channels (Hour sessions) with the level2 package, one row per
-- 300 s output. Written in the same transaction as the rows, state and Kafka
-- offsets they come from; a late sample's recomputed outputs replace the old
-- rows (same key). The views level2_gauge and level2_regional (views/) are the
-- contract users and `gtsm export level2` read; these tables are what the
-- processor writes.
CREATE TABLE level2_gauge_data (
    site             VARCHAR   NOT NULL,
    "time"           TIMESTAMP NOT NULL, -- UTC, a multiple of 300 s
    gauge            UTINYINT  NOT NULL, -- 0..3 (CH0..CH3)
    counts           DOUBLE,             -- decimated counts (decimate_1s_to_300s)
    microstrain      DOUBLE,             -- linearized, before corrections; NULL without metadata
    atmp_c           DOUBLE,             -- barometric correction, microstrain; NULL without metadata/pressure
    tide_c           DOUBLE,             -- tidal correction, microstrain; NULL without constituents
    offset_c         DOUBLE,             -- offset correction (running total), microstrain; NULL without metadata
    metadata_version VARCHAR,            -- metadata.Codec.Version of the station record used; NULL without
    PRIMARY KEY (site, "time", gauge)
);

CREATE TABLE level2_regional_data (
    site             VARCHAR   NOT NULL,
    "time"           TIMESTAMP NOT NULL,
    matrix           VARCHAR   NOT NULL, -- calibration matrix name (e.g. lab, roeloffs2010, hodgkinson2013, ch_prelim, mandler2024)
    eee_plus_enn     DOUBLE,             -- areal strain, microstrain
    eee_minus_enn    DOUBLE,             -- differential strain, microstrain
    two_ene          DOUBLE,             -- engineering shear, microstrain
    metadata_version VARCHAR,
    PRIMARY KEY (site, "time", matrix)
);

-- One row per site: the level2.Machine state (MarshalBinary) after the last
-- applied record, saved with kafka_offsets in the same transaction, so a
-- restart resumes the filters exactly where the committed offsets stand.
CREATE TABLE level2_state (
    site             VARCHAR PRIMARY KEY,
    state            BLOB    NOT NULL,
    metadata_version VARCHAR,
    updated_offset   BIGINT            -- Kafka offset of the last record applied
);

-- The station metadata the processor has seen on the gtsm_metadata topic
-- (latest per site and every version, for the version column above).
CREATE TABLE station_metadata (
    site         VARCHAR   NOT NULL,
    version      VARCHAR   NOT NULL,
    received_at  TIMESTAMP NOT NULL,
    record_json  VARCHAR   NOT NULL, -- the decoded Avro record as JSON
    PRIMARY KEY (site, version)
);
