-- Level-2 strain: one row per stored record and gauge (CH0..CH3 = gauge 1..4 of
-- the record's session: rs* for Day, ls* for Hour, bs* for Min), with the raw
-- counts and, when site_reference has the gauge's reference counts, the
-- linearized microstrain
--   (x/(1-x) - x0/(1-x0)) * (gap_m/0.087) * 1e6,  x = counts/1e8, x0 = reference_counts/1e8
-- (0.087 m: the gauge diameter; gap_m defaults to 100 µm). microstrain is NULL
-- without a reference or when the sample is missing.
-- Example: SELECT ts, gauge, microstrain FROM strain WHERE site = 'B009' AND session = 'Hour' ORDER BY ts, gauge;
CREATE OR REPLACE VIEW strain AS
WITH u AS (
    SELECT key_site AS site, session, "time",
           unnest([1, 2, 3, 4]) AS gauge,
           unnest(CASE session
                      WHEN 'Day'  THEN ['rs1_t0', 'rs2_t0', 'rs3_t0', 'rs4_t0']
                      WHEN 'Hour' THEN ['ls1_t0', 'ls2_t0', 'ls3_t0', 'ls4_t0']
                      ELSE             ['bs1_t0', 'bs2_t0', 'bs3_t0', 'bs4_t0']
                  END) AS channel,
           unnest(CASE session
                      WHEN 'Day'  THEN [rs1_t0, rs2_t0, rs3_t0, rs4_t0]
                      WHEN 'Hour' THEN [ls1_t0, ls2_t0, ls3_t0, ls4_t0]
                      ELSE             [bs1_t0, bs2_t0, bs3_t0, bs4_t0]
                  END) AS counts
    FROM gtsm_etl
)
SELECT u.site, u.session, u."time", epoch_ms(u."time") AS ts, u.gauge, u.channel, u.counts,
       r.reference_counts,
       ((u.counts / 1e8) / (1 - u.counts / 1e8)
        - (r.reference_counts / 1e8) / (1 - r.reference_counts / 1e8))
       * (r.gap_m / 0.087) * 1e6 AS microstrain
FROM u
LEFT JOIN site_reference r ON r.site = u.site AND r.gauge = u.gauge;
