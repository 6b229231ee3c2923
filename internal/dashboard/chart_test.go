package dashboard

import (
	"strings"
	"testing"
	"time"
)

// A year is drawn in buckets that keep the totals; the drawing holds
// numbers and the escaped label only.
func TestCharts(t *testing.T) {
	t.Parallel()
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m := map[string]dayPoint{}
	var succ, fail int64
	for i := range 365 {
		d := from.AddDate(0, 0, i).Format(time.DateOnly)
		m[d] = dayPoint{Successful: int64(100 + i), Failed: int64(i % 7)}
		succ += int64(100 + i)
		fail += int64(i % 7)
	}
	pts := fillDays(m, from, from.AddDate(0, 0, 364))
	if len(pts) != 365 {
		t.Fatalf("%d days", len(pts))
	}
	b := bucket(pts, barPoints)
	var bs, bf int64
	for _, p := range b {
		bs += p.Successful
		bf += p.Failed
	}
	if len(b) > barPoints || bs != succ || bf != fail {
		t.Errorf("buckets: %d points, %d/%d, want at most %d and %d/%d", len(b), bs, bf, barPoints, succ, fail)
	}
	if b[0].label() != "2025-01-01 to 2025-01-04" {
		t.Errorf("first bucket %q", b[0].label())
	}
	svg := string(barChart(pts, `<script>"x"`))
	if strings.Count(svg, "<g>") != len(b) || strings.Contains(svg, "<script>") || !strings.Contains(svg, "&lt;script&gt;") {
		t.Errorf("bar chart: %d bars", strings.Count(svg, "<g>"))
	}
	spark := string(sparkline(pts, "d"))
	if len(spark) > 4000 || !strings.Contains(spark, `class="rate"`) {
		t.Errorf("sparkline of a year: %d bytes", len(spark))
	}
	if sparkline(nil, "x") != "" || barChart(nil, "x") != "" {
		t.Error("chart of nothing")
	}
	if pct(1, 3) != "33.3%" || pct(995, 1000) != "99.50%" || pct(0, 0) != "–" || num(1234567) != "1,234,567" || num(-1000) != "-1,000" {
		t.Error("number formats")
	}
}
