-- description: Per site and session: records stored, duplicates dropped, and records the processor counted as late.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
SELECT site, session, records, duplicates, late
FROM site_state
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, session
