package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt"
)

// shared is the default fake Internet: enforce.example has two good MX
// hosts, testing-badcert.example one with an expired certificate.
var shared testnet.Shared

// now is the injected clock of the rollout tests.
var now = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func netChecker(t *testing.T) (*Checker, dnsresolve.Resolver) {
	t.Helper()
	n := shared.Net(t)
	dns, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	sts := &mtasts.Client{DNS: dns, RootCAs: n.RootCAs(), HTTPSPort: n.HTTPSPort(), Timeout: time.Hour}
	return &Checker{STS: sts, Now: func() time.Time { return now },
		MX: &checker.Checker{DNS: dns, STS: sts, RootCAs: n.RootCAs(), SMTPPort: n.SMTPPort(), Strict: true, Timeout: time.Hour}}, dns
}

func testingDomain(t *testing.T, dns dnsresolve.Resolver, name, mx string) *Domain {
	t.Helper()
	s, err := (&Loader{DNS: dns}).Load(context.Background(), reports.PublishConfig{Domains: []reports.PublishDomain{
		{Domain: name, Mode: "testing", MX: reports.PublishMX{mx}}}})
	if err != nil {
		t.Fatal(err)
	}
	return s.Domains[0]
}

// report is a TLS report for enforce.example on day with ok successful
// sessions and one failure detail per result type given.
func report(i int, day time.Time, ok int64, typ string, failures ...tlsrpt.ResultType) *tlsrpt.Report {
	var a tlsrpt.Aggregator
	pol := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: testing", "mx: *.enforce.example", "max_age: 604800"},
		Domain: "enforce.example", MXHost: []string{"*.enforce.example"}}
	if typ == tlsrpt.PolicyTypeTLSA {
		pol = tlsrpt.Policy{Type: tlsrpt.PolicyTypeTLSA, String: []string{"3 1 1 " + strings.Repeat("ab", 32)}, Domain: "enforce.example"}
	}
	a.AddSuccess(pol, ok)
	for _, f := range failures {
		a.AddFailure(pol, tlsrpt.FailureDetails{ResultType: f, ReceivingMXHostname: "mx2.enforce.example", SendingMTAIP: "192.0.2.1"})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: "Sender Inc.", ContactInfo: "tlsrpt@sender.example", PolicyDomain: "enforce.example", Day: day})
	r.ReportID = fmt.Sprintf("promote-%d", i)
	return r
}

func item(ev *Evidence, check string) EvidenceItem {
	for _, it := range ev.Items {
		if it.Check == check {
			return it
		}
	}
	return EvidenceItem{Check: check, Detail: "missing"}
}

// TestPromoteEvidence: stored reports that must block promote and reports
// that must allow it, the testing period on an injected clock, and MX
// hosts a strict sender would refuse.
func TestPromoteEvidence(t *testing.T) {
	t.Parallel()
	c, dns := netChecker(t)
	d := testingDomain(t, dns, "enforce.example", "*.enforce.example")
	inTesting := &DomainState{Mode: "testing", ModeSince: now.Add(-20 * 24 * time.Hour)}
	recent := now.Add(-5 * 24 * time.Hour)
	ctx := context.Background()

	cases := []struct {
		name    string
		reports []*tlsrpt.Report
		state   *DomainState
		allowed bool
		failing string // the check that refuses
		detail  string
	}{
		{name: "clean reports allow", allowed: true, state: inTesting, reports: []*tlsrpt.Report{
			report(1, recent, 500, tlsrpt.PolicyTypeSTS),
			// Failures enforce does not turn into deferred mail: a policy
			// fetch error, a DANE failure.
			report(2, recent, 10, tlsrpt.PolicyTypeSTS, tlsrpt.ResultSTSPolicyFetchError),
			report(3, recent, 10, tlsrpt.PolicyTypeTLSA, tlsrpt.ResultTLSAInvalid),
			// Before testing began: not evidence about this policy.
			report(4, now.Add(-40*24*time.Hour), 10, tlsrpt.PolicyTypeSTS, tlsrpt.ResultCertificateExpired),
		}, detail: "2 reports since"},
		{name: "no reports allow with a note", allowed: true, state: inTesting, detail: "no TLS report"},
		{name: "expired certificate blocks", state: inTesting, failing: "tls reports", detail: "certificate-expired at mx2.enforce.example (Sender Inc.): 1 sessions", reports: []*tlsrpt.Report{
			report(5, recent, 500, tlsrpt.PolicyTypeSTS, tlsrpt.ResultCertificateExpired)}},
		{name: "starttls stripped blocks", state: inTesting, failing: "tls reports", detail: "starttls-not-supported", reports: []*tlsrpt.Report{
			report(6, recent, 500, tlsrpt.PolicyTypeSTS, tlsrpt.ResultSTARTTLSNotSupported)}},
		{name: "unmatched MX blocks", state: inTesting, failing: "tls reports", detail: "validation-failure", reports: []*tlsrpt.Report{
			report(7, recent, 500, tlsrpt.PolicyTypeSTS, tlsrpt.ResultValidationFailure)}},
		{name: "too short in testing", state: &DomainState{Mode: "testing", ModeSince: now.Add(-3 * 24 * time.Hour)}, failing: "testing period", detail: "3.0 days, at least 14.0 days needed"},
		{name: "never served", failing: "testing period", detail: "no record"},
		{name: "served in another mode", state: &DomainState{Mode: "none", ModeSince: now.Add(-30 * 24 * time.Hour)}, failing: "testing period", detail: "serves mode none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := sqlstoretest.OpenSQLite(t)
			for _, r := range tc.reports {
				reportstest.Put(t, st, r, nil)
			}
			ev := (&Promoter{Checker: c, Store: st, Now: func() time.Time { return now }}).Evaluate(ctx, d, tc.state)
			if ev.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v: %+v", ev.Allowed, tc.allowed, ev.Items)
			}
			check := tc.failing
			if check == "" {
				check = "tls reports"
			}
			it := item(ev, check)
			if it.OK == (tc.failing != "") || !strings.Contains(it.Detail, tc.detail) {
				t.Errorf("%s: %+v, want ok=%v and %q", check, it, tc.failing == "", tc.detail)
			}
			if tc.allowed && !item(ev, "mx").OK {
				t.Errorf("mx: %+v", item(ev, "mx"))
			}
		})
	}
}

// TestPromoteRefusesBadMX: an MX host a strict sender refuses blocks
// promote whatever the reports say.
func TestPromoteRefusesBadMX(t *testing.T) {
	t.Parallel()
	c, dns := netChecker(t)
	d := testingDomain(t, dns, "testing-badcert.example", "auto")
	ev := (&Promoter{Checker: c, Store: sqlstoretest.OpenSQLite(t), Now: func() time.Time { return now }}).Evaluate(context.Background(), d,
		&DomainState{Mode: "testing", ModeSince: now.Add(-30 * 24 * time.Hour)})
	if ev.Allowed || !strings.Contains(item(ev, "mx mx1.testing-badcert.example").Detail, "certificate") {
		t.Errorf("%+v", ev)
	}
	// A configured mode other than testing is refused too.
	d2 := *d
	d2.Mode = mtasts.ModeEnforce
	if it := item((&Promoter{Checker: c, Store: sqlstoretest.OpenSQLite(t)}).Evaluate(context.Background(), &d2, nil), "mode"); it.OK {
		t.Errorf("mode: %+v", it)
	}
}

// TestStateRecordAndMXWarnings: serve's state records mode starts and
// earlier policies; a changed MX list of an enforce domain warns while
// senders may still cache the earlier policy, and retire waits for it.
func TestStateRecordAndMXWarnings(t *testing.T) {
	t.Parallel()
	dns := fakeDNS()
	ld := &Loader{DNS: dns}
	ctx := context.Background()
	load := func(mode string, mx ...string) *Set {
		s, err := ld.Load(ctx, reports.PublishConfig{Domains: []reports.PublishDomain{{Domain: "example.org", Mode: mode, MX: reports.PublishMX(mx), MaxAge: 86400}}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	path := filepath.Join(t.TempDir(), "state.json")
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := now
	first := load("enforce", "mx1.example.org", "mx2.example.org")
	if !st.Record(first, t0) || st.Domains["example.org"].ModeSince != t0 {
		t.Fatalf("%+v", st.Domains["example.org"])
	}
	if st.Record(first, t0.Add(time.Hour)) {
		t.Error("recording the same set changed the state")
	}
	// The MX is moving: a planned host is added to the enforce policy.
	moved, err := ld.Load(ctx, reports.PublishConfig{Domains: []reports.PublishDomain{{Domain: "example.org", Mode: "enforce",
		MX: reports.PublishMX{"mx1.example.org", "mx2.example.org"}, MXPlanned: []string{"mx3.example.org"}, MaxAge: 86400}}})
	if err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(2 * time.Hour)
	w := st.MXWarnings(moved, t1)
	if len(w) != 1 || !strings.Contains(w[0].Msg, "new mx mx3.example.org") || !strings.Contains(w[0].Msg, t1.Add(24*time.Hour).Format(time.RFC3339)) {
		t.Errorf("warnings before serving: %v", w)
	}
	st.Record(moved, t1)
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err = LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if ds := st.Domains["example.org"]; len(ds.Earlier) != 1 || ds.ModeSince != t0 || !ds.Earlier[0].ReplacedAt.Equal(t1) {
		t.Errorf("after the change: %+v", ds)
	}
	// Still warned while the earlier policy may be cached, not after.
	if w := st.MXWarnings(moved, t1.Add(23*time.Hour)); len(w) != 1 {
		t.Errorf("within max_age: %v", w)
	}
	if w := st.MXWarnings(moved, t1.Add(25*time.Hour)); len(w) != 0 {
		t.Errorf("after max_age: %v", w)
	}
	// A mode change restarts the mode's clock; earlier policies expire.
	t2 := t1.Add(48 * time.Hour)
	st.Record(load("testing", "mx1.example.org", "mx2.example.org"), t2)
	if ds := st.Domains["example.org"]; ds.Mode != "testing" || !ds.ModeSince.Equal(t2) || len(ds.Earlier) != 1 {
		t.Errorf("after testing: %+v", ds)
	}
	if got := st.RetireUntil(moved.Domains[0], t2); !got.Equal(t2.Add(24 * time.Hour)) {
		t.Errorf("RetireUntil = %v", got)
	}
}

// TestSetModeKeepsComments: promote edits the YAML nodes, so comments
// and other keys survive.
func TestSetModeKeepsComments(t *testing.T) {
	t.Parallel()
	src := `# top comment
db: sqlite:/x.db # inline
publish:
  listen: :443
  domains:
    # the main domain
    - domain: Example.ORG
      mode: testing   # will be promoted
      mx: [mx1.example.org]
    - domain: other.example
      mx: auto
`
	out, err := SetMode([]byte(src), "example.org", "enforce")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# top comment", "# inline", "# the main domain", "mode: enforce # will be promoted", "mx: [mx1.example.org]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lost %q:\n%s", want, out)
		}
	}
	out, err = SetMode(out, "other.example", "none")
	if err != nil || !strings.Contains(string(out), "- domain: other.example\n      mode: none\n      mx: auto") {
		t.Errorf("%v\n%s", err, out)
	}
	if _, err := SetMode(out, "missing.example", "none"); err == nil {
		t.Error("a missing domain was accepted")
	}
	p := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(p, []byte(src), 0o640)
	if err := SetModeInFile(p, "example.org", "enforce"); err != nil {
		t.Fatal(err)
	}
	cfg, err := reports.LoadConfig(p)
	if err != nil || cfg.Publish.Domains[0].Mode != "enforce" {
		t.Errorf("%v %+v", err, cfg)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
}
