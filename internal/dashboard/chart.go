package dashboard

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"
)

// dayPoint is one day of a chart.
type dayPoint struct {
	Day                string
	Successful, Failed int64
	// Last is the last day of a bucket of several days (bucket).
	Last string
}

// fillDays returns one point per day from from to to (inclusive), zero
// where m has none.
func fillDays(m map[string]dayPoint, from, to time.Time) []dayPoint {
	var out []dayPoint
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		k := d.Format(time.DateOnly)
		p := m[k]
		p.Day = k
		out = append(out, p)
	}
	return out
}

// dayPoint.Label is the text of a bucket of days (bucket).
func (p dayPoint) label() string {
	if p.Last == "" || p.Last == p.Day {
		return p.Day
	}
	return p.Day + " to " + p.Last
}

// bucket merges consecutive days so that at most maxN points remain: a
// year is drawn by week, not by day (smaller pages, same totals).
func bucket(points []dayPoint, maxN int) []dayPoint {
	if len(points) <= maxN {
		return points
	}
	per := (len(points) + maxN - 1) / maxN
	var out []dayPoint
	for i := 0; i < len(points); i += per {
		b := points[i]
		for _, p := range points[i+1 : min(i+per, len(points))] {
			b.Successful += p.Successful
			b.Failed += p.Failed
			b.Last = p.Day
		}
		out = append(out, b)
	}
	return out
}

// Most points of a chart.
const (
	sparkPoints = 60
	barPoints   = 120
)

// sparkline draws sessions per day as two stacked areas (successful,
// failed) and the success rate as a line on a 0-100% scale: a few
// hundred bytes whatever the range. Only numbers go into the drawing;
// label is escaped.
func sparkline(points []dayPoint, label string) template.HTML {
	const w, h = 300.0, 60.0
	if len(points) == 0 {
		return ""
	}
	points = bucket(points, sparkPoints)
	var peak int64
	for _, p := range points {
		peak = max(peak, p.Successful+p.Failed)
	}
	step := w / float64(max(1, len(points)-1))
	x := func(i int) float64 {
		if len(points) == 1 {
			return w / 2
		}
		return float64(i) * step
	}
	y := func(v int64) float64 {
		if peak == 0 {
			return h
		}
		return h - float64(v)/float64(peak)*(h-2)
	}
	var total, fail, rate strings.Builder
	fmt.Fprintf(&total, "M0 %.1f", h)
	fmt.Fprintf(&fail, "M0 %.1f", h)
	for i, p := range points {
		fmt.Fprintf(&total, " L%.1f %.1f", x(i), y(p.Successful+p.Failed))
		fmt.Fprintf(&fail, " L%.1f %.1f", x(i), y(p.Failed))
		if n := p.Successful + p.Failed; n > 0 {
			cmd := "L"
			if rate.Len() == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&rate, "%s%.1f %.1f ", cmd, x(i), h-float64(p.Successful)/float64(n)*(h-2))
		}
	}
	fmt.Fprintf(&total, " L%.1f %.1f Z", w, h)
	fmt.Fprintf(&fail, " L%.1f %.1f Z", w, h)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %.0f %.0f" preserveAspectRatio="none" role="img" aria-label="%s"><title>%s</title>`,
		w, h, template.HTMLEscapeString(label), template.HTMLEscapeString(label))
	fmt.Fprintf(&b, `<path class="ok" d="%s"/><path class="bad" d="%s"/>`, total.String(), fail.String())
	if rate.Len() > 0 {
		fmt.Fprintf(&b, `<path class="rate" d="%s"/>`, strings.TrimSpace(rate.String()))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws one stacked bar per day (successful below failed) with
// a tooltip each, and the success rate as a line: the domain page's
// chart. The same numbers are in the table under it.
func barChart(points []dayPoint, label string) template.HTML {
	if len(points) == 0 {
		return ""
	}
	const h = 160.0
	const bw = 10.0
	points = bucket(points, barPoints)
	w := bw * float64(len(points))
	var peak int64
	for _, p := range points {
		peak = max(peak, p.Successful+p.Failed)
	}
	scale := func(v int64) float64 {
		if peak == 0 {
			return 0
		}
		return float64(v) / float64(peak) * (h - 4)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %.0f %.0f" preserveAspectRatio="none" role="img" aria-label="%s"><title>%s</title>`,
		w, h, template.HTMLEscapeString(label), template.HTMLEscapeString(label))
	var rate strings.Builder
	for i, p := range points {
		x := float64(i) * bw
		n := p.Successful + p.Failed
		hs, hf := scale(p.Successful), scale(p.Failed)
		tip := p.label() + ": no sessions"
		if n > 0 {
			tip = fmt.Sprintf("%s: %d sessions, %d failed, %s successful", p.label(), n, p.Failed, pct(p.Successful, n))
			cmd := "L"
			if rate.Len() == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&rate, "%s%.1f %.1f ", cmd, x+bw/2, h-float64(p.Successful)/float64(n)*(h-4))
		}
		fmt.Fprintf(&b, `<g><title>%s</title><rect class="ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/><rect class="bad" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></g>`,
			tip, x+0.5, h-hs-hf, bw-1, hs, x+0.5, h-hf, bw-1, hf)
	}
	if rate.Len() > 0 {
		fmt.Fprintf(&b, `<path class="rate" d="%s"/>`, strings.TrimSpace(rate.String()))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// pct formats part/total as a percentage with one decimal (two near
// 100%, where the difference matters), "–" for no sessions.
func pct(part, total int64) string {
	if total <= 0 {
		return "–"
	}
	r := float64(part) / float64(total) * 100
	if r >= 99 && r < 100 {
		return fmt.Sprintf("%.2f%%", r)
	}
	return fmt.Sprintf("%.1f%%", r)
}

// rateClass is the CSS class of a success rate: good, warn or bad.
func rateClass(succ, total int64) string {
	if total <= 0 {
		return "none"
	}
	r := float64(succ) / float64(total)
	switch {
	case r >= 0.99:
		return "good"
	case r >= 0.9:
		return "warn"
	}
	return "bad"
}

// num formats n with thin thousands separators.
func num(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

var funcs = template.FuncMap{
	"num":       num,
	"pct":       pct,
	"rateClass": rateClass,
	"add":       func(a, b int64) int64 { return a + b },
	"day":       func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"when":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"reportURL": func(id string) string { return "/report/" + url.PathEscape(id) },
	"domainURL": func(d string) string { return "/domain/" + url.PathEscape(d) },
}
