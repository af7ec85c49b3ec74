package monitor

import (
	"encoding/json"
	"html"
	"image"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var level2SectionRE = regexp.MustCompile(`<section class="level2" data-site="([^"]+)"([^>]*)>`)

// level2Info reads the Level-2 section's data-info (what status.js drew)
// and its HTML from a DOM dump.
func level2Info(t *testing.T, dom string) (pageInfo, string, string) {
	t.Helper()
	m := level2SectionRE.FindStringSubmatchIndex(dom)
	if m == nil {
		t.Fatalf("no Level-2 section in the page")
	}
	site := dom[m[2]:m[3]]
	attrs := dom[m[4]:m[5]]
	sec, _, _ := strings.Cut(dom[m[1]:], "</section>")
	im := infoRE.FindStringSubmatch(attrs)
	if im == nil {
		t.Fatalf("Level-2 section: no data-info: the plots did not load (%s) %s", attrs, sec)
	}
	var pi pageInfo
	if err := json.Unmarshal([]byte(html.UnescapeString(im[1])), &pi); err != nil {
		t.Fatalf("Level-2 data-info: %v", err)
	}
	return pi, site, sec
}

// Pixel classes of the Level-2 charts: raw lines are blue (#1f77b4),
// corrected orange (#ff7f0e); bands are too pale to count.
func isRaw(r, g, b uint32) bool  { return b > r+60 && b > g+20 }
func isCorr(r, g, b uint32) bool { return r > b+100 && g > b+30 && r > g+40 }

// countColor counts the pixels of one class in a plotting area, and those in
// its left and right tenths.
func countColor(img image.Image, x, y, w, h float64, class func(r, g, b uint32) bool) (n, left, right int) {
	x0, y0, x1, y1 := int(x)+1, int(y)+1, int(x+w)-1, int(y+h)-1
	for py := y0; py < y1; py++ {
		for px := x0; px < x1; px++ {
			r, g, b, _ := img.At(px, py).RGBA()
			if !class(r>>8, g>>8, b>>8) {
				continue
			}
			n++
			if px < x0+(x1-x0)/10 {
				left++
			}
			if px > x1-(x1-x0)/10 {
				right++
			}
		}
	}
	return n, left, right
}

// TestLevel2InBrowser loads the status page with Level-2 rows in headless
// Chromium and checks the Level-2 section a reader sees: seven charts (four
// gauges, three regional strains of the lab matrix), each with the raw and
// the corrected curve drawn (pixels of each colour in its plotting area),
// tick labels on both axes that do not overlap, the time axis in UTC with
// the date, the value axes titled in µε, the legend saying which
// corrections the corrected curve has, and the 30 s refresh.
func TestLevel2InBrowser(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	addLevel2(t, f.db)
	shot := filepath.Join(t.TempDir(), "level2.png")
	if dir := os.Getenv("GTSM_KEEP_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "level2.png")
	}
	dom := runChromium(t, bin, f.srv.URL+"/", 35*time.Second, shot)
	img := decodePNG(t, shot)
	pi, site, sec := level2Info(t, dom)
	if site != "B009" || pi.Unit != "µε" || pi.StepS != 300 || pi.N != 853 || len(pi.Panels) != 7 {
		t.Fatalf("Level-2: site %s, unit %q, step %v s, %d points, %d panels; want B009, µε, 300 s, 853, 7", site, pi.Unit, pi.StepS, pi.N, len(pi.Panels))
	}
	if !strings.Contains(dom, `<section class="level2" data-site="B009" data-loaded="2"`) &&
		!regexp.MustCompile(`<section class="level2" data-site="B009"[^>]*data-loaded="2"`).MatchString(dom) {
		t.Errorf("the Level-2 section was not loaded again in 35 s (the 30 s refresh)")
	}
	// The strain sections are still all there and drawn.
	if got := sectionInfos(t, dom); len(got) != 4 {
		t.Errorf("%d strain sections, want 4", len(got))
	}
	for _, s := range []string{
		"2021-07-01 00:00:00 – 2021-07-04 00:00:00 UTC · every 300 s output · regional strain with matrix lab · 853 points · µε",
		"time (UTC)",
		"gauge 0 raw mean",
		// gauge 0: offset_c in every row, atmp_c from the second day, tide_c nowhere.
		"gauge 0 corrected mean (− offset_c; − atmp_c in 564 of 852 rows (NULL in the others: no corrected value there); tide_c NULL: not applied)",
		"gauge 3 corrected mean (− offset_c; − atmp_c in 557 of 852 rows (NULL in the others: no corrected value there); tide_c NULL: not applied)",
		"shear 2Ene corrected mean (− offset_c; − atmp_c in 557 of 852 rows",
	} {
		if !strings.Contains(sec, s) {
			t.Errorf("Level-2 section lacks %q", s)
		}
	}
	names := []string{"gauge 0", "gauge 1", "gauge 2", "gauge 3", "areal Eee+Enn", "differential Eee−Enn", "shear 2Ene"}
	for i, p := range pi.Panels {
		t.Run(p.Channel, func(t *testing.T) {
			// corrected only where every correction the series has in the
			// range is present: 564 rows with atmp_c (557 where gauge 3,
			// which every regional strain needs, has it)
			wantCorr := 564
			if i >= 3 {
				wantCorr = 557
			}
			if p.Channel != names[i] || p.NonNull != 852 || len(p.Lines) != 2 || p.Lines[0] != 852 || p.Lines[1] != wantCorr ||
				len(p.YRange) != 2 || !(p.YRange[1] > p.YRange[0]) {
				t.Fatalf("panel %d: %q, %d values (raw, corrected %v), y range %v; want %q, 852, %d", i, p.Channel, p.NonNull, p.Lines, p.YRange, names[i], wantCorr)
			}
			// The axis titles: µε, UTC.
			if p.YLabel != names[i]+" (µε)" || p.XLabel != "time (UTC)" {
				t.Errorf("axis titles %q, %q; want %q, \"time (UTC)\"", p.XLabel, p.YLabel, names[i]+" (µε)")
			}
			checkXTicks(t, p.Channel, "2021-07-01", p.Chart.X, p.Chart.X+p.Chart.W, p.XTicks)
			checkYTicks(t, p.Channel, p.YRange, p.Chart.X, p.YTicks)
			checkPixels(t, img, p.Channel, p.Over.X, p.Over.Y, p.Over.W, p.Over.H, true)
			// Corrected drawn over raw from the second day; raw visible
			// where the corrections move it.
			corr, cl, cr := countColor(img, p.Over.X, p.Over.Y, p.Over.W, p.Over.H, isCorr)
			raw, _, rr := countColor(img, p.Over.X, p.Over.Y, p.Over.W, p.Over.H, isRaw)
			// The first day has no pressure: no corrected line there (not
			// the raw strain minus the other corrections, a step of the
			// whole atmp_c away).
			if corr < 300 || cl != 0 || cr == 0 {
				t.Errorf("corrected (orange): %d pixels, left tenth %d, right tenth %d: want none on the first day (no pressure), drawn at the end", corr, cl, cr)
			}
			if raw < 100 || rr == 0 {
				t.Errorf("raw (blue): %d pixels, right tenth %d: not drawn", raw, rr)
			}
		})
	}
}

// TestLevel2Options drives the Level-2 controls through the page's URL:
// the site picker (a site without metadata says why it has no µε), the
// matrix and corrected-only display, and a zoomed range.
func TestLevel2Options(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	addLevel2(t, f.db)
	zoomFrom, zoomTo := utcMS("2021-07-02 00:00:00"), utcMS("2021-07-02 06:00:00")
	tests := []struct {
		name, query string
		check       func(t *testing.T, img image.Image, pi pageInfo, site, sec string)
	}{
		{"site without metadata", "?l2site=B010", func(t *testing.T, img image.Image, pi pageInfo, site, sec string) {
			if len(pi.Panels) != 5 {
				t.Fatalf("%d panels, want the 4 gauges and a regional note", len(pi.Panels))
			}
			for _, s := range []string{`<span class="l2title">B010</span>`,
				"gauge 0: no Level-2 µε in this range (microstrain is NULL without the station's metadata: gtsm metadata load)",
				"B010: no calibration matrix (no station metadata), so no regional strain"} {
				if !strings.Contains(sec, s) {
					t.Errorf("Level-2 section lacks %q", s)
				}
			}
		}},
		{"ER2010 corrected only, same range", "?l2matrix=ER2010&l2show=corr&yscale=same", func(t *testing.T, img image.Image, pi pageInfo, site, sec string) {
			if pi.Matrix != "ER2010" || !strings.Contains(sec, "regional strain with matrix ER2010") {
				t.Errorf("matrix %q: the section does not say matrix ER2010", pi.Matrix)
			}
			if strings.Contains(sec, "gauge 0 raw mean") {
				t.Errorf("raw series drawn with l2show=corr")
			}
			for i, p := range pi.Panels {
				raw, _, _ := countColor(img, p.Over.X, p.Over.Y, p.Over.W, p.Over.H, isRaw)
				corr, _, _ := countColor(img, p.Over.X, p.Over.Y, p.Over.W, p.Over.H, isCorr)
				if raw > 0 || corr < 300 {
					t.Errorf("%s: %d raw, %d corrected pixels; want only corrected", p.Channel, raw, corr)
				}
				// One y range per group: the gauges, the regional strains.
				first := pi.Panels[0]
				if i >= 4 {
					first = pi.Panels[4]
				}
				if p.YRange[0] != first.YRange[0] || p.YRange[1] != first.YRange[1] {
					t.Errorf("%s: y range %v, want its group's %v", p.Channel, p.YRange, first.YRange)
				}
			}
			if pi.Panels[0].YRange[1] < 15 { // gauge 3 sits at 15 µε
				t.Errorf("gauge y range %v does not hold gauge 3", pi.Panels[0].YRange)
			}
		}},
		{"zoomed", "?from=" + itoa(zoomFrom) + "&to=" + itoa(zoomTo), func(t *testing.T, img image.Image, pi pageInfo, site, sec string) {
			if pi.N != 72 || pi.StepS != 300 {
				t.Errorf("%d points of %v s, want 72 of 300 s", pi.N, pi.StepS)
			}
			if !strings.Contains(sec, "2021-07-02 00:00:00 – 2021-07-02 06:00:00 UTC · every 300 s output · regional strain with matrix lab · 72 points · µε · zoomed") {
				t.Errorf("the range line does not say the zoomed range")
			}
			for _, p := range pi.Panels {
				checkXTicks(t, p.Channel, "2021-07-02", p.Chart.X, p.Chart.X+p.Chart.W, p.XTicks)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shot := filepath.Join(t.TempDir(), "level2.png")
			if dir := os.Getenv("GTSM_KEEP_SCREENSHOTS"); dir != "" {
				shot = filepath.Join(dir, "level2-"+strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)+".png")
			}
			dom := runChromium(t, bin, f.srv.URL+"/"+tc.query, 20*time.Second, shot)
			pi, site, sec := level2Info(t, dom)
			tc.check(t, decodePNG(t, shot), pi, site, sec)
		})
	}
}
