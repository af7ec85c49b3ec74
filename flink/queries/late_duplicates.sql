-- late_duplicates: per site and session, records (distinct sample times, what
-- is stored), duplicates (re-sent records of a time already seen) and late
-- (records, other than re-sent ones, older than a record that arrived before
-- them). Arrival order is processing time: a site lives in one partition,
-- read in offset order. `seen` numbers the arrivals of one sample time (an
-- OVER window keyed by time: state per sample, fine for a bounded run).
-- A streaming aggregate: the gateway sends a changelog (UPDATE_BEFORE/AFTER),
-- and `gtsm compare` applies it to get the final table.
SELECT `site`, `session`,
       COUNT(DISTINCT `time`) AS records,
       COUNT(*) - COUNT(DISTINCT `time`) AS duplicates,
       COUNT(CASE WHEN `seen` = 1 AND `time` < `max_so_far` THEN 1 END) AS late
FROM (
  SELECT `site`, `session`, `time`, `seen`,
         MAX(`time`) OVER (PARTITION BY `site`, `session` ORDER BY `proc_time`
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `max_so_far`
  FROM (
    SELECT `key_site` AS `site`, `session`, `time`, `proc_time`,
           COUNT(*) OVER (PARTITION BY `key_site`, `session`, `time` ORDER BY `proc_time`
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `seen`
    FROM gtsm_etl
    WHERE `session` IN ('Day', 'Hour', 'Min')
  )
)
GROUP BY `site`, `session`
