-- description: Per site, session and strain channel, 1-hour tumbling windows (event time, UTC): n, n_null, min, max, mean, first, last.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
-- Read from the processor's windows table (width '1h'); n counts the session's records in the window,
-- n_null those where the channel was missing, first/last are the first/last non-null values by event time.
-- Tools that cannot bind parameters replace $1::VARCHAR with NULL.
SELECT site, session, channel, window_start, window_end,
       n, n_null, min, max, mean, first, last
FROM windows
WHERE width = '1h'
  AND ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, session, channel, window_start
