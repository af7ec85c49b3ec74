-- description: Level-2 regional strain, 300 s, per calibration matrix: areal (eee_plus_enn), differential (eee_minus_enn), engineering shear (two_ene), microstrain.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
-- Read from the level2_regional view: the matrix applied to the uncorrected gauge microstrain.
SELECT site, "time", matrix, eee_plus_enn, eee_minus_enn, two_ene, metadata_version
FROM level2_regional
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, matrix, "time"
