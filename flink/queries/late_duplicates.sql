-- late_duplicates: per site and session, records (distinct sample times, what
-- is stored), duplicates (re-sent records of a time already seen) and late
-- (records older than a record that arrived before them). Arrival order is
-- processing time: a site lives in one partition, read in offset order.
-- A streaming aggregate: the gateway sends a changelog (UPDATE_BEFORE/AFTER),
-- and `gtsm compare` applies it to get the final table.
SELECT `site`, `session`,
       COUNT(DISTINCT `time`) AS records,
       COUNT(*) - COUNT(DISTINCT `time`) AS duplicates,
       COUNT(CASE WHEN `time` < `max_so_far` THEN 1 END) AS late
FROM (
  SELECT `key_site` AS `site`, `session`, `time`,
         MAX(`time`) OVER (PARTITION BY `key_site`, `session` ORDER BY `proc_time`
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `max_so_far`
  FROM gtsm_etl
  WHERE `session` IN ('Day', 'Hour', 'Min')
)
GROUP BY `site`, `session`
