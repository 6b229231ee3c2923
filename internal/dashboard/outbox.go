package dashboard

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing/outbox"
)

// OutboxSource is what the outgoing-reports page reads: the outbox
// store (*outbox.Store) of the reports this site sends.
type OutboxSource interface {
	List(ctx context.Context, o outbox.ListOptions) ([]outbox.Entry, error)
	CountStates(ctx context.Context, policyDomains []string) (map[outbox.State]int, error)
	Destinations(ctx context.Context, suppressedOnly bool) ([]outbox.Destination, error)
}

// OutboxPageLimit is the number of rows the outgoing-reports page lists
// (newest reports first).
const OutboxPageLimit = 500

// outboxPage is the data of the outgoing-reports page.
type outboxPage struct {
	State   string
	States  []stateCount
	Entries []outboxRow
	// More: the listing was cut at OutboxPageLimit.
	More         bool
	Destinations []outbox.Destination
	Limited      bool
}

// outboxDestLimit bounds the rows read to find the destinations of a
// limited user's reports.
const outboxDestLimit = 20000

type stateCount struct {
	State   string
	N       int
	Current bool
}

type outboxRow struct {
	outbox.Entry
	Next, Sent string
}

var outboxTemplate = template.Must(template.New("outbox").Parse(`
<p>The TLS reports this site sends (RFC 8460 §3), one row per delivery to each address of a domain's
<code>rua</code>{{if .Limited}}, for your domains only{{end}}; a report whose addresses are not looked up yet has no destination.</p>
<nav aria-label="Delivery states"><p id=states>Show: <a href="?"{{if not .State}} aria-current="page"{{end}}>all</a>
{{range .States}} · <a href="?state={{.State}}"{{if .Current}} aria-current="page"{{end}} data-state="{{.State}}">{{.State}} ({{.N}})</a>
{{end}}</p></nav>
{{if not .Entries}}<p id=no-outbox>Nothing in the outbox{{if .State}} in state {{.State}}{{end}}.</p>{{else}}
<div class=scroll><table id=outbox>
<thead><tr><th>Day</th><th>Policy domain</th><th>Report id</th><th>Destination</th><th>State</th><th class=n>Attempts</th><th>Next attempt</th><th>Sent</th><th class=n>Bytes</th><th>Last error</th></tr></thead>
<tbody>{{range .Entries}}
<tr data-id="{{.ID}}" data-state="{{.State}}"><td>{{.Day}}</td><td>{{.PolicyDomain}}</td><td class=mono>{{.ReportID}}</td>
<td class=mono>{{if .Destination}}{{.Destination}}{{else}}<small>(not looked up yet)</small>{{end}}</td>
<td><span class="flag{{if eq .State "sent"}} ok{{end}}">{{.State}}</span></td><td class=n>{{.Attempts}}</td>
<td>{{.Next}}</td><td>{{.Sent}}</td><td class=n>{{.Size}}</td><td>{{.LastError}}</td></tr>{{end}}
</tbody></table></div>
{{if .More}}<p id=outbox-more>Only the newest {{len .Entries}} rows are listed; <code>mailsts tlsrpt outbox list</code> shows the rest.</p>{{end}}{{end}}
<h2 id=dest-h>Failing and suppressed destinations</h2>
{{if not .Destinations}}<p id=no-destinations>No destination is failing or suppressed.</p>{{else}}
<div class=scroll><table id=destinations aria-labelledby=dest-h>
<thead><tr><th>Destination</th><th>State</th><th class=n>Failing days</th><th>Last failure</th><th>Last success</th><th>Reason</th></tr></thead>
<tbody>{{range .Destinations}}
<tr data-destination="{{.Destination}}"><td class=mono>{{.Destination}}</td>
<td>{{if .Suppressed}}<span class=flag>suppressed</span> <small>{{.SuppressedAt.UTC.Format "2006-01-02 15:04"}}</small>{{else}}failing{{end}}</td>
<td class=n>{{.FailDays}}</td><td>{{.LastFailureDay}}</td><td>{{if not .LastSuccess.IsZero}}{{.LastSuccess.UTC.Format "2006-01-02 15:04"}}{{else}}never{{end}}</td>
<td>{{if .Suppressed}}{{.SuppressedReason}}{{if .LastError}}<br>{{end}}{{end}}{{.LastError}}</td></tr>{{end}}
</tbody></table></div>{{end}}
<p><small>Retry or unsuppress with <code>mailsts tlsrpt outbox retry</code> and <code>unsuppress</code>; this page only reads.</small></p>`))

// OutboxSection returns the outgoing-reports page (the outbox) for srv,
// reading src. A user limited to some domains sees only the reports
// about those domains, and only the destinations they are sent to.
func OutboxSection(srv *Server, src OutboxSource) Section {
	return Section{Path: "/outbox", Title: "Outgoing reports", Handler: srv.serve(func(w http.ResponseWriter, r *http.Request) error {
		return srv.outboxPage(w, r, src)
	})}
}

func (s *Server) outboxPage(w http.ResponseWriter, r *http.Request, src OutboxSource) error {
	u := UserFrom(r.Context())
	if u == nil {
		return &httpError{status: http.StatusUnauthorized, msg: "sign in first"}
	}
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(outbox.States, outbox.State(state)) {
		return badRequest("unknown state "+state, nil)
	}
	ctx := r.Context()
	counts, err := src.CountStates(ctx, u.Domains)
	if err != nil {
		return outboxError(err)
	}
	p := outboxPage{State: state, Limited: len(u.Domains) > 0}
	for _, st := range outbox.States {
		if counts[st] > 0 || string(st) == state {
			p.States = append(p.States, stateCount{State: string(st), N: counts[st], Current: string(st) == state})
		}
	}
	opts := outbox.ListOptions{PolicyDomains: u.Domains, Limit: OutboxPageLimit + 1}
	if state != "" {
		opts.States = []outbox.State{outbox.State(state)}
	}
	entries, err := src.List(ctx, opts)
	if err != nil {
		return outboxError(err)
	}
	if len(entries) > OutboxPageLimit {
		entries, p.More = entries[:OutboxPageLimit], true
	}
	for _, e := range entries {
		p.Entries = append(p.Entries, outboxRow{Entry: e, Next: stamp(e.NextAttempt), Sent: stamp(e.SentAt)})
	}
	ds, err := src.Destinations(ctx, false)
	if err != nil {
		return outboxError(err)
	}
	// The destinations a limited user's reports go to.
	var dests map[string]bool
	if p.Limited {
		mine, err := src.List(ctx, outbox.ListOptions{PolicyDomains: u.Domains, Limit: outboxDestLimit})
		if err != nil {
			return outboxError(err)
		}
		dests = map[string]bool{}
		for _, e := range mine {
			dests[e.Destination] = true
		}
	}
	for _, d := range ds {
		if !d.Suppressed && d.FailDays == 0 && d.LastError == "" {
			continue
		}
		// A destination is shown to a limited user only when one of
		// their domains' reports goes to it.
		if p.Limited && !dests[d.Destination] {
			continue
		}
		p.Destinations = append(p.Destinations, d)
	}
	var b bytes.Buffer
	if err := outboxTemplate.Execute(&b, p); err != nil {
		return err
	}
	return s.Render(w, r, "Outgoing reports", template.HTML(b.String()))
}

func outboxError(err error) error {
	return &httpError{status: http.StatusServiceUnavailable, msg: "the outbox database failed; try again later", err: err}
}

// stamp formats a time for the tables ("" for the zero time).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04")
}
