-- Level-2 strain, the contract (issue 13): one row per site, 300 s time and gauge 0..3.
-- microstrain is the linearized decimated gauge strain before corrections; atmp_c,
-- tide_c, offset_c and trend_c are the corrections in microstrain (NULL where metadata,
-- pressure or tidal constituents are missing). corrected is level2.ipynb's
-- apply_corrections([tide_c, atmp_c, offset_c, trend_c]): NULL wherever a correction is
-- (never a correction silently taken as 0); corrected_missing names the NULL ones.
-- strain_quality is EarthScope's flag: m (no microstrain), i (the gauge's 1 s sample at
-- this time was missing and interpolated), g. atmp is the pressure (hPa) atmp_c was made from.
-- Example: SELECT time, gauge, corrected FROM level2_gauge WHERE site = 'B009' ORDER BY time, gauge;
CREATE OR REPLACE VIEW level2_gauge AS
SELECT site, "time", CAST(gauge AS INTEGER) AS gauge, microstrain, atmp_c, tide_c, offset_c, metadata_version,
       trend_c,
       microstrain - tide_c - atmp_c - offset_c - trend_c AS corrected,
       nullif(concat_ws(',', CASE WHEN tide_c IS NULL THEN 'tide_c' END, CASE WHEN atmp_c IS NULL THEN 'atmp_c' END,
                             CASE WHEN offset_c IS NULL THEN 'offset_c' END, CASE WHEN trend_c IS NULL THEN 'trend_c' END), '') AS corrected_missing,
       CASE WHEN microstrain IS NULL THEN 'm' WHEN interpolated THEN 'i' ELSE 'g' END AS strain_quality,
       atmp
FROM level2_gauge_data;

-- Regional strains per calibration matrix: areal (eee_plus_enn), differential
-- (eee_minus_enn) and engineering shear (two_ene), microstrain.
CREATE OR REPLACE VIEW level2_regional AS
SELECT site, "time", matrix, eee_plus_enn, eee_minus_enn, two_ene, metadata_version
FROM level2_regional_data;

-- The calibration matrices of every station metadata version the processor has
-- stored (station_metadata.record_json, the decoded metadata.Station): one row per
-- site, version and matrix; m[i][g] is row i (1 Eee+Enn, 2 Eee-Enn, 3 2Ene), gauge g-1.
CREATE OR REPLACE VIEW level2_matrix AS
SELECT site, version AS metadata_version, mx.Name AS matrix, mx."Values" AS m
FROM (SELECT site, version,
             unnest(from_json(record_json -> 'Matrices', '[{"Name":"VARCHAR","Values":"DOUBLE[][]"}]')) AS mx
      FROM station_metadata);

-- The regional product of level2.ipynb (cells 22-24), one row per site, time, matrix
-- and component (Eee+Enn, Eee-Enn, 2Ene): the regional microstrain and the gauge
-- corrections through the same matrix (apply_calibration_matrix applied to tide_c,
-- atmp_c, offset_c and trend_c), and corrected = microstrain minus the four, NULL
-- wherever a gauge correction is. strain_quality as Timeseries.apply_calibration_matrix
-- sets it: m without microstrain, else g (interpolation is flagged on the gauges only).
CREATE OR REPLACE VIEW level2_regional_strain AS
WITH g AS (
    -- the four gauges' corrections at each time that has regional rows (only
    -- those: a site without metadata has gauge rows and no regional ones)
    SELECT d.site, d."time", d.metadata_version,
           any_value(d.tide_c) FILTER (WHERE d.gauge = 0) AS t0, any_value(d.tide_c) FILTER (WHERE d.gauge = 1) AS t1,
           any_value(d.tide_c) FILTER (WHERE d.gauge = 2) AS t2, any_value(d.tide_c) FILTER (WHERE d.gauge = 3) AS t3,
           any_value(d.atmp_c) FILTER (WHERE d.gauge = 0) AS a0, any_value(d.atmp_c) FILTER (WHERE d.gauge = 1) AS a1,
           any_value(d.atmp_c) FILTER (WHERE d.gauge = 2) AS a2, any_value(d.atmp_c) FILTER (WHERE d.gauge = 3) AS a3,
           any_value(d.offset_c) FILTER (WHERE d.gauge = 0) AS o0, any_value(d.offset_c) FILTER (WHERE d.gauge = 1) AS o1,
           any_value(d.offset_c) FILTER (WHERE d.gauge = 2) AS o2, any_value(d.offset_c) FILTER (WHERE d.gauge = 3) AS o3,
           any_value(d.trend_c) FILTER (WHERE d.gauge = 0) AS r0, any_value(d.trend_c) FILTER (WHERE d.gauge = 1) AS r1,
           any_value(d.trend_c) FILTER (WHERE d.gauge = 2) AS r2, any_value(d.trend_c) FILTER (WHERE d.gauge = 3) AS r3,
           any_value(d.atmp) AS atmp
    FROM level2_gauge_data d SEMI JOIN (SELECT DISTINCT site, "time" FROM level2_regional_data) x ON x.site = d.site AND x."time" = d."time"
    GROUP BY d.site, d."time", d.metadata_version
),
r AS (
    SELECT r.site, r."time", r.matrix, r.metadata_version, c.i,
           CASE c.i WHEN 1 THEN r.eee_plus_enn WHEN 2 THEN r.eee_minus_enn ELSE r.two_ene END AS microstrain
    FROM level2_regional_data r, (SELECT unnest([1, 2, 3]) AS i) c
),
j AS (
    SELECT r.site, r."time", r.matrix, r.i, r.microstrain, r.metadata_version, g.atmp,
           mm.m[r.i][1] * g.t0 + mm.m[r.i][2] * g.t1 + mm.m[r.i][3] * g.t2 + mm.m[r.i][4] * g.t3 AS tide_c,
           mm.m[r.i][1] * g.a0 + mm.m[r.i][2] * g.a1 + mm.m[r.i][3] * g.a2 + mm.m[r.i][4] * g.a3 AS atmp_c,
           mm.m[r.i][1] * g.o0 + mm.m[r.i][2] * g.o1 + mm.m[r.i][3] * g.o2 + mm.m[r.i][4] * g.o3 AS offset_c,
           mm.m[r.i][1] * g.r0 + mm.m[r.i][2] * g.r1 + mm.m[r.i][3] * g.r2 + mm.m[r.i][4] * g.r3 AS trend_c
    FROM r
    LEFT JOIN g ON g.site = r.site AND g."time" = r."time" AND g.metadata_version IS NOT DISTINCT FROM r.metadata_version
    LEFT JOIN level2_matrix mm ON mm.site = r.site AND mm.metadata_version = r.metadata_version AND mm.matrix = r.matrix
)
SELECT site, "time", matrix,
       CASE i WHEN 1 THEN 'Eee+Enn' WHEN 2 THEN 'Eee-Enn' ELSE '2Ene' END AS component,
       microstrain, tide_c, atmp_c, offset_c, trend_c,
       microstrain - tide_c - atmp_c - offset_c - trend_c AS corrected,
       CASE WHEN microstrain IS NULL THEN 'm' ELSE 'g' END AS strain_quality,
       atmp, metadata_version
FROM j;
