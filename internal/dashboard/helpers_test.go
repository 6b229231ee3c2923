package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// testNow is the dashboard clock of the tests: the synthetic reports
// cover 2025-01-01 to 2025-01-20, inside the default 30 days.
var testNow = time.Date(2025, 1, 25, 10, 0, 0, 0, time.UTC)

const (
	alicePassword = "correct horse battery"
	bobToken      = "0123456789abcdef0123456789abcdef"
	scriptToken   = "api-token-of-the-old-kind-0123"
)

// hostileReport is a report whose every text field tries markup.
func hostileReport() *tlsrpt.Report {
	var a tlsrpt.Aggregator
	pol := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: <b>mx</b>", "max_age: 86400"},
		Domain: "evil.example", MXHost: []string{"mx.evil.example"}}
	a.AddSuccess(pol, 5)
	a.AddFailure(pol, tlsrpt.FailureDetails{ResultType: tlsrpt.ResultCertificateExpired, SendingMTAIP: "192.0.2.66",
		ReceivingMXHostname: "mx.evil.example", AdditionalInformation: `"><img src=x onerror=alert(2)>`, FailureReasonCode: "<i>x</i>"})
	r := a.Report(tlsrpt.ReportParams{OrganizationName: "<script>alert(1)</script>", ContactInfo: "a@evil.example", PolicyDomain: "evil.example",
		Day: time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)})
	r.ReportID = `x"><script>alert(3)</script>`
	return r
}

type fixture struct {
	st   reports.Store
	srv  *Server
	ts   *httptest.Server
	now  *time.Time
	auth *Auth
}

// newFixture serves a dashboard over a SQLite store holding 60 synthetic
// reports and a hostile one, with users alice (password, every domain)
// and bob (token, d1.example only), and the API behind it.
func newFixture(t *testing.T, opts ...func(*Server)) *fixture {
	t.Helper()
	st := sqlstoretest.OpenSQLite(t)
	// One transaction: one disk sync.
	var ins []reports.Incoming
	for i := range 61 {
		r := hostileReport()
		if i < 60 {
			r = reportstest.SynthReport(i)
		}
		raw, err := tlsrpt.MarshalGzip(r)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, reports.Incoming{Report: r, Raw: raw, Source: reports.SourceFile, Origin: "test", ReceivedAt: reportstest.FixedNow(),
			Repairs: []tlsrpt.Repair{{Code: "x", Detail: "y"}}})
	}
	if _, err := st.PutReports(context.Background(), ins); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutRejected(context.Background(), reports.Rejection{Raw: []byte("<html>not a report"), Reason: reports.ReasonSyntax,
		Detail: "<b>bad</b> json", Source: reports.SourceHTTP, Origin: "192.0.2.9:1234", ReceivedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{st: st}
	now := testNow
	fx.now = &now
	clock := func() time.Time { return *fx.now }
	fx.auth = &Auth{Users: []User{{Name: "alice", PasswordHash: string(hash)}, {Name: "bob", TokenHash: HashToken(bobToken), Domains: []string{"d1.example"}}},
		APIToken: scriptToken, Now: clock, SessionTTL: time.Hour}
	fx.srv = &Server{Store: st, Auth: fx.auth, Now: clock, PageSize: 4}
	for _, o := range opts {
		o(fx.srv)
	}
	api := (&httpapi.API{Store: st, StoreFor: func(r *http.Request) reports.Store { return StoreFor(r, st) }}).Handler("/api/v1")
	h, err := fx.srv.Handler(api)
	if err != nil {
		t.Fatal(err)
	}
	fx.ts = httptest.NewServer(h)
	t.Cleanup(fx.ts.Close)
	return fx
}

// client returns an HTTP client with a cookie jar that does not follow
// redirects.
func (fx *fixture) client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs c in with the form fields given; it returns the status
// of the POST.
func (fx *fixture) signIn(t *testing.T, c *http.Client, fields url.Values) *http.Response {
	t.Helper()
	body, _ := fx.get(t, c, "/login")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field in the sign-in form:\n%s", body)
	}
	fields.Set("csrf", m[1])
	resp, err := c.PostForm(fx.ts.URL+"/login", fields)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (fx *fixture) alice(t *testing.T) *http.Client {
	c := fx.client(t)
	if resp := fx.signIn(t, c, url.Values{"name": {"alice"}, "password": {alicePassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice sign-in: %s", resp.Status)
	}
	return c
}

func (fx *fixture) get(t *testing.T, c *http.Client, path string) (string, *http.Response) {
	t.Helper()
	resp, err := c.Get(fx.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp
}

// text extracts the element texts marked data-k="key" in order.
func dataK(body, key string) []string {
	re := regexp.MustCompile(`data-k="` + regexp.QuoteMeta(key) + `">(?:<a [^>]*>)?([^<]*)`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}
