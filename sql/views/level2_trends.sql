-- Trends of Level-2 gauge strain (issue 13): whole-series fits, so SQL over the
-- level2_gauge view rather than state in the processor. Both fit the series
-- v = microstrain - atmp_c - tide_c - offset_c (the trend itself not removed) and give
-- slopes in microstrain per year of 365.25 days. A correction a site's gauge never has
-- (no barometric response, no tidal constituents) counts as 0; one it has elsewhere but
-- not at a time (a pressure gap, the newest rows before their pressure sample) drops that
-- time, since atmp_c and tide_c are absolute (atmp_c is ~ -7.5 microstrain at 1013 hPa)
-- and a 0 there would be a step. site_ := NULL means every site.
--
-- Linear: ordinary least squares of v on time (regr_slope), per site and gauge.
-- Example: SELECT * FROM level2_trend_linear('B009');
CREATE OR REPLACE MACRO level2_trend_linear(site_ := NULL) AS TABLE
SELECT site, gauge,
       count(v) AS n,
       min("time") AS first_time,
       max("time") AS last_time,
       regr_slope(v, epoch("time")) * 31557600 AS slope_per_year,
       regr_intercept(v, epoch("time") - epoch(TIMESTAMP '2000-01-01')) AS value_at_2000
FROM (SELECT site, gauge, "time",
             microstrain - CASE WHEN count(atmp_c) OVER w = 0 THEN 0 ELSE atmp_c END
                         - CASE WHEN count(tide_c) OVER w = 0 THEN 0 ELSE tide_c END
                         - CASE WHEN count(offset_c) OVER w = 0 THEN 0 ELSE offset_c END AS v
      FROM level2_gauge
      WHERE (site_ IS NULL OR site = site_) AND microstrain IS NOT NULL
      WINDOW w AS (PARTITION BY site, gauge))
GROUP BY site, gauge
ORDER BY site, gauge;

-- MIDAS-style (Blewitt et al. 2016, "MIDAS robust trend estimator"): the median
-- of the slopes of all pairs of values one year apart (365.25 days ± tol_s
-- seconds, in whole 300 s steps: Level-2 times are on the 300 s grid, so the
-- partners are found by an equality join, linear in the rows; tol_s = 0 pairs
-- each value with the one exactly a year later), then MIDAS's second step: drop slopes farther than 2 sigma from
-- that median (sigma = 1.4826 × the median absolute deviation) and take the
-- median of the rest. sigma_per_year is that MAD-based scatter after trimming
-- and slope_uncertainty MIDAS's 1.2533 × sigma / sqrt(n_pairs / 4).
-- Approximation: MIDAS picks each value's partner so that no value is used
-- twice (forward pairs, then backward ones to fill gaps); here every pair within
-- the tolerance counts, which on the regular 300 s grid with tol_s < 300 is the
-- same set, and with gaps or a wider tolerance may weigh some values more.
-- Annual cycles cancel in one-year differences; steps move only the pairs that
-- straddle them, which the median ignores.
-- Example: SELECT * FROM level2_trend_midas('B009');
CREATE OR REPLACE MACRO level2_trend_midas(site_ := NULL, tol_s := 0) AS TABLE
WITH s AS (
    SELECT site, gauge, "time",
           microstrain - CASE WHEN count(atmp_c) OVER w = 0 THEN 0 ELSE atmp_c END
                         - CASE WHEN count(tide_c) OVER w = 0 THEN 0 ELSE tide_c END
                         - CASE WHEN count(offset_c) OVER w = 0 THEN 0 ELSE offset_c END AS v
    FROM level2_gauge
    WHERE (site_ IS NULL OR site = site_) AND microstrain IS NOT NULL
    WINDOW w AS (PARTITION BY site, gauge)
), a AS (
    -- each value with the times of its possible partners
    SELECT s.site, s.gauge, s."time", s.v, s."time" + to_seconds(31557600 + k * 300) AS partner
    FROM s, (SELECT unnest(range(-(tol_s // 300), tol_s // 300 + 1)) AS k)
), p AS (
    SELECT a.site, a.gauge,
           (b.v - a.v) / (epoch(b."time") - epoch(a."time")) * 31557600 AS slope
    FROM a JOIN s b
      ON a.site = b.site AND a.gauge = b.gauge AND a.partner = b."time"
), m AS (
    SELECT site, gauge, median(slope) AS m0 FROM p GROUP BY site, gauge
), d AS (
    SELECT p.site, p.gauge, any_value(m.m0) AS m0, 1.4826 * median(abs(p.slope - m.m0)) AS sigma0
    FROM p JOIN m ON p.site = m.site AND p.gauge = m.gauge
    GROUP BY p.site, p.gauge
), k AS (
    SELECT p.site, p.gauge, p.slope
    FROM p JOIN d ON p.site = d.site AND p.gauge = d.gauge
    WHERE abs(p.slope - d.m0) <= 2 * d.sigma0
), r AS (
    SELECT site, gauge, count(*) AS n_pairs, median(slope) AS slope_per_year FROM k GROUP BY site, gauge
)
SELECT r.site, r.gauge, r.n_pairs, r.slope_per_year,
       1.4826 * median(abs(k.slope - r.slope_per_year)) AS sigma_per_year,
       1.2533 * 1.4826 * median(abs(k.slope - r.slope_per_year)) / sqrt(r.n_pairs / 4) AS slope_uncertainty
FROM r JOIN k ON r.site = k.site AND r.gauge = k.gauge
GROUP BY r.site, r.gauge, r.n_pairs, r.slope_per_year
ORDER BY r.site, r.gauge;
