-- description: Level-2 regional strain, 300 s, per calibration matrix and component (Eee+Enn areal, Eee-Enn differential, 2Ene engineering shear): microstrain, the gauge corrections through the matrix (tide_c, atmp_c, offset_c, trend_c) and corrected, as level2.ipynb computes them.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
-- Read from the level2_regional_strain view: the matrix applied to the uncorrected gauge microstrain and
-- to each gauge correction; corrected is NULL wherever a correction is.
SELECT site, "time", matrix, component, microstrain, tide_c, atmp_c, offset_c, trend_c, corrected, strain_quality, metadata_version
FROM level2_regional_strain
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, matrix, "time", CASE component WHEN 'Eee+Enn' THEN 1 WHEN 'Eee-Enn' THEN 2 ELSE 3 END
