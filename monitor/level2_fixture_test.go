package monitor

import (
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/earthscope/gtsm-stream/metadata"
)

// Level-2 rows for the fixture, inserted into the processor's real tables
// (sql/ddl/0002_level2.sql) as the processor writes them: level2_gauge_data,
// level2_regional_data (the strains as matrix times gauge microstrain),
// station_metadata (the record as JSON, the matrices of each version) and a
// level2_state row per site (the status page lists Level-2 sites from it;
// the state blob itself is the processor's business and not read here).
//
// B009, 2021-07-01 00:00 .. 2021-07-03 23:55 every 300 s, less the hour
// 2021-07-02 10:00 .. 10:55 (a gap):
//   - microstrain of gauge g: 5g + 0.5 sin(2π t / 12.42 h) + 0.01 per day;
//   - offset_c: 0, and 1.5 on gauge 2 from 2021-07-02 06:00 (a step);
//   - atmp_c: NULL on 2021-07-01 (no pressure), then 0.3 cos(2π t / 1 d),
//     except gauge 3 at 2021-07-03 12:10 .. 12:40 (NULL: three gauges only);
//   - tide_c: NULL everywhere (no constituents);
//   - metadata version v1 before 2021-07-02 12:00, v2 from then, with
//     matrices lab (the same in both) and ER2010 (changed in v2).
//
// B010: one day of decimated counts without metadata (microstrain and the
// corrections NULL, no regional rows). B011: two times six years apart (the
// range bound).
var (
	l2Lab     = metadata.LabMatrix(342.9)
	l2ER2010a = [3][4]float64{{0.3, 0.2, 0.25, 0.2}, {0.4, -0.3, -0.1, 0.05}, {0.1, 0.35, -0.35, 0.2}}
	l2ER2010b = [3][4]float64{{0.31, 0.19, 0.26, 0.21}, {0.42, -0.28, -0.12, 0.04}, {0.09, 0.36, -0.34, 0.21}}
)

// l2Matrix is the fixture's matrix of a metadata version.
func l2Matrix(version, name string) [3][4]float64 {
	switch {
	case name == "lab":
		return l2Lab
	case version == "v1":
		return l2ER2010a
	default:
		return l2ER2010b
	}
}

func addLevel2(t *testing.T, db *sql.DB) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version)
		SELECT 'B009', ts, g, 48e6 + g * 1e6,
		       5 * g + 0.5 * sin(2 * pi() * epoch(ts) / (12.42 * 3600)) + 0.01 * (epoch(ts) - epoch(TIMESTAMP '2021-07-01')) / 86400,
		       CASE WHEN ts >= TIMESTAMP '2021-07-02' AND NOT (g = 3 AND ts BETWEEN TIMESTAMP '2021-07-03 12:10:00' AND TIMESTAMP '2021-07-03 12:40:00')
		            THEN 0.3 * cos(2 * pi() * epoch(ts) / 86400) END,
		       NULL,
		       CASE WHEN g = 2 AND ts >= TIMESTAMP '2021-07-02 06:00:00' THEN 1.5 ELSE 0 END,
		       CASE WHEN ts < TIMESTAMP '2021-07-02 12:00:00' THEN 'v1' ELSE 'v2' END
		FROM range(TIMESTAMP '2021-07-01', TIMESTAMP '2021-07-04', INTERVAL 300 SECOND) r(ts), range(4) gg(g)
		WHERE NOT ts BETWEEN TIMESTAMP '2021-07-02 10:00:00' AND TIMESTAMP '2021-07-02 10:55:00'`)
	exec(`CREATE TEMP TABLE l2_matrix (version VARCHAR, matrix VARCHAR, i INTEGER, g INTEGER, m DOUBLE)`)
	for _, v := range []string{"v1", "v2"} {
		for _, name := range []string{"lab", "ER2010"} {
			m := l2Matrix(v, name)
			for i := range 3 {
				for g := range 4 {
					exec(`INSERT INTO l2_matrix VALUES (?, ?, ?, ?, ?)`, v, name, i, g, m[i][g])
				}
			}
		}
		st := metadata.Station{Network: "PB", Site: "B009", Gap: 0.0001, Diameter: 0.087, Orientation: 342.9,
			Reference: [4]int64{50858593, 53668101, 53904388, 49946112},
			Matrices:  []metadata.Matrix{{Name: "lab", Values: l2Matrix(v, "lab")}, {Name: "ER2010", Values: l2Matrix(v, "ER2010")}}}
		j, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		received := map[string]string{"v1": "2021-07-01 00:00:00", "v2": "2021-07-02 12:00:00"}[v]
		exec(`INSERT INTO station_metadata VALUES ('B009', ?, ?::TIMESTAMP, ?)`, v, received, string(j))
	}
	exec(`INSERT INTO level2_regional_data
		SELECT d.site, d."time", x.matrix,
		       sum(x.m * d.microstrain) FILTER (x.i = 0), sum(x.m * d.microstrain) FILTER (x.i = 1), sum(x.m * d.microstrain) FILTER (x.i = 2),
		       any_value(d.metadata_version)
		FROM level2_gauge_data d JOIN l2_matrix x ON x.version = d.metadata_version AND x.g = d.gauge
		WHERE d.site = 'B009'
		GROUP BY d.site, d."time", x.matrix`)
	exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts)
		SELECT 'B010', ts, g, 48e6 + g * 1e6 + 100 * sin(epoch(ts) / 3600)
		FROM range(TIMESTAMP '2021-07-01', TIMESTAMP '2021-07-02', INTERVAL 300 SECOND) r(ts), range(4) gg(g)`)
	exec(`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, offset_c)
		SELECT 'B011', ts, g, 48e6, g + epoch(ts) / 1e9, 0
		FROM (VALUES (TIMESTAMP '2015-01-01'), (TIMESTAMP '2021-01-01')) r(ts), range(4) gg(g)`)
	exec(`INSERT INTO level2_state (site, state, metadata_version, updated_offset, last_second)
		VALUES ('B009', '\x00'::BLOB, 'v2', 0, 0), ('B010', '\x00'::BLOB, NULL, 0, 0), ('B011', '\x00'::BLOB, NULL, 0, 0)`)
}
