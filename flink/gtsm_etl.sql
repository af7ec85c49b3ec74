-- The gtsm_etl topic as a Flink SQL table: the original demo's DDL, corrected
-- (it missed a comma after 'scan.startup.mode') and completed with every value
-- field, the session (as the processor decides it), Kafka partition/offset, an event-time
-- attribute with a watermark, and a bounded scan so a comparison run finishes.
--
--   docker compose exec sql-client bin/sql-client.sh -i /opt/gtsm/flink/gtsm_etl.sql
--   Flink SQL> SELECT key_site, `timestamp` FROM gtsm_etl;
--
-- `gtsm compare` sends these statements through the SQL Gateway, in a session
-- with 'table.local-time-zone' = 'UTC' (window bounds of a TIMESTAMP_LTZ
-- rowtime follow the session time zone; the processor's windows are UTC).
CREATE TABLE IF NOT EXISTS gtsm_etl (
  -- the Kafka key's one Avro field, 'site', prefixed to avoid the value's 'site'
  `key_site` STRING,

  -- the Avro value fields, in schema order (avro_schemas/gtsm_etl-value.avsc)
  `site` STRING,
  `time` BIGINT,       -- epoch milliseconds, UTC
  `timestamp` STRING,  -- 'YYYY-MM-DD HH:MM:SS[.fff]'
  `rs1_t0` INT,  -- 10 min strain counts ch0
  `rs2_t0` INT,  -- 10 min strain counts ch1
  `rs3_t0` INT,  -- 10 min strain counts ch2
  `rs4_t0` INT,  -- 10 min strain counts ch3
  `ls1_t0` INT,  -- 1 hz strain counts ch0
  `ls2_t0` INT,  -- 1 hz strain counts ch1
  `ls3_t0` INT,  -- 1 hz strain counts ch2
  `ls4_t0` INT,  -- 1 hz strain counts ch3
  `bs1_t0` INT,  -- 20 hz strain counts ch0
  `bs2_t0` INT,  -- 20 hz strain counts ch1
  `bs3_t0` INT,  -- 20 hz strain counts ch2
  `bs4_t0` INT,  -- 20 hz strain counts ch3
  `re1_t0` INT,  -- batteryvolts
  `rkd_t0` INT,  -- downholedegc
  `rk1_t0` INT,  -- loggerdegc
  `rk2_t0` INT,  -- powerboxdegc
  `rdo_ts` INT,  -- pressurekpa
  `rro_ts` INT,  -- rainfallmm
  `reo_t0` INT,  -- solaramps
  `re2_t0` INT,  -- systemamps
  `rca_t0` INT,  -- rtsettingch0
  `rcb_t0` INT,  -- rtsettingch1
  `rcc_t0` INT,  -- rtsettingch2
  `rcd_t0` INT,  -- rtsettingch3
  `rca_t1` INT,  -- caloffsetch0g1
  `rca_t2` INT,  -- caloffsetch0g2
  `rca_t3` INT,  -- caloffsetch0g3
  `rcb_t1` INT,  -- caloffsetch1g1
  `rcb_t2` INT,  -- caloffsetch1g2
  `rcb_t3` INT,  -- caloffsetch1g3
  `rcc_t1` INT,  -- caloffsetch2g1
  `rcc_t2` INT,  -- caloffsetch2g2
  `rcc_t3` INT,  -- caloffsetch2g3
  `rcd_t1` INT,  -- caloffsetch3g1
  `rcd_t2` INT,  -- caloffsetch3g2
  `rcd_t3` INT,  -- caloffsetch3g3
  `rca_t4` INT,  -- calstepch0g1
  `rca_t5` INT,  -- calstepch0g2
  `rca_t6` INT,  -- calstepch0g3
  `rcb_t4` INT,  -- calstepch1g1
  `rcb_t5` INT,  -- calstepch1g2
  `rcb_t6` INT,  -- calstepch1g3
  `rcc_t4` INT,  -- calstepch2g1
  `rcc_t5` INT,  -- calstepch2g2
  `rcc_t6` INT,  -- calstepch2g3
  `rcd_t4` INT,  -- calstepch3g1
  `rcd_t5` INT,  -- calstepch3g2
  `rcd_t6` INT,  -- calstepch3g3
  `rca_t7` INT,  -- caloffsetch0g0
  `rcb_t7` INT,  -- caloffsetch1g0
  `rcc_t7` INT,  -- caloffsetch2g0
  `rcd_t7` INT,  -- caloffsetch3g0
  `rca_t8` INT,  -- calstepch0g0
  `rcb_t8` INT,  -- calstepch1g0
  `rcc_t8` INT,  -- calstepch2g0
  `rcd_t8` INT,  -- calstepch3g0

  -- Kafka metadata: the session ('Day'|'Hour'|'Min') travels in the
  -- gtsm_session header, not in the Avro value
  `headers` MAP<STRING, BYTES> METADATA VIRTUAL,
  `kafka_partition` INT METADATA FROM 'partition' VIRTUAL,
  `kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL,
  -- The session, decided as the processor decides it (processor.sessionOf),
  -- so both sides put every record in the same session or in none:
  -- 1. the fields, when they name one session: Day for rs* and the ancillary
  --    and calibration fields, Hour for ls*, Min for bs*;
  -- 2. else the gtsm_session header (Day/Hour/Min, any case; another value:
  --    none);
  -- 3. else Min when no field is set and the time has milliseconds.
  -- A record with a null time, or none of these, is a dead letter for the
  -- processor and has no session here: every query keeps only Day/Hour/Min.
  -- (compare/e2e_test.go TestSessionAndGapsAgree runs this expression, through
  -- its DuckDB translation, and the real processor on the same messages.)
  -- (Computed columns cannot use each other: the three "is any field of the
  -- session set" tests are spelled out, COALESCE(...) IS NOT NULL each.)
  `session` AS CASE
    WHEN `time` IS NULL THEN CAST(NULL AS STRING)
    WHEN COALESCE(`rs1_t0`, `rs2_t0`, `rs3_t0`, `rs4_t0`, `re1_t0`, `rkd_t0`, `rk1_t0`, `rk2_t0`,
              `rdo_ts`, `rro_ts`, `reo_t0`, `re2_t0`, `rca_t0`, `rcb_t0`, `rcc_t0`, `rcd_t0`,
              `rca_t1`, `rca_t2`, `rca_t3`, `rcb_t1`, `rcb_t2`, `rcb_t3`, `rcc_t1`, `rcc_t2`,
              `rcc_t3`, `rcd_t1`, `rcd_t2`, `rcd_t3`, `rca_t4`, `rca_t5`, `rca_t6`, `rcb_t4`,
              `rcb_t5`, `rcb_t6`, `rcc_t4`, `rcc_t5`, `rcc_t6`, `rcd_t4`, `rcd_t5`, `rcd_t6`,
              `rca_t7`, `rcb_t7`, `rcc_t7`, `rcd_t7`, `rca_t8`, `rcb_t8`, `rcc_t8`, `rcd_t8`) IS NOT NULL
     AND COALESCE(`ls1_t0`, `ls2_t0`, `ls3_t0`, `ls4_t0`) IS NULL
     AND COALESCE(`bs1_t0`, `bs2_t0`, `bs3_t0`, `bs4_t0`) IS NULL
      THEN 'Day'
    WHEN COALESCE(`rs1_t0`, `rs2_t0`, `rs3_t0`, `rs4_t0`, `re1_t0`, `rkd_t0`, `rk1_t0`, `rk2_t0`,
              `rdo_ts`, `rro_ts`, `reo_t0`, `re2_t0`, `rca_t0`, `rcb_t0`, `rcc_t0`, `rcd_t0`,
              `rca_t1`, `rca_t2`, `rca_t3`, `rcb_t1`, `rcb_t2`, `rcb_t3`, `rcc_t1`, `rcc_t2`,
              `rcc_t3`, `rcd_t1`, `rcd_t2`, `rcd_t3`, `rca_t4`, `rca_t5`, `rca_t6`, `rcb_t4`,
              `rcb_t5`, `rcb_t6`, `rcc_t4`, `rcc_t5`, `rcc_t6`, `rcd_t4`, `rcd_t5`, `rcd_t6`,
              `rca_t7`, `rcb_t7`, `rcc_t7`, `rcd_t7`, `rca_t8`, `rcb_t8`, `rcc_t8`, `rcd_t8`) IS NULL
     AND COALESCE(`ls1_t0`, `ls2_t0`, `ls3_t0`, `ls4_t0`) IS NOT NULL
     AND COALESCE(`bs1_t0`, `bs2_t0`, `bs3_t0`, `bs4_t0`) IS NULL
      THEN 'Hour'
    WHEN COALESCE(`rs1_t0`, `rs2_t0`, `rs3_t0`, `rs4_t0`, `re1_t0`, `rkd_t0`, `rk1_t0`, `rk2_t0`,
              `rdo_ts`, `rro_ts`, `reo_t0`, `re2_t0`, `rca_t0`, `rcb_t0`, `rcc_t0`, `rcd_t0`,
              `rca_t1`, `rca_t2`, `rca_t3`, `rcb_t1`, `rcb_t2`, `rcb_t3`, `rcc_t1`, `rcc_t2`,
              `rcc_t3`, `rcd_t1`, `rcd_t2`, `rcd_t3`, `rca_t4`, `rca_t5`, `rca_t6`, `rcb_t4`,
              `rcb_t5`, `rcb_t6`, `rcc_t4`, `rcc_t5`, `rcc_t6`, `rcd_t4`, `rcd_t5`, `rcd_t6`,
              `rca_t7`, `rcb_t7`, `rcc_t7`, `rcd_t7`, `rca_t8`, `rcb_t8`, `rcc_t8`, `rcd_t8`) IS NULL
     AND COALESCE(`ls1_t0`, `ls2_t0`, `ls3_t0`, `ls4_t0`) IS NULL
     AND COALESCE(`bs1_t0`, `bs2_t0`, `bs3_t0`, `bs4_t0`) IS NOT NULL
      THEN 'Min'
    WHEN `headers`['gtsm_session'] IS NOT NULL THEN
      CASE UPPER(CAST(`headers`['gtsm_session'] AS STRING))
        WHEN 'DAY' THEN 'Day' WHEN 'HOUR' THEN 'Hour' WHEN 'MIN' THEN 'Min' END
    WHEN COALESCE(`rs1_t0`, `rs2_t0`, `rs3_t0`, `rs4_t0`, `re1_t0`, `rkd_t0`, `rk1_t0`, `rk2_t0`,
              `rdo_ts`, `rro_ts`, `reo_t0`, `re2_t0`, `rca_t0`, `rcb_t0`, `rcc_t0`, `rcd_t0`,
              `rca_t1`, `rca_t2`, `rca_t3`, `rcb_t1`, `rcb_t2`, `rcb_t3`, `rcc_t1`, `rcc_t2`,
              `rcc_t3`, `rcd_t1`, `rcd_t2`, `rcd_t3`, `rca_t4`, `rca_t5`, `rca_t6`, `rcb_t4`,
              `rcb_t5`, `rcb_t6`, `rcc_t4`, `rcc_t5`, `rcc_t6`, `rcd_t4`, `rcd_t5`, `rcd_t6`,
              `rca_t7`, `rcb_t7`, `rcc_t7`, `rcd_t7`, `rca_t8`, `rcb_t8`, `rcc_t8`, `rcd_t8`) IS NULL
     AND COALESCE(`ls1_t0`, `ls2_t0`, `ls3_t0`, `ls4_t0`) IS NULL
     AND COALESCE(`bs1_t0`, `bs2_t0`, `bs3_t0`, `bs4_t0`) IS NULL
     AND MOD(`time`, 1000) <> 0 THEN 'Min'
  END,

  -- event time from the epoch milliseconds; processing time gives arrival
  -- order (one site lives in one partition, read by one subtask, in offset order)
  `event_time` AS TO_TIMESTAMP_LTZ(`time`, 3),
  `proc_time` AS PROCTIME(),

  -- Flink drops records that arrive later than the watermark allows (our
  -- processor never drops: it stores and counts them as late). A site's Day,
  -- Hour and Min sessions of the same day may be produced one after the other,
  -- so a day's delay keeps a day of data from being dropped.
  WATERMARK FOR `event_time` AS `event_time` - INTERVAL '1' DAY
) WITH (
  'connector' = 'kafka',
  'topic' = 'gtsm_etl',
  'properties.bootstrap.servers' = 'kafka-broker:9092',
  'properties.group.id' = 'gtsm-flink-compare',
  'scan.startup.mode' = 'earliest-offset',
  -- stop at the offsets that were the latest when the job started, so a
  -- SELECT ends with EOS instead of running forever
  'scan.bounded.mode' = 'latest-offset',

  -- the Kafka key: Confluent wire format, subject gtsm_etl-key
  'key.format' = 'avro-confluent',
  'key.avro-confluent.url' = 'http://kafka-schema-registry:8081',
  'key.fields' = 'key_site',
  'key.fields-prefix' = 'key_',

  -- the Kafka value: Confluent wire format, subject gtsm_etl-value
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = 'http://kafka-schema-registry:8081',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- One row per record and strain channel (CH0..CH3 of the record's session:
-- rs* for Day, ls* for Hour, bs* for Min), the shape of the processor's
-- `windows` table. UNION ALL keeps the event-time attribute, so the window
-- TVFs of hourly.sql and daily.sql can run on it.
CREATE TEMPORARY VIEW IF NOT EXISTS gtsm_strain AS
SELECT `key_site` AS `site`, `session`,
       CASE `session` WHEN 'Day' THEN 'rs1_t0' WHEN 'Hour' THEN 'ls1_t0' ELSE 'bs1_t0' END AS `channel`,
       CASE `session` WHEN 'Day' THEN `rs1_t0` WHEN 'Hour' THEN `ls1_t0` ELSE `bs1_t0` END AS `v`,
       `time`, `event_time`
  FROM gtsm_etl WHERE `session` IN ('Day', 'Hour', 'Min')
UNION ALL
SELECT `key_site` AS `site`, `session`,
       CASE `session` WHEN 'Day' THEN 'rs2_t0' WHEN 'Hour' THEN 'ls2_t0' ELSE 'bs2_t0' END AS `channel`,
       CASE `session` WHEN 'Day' THEN `rs2_t0` WHEN 'Hour' THEN `ls2_t0` ELSE `bs2_t0` END AS `v`,
       `time`, `event_time`
  FROM gtsm_etl WHERE `session` IN ('Day', 'Hour', 'Min')
UNION ALL
SELECT `key_site` AS `site`, `session`,
       CASE `session` WHEN 'Day' THEN 'rs3_t0' WHEN 'Hour' THEN 'ls3_t0' ELSE 'bs3_t0' END AS `channel`,
       CASE `session` WHEN 'Day' THEN `rs3_t0` WHEN 'Hour' THEN `ls3_t0` ELSE `bs3_t0` END AS `v`,
       `time`, `event_time`
  FROM gtsm_etl WHERE `session` IN ('Day', 'Hour', 'Min')
UNION ALL
SELECT `key_site` AS `site`, `session`,
       CASE `session` WHEN 'Day' THEN 'rs4_t0' WHEN 'Hour' THEN 'ls4_t0' ELSE 'bs4_t0' END AS `channel`,
       CASE `session` WHEN 'Day' THEN `rs4_t0` WHEN 'Hour' THEN `ls4_t0` ELSE `bs4_t0` END AS `v`,
       `time`, `event_time`
  FROM gtsm_etl WHERE `session` IN ('Day', 'Hour', 'Min');
