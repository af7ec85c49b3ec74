-- description: Per site and session: the newest sample time stored and the number of records.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
SELECT site, session, last_time, records
FROM site_state
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, session
