-- hourly: per site, session and strain channel, 1-hour tumbling event-time
-- windows (UTC): n records of the session, n_null of them without the channel,
-- min, max, mean, and the first and last non-null value by event time.
--
-- Flink's FIRST_VALUE/LAST_VALUE follow arrival order, not event time, so first
-- and last pack (offset of the sample in its window, value) into one BIGINT,
-- take MIN (first) or MAX (last) over non-null samples, and unpack the value:
--   key = MOD(time, 3600000) * 2^32 + (value + 2^31)   (fits: 3600000 * 2^32 < 2^63)
-- AVG of an INT is an INT in Flink, hence the cast to DOUBLE.
SELECT `site`, `session`, `channel`, window_start, window_end,
       COUNT(*) AS n,
       COUNT(*) - COUNT(`v`) AS n_null,
       MIN(`v`) AS `min`,
       MAX(`v`) AS `max`,
       AVG(CAST(`v` AS DOUBLE)) AS `mean`,
       CAST(MOD(MIN(CASE WHEN `v` IS NOT NULL
                         THEN CAST(MOD(`time`, 3600000) AS BIGINT) * 4294967296 + (CAST(`v` AS BIGINT) + 2147483648) END),
                4294967296) - 2147483648 AS INT) AS `first`,
       CAST(MOD(MAX(CASE WHEN `v` IS NOT NULL
                         THEN CAST(MOD(`time`, 3600000) AS BIGINT) * 4294967296 + (CAST(`v` AS BIGINT) + 2147483648) END),
                4294967296) - 2147483648 AS INT) AS `last`
FROM TABLE(TUMBLE(TABLE gtsm_strain, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY `site`, `session`, `channel`, window_start, window_end
