-- latest: per site and session, the last sample time and the records stored
-- (distinct sample times). A streaming aggregate (changelog, see late_duplicates).
SELECT `key_site` AS `site`, `session`,
       CAST(TO_TIMESTAMP_LTZ(MAX(`time`), 3) AS TIMESTAMP(3)) AS last_time,
       COUNT(DISTINCT `time`) AS records
FROM gtsm_etl
WHERE `session` IN ('Day', 'Hour', 'Min')
GROUP BY `key_site`, `session`
