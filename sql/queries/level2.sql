-- description: Level-2 gauge strain, 300 s, gauge 0..3: linearized microstrain, its corrections (atmp_c, tide_c, offset_c, trend_c) and corrected = microstrain minus all four (NULL where one is missing; corrected_missing names it), with EarthScope's quality flag.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
-- Read from the level2_gauge view (the contract the processor fills). A NULL correction (no metadata,
-- no pressure at that time, no tidal constituents) makes corrected NULL, never a silent 0. tide_c is the
-- body tide predicted from the station's tidal constituents (level2/tide.go, SPOTL hartid's method);
-- trend_c the README's trend model or level2.ipynb's linear fit (level2/trend.go).
SELECT site, "time", gauge, microstrain, atmp_c, tide_c, offset_c, trend_c, corrected, corrected_missing,
       strain_quality, metadata_version
FROM level2_gauge
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, "time", gauge
