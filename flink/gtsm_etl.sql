-- The gtsm_etl topic as a Flink SQL table: the original demo's DDL, corrected
-- (it missed a comma after 'scan.startup.mode') and completed with every value
-- field, the gtsm_session header, Kafka partition/offset, an event-time
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
  -- (records without the header: inferred from which strain channels are set)
  `session` AS COALESCE(CAST(`headers`['gtsm_session'] AS STRING),
    CASE WHEN `rs1_t0` IS NOT NULL OR `rs2_t0` IS NOT NULL OR `rs3_t0` IS NOT NULL OR `rs4_t0` IS NOT NULL THEN 'Day'
         WHEN `ls1_t0` IS NOT NULL OR `ls2_t0` IS NOT NULL OR `ls3_t0` IS NOT NULL OR `ls4_t0` IS NOT NULL THEN 'Hour'
         WHEN `bs1_t0` IS NOT NULL OR `bs2_t0` IS NOT NULL OR `bs3_t0` IS NOT NULL OR `bs4_t0` IS NOT NULL THEN 'Min' END),

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
