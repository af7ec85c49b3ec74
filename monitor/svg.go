package monitor

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

type point struct {
	ms int64
	v  float64
}

type plot struct {
	Site, Session string
	SVG           template.HTML
}

// Layout of the stacked-panel plot, in SVG user units.
const (
	plotW      = 760
	panelH     = 90
	marginL    = 110
	marginR    = 16
	marginTop  = 28
	panelGap   = 14
	axisHeight = 22
)

var gaugeColors = [4]string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

// renderSVG draws one panel per gauge, stacked, sharing the time axis. Each
// gauge gets its own y scale: the four gauges sit at different count offsets
// (~1e6 apart) while the tide is ~1e3, so a shared axis would flatten them.
func renderSVG(title string, names [4]string, series [4][]point) string {
	minT, maxT := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range series {
		for _, p := range s {
			minT, maxT = min(minT, p.ms), max(maxT, p.ms)
		}
	}
	if maxT == minT {
		maxT = minT + 1
	}
	h := marginTop + 4*(panelH+panelGap) + axisHeight
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, plotW, h, plotW, h)
	fmt.Fprintf(&b, `<title>%s</title><text x="%d" y="16" font-size="13">%s</text>`, html.EscapeString(title), marginL, html.EscapeString(title))
	x := func(ms int64) float64 {
		return marginL + float64(ms-minT)/float64(maxT-minT)*(plotW-marginL-marginR)
	}
	for g, s := range series {
		top := float64(marginTop + g*(panelH+panelGap))
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="none" stroke="#bbb"/>`, marginL, top, plotW-marginL-marginR, panelH)
		name := names[g]
		if name == "" {
			name = fmt.Sprintf("gauge %d", g+1)
		}
		fmt.Fprintf(&b, `<text x="4" y="%.0f">%s</text>`, top+panelH/2, html.EscapeString(name))
		if len(s) == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" fill="#888">no data</text>`, marginL+8, top+panelH/2)
			continue
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range s {
			lo, hi = math.Min(lo, p.v), math.Max(hi, p.v)
		}
		if hi == lo {
			hi, lo = hi+0.5, lo-0.5
		}
		y := func(v float64) float64 { return top + panelH - 4 - (v-lo)/(hi-lo)*(panelH-8) }
		fmt.Fprintf(&b, `<text x="4" y="%.0f" fill="#666">%.0f</text><text x="4" y="%.0f" fill="#666">%.0f</text>`, top+11, hi, top+panelH-3, lo)
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="`, gaugeColors[g])
		for i, p := range s {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(p.ms), y(p.v))
		}
		b.WriteString(`"/>`)
	}
	axisY := marginTop + 4*(panelH+panelGap) + 4
	for i := 0; i <= 4; i++ {
		ms := minT + (maxT-minT)*int64(i)/4
		// The end labels are anchored inside the plot so they are not clipped.
		anchor := [5]string{"start", "middle", "middle", "middle", "end"}[i]
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="%s">%s</text>`, x(ms), axisY+10, anchor,
			time.UnixMilli(ms).UTC().Format("01-02 15:04"))
	}
	b.WriteString(`</svg>`)
	return b.String()
}
