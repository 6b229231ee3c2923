package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The policy daemon page: `mailsts policyd`'s health, read from its
// Prometheus metrics listener at each view.

// Limits of a metrics scrape: policyd's page is a few tens of KB.
const (
	policydMaxBody = 4 << 20
	policydTimeout = 5 * time.Second
)

// Names of the policyd metrics the page shows (internal/metrics).
const (
	mCacheDegraded = "mailsts_policyd_cache_degraded"
	mCacheDurable  = "mailsts_policyd_cache_durable"
	mCacheEntries  = "mailsts_policyd_cache_entries"
	mCacheLookups  = "mailsts_policyd_cache_lookups_total"
	mQueries       = "mailsts_policyd_queries_total"
	mFetches       = "mailsts_policyd_fetches_total"
	mRefreshes     = "mailsts_policyd_refreshes_total"
	mConns         = "mailsts_policyd_connections_open"
	mBuild         = "mailsts_build_info"
)

// PolicydStats is what the page shows of policyd's metrics.
type PolicydStats struct {
	// Degraded, Durable: the cache gauges; nil when absent.
	Degraded, Durable *bool
	// Entries in the cache; -1 when absent (an older policyd).
	Entries int64
	// Lookups are the cache answers by result (hit, miss, stale);
	// Answers the lookups answered by answer kind, over every zone;
	// Fetches the HTTPS policy fetches by result; Refreshes by result.
	Lookups, Answers, Fetches, Refreshes []Count
	// Connections open now; -1 when absent.
	Connections int64
	Version     string
}

// Count is one labelled counter value.
type Count struct {
	Label string
	N     int64
	// Share of the total of its table, in percent.
	Share string
}

// ParsePolicydMetrics reads the Prometheus text format of policyd's
// metrics listener (at most policydMaxBody bytes are read).
func ParsePolicydMetrics(r io.Reader) (*PolicydStats, error) {
	lr := &io.LimitedReader{R: r, N: policydMaxBody + 1}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(lr)
	if lr.N <= 0 {
		return nil, fmt.Errorf("metrics larger than %d bytes", policydMaxBody)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if _, ok := fams[mQueries]; !ok {
		if _, ok := fams[mCacheDurable]; !ok {
			return nil, errors.New("metrics: no mailsts_policyd_ metrics there: is it policyd's metrics listener?")
		}
	}
	st := &PolicydStats{Entries: -1, Connections: -1}
	gauge := func(name string) (float64, bool) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return 0, false
		}
		return value(f.GetMetric()[0]), true
	}
	if v, ok := gauge(mCacheDegraded); ok {
		b := v != 0
		st.Degraded = &b
	}
	if v, ok := gauge(mCacheDurable); ok {
		b := v != 0
		st.Durable = &b
	}
	if v, ok := gauge(mCacheEntries); ok {
		st.Entries = int64(v)
	}
	if v, ok := gauge(mConns); ok {
		st.Connections = int64(v)
	}
	st.Lookups = byLabel(fams[mCacheLookups], "result")
	st.Answers = byLabel(fams[mQueries], "answer")
	st.Fetches = byLabel(fams[mFetches], "result")
	st.Refreshes = byLabel(fams[mRefreshes], "result")
	if f := fams[mBuild]; f != nil && len(f.GetMetric()) > 0 {
		st.Version = labelValue(f.GetMetric()[0], "version")
	}
	return st, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// byLabel sums f's samples by the value of one label, largest first,
// with each one's share of the total.
func byLabel(f *dto.MetricFamily, label string) []Count {
	if f == nil {
		return nil
	}
	sums := map[string]int64{}
	var total int64
	for _, m := range f.GetMetric() {
		v := int64(value(m))
		sums[labelValue(m, label)] += v
		total += v
	}
	out := make([]Count, 0, len(sums))
	for k, n := range sums {
		c := Count{Label: k, N: n}
		if total > 0 {
			c.Share = fmt.Sprintf("%.1f%%", float64(n)*100/float64(total))
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Count) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Label, b.Label)) })
	return out
}

// ScrapePolicyd reads and parses the metrics at url.
func ScrapePolicyd(ctx context.Context, c *http.Client, url string) (*PolicydStats, error) {
	ctx, cancel := context.WithTimeout(ctx, policydTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return ParsePolicydMetrics(resp.Body)
}

type policydPage struct {
	URL     string
	Stats   *PolicydStats
	Error   string
	Scraped string
}

var policydTemplate = template.Must(template.New("policyd").Funcs(template.FuncMap{
	"deref": func(b *bool) bool { return b != nil && *b },
	"table": func(id, title, label string, rows []Count) countTable {
		return countTable{ID: id, Title: title, Label: label, Rows: rows}
	},
}).Parse(`
<p>The health of <code>mailsts policyd</code>, read from its metrics at <code>{{.URL}}</code> {{.Scraped}}.</p>
{{if .Error}}<p class=alert id=policyd-down>The policy daemon's metrics could not be read: {{.Error}}</p>{{else}}{{with .Stats}}
{{if and .Degraded (deref .Degraded)}}<p class=alert id=policyd-degraded>The policy cache is degraded: policyd answers from memory and fresh lookups (see <code>mailsts cache status</code>).</p>{{end}}
<dl class=totals id=policyd>
<div><dt>Cache</dt><dd data-k="cache">{{if not .Degraded}}unknown{{else if deref .Degraded}}degraded{{else}}ok{{end}}</dd></div>
<div><dt>Survives a restart</dt><dd data-k="durable">{{if not .Durable}}unknown{{else if deref .Durable}}yes{{else}}no (memory){{end}}</dd></div>
<div><dt>Cached policies</dt><dd data-k="entries">{{if lt .Entries 0}}unknown{{else}}{{.Entries}}{{end}}</dd></div>
<div><dt>Connections open</dt><dd data-k="connections">{{if lt .Connections 0}}unknown{{else}}{{.Connections}}{{end}}</dd></div>
{{if .Version}}<div><dt>Version</dt><dd data-k="version">{{.Version}}</dd></div>{{end}}
</dl>
<div class=grid>
{{template "counts" (table "lookups" "Cache lookups by result" "result" .Lookups)}}
{{template "counts" (table "answers" "Lookups answered, by answer" "answer" .Answers)}}
{{template "counts" (table "fetches" "Policy fetches by result" "result" .Fetches)}}
{{template "counts" (table "refreshes" "Background refreshes" "result" .Refreshes)}}
</div>{{end}}{{end}}
{{define "counts"}}<section><h2 id="{{.ID}}-h">{{.Title}}</h2>{{if not .Rows}}<p>None yet.</p>{{else}}
<table id="{{.ID}}" aria-labelledby="{{.ID}}-h"><thead><tr><th>{{.Label}}</th><th class=n>Count</th><th class=n>Share</th></tr></thead>
<tbody>{{range .Rows}}<tr><td>{{.Label}}</td><td class=n data-k="{{.Label}}">{{.N}}</td><td class=n>{{.Share}}</td></tr>{{end}}</tbody></table>{{end}}</section>{{end}}`))

type countTable struct {
	ID, Title, Label string
	Rows             []Count
}

// PolicydSection returns the policy daemon page, reading the metrics at
// url with client (nil: a client that follows no redirects). It is for
// users of every domain only.
func PolicydSection(srv *Server, url string, client *http.Client) Section {
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return Section{Path: "/policyd", Title: "Policy daemon", AllDomains: true, Handler: srv.serve(func(w http.ResponseWriter, r *http.Request) error {
		p := policydPage{URL: url, Scraped: "at " + srv.now().UTC().Format("2006-01-02 15:04:05 UTC")}
		st, err := ScrapePolicyd(r.Context(), client, url)
		if err != nil {
			srv.log().Warn("dashboard: policyd metrics unreadable", "url", url, "error", err)
			p.Error = err.Error()
		}
		p.Stats = st
		var b bytes.Buffer
		if err := policydTemplate.Execute(&b, p); err != nil {
			return err
		}
		return srv.Render(w, r, "Policy daemon", template.HTML(b.String()))
	})}
}
