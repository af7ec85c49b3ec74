-- seed: the original demo's query, every record's site key and timestamp.
-- Streaming Flink can only ORDER BY an ascending time attribute, so this has no
-- ORDER BY key_site, `time` (the DuckDB twin's order); `gtsm compare` sorts
-- both sides before comparing.
-- Only records the processor stores: a record with no session (null time,
-- unknown session) is a dead letter there.
SELECT `key_site`, `timestamp`
FROM gtsm_etl
WHERE `session` IN ('Day', 'Hour', 'Min')
