-- Level-2 strain, the contract (issue 13): one row per site, 300 s time and gauge 0..3.
-- microstrain is the linearized decimated gauge strain before corrections; atmp_c,
-- tide_c and offset_c are the corrections in microstrain (NULL where metadata is missing).
-- Example: SELECT time, gauge, microstrain - coalesce(atmp_c,0) - coalesce(tide_c,0) - coalesce(offset_c,0)
--          FROM level2_gauge WHERE site = 'B009' ORDER BY time, gauge;
CREATE OR REPLACE VIEW level2_gauge AS
SELECT site, "time", CAST(gauge AS INTEGER) AS gauge, microstrain, atmp_c, tide_c, offset_c, metadata_version
FROM level2_gauge_data;

-- Regional strains per calibration matrix: areal (eee_plus_enn), differential
-- (eee_minus_enn) and engineering shear (two_ene), microstrain.
CREATE OR REPLACE VIEW level2_regional AS
SELECT site, "time", matrix, eee_plus_enn, eee_minus_enn, two_ene, metadata_version
FROM level2_regional_data;
