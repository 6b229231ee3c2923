package metrics

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns every sample of reg as "name{k=v,…} value" lines.
func gathered(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(ls, ","), v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestPublish(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p, err := NewPublish(reg)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Unix(1800000000, 0)
	p.Checked("example.org", "fail", []string{"publish.txt.stale", "publish.mx.tls"}, end)
	p.Checked("example.org", "fail", []string{"publish.mx.tls"}, end)
	p.Checked("other.example", "ok", nil, time.Time{})
	want := strings.TrimSpace(`
mailsts_publish_cert_expiry_timestamp_seconds{domain=example.org} 1.8e+09
mailsts_publish_checks_total{verdict=fail} 2
mailsts_publish_checks_total{verdict=ok} 1
mailsts_publish_domain_ok{domain=example.org} 0
mailsts_publish_domain_ok{domain=other.example} 1
mailsts_publish_findings{domain=example.org,id=publish.mx.tls} 1`)
	if got := gathered(t, reg); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := NewPublish(reg); err == nil {
		t.Error("registered twice")
	}
}

func TestPublishDNS(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p, err := NewPublishDNS(reg)
	if err != nil {
		t.Fatal(err)
	}
	p.Announced("example.org", "refused")
	p.Announced("example.org", "refused")
	p.Announced("other.example", "published")
	want := "mailsts_publish_dns_updates_total{outcome=published} 1\nmailsts_publish_dns_updates_total{outcome=refused} 2"
	if got := gathered(t, reg); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
