package dashboard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Bounds of what one page shows.
const (
	maxRangeDays = 731
	groupRows    = 50
	listRows     = 100
	reportRows   = 200
	// cardReporters is the organisations listed on an overview card.
	cardReporters = 8
)

// span is the day range of a page: ?from=&to= (YYYY-MM-DD, UTC),
// default the last days days up to today.
type span struct {
	From, To time.Time
}

func (sp span) FromS() string { return sp.From.Format(time.DateOnly) }
func (sp span) ToS() string   { return sp.To.Format(time.DateOnly) }

func (s *Server) span(r *http.Request, days int) (span, error) {
	q := r.URL.Query()
	y, m, d := s.now().UTC().Date()
	sp := span{To: time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
	var err error
	if v := q.Get("to"); v != "" {
		if sp.To, err = reports.ParseDay(v); err != nil {
			return sp, badRequest(err.Error(), err)
		}
	}
	sp.From = sp.To.AddDate(0, 0, 1-days)
	if v := q.Get("from"); v != "" {
		if sp.From, err = reports.ParseDay(v); err != nil {
			return sp, badRequest(err.Error(), err)
		}
	}
	if sp.To.Before(sp.From) {
		return sp, badRequest("to is before from", nil)
	}
	if sp.To.Sub(sp.From) > maxRangeDays*24*time.Hour {
		return sp, badRequest(fmt.Sprintf("the range is longer than %d days", maxRangeDays), nil)
	}
	return sp, nil
}

func (s *Server) overviewDays() int { return cmp.Or(s.OverviewDays, 30) }

// store is the store as the signed-in user may read it.
func (s *Server) store(r *http.Request) reports.Store {
	return StoreFor(r, s.Store)
}

// link builds a dashboard URL with the non-empty query parameters kv
// (name, value, name, value, …).
func link(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

type totals struct {
	Reports, Successful, Failed int64
}

func (t totals) Sessions() int64 { return t.Successful + t.Failed }
func (t totals) Rate() string    { return pct(t.Successful, t.Sessions()) }
func (t totals) Class() string   { return rateClass(t.Successful, t.Sessions()) }

type reporterLast struct {
	Org, LastDay string
	Reports      int64
	URL          string
}

type domainCard struct {
	Domain string
	URL    string
	totals
	Chart     template.HTML
	Reporters []reporterLast
	// Reporting counts the organisations (Reporters holds the first
	// cardReporters).
	Reporting int
	Alerts    []Alert
}

type overviewData struct {
	span
	Query          string
	All            totals
	Domains        int
	Cards          []domainCard
	Page, Pages    int
	PrevURL, NextU string
	Alerts         []Alert
	AlertsOn       bool
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) error {
	sp, err := s.span(r, s.overviewDays())
	if err != nil {
		return err
	}
	st := s.store(r)
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 253 {
		return badRequest("search text too long", nil)
	}
	// The ranking needs each domain's totals over the range; the days
	// of the charts are read for the page's domains only.
	rows, err := st.Summary(ctx, reports.Filter{Since: sp.From, Until: sp.To, GroupBy: []string{reports.GroupPolicyDomain}})
	if err != nil {
		return storeError(err)
	}
	d := overviewData{span: sp, Query: q}
	type acc struct {
		totals
		days map[string]dayPoint
	}
	byDomain := map[string]*acc{}
	for _, row := range rows {
		if q != "" && !strings.Contains(row.PolicyDomain, strings.ToLower(q)) {
			continue
		}
		a := byDomain[row.PolicyDomain]
		if a == nil {
			a = &acc{days: map[string]dayPoint{}}
			byDomain[row.PolicyDomain] = a
		}
		a.Reports += row.Reports
		a.Successful += row.Successful
		a.Failed += row.Failed
		d.All.Successful += row.Successful
		d.All.Failed += row.Failed
	}
	names := make([]string, 0, len(byDomain))
	for n := range byDomain {
		names = append(names, n)
	}
	// Worst first: failure share, then most sessions, then name.
	share := func(t totals) float64 {
		if t.Sessions() == 0 {
			return 0
		}
		return float64(t.Failed) / float64(t.Sessions())
	}
	slices.SortFunc(names, func(a, b string) int {
		ta, tb := byDomain[a].totals, byDomain[b].totals
		return cmp.Or(cmp.Compare(share(tb), share(ta)), cmp.Compare(tb.Sessions(), ta.Sessions()), strings.Compare(a, b))
	})
	d.Domains = len(names)
	// A report covering several policy domains counts once in the total.
	if len(names) > 0 {
		tf := reports.Filter{Since: sp.From, Until: sp.To, GroupBy: []string{reports.GroupDay}}
		if q != "" {
			if len(names) > reports.MaxFilterDomains {
				names = names[:reports.MaxFilterDomains]
			}
			tf.Domains = names
		}
		trows, err := st.Summary(ctx, tf)
		if err != nil {
			return storeError(err)
		}
		for _, row := range trows {
			d.All.Reports += row.Reports
		}
	}
	per := cmp.Or(s.PageSize, 50)
	d.Pages = max(1, (len(names)+per-1)/per)
	d.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	d.Page = min(max(d.Page, 1), d.Pages)
	pageNames := names[min((d.Page-1)*per, len(names)):min(d.Page*per, len(names))]
	if d.Page > 1 {
		d.PrevURL = link("/", "from", sp.FromS(), "to", sp.ToS(), "q", q, "page", strconv.Itoa(d.Page-1))
	}
	if d.Page < d.Pages {
		d.NextU = link("/", "from", sp.FromS(), "to", sp.ToS(), "q", q, "page", strconv.Itoa(d.Page+1))
	}
	last := map[string][]reporterLast{}
	if len(pageNames) > 0 {
		dayRows, err := st.Summary(ctx, reports.Filter{Since: sp.From, Until: sp.To, Domains: pageNames,
			GroupBy: []string{reports.GroupDay, reports.GroupPolicyDomain}})
		if err != nil {
			return storeError(err)
		}
		for _, row := range dayRows {
			a := byDomain[row.PolicyDomain]
			if a == nil {
				continue
			}
			p := a.days[row.Day]
			p.Successful += row.Successful
			p.Failed += row.Failed
			a.days[row.Day] = p
		}
		orgRows, err := st.Reporters(ctx, reports.Filter{Since: sp.From, Until: sp.To, Domains: pageNames})
		if err != nil {
			return storeError(err)
		}
		for _, row := range orgRows {
			last[row.PolicyDomain] = append(last[row.PolicyDomain], reporterLast{Org: row.Organization, LastDay: row.LastDay, Reports: row.Reports})
		}
	}
	var alerts []Alert
	if s.Alerts != nil {
		d.AlertsOn = true
		u := UserFrom(ctx)
		if alerts, err = s.Alerts.OpenAlerts(ctx, u.Domains); err != nil {
			s.log().Warn("dashboard: listing alerts failed", "error", err)
		}
		d.Alerts = alerts
	}
	for _, n := range pageNames {
		a := byDomain[n]
		c := domainCard{Domain: n, totals: a.totals, URL: link("/domain/"+url.PathEscape(n), "from", sp.FromS(), "to", sp.ToS())}
		c.Chart = sparkline(fillDays(a.days, sp.From, sp.To), fmt.Sprintf("%s: sessions and success rate per day, %s to %s", n, sp.FromS(), sp.ToS()))
		for _, rl := range last[n] {
			rl.URL = link("/reports", "domain", n, "org", rl.Org, "from", sp.FromS(), "to", sp.ToS())
			c.Reporters = append(c.Reporters, rl)
		}
		slices.SortFunc(c.Reporters, func(a, b reporterLast) int {
			return cmp.Or(strings.Compare(b.LastDay, a.LastDay), cmp.Compare(b.Reports, a.Reports), strings.Compare(a.Org, b.Org))
		})
		// The card lists the most recent few; the domain page has all.
		c.Reporting = len(c.Reporters)
		if len(c.Reporters) > cardReporters {
			c.Reporters = c.Reporters[:cardReporters]
		}
		for _, al := range alerts {
			if reports.NormDomain(al.Domain) == n {
				c.Alerts = append(c.Alerts, al)
			}
		}
		d.Cards = append(d.Cards, c)
	}
	return s.render(w, r, http.StatusOK, "overview", "Overview", d, "")
}

type groupRow struct {
	Key                      string
	Failed, Details, Reports int64
	URL                      string
}

type orgRow struct {
	Org string
	totals
	ReportsURL, FailuresURL string
}

type dayRow struct {
	dayPoint
	Class, Rate string
}

type domainData struct {
	span
	Domain string
	totals
	Chart                 template.HTML
	Days                  []dayRow
	ByResult, ByMX, ByIP  []groupRow
	ByOrg                 []orgRow
	ReportsURL, FailsURL  string
	NoDetails             int64
	NoDetailsURL          string
	ResultNote, GroupNote string
}

func (s *Server) domain(w http.ResponseWriter, r *http.Request) error {
	dom := reports.NormDomain(r.PathValue("domain"))
	if dom == "" || len(dom) > 253 {
		return badRequest("no such domain", nil)
	}
	sp, err := s.span(r, s.overviewDays())
	if err != nil {
		return err
	}
	st := s.store(r)
	ctx := r.Context()
	f := reports.Filter{Since: sp.From, Until: sp.To, PolicyDomain: dom}
	d := domainData{span: sp, Domain: dom}
	base := []string{"domain", dom, "from", sp.FromS(), "to", sp.ToS()}
	d.ReportsURL = link("/reports", base...)
	d.FailsURL = link("/failures", base...)
	f.GroupBy = []string{reports.GroupDay}
	days, err := st.Summary(ctx, f)
	if err != nil {
		return storeError(err)
	}
	m := map[string]dayPoint{}
	for _, row := range days {
		m[row.Day] = dayPoint{Day: row.Day, Successful: row.Successful, Failed: row.Failed}
		d.Reports += row.Reports
		d.Successful += row.Successful
		d.Failed += row.Failed
	}
	pts := fillDays(m, sp.From, sp.To)
	d.Chart = barChart(pts, fmt.Sprintf("%s: sessions per day (successful and failed) and success rate, %s to %s", dom, sp.FromS(), sp.ToS()))
	for i := len(pts) - 1; i >= 0; i-- {
		p := pts[i]
		if p.Successful+p.Failed == 0 {
			continue
		}
		d.Days = append(d.Days, dayRow{dayPoint: p, Rate: pct(p.Successful, p.Successful+p.Failed), Class: rateClass(p.Successful, p.Successful+p.Failed)})
	}
	f.GroupBy = []string{reports.GroupOrganization}
	orgs, err := st.Summary(ctx, f)
	if err != nil {
		return storeError(err)
	}
	for _, o := range orgs {
		d.ByOrg = append(d.ByOrg, orgRow{Org: o.Organization, totals: totals{o.Reports, o.Successful, o.Failed},
			ReportsURL:  link("/reports", append(base, "org", o.Organization)...),
			FailuresURL: link("/failures", append(base, "org", o.Organization)...)})
	}
	slices.SortFunc(d.ByOrg, func(a, b orgRow) int {
		return cmp.Or(cmp.Compare(b.Failed, a.Failed), cmp.Compare(b.Sessions(), a.Sessions()), strings.Compare(a.Org, b.Org))
	})
	f.GroupBy = []string{reports.GroupResultType}
	results, err := st.Summary(ctx, f)
	if err != nil {
		return storeError(err)
	}
	for _, x := range results {
		if x.ResultType == reports.ResultNoDetails {
			d.NoDetails = x.Failed
			d.NoDetailsURL = link("/reports", append(base, "result", reports.ResultNoDetails)...)
		}
	}
	f.GroupBy = nil
	f.Limit = groupRows
	for _, g := range []struct {
		key, param string
		dst        *[]groupRow
	}{{reports.FailureKeyResult, "result", &d.ByResult}, {reports.FailureKeyMX, "mx", &d.ByMX}, {reports.FailureKeySendingIP, "ip", &d.ByIP}} {
		gs, err := st.FailureGroups(ctx, f, g.key)
		if err != nil {
			return storeError(err)
		}
		for _, x := range gs {
			*g.dst = append(*g.dst, groupRow{Key: x.Key, Failed: x.Failed, Details: x.Details, Reports: x.Reports,
				URL: link("/failures", append(base, g.param, cmp.Or(x.Key, emptyKey))...)})
		}
	}
	return s.render(w, r, http.StatusOK, "domain", dom, d, "")
}

// emptyKey is how a failure detail without the field is linked (the
// field is optional in RFC 8460 §4.3); the failures page maps it back.
const emptyKey = "(none)"

type failuresData struct {
	span
	Domain, Org, Result, MX, IP string
	Rows                        []reports.FailureRow
	NextURL                     string
	Limit                       int
	DomainURL                   string
}

func (s *Server) failures(w http.ResponseWriter, r *http.Request) error {
	sp, err := s.span(r, s.overviewDays())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := failuresData{span: sp, Domain: q.Get("domain"), Org: q.Get("org"), Result: q.Get("result"), MX: q.Get("mx"), IP: q.Get("ip"), Limit: listRows}
	f := reports.Filter{Since: sp.From, Until: sp.To, PolicyDomain: d.Domain, Organization: d.Org, ResultType: d.Result, MXHost: d.MX, SendingIP: d.IP, Limit: listRows}
	// The empty values of optional fields, linked from the domain page.
	if d.IP == emptyKey {
		f.SendingIP = ""
	}
	if d.MX == emptyKey {
		f.MXHost = ""
	}
	if len(q.Get("cursor")) > reports.MaxCursor {
		return badRequest("cursor too long", nil)
	}
	f.Cursor = q.Get("cursor")
	rows, err := s.store(r).Failures(r.Context(), f)
	if err != nil {
		return storeError(err)
	}
	if d.IP == emptyKey || d.MX == emptyKey {
		rows = slices.DeleteFunc(rows, func(x reports.FailureRow) bool {
			return d.IP == emptyKey && x.SendingMTAIP != "" || d.MX == emptyKey && x.ReceivingMXHostname != ""
		})
	}
	d.Rows = rows
	if len(rows) == listRows {
		d.NextURL = link("/failures", "domain", d.Domain, "org", d.Org, "result", d.Result, "mx", d.MX, "ip", d.IP,
			"from", sp.FromS(), "to", sp.ToS(), "cursor", reports.NextFailures(rows))
	}
	if d.Domain != "" {
		d.DomainURL = link("/domain/"+url.PathEscape(d.Domain), "from", sp.FromS(), "to", sp.ToS())
	}
	return s.render(w, r, http.StatusOK, "failures", "Failure details", d, "")
}

type reportsData struct {
	span
	Domain, Org, Result string
	Rows                []reports.ReportRow
	Limit               int
	NextURL             string // the next page, when this one is full
}

func (s *Server) reportList(w http.ResponseWriter, r *http.Request) error {
	sp, err := s.span(r, s.overviewDays())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	per := cmp.Or(s.ReportsPageSize, reportRows)
	d := reportsData{span: sp, Domain: q.Get("domain"), Org: q.Get("org"), Result: q.Get("result"), Limit: per}
	f := reports.Filter{Since: sp.From, Until: sp.To, PolicyDomain: d.Domain, Organization: d.Org, ResultType: d.Result, Limit: per}
	if d.Result == reports.ResultNoDetails || d.Result == reports.ResultSuccess {
		f.ResultType = "" // pseudo types: list the domain's reports
	}
	if len(q.Get("cursor")) > reports.MaxCursor {
		return badRequest("cursor too long", nil)
	}
	f.Cursor = q.Get("cursor")
	rows, err := s.store(r).ListReports(r.Context(), f)
	if err != nil {
		return storeError(err)
	}
	d.Rows = rows
	if len(rows) == per {
		d.NextURL = link("/reports", "domain", d.Domain, "org", d.Org, "result", d.Result,
			"from", sp.FromS(), "to", sp.ToS(), "cursor", reports.NextReports(rows))
	}
	return s.render(w, r, http.StatusOK, "reports", "Reports", d, "")
}

type reportView struct {
	reports.StoredReport
	JSON   string
	RawURL string
}

type reportData struct {
	ReportID string
	Reports  []reportView
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == "" || len(id) > 1024 {
		return badRequest("no such report", nil)
	}
	rs, err := s.store(r).Show(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	d := reportData{ReportID: id}
	for _, sr := range rs {
		v := reportView{StoredReport: sr}
		if js, err := tlsrpt.Marshal(sr.Report); err == nil {
			var pretty any
			if json.Unmarshal(js, &pretty) == nil {
				if b, err := json.MarshalIndent(pretty, "", "  "); err == nil {
					js = b
				}
			}
			v.JSON = string(js)
		}
		if len(sr.Raw) > 0 {
			v.RawURL = link("/raw/report/"+strconv.FormatInt(sr.ID, 10), "id", id)
		}
		d.Reports = append(d.Reports, v)
	}
	return s.render(w, r, http.StatusOK, "report", "Report "+id, d, "")
}

func (s *Server) reportRaw(w http.ResponseWriter, r *http.Request) error {
	row, err := strconv.ParseInt(r.PathValue("row"), 10, 64)
	id := r.URL.Query().Get("id")
	if err != nil || id == "" || len(id) > 1024 {
		return badRequest("no such report", err)
	}
	rs, err := s.store(r).Show(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	for _, sr := range rs {
		if sr.ID == row && len(sr.Raw) > 0 {
			return download(w, fmt.Sprintf("report-%d.raw", sr.ID), sr.Raw)
		}
	}
	return &httpError{status: http.StatusNotFound, msg: "no raw input for this report here"}
}

// download sends b as an attachment: never rendered by the browser.
func download(w http.ResponseWriter, name string, b []byte) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	_, err := w.Write(b)
	return err
}

type rejectedData struct {
	span
	Rows    []reports.Rejected
	NextURL string
}

func (s *Server) rejected(w http.ResponseWriter, r *http.Request) error {
	if u := UserFrom(r.Context()); len(u.Domains) > 0 {
		return &httpError{status: http.StatusForbidden, msg: "rejected input is shown to users of every domain only"}
	}
	sp, err := s.span(r, 3650)
	if err != nil && r.URL.Query().Get("from") != "" {
		return err
	}
	q := r.URL.Query()
	f := reports.Filter{Limit: listRows}
	if q.Get("from") != "" {
		f.Since = sp.From
	}
	if q.Get("to") != "" {
		f.Until = sp.To
	}
	if len(q.Get("cursor")) > reports.MaxCursor {
		return badRequest("cursor too long", nil)
	}
	f.Cursor = q.Get("cursor")
	rows, err := s.store(r).ListRejected(r.Context(), f)
	if err != nil {
		return storeError(err)
	}
	d := rejectedData{Rows: rows}
	if len(rows) == listRows {
		d.NextURL = link("/rejected", "from", q.Get("from"), "to", q.Get("to"), "cursor", reports.NextRejected(rows))
	}
	return s.render(w, r, http.StatusOK, "rejected", "Rejected input", d, "")
}

func (s *Server) rejectedRaw(w http.ResponseWriter, r *http.Request) error {
	if u := UserFrom(r.Context()); len(u.Domains) > 0 {
		return &httpError{status: http.StatusForbidden, msg: "rejected input is shown to users of every domain only"}
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badRequest("no such input", err)
	}
	rj, err := s.store(r).RejectedRaw(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	return download(w, fmt.Sprintf("rejected-%d.raw", rj.ID), rj.Raw)
}
