package cli

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/publish"
)

// The dashboard page of hosted policies: each domain serve hosts, with
// the policy served, the last check of what senders see, and the last
// DNS publication. A user limited to some domains sees only those.

// noteStatuses keeps the statuses of the last periodic check.
func (pr *publishRun) noteStatuses(sts []*publish.Status) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.lastStatus == nil {
		pr.lastStatus = map[string]*publish.Status{}
	}
	for _, st := range sts {
		pr.lastStatus[st.Domain] = st
	}
}

// noteAnnouncement keeps the last DNS publication of a domain.
func (pr *publishRun) noteAnnouncement(an publish.Announcement, at time.Time) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.lastAnnounce == nil {
		pr.lastAnnounce = map[string]policyAnnouncement{}
	}
	pr.lastAnnounce[an.Domain] = policyAnnouncement{Announcement: an, At: at}
}

type policyAnnouncement struct {
	publish.Announcement
	At time.Time
}

// policyRow is one line of the page.
type policyRow struct {
	Domain, Mode, ID, MX string
	MaxAge               int64
	Verdict              string
	Checked              string
	CertUntil            string
	Findings             []publish.Finding
	DNS, DNSDetail       string
	// Alerts are the open alerts of the publishing rules on the domain.
	Alerts []string
}

var policiesTemplate = template.Must(template.New("policies").Parse(`
<p>Hosted MTA-STS policies (RFC 8461), as served now, with the last check of what senders see
(every publish.check_interval) and the last publication in DNS.</p>
{{if not .}}<p id=no-policies>No hosted domain you may see.</p>{{else}}
<table id=policies>
<thead><tr><th>Domain</th><th>Mode</th><th>Policy id</th><th>MX</th><th>max_age</th><th>Senders see</th><th>Certificate until</th><th>DNS</th></tr></thead>
<tbody>{{range .}}
<tr data-domain="{{.Domain}}"><td>{{.Domain}}</td><td>{{.Mode}}</td><td><code>{{.ID}}</code></td><td>{{.MX}}</td><td>{{.MaxAge}}</td>
<td class="verdict-{{.Verdict}}">{{.Verdict}}{{if .Checked}} <small>({{.Checked}})</small>{{end}}{{range .Findings}}<br><small>{{.ID}}{{if .Host}} {{.Host}}{{end}}: {{.Message}}</small>{{end}}{{range .Alerts}}<br><strong class=alert>alert: {{.}}</strong>{{end}}</td>
<td>{{.CertUntil}}</td><td>{{.DNS}}{{if .DNSDetail}}<br><small>{{.DNSDetail}}</small>{{end}}</td></tr>{{end}}
</tbody></table>{{end}}`))

// policiesSection returns the dashboard page of hosted policies; pr
// returns the policy host (nil: none yet).
func policiesSection(srv *dashboard.Server, pr func() *publishRun) dashboard.Section {
	return dashboard.Section{Path: "/policies", Title: "Hosted policies", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rows []policyRow
		u := dashboard.UserFrom(r.Context())
		if p := pr(); p != nil {
			rows = p.rows(u)
		}
		if srv.Alerts != nil && len(rows) > 0 && u != nil {
			open, err := srv.Alerts.OpenAlerts(r.Context(), u.Domains)
			if err != nil {
				http.Error(w, "the alerts could not be read", http.StatusServiceUnavailable)
				return
			}
			for i := range rows {
				for _, a := range open {
					if strings.HasPrefix(a.Rule, "policy-") && strings.EqualFold(a.Domain, rows[i].Domain) {
						rows[i].Alerts = append(rows[i].Alerts, a.Rule+" since "+a.Since.UTC().Format(time.DateOnly)+": "+a.Subject)
					}
				}
			}
		}
		var b bytes.Buffer
		if err := policiesTemplate.Execute(&b, rows); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		srv.Render(w, r, "Hosted policies", template.HTML(b.String()))
	})}
}

// rows returns the page's lines for user u (nil or no domains: all).
func (pr *publishRun) rows(u *dashboard.User) []policyRow {
	set := pr.current()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var rows []policyRow
	for _, d := range set.Domains {
		if u != nil && len(u.Domains) > 0 && !slices.ContainsFunc(u.Domains, func(s string) bool { return strings.EqualFold(strings.TrimSuffix(s, "."), d.Name) }) {
			continue
		}
		row := policyRow{Domain: d.Name, Mode: string(d.Mode), ID: d.Policy().ID, MX: strings.Join(d.Policy().Policy.MX, ", "), MaxAge: d.MaxAge,
			Verdict: "not checked yet", CertUntil: "-", DNS: "not configured"}
		if st := pr.lastStatus[d.Name]; st != nil {
			row.Verdict, row.Checked = st.Verdict, st.Checked.UTC().Format(time.RFC3339)
			for _, f := range st.Findings {
				if f.Severity != publish.SeverityOK {
					row.Findings = append(row.Findings, f)
				}
			}
			if st.CertNotAfter != nil {
				row.CertUntil = st.CertNotAfter.UTC().Format(time.DateOnly)
			}
		}
		if pr.announcer != nil {
			row.DNS = "not published yet"
			if an, ok := pr.lastAnnounce[d.Name]; ok {
				row.DNS = an.Outcome + " " + an.At.UTC().Format(time.RFC3339)
				if an.ID != d.Policy().ID {
					row.DNS += " (an earlier id)"
				}
				row.DNSDetail = an.Reason
			}
		}
		rows = append(rows, row)
	}
	return rows
}
