package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium finds the headless browser. Outside CI a missing browser skips
// the test; in CI (.ci/run installs chromium) it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed, and CI is set: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium not installed (apt-get install -y chromium); CI installs it")
	return ""
}

const (
	browserW = 1280
	browserH = 9000
)

// runChromium loads url in headless Chromium, lets the page's scripts and
// fetches run for budget of virtual time, and returns the DOM then; with a
// screenshot path it also saves the window as PNG there.
func runChromium(t *testing.T, bin, url string, budget time.Duration, screenshot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--force-device-scale-factor=1", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,%d", browserW, browserH),
		fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--dump-dom"}
	if screenshot != "" {
		args = append(args, "--screenshot="+screenshot)
	}
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	// Chromium's helper processes inherit stdout: on timeout kill the whole
	// process group, or Wait would block on the pipe they hold open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s (after %v): %v\n%s", url, time.Since(start).Round(time.Millisecond), err, stderr.String())
	}
	return stdout.String()
}

// pageInfo is what static/status.js records per section in data-info.
type pageInfo struct {
	Source string
	StepS  float64
	Unit   string
	Matrix string // Level-2: the regional strains' calibration matrix
	N      int
	Panels []struct {
		Channel string
		NonNull int
		// Lines: values per curve (Level-2: raw, corrected); XLabel,
		// YLabel: the axis titles (drawn on the canvas, so recorded).
		Lines          []int
		XLabel, YLabel string
		YRange         []float64
		Over           struct{ X, Y, W, H float64 } // plotting area, page px
		Chart          struct{ X, Y, W, H float64 } // the chart with its axes
		XTicks         []struct {
			Text        string
			Left, Right float64
		}
		YTicks []struct {
			Text              string
			Top, Bottom, Left float64
		}
	}
}

var sectionRE = regexp.MustCompile(`<section class="plot" data-site="([^"]+)" data-session="([^"]+)"([^>]*)>`)

// TestStatusPageInBrowser loads the status page in headless Chromium over a
// real DuckDB file and checks what a reader sees: every gauge panel of every
// session has its curve drawn (coloured pixels across the plotting area of
// the screenshot), tick labels on both axes, distinct and not overlapping,
// the time axis in UTC with the date, and the range each plot shows.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	shot := filepath.Join(t.TempDir(), "status.png")
	if dir := os.Getenv("GTSM_KEEP_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "status.png")
	}
	// 35 s of virtual time: the page's 30 s refresh runs once.
	dom := runChromium(t, bin, f.srv.URL+"/", 35*time.Second, shot)
	img := decodePNG(t, shot)

	got := sectionInfos(t, dom)
	if !strings.Contains(dom, `<div id="tables" data-refreshed="1">`) {
		t.Errorf("the tables were not reloaded in 35 s (the 30 s refresh)")
	}
	if n := strings.Count(dom, `data-loaded="2"`); n != 4 {
		t.Errorf("%d sections loaded twice in 35 s, want all 4 (the 30 s refresh)", n)
	}
	tests := []struct {
		section     string
		unit        string
		points      int    // points per gauge (with null separators)
		firstXTick  string // the first time label, with its UTC date
		rangeText   string // the range line over the panels
		fillsXRange bool   // data from the left to the right edge
	}{
		{"B009 Day", "counts", 572, "2021-06-29", "2021-06-29 00:00:00 – 2021-07-03 00:00:00 UTC · buckets of 10 min from 10m windows · 572 points", true},
		{"B009 Hour", "counts", 1800, "2021-07-01", "2021-07-01 00:00:00 – 2021-07-01 01:00:00 UTC · buckets of 2 s from samples · 1800 points", true},
		{"B009 Min", "counts", 1200, "2021-07-01", "2021-07-01 00:00:00 – 2021-07-01 00:01:00 UTC · every sample · 1200 points", true},
		{"B010 Min", "counts", 1200, "2021-07-03", "2021-07-03 00:00:00 – 2021-07-03 00:01:00 UTC · every sample · 1200 points", true},
	}
	if len(got) != len(tests) {
		t.Errorf("%d plotted sections, want %d", len(got), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.section, func(t *testing.T) {
			pi, ok := got[tc.section]
			if !ok {
				t.Fatalf("no section %s", tc.section)
			}
			if pi.Unit != tc.unit || pi.N != tc.points || len(pi.Panels) != 4 {
				t.Fatalf("unit %q, %d points, %d panels; want %q, %d, 4", pi.Unit, pi.N, len(pi.Panels), tc.unit, tc.points)
			}
			if !strings.Contains(dom, tc.rangeText) {
				t.Errorf("page lacks the range line %q", tc.rangeText)
			}
			for _, p := range pi.Panels {
				if p.NonNull == 0 || len(p.YRange) != 2 || !(p.YRange[1] > p.YRange[0]) {
					t.Errorf("%s: %d values, y range %v", p.Channel, p.NonNull, p.YRange)
				}
				checkXTicks(t, p.Channel, tc.firstXTick, p.Chart.X, p.Chart.X+p.Chart.W, p.XTicks)
				checkYTicks(t, p.Channel, p.YRange, p.Chart.X, p.YTicks)
				checkPixels(t, img, p.Channel, p.Over.X, p.Over.Y, p.Over.W, p.Over.H, tc.fillsXRange)
			}
		})
	}
	for _, s := range []string{"rs1_t0 mean", "bs4_t0 max", "time (UTC)"} { // legends
		if !strings.Contains(dom, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(dom, "last day of data") {
		t.Errorf("a plot still claims to show the last day of data")
	}
}

// sectionInfos reads each plotted section's data-info from a DOM dump.
func sectionInfos(t *testing.T, dom string) map[string]pageInfo {
	t.Helper()
	got := map[string]pageInfo{}
	for _, s := range sectionRE.FindAllStringSubmatch(dom, -1) {
		key := s[1] + " " + s[2]
		m := infoRE.FindStringSubmatch(s[3])
		if m == nil {
			t.Errorf("%s: no data-info: the plots did not load (%s)", key, s[3])
			continue
		}
		var pi pageInfo
		if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &pi); err != nil {
			t.Fatalf("%s: data-info: %v", key, err)
		}
		got[key] = pi
	}
	return got
}

var infoRE = regexp.MustCompile(`data-info="([^"]*)"`)

// TestStatusPageOptions drives the page's controls through its URL (the
// controls read their state from it): the y scale options, the time range,
// µε, and a zoomed range.
func TestStatusPageOptions(t *testing.T) {
	bin := chromium(t)
	f := newFixture(t)
	if _, err := f.db.Exec(`INSERT INTO site_reference VALUES ('B009', 1, 47000000, 0.0001)`); err != nil {
		t.Fatal(err)
	}
	zoomFrom, zoomTo := utcMS("2021-07-01 00:00:10"), utcMS("2021-07-01 00:00:20")
	tests := []struct {
		name, query string
		check       func(t *testing.T, dom string, got map[string]pageInfo)
	}{
		{"same span", "?yscale=span&range=600000", func(t *testing.T, dom string, got map[string]pageInfo) {
			h := got["B009 Hour"]
			if h.N != 600 || h.StepS != 1 {
				t.Errorf("Hour over 10 min: %d points of %v s, want 600 of 1 s", h.N, h.StepS)
			}
			// The same height in counts for all four gauges, each around its own level.
			w0 := h.Panels[0].YRange[1] - h.Panels[0].YRange[0]
			for _, p := range h.Panels[1:] {
				if w := p.YRange[1] - p.YRange[0]; math.Abs(w-w0) > 1e-6*w0 || p.YRange[0] == h.Panels[0].YRange[0] {
					t.Errorf("%s: y range %v, want the span %v of %s around its own level", p.Channel, p.YRange, w0, h.Panels[0].Channel)
				}
			}
		}},
		{"same range", "?yscale=same", func(t *testing.T, dom string, got map[string]pageInfo) {
			d := got["B009 Day"]
			for _, p := range d.Panels {
				// One range over the four gauges (48.999e6 .. 52.001e6).
				if p.YRange[0] != d.Panels[0].YRange[0] || p.YRange[1] != d.Panels[0].YRange[1] || p.YRange[0] > 48_999_000 || p.YRange[1] < 52_001_000 {
					t.Errorf("%s: y range %v, want one range around all gauges", p.Channel, p.YRange)
				}
			}
		}},
		{"microstrain zoomed, one y range", "?unit=ue&yscale=same&from=" + itoa(zoomFrom) + "&to=" + itoa(zoomTo), func(t *testing.T, dom string, got map[string]pageInfo) {
			m := got["B009 Min"]
			if m.Unit != "µε" || m.N != 200 || m.Panels[0].NonNull != 200 {
				t.Fatalf("Min zoomed in µε: unit %q, %d points, gauge 1 %d values; want µε, 200, 200", m.Unit, m.N, m.Panels[0].NonNull)
			}
			for _, p := range m.Panels[1:] {
				if p.NonNull != 0 {
					t.Errorf("%s: %d µε values without a site_reference row", p.Channel, p.NonNull)
				}
			}
			sec := sectionHTML(t, dom, "B009", "Min")
			for _, s := range []string{"no site_reference row for gauge 2", "no site_reference row for gauge 4",
				"2021-07-01 00:00:10 – 2021-07-01 00:00:20 UTC · every sample · 200 points · µε · zoomed"} {
				if !strings.Contains(sec, s) {
					t.Errorf("B009 Min section lacks %q", s)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shot := ""
			if dir := os.Getenv("GTSM_KEEP_SCREENSHOTS"); dir != "" {
				shot = filepath.Join(dir, strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)+".png")
			}
			dom := runChromium(t, bin, f.srv.URL+"/"+tc.query, 20*time.Second, shot)
			tc.check(t, dom, sectionInfos(t, dom))
		})
	}
}

// sectionHTML is one site and session's section of a DOM dump.
func sectionHTML(t *testing.T, dom, site, session string) string {
	t.Helper()
	_, rest, ok := strings.Cut(dom, `<section class="plot" data-site="`+site+`" data-session="`+session+`"`)
	if !ok {
		t.Fatalf("no section %s %s", site, session)
	}
	sec, _, _ := strings.Cut(rest, "</section>")
	return sec
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != browserW || b.Dy() != browserH {
		t.Fatalf("screenshot is %v, want %dx%d", b, browserW, browserH)
	}
	return img
}

// checkXTicks: at least three time labels, left to right without
// overlapping and inside the chart, the first one carrying the UTC date, and
// no two the same time (a label's date is the last one written before it).
func checkXTicks(t *testing.T, ch, firstDate string, left, right float64, ticks []struct {
	Text        string
	Left, Right float64
}) {
	t.Helper()
	if len(ticks) < 3 {
		t.Errorf("%s: %d time ticks, want >= 3: %v", ch, len(ticks), ticks)
		return
	}
	if !strings.HasSuffix(ticks[0].Text, "\n"+firstDate) {
		t.Errorf("%s: first time tick %q lacks the date %s", ch, ticks[0].Text, firstDate)
	}
	seen := map[string]bool{}
	date := ""
	for i, tk := range ticks {
		tod, d, ok := strings.Cut(tk.Text, "\n")
		if ok {
			date = d
		}
		if seen[date+" "+tod] {
			t.Errorf("%s: time tick %s %s twice: %v", ch, date, tod, ticks)
		}
		seen[date+" "+tod] = true
		if i > 0 && tk.Left < ticks[i-1].Right+4 {
			t.Errorf("%s: time ticks %q [%.0f..%.0f] and %q [%.0f..%.0f] overlap", ch, ticks[i-1].Text, ticks[i-1].Left, ticks[i-1].Right, tk.Text, tk.Left, tk.Right)
		}
		// Round steps: the last field of every label is a multiple of 5
		// (no 05:57), and the ticks are evenly spaced.
		fields := strings.Split(tod, ":")
		var last float64
		if _, err := fmt.Sscan(fields[len(fields)-1], &last); err != nil || math.Mod(last, 5) != 0 {
			t.Errorf("%s: time tick %q not at a round step", ch, tk.Text)
		}
		if i > 1 {
			mid := func(k int) float64 { return (ticks[k].Left + ticks[k].Right) / 2 }
			if d0, d1 := mid(i-1)-mid(i-2), mid(i)-mid(i-1); math.Abs(d1-d0) > 1.5 {
				t.Errorf("%s: time ticks unevenly spaced (%.1f px then %.1f px) at %q", ch, d0, d1, tk.Text)
			}
		}
		if tk.Left < left || tk.Right > right {
			t.Errorf("%s: time tick %q [%.0f..%.0f] outside the chart [%.0f..%.0f]: clipped", ch, tk.Text, tk.Left, tk.Right, left, right)
		}
	}
}

// checkYTicks: at least three value labels, numbers inside the y range, not
// overlapping each other nor the axis title.
func checkYTicks(t *testing.T, ch string, yr []float64, left float64, ticks []struct {
	Text              string
	Top, Bottom, Left float64
}) {
	t.Helper()
	if len(ticks) < 3 {
		t.Errorf("%s: %d value ticks, want >= 3: %v", ch, len(ticks), ticks)
		return
	}
	sorted := append(ticks[:0:0], ticks...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Top < sorted[j].Top })
	for i, tk := range sorted {
		var v float64
		if _, err := fmt.Sscan(strings.ReplaceAll(tk.Text, ",", ""), &v); err != nil || len(yr) == 2 && (v < yr[0] || v > yr[1]) {
			t.Errorf("%s: value tick %q not a number in %v", ch, tk.Text, yr)
		}
		if tk.Left < left+18 { // the axis title takes 18 px
			t.Errorf("%s: value tick %q starts at %.0f, over the axis title or clipped (chart at %.0f)", ch, tk.Text, tk.Left, left)
		}
		if i > 0 && tk.Top < sorted[i-1].Bottom+2 {
			t.Errorf("%s: value ticks %q and %q overlap", ch, sorted[i-1].Text, tk.Text)
		}
	}
}

// checkPixels counts coloured pixels (the gauge colours; axes and grid are
// grey) inside a panel's plotting area of the screenshot: the curve is drawn,
// and when fills is set it reaches both the left and the right tenth.
func checkPixels(t *testing.T, img image.Image, ch string, x, y, w, h float64, fills bool) {
	t.Helper()
	if w < 100 || h < 50 {
		t.Errorf("%s: plotting area %.0fx%.0f", ch, w, h)
		return
	}
	if b := img.Bounds(); x+w > float64(b.Dx()) || y+h > float64(b.Dy()) {
		t.Errorf("%s: plotting area at (%.0f,%.0f) %.0fx%.0f is outside the %v screenshot: make browserH larger", ch, x, y, w, h, b)
		return
	}
	colored, left, right := 0, 0, 0
	x0, y0, x1, y1 := int(x)+1, int(y)+1, int(x+w)-1, int(y+h)-1
	for py := y0; py < y1; py++ {
		for px := x0; px < x1; px++ {
			r, g, b, _ := img.At(px, py).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			if max(r, g, b)-min(r, g, b) < 40 {
				continue // white, grey, black
			}
			colored++
			if px < x0+(x1-x0)/10 {
				left++
			}
			if px > x1-(x1-x0)/10 {
				right++
			}
		}
	}
	if colored < 300 {
		t.Errorf("%s: %d coloured pixels in the %.0fx%.0f plotting area at (%.0f,%.0f): the panel is empty", ch, colored, w, h, x, y)
	}
	if right == 0 || fills && left == 0 {
		t.Errorf("%s: coloured pixels left %d, right %d: the curve does not span the range", ch, left, right)
	}
}
