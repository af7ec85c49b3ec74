-- gaps: per site and session, each run of expected samples that never came:
-- gap_start (first missing sample), gap_end (last missing sample), missing.
-- Sample intervals: Day 600 s, Hour 1 s, Min 50 ms. LAG over event time puts a
-- late record in its place (Flink drops records behind the watermark).
SELECT `site`, `session`,
       CAST(TO_TIMESTAMP_LTZ(`prev_time` + `step`, 3) AS TIMESTAMP(3)) AS gap_start,
       CAST(TO_TIMESTAMP_LTZ(`time` - `step`, 3) AS TIMESTAMP(3)) AS gap_end,
       CAST(FLOOR(CAST(`time` - `prev_time` AS DOUBLE) / `step`) AS BIGINT) - 1 AS missing
FROM (
  SELECT `key_site` AS `site`, `session`, `time`,
         CASE `session` WHEN 'Day' THEN 600000 WHEN 'Hour' THEN 1000 ELSE 50 END AS `step`,
         LAG(`time`) OVER (PARTITION BY `key_site`, `session` ORDER BY `event_time`) AS `prev_time`
  FROM gtsm_etl
  WHERE `session` IN ('Day', 'Hour', 'Min')
)
-- A gap is at least one whole missing sample, as in the processor: two samples
-- 2 steps apart or more (samples off the grid, less than 2 steps apart, are
-- not a gap of 0 missing samples).
WHERE `time` - `prev_time` >= 2 * `step`
