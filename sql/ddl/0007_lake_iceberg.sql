-- The lake is Apache Iceberg (package lake): what is published is in the
-- tables' own metadata (snapshots, and the offset each partition reached
-- in a table property), so the hive lake's bookkeeping goes. What stays in
-- the partition's DuckDB is only an optimisation: the checksum of each
-- span (partition: a site-day, a site, a Kafka partition) of the upserted
-- tables as last committed, so a publish rewrites only spans that changed.
-- It is written after the Iceberg commit: a crash in between makes the
-- next publish replace those spans again, with the same rows.
DROP TABLE lake_rounds;
DROP TABLE lake_spans;
DROP TABLE lake_garbage;

CREATE TABLE lake_published (
    tbl             VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    span            VARCHAR NOT NULL, -- the partition values (length-prefixed text)
    table_uuid      VARCHAR NOT NULL, -- the Iceberg table it was committed to
    rows            BIGINT  NOT NULL,
    checksum        VARCHAR NOT NULL, -- sum(hash(all columns))
    PRIMARY KEY (tbl, kafka_partition, span)
);
