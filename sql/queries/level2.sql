-- description: Level-2 gauge strain, 300 s, gauge 0..3: linearized microstrain, its corrections (atmp_c, tide_c, offset_c) and corrected = microstrain minus the corrections present.
-- param: $1 site  Site code such as B009; NULL (no argument) means all sites.
-- Read from the level2_gauge view (the contract the processor fills). A NULL correction (no metadata,
-- no pressure, no tidal constituents) is left out of corrected, not a NULL result. tide_c is the
-- body tide predicted from the station's tidal constituents (level2/tide.go, SPOTL hartid's method).
SELECT site, "time", gauge, microstrain, atmp_c, tide_c, offset_c,
       microstrain - coalesce(atmp_c, 0) - coalesce(tide_c, 0) - coalesce(offset_c, 0) AS corrected,
       metadata_version
FROM level2_gauge
WHERE ($1::VARCHAR IS NULL OR site = $1::VARCHAR)
ORDER BY site, "time", gauge
