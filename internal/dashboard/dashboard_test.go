package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
)

// Every page and the API refuse a request without a session or token.
func TestUnauthenticatedRefused(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	c := fx.client(t)
	for _, p := range []string{"/", "/domain/d1.example", "/failures", "/reports", "/report/x", "/rejected", "/raw/rejected/1", "/raw/report/1?id=x"} {
		_, resp := fx.get(t, c, p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without session: %s, Location %q", p, resp.Status, resp.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/api/v1/summary", "/api/v1/failures", "/api/v1/rejected", "/api/v1/reports/x"} {
		body, resp := fx.get(t, c, p)
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "d1.example") {
			t.Errorf("GET %s without credentials: %s", p, resp.Status)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, fx.ts.URL+"/api/v1/summary", nil)
	req.Header.Set("Authorization", "Bearer wrong-token-wrong-token-wrong")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong bearer token: %v %v", resp.Status, err)
	}
	resp, err := c.PostForm(fx.ts.URL+"/logout", url.Values{})
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /logout without session: %v", err)
	}
}

// The overview's numbers are the store's Summary over the range.
func TestOverviewNumbers(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	c := fx.alice(t)
	body, resp := fx.get(t, c, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("overview: %s\n%s", resp.Status, body)
	}
	from, to := testNow.AddDate(0, 0, -29), testNow
	n, succ, fail := reportstest.OrgTotals(t, fx.st, reports.Filter{Since: from, Until: to})
	doms, err := fx.st.Summary(context.Background(), reports.Filter{Since: from, Until: to, GroupBy: []string{reports.GroupPolicyDomain}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprint(len(doms)), num(n), num(succ), num(fail), pct(succ, succ+fail)}
	got := []string{dataK(body, "domains")[0], dataK(body, "reports")[0], dataK(body, "successful")[0], dataK(body, "failed")[0], dataK(body, "rate")[0]}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("overview totals %v, want %v", got, want)
			break
		}
	}
	// 4 a page, worst first: evil.example has 1 failure in 6.
	if !strings.Contains(body, fmt.Sprintf("Page 1 of %d", (len(doms)+3)/4)) || !strings.Contains(body, `<li class="card" data-domain="evil.example">`) {
		t.Errorf("overview pages or order wrong")
	}
	if !strings.Contains(body, `<svg class="spark"`) {
		t.Error("no chart on the overview")
	}
	// Last report per organisation of d1: the synthetic report i lands on
	// day 1+i%20, domain i%7.
	body, _ = fx.get(t, c, "/?q=d1.example")
	// d1.example's reports are i = 1, 8, …, 57: Mail.Ru's last (i = 57)
	// on day 18.
	if !strings.Contains(body, `Mail.Ru</a></td><td>2025-01-18</td>`) {
		t.Errorf("d1.example: no last report per organisation:\n%s", body)
	}
	if got := dataK(body, "domains"); len(got) == 0 || got[0] != "2" { // d1.example, mx2.d1.example (TLSA)
		t.Errorf("search d1: %v domains", got)
	}
}

// The domain page's totals equal Summary for the domain, and its groups
// link to failures that add up.
func TestDomainDrillDown(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	c := fx.alice(t)
	body, resp := fx.get(t, c, "/domain/d3.example?from=2025-01-01&to=2025-01-31")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("domain: %s", resp.Status)
	}
	f := reports.Filter{PolicyDomain: "d3.example", Since: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)}
	n, succ, fail := reportstest.OrgTotals(t, fx.st, f)
	if got := dataK(body, "reports"); len(got) == 0 || got[0] != num(n) {
		t.Errorf("reports %v, want %d", got, n)
	}
	if got := dataK(body, "failed"); len(got) == 0 || got[0] != num(fail) {
		t.Errorf("failed %v, want %d", got, fail)
	}
	if got := dataK(body, "successful"); len(got) == 0 || got[0] != num(succ) {
		t.Errorf("successful %v, want %d", got, succ)
	}
	for _, h := range []string{"Failures by result type", "Failures by MX host", "Failures by sending IP", "By reporter", `<svg class="bars"`} {
		if !strings.Contains(body, h) {
			t.Errorf("domain page lacks %q", h)
		}
	}
	groups, err := fx.st.FailureGroups(context.Background(), f, reports.FailureKeySendingIP)
	if err != nil || len(groups) == 0 {
		t.Fatal(err)
	}
	// Follow the first sending-IP link: its rows sum to the group.
	link := "/failures?" + url.Values{"domain": {"d3.example"}, "from": {"2025-01-01"}, "to": {"2025-01-31"}, "ip": {groups[0].Key}}.Encode()
	if !strings.Contains(body, strings.ReplaceAll(link, "&", "&amp;")) {
		t.Fatalf("no link %s on the domain page", link)
	}
	fbody, _ := fx.get(t, c, link)
	if got := strings.Count(fbody, "<tr><td>2025-"); int64(got) != groups[0].Details {
		t.Errorf("failures page for %s: %d rows, want %d", groups[0].Key, got, groups[0].Details)
	}
	// And a report of the list opens.
	rbody, _ := fx.get(t, c, "/reports?domain=d3.example&from=2025-01-01&to=2025-01-31")
	if got := strings.Count(rbody, `href="/report/`); int64(got) != n {
		t.Errorf("report list: %d reports, want %d", got, n)
	}
	id := reportstest.SynthReport(3).ReportID
	pbody, resp := fx.get(t, c, "/report/"+url.PathEscape(id))
	if resp.StatusCode != http.StatusOK || !strings.Contains(pbody, "Repairs applied") || !strings.Contains(pbody, "/raw/report/") {
		t.Fatalf("report page %s: %s", id, resp.Status)
	}
}

// Hostile report text is escaped everywhere it is shown.
func TestHostileInputEscaped(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	c := fx.alice(t)
	r := hostileReport()
	for _, p := range []string{"/?from=2025-01-01&to=2025-01-31", "/domain/evil.example?from=2025-01-01&to=2025-01-31",
		"/failures?domain=evil.example&from=2025-01-01&to=2025-01-31", "/reports?domain=evil.example&from=2025-01-01&to=2025-01-31",
		"/report/" + url.PathEscape(r.ReportID), "/rejected"} {
		body, resp := fx.get(t, c, p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", p, resp.Status)
			continue
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>mx</b>", "<i>x</i>", "<b>bad</b>"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s shows %q unescaped", p, bad)
			}
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no CSP", p)
		}
	}
	body, _ := fx.get(t, c, "/report/"+url.PathEscape(r.ReportID))
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("report page does not show the organisation name escaped")
	}
	// The raw download is an attachment, never rendered.
	sr, err := fx.st.Show(context.Background(), r.ReportID)
	if err != nil {
		t.Fatal(err)
	}
	_, resp := fx.get(t, c, "/raw/report/"+itoa(sr[0].ID)+"?id="+url.QueryEscape(r.ReportID))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
		resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("raw download: %s %v", resp.Status, resp.Header)
	}
}

func itoa(n int64) string { return strings.TrimSpace(num(n)) }

// A user limited to some domains sees only those, on pages and in the
// API, and no rejected input.
func TestDomainScope(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	c := fx.client(t)
	if resp := fx.signIn(t, c, url.Values{"token": {bobToken}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob token sign-in: %s", resp.Status)
	}
	body, _ := fx.get(t, c, "/?from=2025-01-01&to=2025-01-31")
	if got := dataK(body, "domains"); len(got) == 0 || got[0] != "1" || !strings.Contains(body, `data-domain="d1.example"`) {
		t.Errorf("bob's overview: %v domains", got)
	}
	body, _ = fx.get(t, c, "/domain/d2.example?from=2025-01-01&to=2025-01-31")
	if got := dataK(body, "reports"); len(got) == 0 || got[0] != "0" || strings.Contains(body, "Google") {
		t.Errorf("bob sees d2.example: reports %v", got)
	}
	body, _ = fx.get(t, c, "/failures?domain=d2.example&from=2025-01-01&to=2025-01-31")
	if strings.Contains(body, "<tr><td>2025-") {
		t.Error("bob sees d2.example's failures")
	}
	body, _ = fx.get(t, c, "/failures?from=2025-01-01&to=2025-01-31")
	if !strings.Contains(body, "<tr><td>2025-") || strings.Contains(body, "d2.example") {
		t.Error("bob's failures: none of d1, or some of d2")
	}
	if _, resp := fx.get(t, c, "/report/"+url.PathEscape(reportstest.SynthReport(2).ReportID)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob opens a d2 report: %s", resp.Status)
	}
	if _, resp := fx.get(t, c, "/rejected"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob lists rejected input: %s", resp.Status)
	}
	// The API through bob's token: only d1.
	req, _ := http.NewRequest(http.MethodGet, fx.ts.URL+"/api/v1/summary?group-by=domain", nil)
	req.Header.Set("Authorization", "Bearer "+bobToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rows []reports.SummaryRow
	json.NewDecoder(resp.Body).Decode(&rows)
	resp.Body.Close()
	if len(rows) != 1 || rows[0].PolicyDomain != "d1.example" {
		t.Errorf("bob's API summary: %+v", rows)
	}
	// The script token reads everything.
	req.Header.Set("Authorization", "Bearer "+scriptToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rows = nil
	json.NewDecoder(resp.Body).Decode(&rows)
	resp.Body.Close()
	if len(rows) != 15 { // d0..d6, their mx2 hosts (TLSA) and evil.example
		t.Errorf("script token summary: %d domains, want 15", len(rows))
	}
	// A session cookie works for the API too (bob's scope).
	body, resp2 := fx.get(t, c, "/api/v1/summary?group-by=domain")
	if resp2.StatusCode != http.StatusOK || !strings.Contains(body, "d1.example") || strings.Contains(body, "d2.example") {
		t.Errorf("API through bob's session: %s %s", resp2.Status, body)
	}
}

// Sign-in needs the form's CSRF token and the right password; sign-out
// needs the session's CSRF token; sessions expire; attempts are limited.
func TestSignInCSRFExpiryRateLimit(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	c := fx.client(t)
	fx.get(t, c, "/login")
	resp, err := c.PostForm(fx.ts.URL+"/login", url.Values{"name": {"alice"}, "password": {alicePassword}, "csrf": {"forged"}})
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in with a forged CSRF token: %v %v", resp.Status, err)
	}
	if resp := fx.signIn(t, c, url.Values{"name": {"alice"}, "password": {"wrong password"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %s", resp.Status)
	}
	if resp := fx.signIn(t, c, url.Values{"name": {"mallory"}, "password": {alicePassword}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown user: %s", resp.Status)
	}
	if resp := fx.signIn(t, c, url.Values{"name": {"alice"}, "password": {alicePassword}, "next": {"//evil.example/x"}}); resp.Header.Get("Location") != "/" {
		t.Errorf("next to another site: Location %q", resp.Header.Get("Location"))
	}
	for _, ck := range c.Jar.Cookies(mustURL(fx.ts.URL)) {
		if ck.Name == sessionCookie && ck.Value == "" {
			t.Error("empty session cookie")
		}
	}
	if _, resp := fx.get(t, c, "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after sign-in: %s", resp.Status)
	}
	// Cookie attributes.
	c2 := fx.client(t)
	fx.get(t, c2, "/login")
	body, _ := fx.get(t, c2, "/login")
	m := csrfRE.FindStringSubmatch(body)
	r2, err := c2.PostForm(fx.ts.URL+"/login", url.Values{"name": {"alice"}, "password": {alicePassword}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	sc := r2.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("session cookie %q", sc)
	}
	// Sign-out without the CSRF token is refused; with it, works.
	resp, _ = c.PostForm(fx.ts.URL+"/logout", url.Values{"csrf": {"nope"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out with a wrong CSRF token: %s", resp.Status)
	}
	body, _ = fx.get(t, c, "/")
	m = csrfRE.FindStringSubmatch(body)
	resp, _ = c.PostForm(fx.ts.URL+"/logout", url.Values{"csrf": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out: %s", resp.Status)
	}
	if _, resp := fx.get(t, c, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %s", resp.Status)
	}
	// Expiry: the session of c2 ends after SessionTTL.
	if _, resp := fx.get(t, c2, "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("c2 signed in: %s", resp.Status)
	}
	*fx.now = fx.now.Add(61 * time.Minute)
	if _, resp := fx.get(t, c2, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("expired session still works: %s", resp.Status)
	}
	// Rate limit: the burst is spent by now or soon.
	limited := false
	for range loginBurst + 2 {
		if resp := fx.signIn(t, fx.client(t), url.Values{"name": {"alice"}, "password": {"guess"}}); resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("no rate limit on sign-in attempts")
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestCheckUsers(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("long enough", 4)
	if err != nil {
		t.Fatal(err)
	}
	good := []User{{Name: "a", PasswordHash: h}, {Name: "b", TokenHash: HashToken(NewToken())}}
	if err := CheckUsers(good); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]User{{{Name: ""}}, {{Name: "a"}}, {{Name: "a", PasswordHash: "plain"}}, {{Name: "a", TokenHash: "abc"}},
		{{Name: "a", PasswordHash: h}, {Name: "a", PasswordHash: h}}} {
		if CheckUsers(bad) == nil {
			t.Errorf("CheckUsers(%+v) accepted", bad)
		}
	}
	if _, err := HashPassword("short", 4); err == nil {
		t.Error("short password hashed")
	}
}

type fakeAlerts []Alert

func (f fakeAlerts) OpenAlerts(_ context.Context, domains []string) ([]Alert, error) {
	var out []Alert
	for _, a := range f {
		if len(domains) == 0 || a.Domain == domains[0] {
			out = append(out, a)
		}
	}
	return out, nil
}

// Open alerts show on the overview (escaped) and on their domain's card;
// a user limited to other domains does not see them.
func TestOverviewAlerts(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(s *Server) {
		s.Alerts = fakeAlerts{{Domain: "d3.example", Rule: "reporter-silent", Subject: `"<b>Big</b>" went silent`, Since: testNow}}
	})
	c := fx.alice(t)
	body, _ := fx.get(t, c, "/?q=d3.example")
	if !strings.Contains(body, "Open alerts") || !strings.Contains(body, "&lt;b&gt;Big&lt;/b&gt;") || strings.Contains(body, "<b>Big</b>") {
		t.Errorf("overview alerts:\n%s", body)
	}
	if !strings.Contains(body, `<p class="alert">⚠ reporter-silent:`) {
		t.Error("no alert on the domain's card")
	}
	b := fx.client(t)
	fx.signIn(t, b, url.Values{"token": {bobToken}})
	body, _ = fx.get(t, b, "/")
	if strings.Contains(body, "went silent") {
		t.Error("bob sees an alert of d3.example")
	}
}

// A section added by another part of mailsts is listed in the
// navigation, rendered in the layout, and only for signed-in users.
func TestSection(t *testing.T) {
	t.Parallel()
	var srv *Server
	fx := newFixture(t, func(s *Server) {
		srv = s
		s.Sections = []Section{{Path: "/outbox", Title: "Outbox", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			srv.Render(w, r, "Outbox", template.HTML("<p id=outbox>"+template.HTMLEscapeString(UserFrom(r.Context()).Name)+"</p>"))
		})}}
	})
	c := fx.client(t)
	if _, resp := fx.get(t, c, "/outbox"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("section without sign-in: %s", resp.Status)
	}
	c = fx.alice(t)
	body, resp := fx.get(t, c, "/outbox")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<p id=outbox>alice</p>") || !strings.Contains(body, `<a href="/outbox" aria-current="page">Outbox</a>`) {
		t.Errorf("section page: %s\n%s", resp.Status, body)
	}
	if _, err := (&Server{Store: fx.st, Auth: fx.auth, Sections: []Section{{Path: "x", Handler: http.NotFoundHandler()}}}).Handler(nil); err == nil {
		t.Error("section path without / accepted")
	}
}

// The report list pages: following its "Older" links shows every
// report of the range once, in the order of one list; a cursor not given
// out is refused.
func TestReportListPages(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(s *Server) { s.ReportsPageSize = 7 })
	c := fx.alice(t)
	const rng = "from=2025-01-01&to=2025-01-31"
	all, err := fx.st.ListReports(context.Background(), reports.Filter{Since: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Until: time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) <= 14 {
		t.Fatalf("%d reports in the range: too few for three pages", len(all))
	}
	rowRE := regexp.MustCompile(`<tr><td>(\d{4}-\d\d-\d\d)</td><td>([^<]*)</td>`)
	nextRE := regexp.MustCompile(`<a href="([^"]+)" rel="next">Older 7`)
	path, pages, rows := "/reports?"+rng, 0, 0
	for range len(all) { // bounded: a page per 7 reports at most
		body, resp := fx.get(t, c, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		pages++
		for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
			if rows >= len(all) || m[1] != all[rows].Day || html.UnescapeString(m[2]) != all[rows].Organization {
				t.Fatalf("page %d: row %d is %s %s, want the list's row %d", pages, rows, m[1], m[2], rows)
			}
			rows++
		}
		m := nextRE.FindStringSubmatch(body)
		if m == nil {
			break
		}
		path = html.UnescapeString(m[1])
		if !strings.Contains(path, "from=2025-01-01") || !strings.Contains(path, "cursor=") {
			t.Fatalf("next link %s keeps neither range nor cursor", path)
		}
	}
	// A full last page links to an empty one.
	if rows != len(all) || pages != len(all)/7+1 {
		t.Errorf("%d rows over %d pages, want %d rows", rows, pages, len(all))
	}
	for _, bad := range []string{"/reports?cursor=bm90LWEtY3Vyc29y", "/reports?cursor=" + strings.Repeat("A", reports.MaxCursor+1)} {
		if _, resp := fx.get(t, c, bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", bad[:30], resp.Status)
		}
	}
}
