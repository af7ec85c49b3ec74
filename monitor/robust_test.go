package monitor

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestAPIDataNever500: stored rows an attacker's metadata could once
// produce (NaN, ±Inf and NULL microstrain and strains; a station_metadata
// version whose record_json is empty or not JSON) are served: 200 with
// valid JSON, the non-finite values as null. Site parameters that are not
// a site code are 400 naming the rule, never 500.
func TestAPIDataNever500(t *testing.T) {
	f := newFixture(t)
	addLevel2(t, f.db)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO station_metadata VALUES ('B012', 'empty000000000', TIMESTAMP '2021-07-01 00:00:00', '')`,
		`INSERT INTO station_metadata VALUES ('B012', 'garbage00000000', TIMESTAMP '2021-07-01 00:00:01', 'not json {')`,
		`INSERT INTO level2_gauge_data (site, "time", gauge, counts, microstrain, atmp_c, tide_c, offset_c, metadata_version) SELECT 'B012', TIMESTAMP '2021-07-01 00:00:00' + INTERVAL (i * 300) SECOND, g, 1e7,
			CASE i % 4 WHEN 0 THEN 'NaN'::DOUBLE WHEN 1 THEN 'Infinity'::DOUBLE WHEN 2 THEN NULL ELSE 1.5 END,
			CASE WHEN i % 3 = 0 THEN '-Infinity'::DOUBLE ELSE 0.1 END, 'NaN'::DOUBLE, NULL,
			CASE WHEN i % 2 = 0 THEN 'empty000000000' ELSE 'garbage00000000' END
			FROM range(0, 40) r(i), range(0, 4) gg(g)`,
		`INSERT INTO level2_regional_data SELECT 'B012', TIMESTAMP '2021-07-01 00:00:00' + INTERVAL (i * 300) SECOND, 'lab',
			'NaN'::DOUBLE, 'Infinity'::DOUBLE, NULL, CASE WHEN i % 2 = 0 THEN 'empty000000000' ELSE 'garbage00000000' END
			FROM range(0, 40) r(i)`,
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range []string{"site=B012", "site=B012&span=all", "site=B012&points=3", "site=B012&matrix=lab"} {
		code, body := get(t, f.srv.URL+"/api/level2?"+q)
		if q == "site=B012&matrix=lab" {
			// No readable version names a lab matrix: the client asked for
			// something the site does not have.
			if code != 400 {
				t.Errorf("GET /api/level2?%s = %d, want 400: %s", q, code, body)
			}
			continue
		}
		if code != 200 {
			t.Fatalf("GET /api/level2?%s = %d: %s", q, code, body)
		}
		var r level2Response
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("GET /api/level2?%s: not JSON (%v): %q", q, err, body)
		}
		values, nulls := 0, 0
		for _, s := range r.Series {
			for _, v := range append(append([]*float64{}, s.Raw.Mean...), s.Raw.Min...) {
				if v == nil {
					nulls++
				} else {
					values++
				}
			}
		}
		if values == 0 || nulls == 0 {
			t.Errorf("GET /api/level2?%s: %d values, %d nulls; want the finite ones served and the others null", q, values, nulls)
		}
	}
	for _, site := range []string{"", "x/../../etc", "B009'", "b009", "B0090", "B00", "B\x0009", strings.Repeat("A", 10000), "%2e%2e%2f"} {
		for _, path := range []string{"/api/level2?site=", "/api/series?session=Hour&site="} {
			code, body := get(t, f.srv.URL+path+url.QueryEscape(site))
			if code != 400 || (site != "" && !strings.Contains(body, "site code")) {
				t.Errorf("GET %s%q = %d, want 400 naming the site-code rule: %.200s", path, site, code, body)
			}
		}
	}
}
