-- description: Every stored record's site and timestamp in time order: the original Flink demo's query.
-- Exactly the original demo (no parameters). Over a whole site-day this is millions of rows: through the
-- SQL endpoint it hits the row cap; add a LIMIT, or run it with `gtsm sql --db FILE` for an export.
SELECT key_site, "timestamp" FROM gtsm_etl ORDER BY key_site, "time"
