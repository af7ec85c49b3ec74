-- gtsm_etl with a real time column for dashboards: ts is the record's "time"
-- (milliseconds since 1970, UTC) as TIMESTAMP WITH TIME ZONE, so Grafana's
-- $__timeFilter(ts) and $__timeGroup(ts, '1m'), and JDBC clients' typed
-- getters, work on it. ("timestamp" in gtsm_etl is the bottle's text.)
-- Example: SELECT ts, site, rs1_t0 FROM gtsm_etl_ts WHERE site = 'B009' AND ts >= TIMESTAMPTZ '2021-07-01 00:00:00+00' ORDER BY ts;
CREATE OR REPLACE VIEW gtsm_etl_ts AS
SELECT epoch_ms("time") AT TIME ZONE 'UTC' AS ts, *
FROM gtsm_etl;
