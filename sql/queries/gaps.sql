-- description: Per site and session, runs of expected samples that never arrived: gap_start, gap_end (first and last missing sample), missing.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
-- Sample intervals: Day 600 s, Hour 1 s, Min 50 ms.
SELECT site, session, gap_start, gap_end, missing
FROM gaps
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, session, gap_start
