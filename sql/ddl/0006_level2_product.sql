-- The rest of level2.ipynb's Level-2 product per gauge row (docs/level2.md,
-- "The notebook's whole product"): the trend correction, EarthScope's
-- interpolated-quality flag, and the pressure the barometric correction was
-- made from. Regional corrections and corrected series are views over these
-- (views/level2.sql).
ALTER TABLE level2_gauge_data ADD COLUMN trend_c DOUBLE;       -- trend correction, microstrain (README model, else the notebook's linear fit); NULL without metadata
ALTER TABLE level2_gauge_data ADD COLUMN interpolated BOOLEAN; -- the gauge's 1 s sample at this time was missing and interpolated (EarthScope quality "i")
ALTER TABLE level2_gauge_data ADD COLUMN atmp DOUBLE;          -- barometric pressure at this time, hPa (interpolated from the station's pressure samples); NULL without pressure
