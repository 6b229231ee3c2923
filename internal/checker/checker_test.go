package checker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/internal/watchdog"
)

// want is one finding a scenario must produce: its ID, severity and, when
// set, the host it is about.
type want struct {
	id   string
	sev  Severity
	host string
}

// seen collects every finding ID produced by the scenario tests, so that
// TestEveryFindingHasAScenario can prove each catalog entry is exercised.
var seen sync.Map

func record(r *Report) {
	for _, f := range r.Findings {
		seen.Store(f.ID, true)
	}
}

func hasFinding(r *Report, w want) bool {
	for _, f := range r.Findings {
		if f.ID == w.id && f.Severity == w.sev && (w.host == "" || f.Host == w.host) {
			return true
		}
	}
	return false
}

func dump(r *Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString("  " + f.Severity.String() + " " + f.ID + " " + f.Host + ": " + f.Message + "\n")
	}
	return b.String()
}

// scenarioCase is one domain of the testnet with the findings and verdict
// a check must give.
type scenarioCase struct {
	domain  string
	strict  bool
	verdict string
	want    []want
	absent  []string // IDs that must not appear
	// result, when set, is the wanted STSSummary.Result; resultUsable
	// stands for "" (a usable policy).
	result string
}

const resultUsable = "usable"

var scenarioCases = []scenarioCase{
	// Good domains.
	{domain: "perfect.test", verdict: VerdictPass, result: resultUsable, want: []want{
		{"sts.record.ok", SeverityOK, ""}, {"sts.policy.ok", SeverityOK, ""}, {"sts.policy.cert-ok", SeverityOK, ""},
		{"sts.policy.mode", SeverityOK, ""}, {"sts.mx.match", SeverityOK, "mx1.perfect.test"},
		{"mx.tls-ok", SeverityOK, "mx1.perfect.test"}, {"mx.cert-ok", SeverityOK, "mx1.perfect.test"},
		{"mx.sts-deliver", SeverityOK, "mx1.perfect.test"}, {"dane.none", SeverityInfo, "mx1.perfect.test"},
		{"tlsrpt.ok", SeverityOK, ""},
	}, absent: []string{"sts.policy.line-endings", "sts.policy.lenient", "sts.policy.max-age-short"}},
	{domain: "enforce.example", verdict: VerdictPass, want: []want{ // STS-MX-3
		{"sts.mx.match", SeverityOK, "mx1.enforce.example"}, {"sts.mx.match", SeverityOK, "mx2.enforce.example"},
		{"sts.policy.max-age-short", SeverityInfo, ""},
	}},
	{domain: "testing.example", verdict: VerdictPass, want: []want{{"sts.policy.mode", SeverityInfo, ""}}},
	{domain: "none.example", verdict: VerdictWarn, want: []want{{"sts.policy.mode", SeverityWarn, ""}, {"tlsrpt.missing", SeverityWarn, ""}},
		absent: []string{"sts.mx.match", "mx.sts-deliver"}},
	{domain: "bücher.test", verdict: VerdictPass, want: []want{{"sts.mx.match", SeverityOK, "mx1.xn--bcher-kva.test"}}}, // STS-TXT-1, STS-MX-5
	// _mta-sts TXT (STS-TXT-*).
	{domain: "nosts.example", verdict: VerdictWarn, want: []want{{"sts.record.missing", SeverityWarn, ""}}, absent: []string{"sts.policy.ok"}},
	{domain: "txt-none.test", verdict: VerdictWarn, want: []want{{"sts.record.missing", SeverityWarn, ""}}},
	{domain: "servfail.example", verdict: VerdictFail, want: []want{{"sts.record.dns-error", SeverityFail, ""}}},   // STS-TXT-13
	{domain: "timeout.example", verdict: VerdictFail, want: []want{{"sts.record.dns-error", SeverityFail, ""}}},    // STS-TXT-13
	{domain: "two-records.example", verdict: VerdictFail, want: []want{{"sts.record.multiple", SeverityFail, ""}}}, // STS-TXT-7
	{domain: "txt-syntax.test", verdict: VerdictFail, want: []want{{"sts.record.syntax", SeverityFail, ""}}},       // STS-TXT-5, STS-TXT-8
	{domain: "txt-other.test", verdict: VerdictPass, want: []want{{"sts.record.other", SeverityInfo, ""}, {"sts.record.ok", SeverityOK, ""}}},
	{domain: "cname.example", want: []want{{"sts.record.cname", SeverityInfo, ""}, {"sts.record.ok", SeverityOK, ""}}}, // STS-TXT-10
	{domain: "multistring.example", want: []want{{"sts.record.ok", SeverityOK, ""}}},                                   // STS-TXT-9
	// Policy host (STS-FETCH-*, STS-POL-*).
	{domain: "pol-nohost.test", verdict: VerdictFail, want: []want{{"sts.policy.host-dns", SeverityFail, ""}}},                                                                                 // STS-POL-1
	{domain: "tls11.example", verdict: VerdictFail, want: []want{{"sts.policy.connect", SeverityFail, ""}}},                                                                                    // STS-FETCH-14
	{domain: "drip.example", verdict: VerdictFail, want: []want{{"sts.policy.connect", SeverityFail, ""}}},                                                                                     // STS-FETCH-8
	{domain: "expired.example", verdict: VerdictFail, want: []want{{"sts.policy.cert-expired", SeverityFail, ""}}},                                                                             // STS-FETCH-2
	{domain: "not-yet-valid.example", want: []want{{"sts.policy.cert-expired", SeverityFail, ""}}},                                                                                             // STS-FETCH-2
	{domain: "wrong-name.example", want: []want{{"sts.policy.cert-name", SeverityFail, ""}}},                                                                                                   // STS-FETCH-2
	{domain: "cn-only.example", want: []want{{"sts.policy.cert-name", SeverityFail, ""}}},                                                                                                      // STS-FETCH-2, TLS-NAME-4
	{domain: "self-signed.example", want: []want{{"sts.policy.cert-untrusted", SeverityFail, ""}}},                                                                                             // STS-FETCH-2
	{domain: "notfound.example", want: []want{{"sts.policy.status", SeverityFail, ""}}},                                                                                                        // STS-FETCH-4
	{domain: "redirect.example", want: []want{{"sts.policy.redirect", SeverityFail, ""}}},                                                                                                      // STS-FETCH-5
	{domain: "html.example", want: []want{{"sts.policy.content-type", SeverityFail, ""}, {"sts.policy.ok", SeverityOK, ""}}},                                                                   // STS-POL-2
	{domain: "no-ctype.example", want: []want{{"sts.policy.content-type", SeverityFail, ""}}},                                                                                                  // STS-POL-2
	{domain: "huge.example", want: []want{{"sts.policy.size", SeverityFail, ""}}},                                                                                                              // STS-POL-13
	{domain: "crlf.example", want: []want{{"sts.policy.line-endings", SeverityInfo, ""}}},                                                                                                      // STS-POL-4
	{domain: "pol-mixed.test", want: []want{{"sts.policy.line-endings", SeverityInfo, ""}}},                                                                                                    // STS-POL-4
	{domain: "pol-syntax.test", verdict: VerdictFail, want: []want{{"sts.policy.syntax", SeverityFail, ""}}, absent: []string{"sts.mx.match", "mx.sts-deliver"}, result: "sts-policy-invalid"}, // STS-POL-5
	{domain: "pol-syntax.test", strict: true, verdict: VerdictFail, want: []want{{"sts.policy.syntax", SeverityFail, ""}}, result: "sts-policy-invalid"},
	// OPEN-3: our sender (and lenient ones) apply a policy that only the
	// lenient grammar accepts; the strictest sender ignores it.
	{domain: "pol-lenient.test", verdict: VerdictWarn, want: []want{{"sts.policy.lenient", SeverityWarn, ""}, {"sts.mx.match", SeverityOK, ""}, {"mx.sts-deliver", SeverityOK, ""}}, result: resultUsable},
	{domain: "pol-lenient.test", strict: true, verdict: VerdictFail, want: []want{{"sts.policy.lenient", SeverityFail, ""}, {"sts.mx.match", SeverityOK, ""}},
		absent: []string{"mx.sts-deliver", "mx.sts-refuse"}, result: "sts-policy-invalid"},
	{domain: "pol-short.test", verdict: VerdictWarn, want: []want{{"sts.policy.max-age-short", SeverityWarn, ""}}},                   // STS-POL-7
	{domain: "pol-long.test", want: []want{{"sts.policy.max-age-long", SeverityWarn, ""}, {"sts.policy.lenient", SeverityWarn, ""}}}, // STS-ERRATA-3
	// Policy against the MX set (STS-MX-*).
	{domain: "mx-mismatch.example", verdict: VerdictFail, want: []want{
		{"sts.mx.nomatch", SeverityFail, "mx1.mx-mismatch.example"}, {"sts.mx.unused-pattern", SeverityInfo, ""},
		{"mx.sts-refuse", SeverityFail, "mx1.mx-mismatch.example"},
	}},
	{domain: "wild.test", verdict: VerdictFail, want: []want{ // STS-MX-3: one label only
		{"sts.mx.match", SeverityOK, "mx1.wild.test"}, {"sts.mx.nomatch", SeverityFail, "a.b.wild.test"},
		{"sts.mx.unused-pattern", SeverityInfo, ""},
	}},
	{domain: "implicit.test", want: []want{{"sts.mx.implicit", SeverityWarn, ""}}}, // STS-MX-6
	{domain: "expiring.example", verdict: VerdictWarn, want: []want{ // testnet "expiring" certificates (7 days)
		{"sts.policy.cert-expiring", SeverityWarn, ""}, {"mx.cert-expiring", SeverityWarn, "mx1.expiring.example"},
	}},
	{domain: "no-such-domain.example", verdict: VerdictFail, want: []want{{"sts.mx.nxdomain", SeverityFail, ""}}, absent: []string{"sts.mx.implicit", "sts.record.missing"}}, // issue 11 item 12
	{domain: "nullmx.example", want: []want{{"sts.mx.null", SeverityInfo, ""}}, absent: []string{"mx.connect"}},                                                              // STS-MX-7
	{domain: "mxfault.test", verdict: VerdictFail, want: []want{{"sts.mx.lookup-error", SeverityFail, ""}}},
	{domain: "many-mx.test", want: []want{{"sts.mx.truncated", SeverityInfo, ""}}},
	// MX hosts (STS-CERT-*).
	{domain: "mxaddr.test", verdict: VerdictFail, want: []want{{"mx.address", SeverityFail, "mx1.mxaddr.test"}}},
	{domain: "mxdown.example", verdict: VerdictFail, want: []want{{"mx.connect", SeverityFail, "mx1.mxdown.example"}}},
	{domain: "mxhang.example", verdict: VerdictWarn, want: []want{{"mx.banner", SeverityWarn, "mx1.mxhang.example"}}},
	{domain: "mxhang.example", strict: true, verdict: VerdictFail, want: []want{{"mx.banner", SeverityFail, "mx1.mxhang.example"}}},
	{domain: "nostarttls.example", verdict: VerdictFail, want: []want{{"mx.starttls", SeverityFail, ""}, {"mx.sts-refuse", SeverityFail, ""}}},          // STS-CERT-1
	{domain: "mxhandshake.example", verdict: VerdictFail, want: []want{{"mx.tls", SeverityFail, ""}}},                                                   // STS-CERT-1
	{domain: "mxtls10.test", verdict: VerdictFail, want: []want{{"mx.tls", SeverityFail, ""}}},                                                          // STS-CERT-7
	{domain: "badmxcert.example", verdict: VerdictFail, want: []want{{"mx.cert-name", SeverityFail, ""}}},                                               // STS-CERT-3
	{domain: "mxcnonly.test", verdict: VerdictFail, want: []want{{"mx.cert-name", SeverityFail, ""}}},                                                   // STS-CERT-3, TLS-NAME-4
	{domain: "mxselfsigned.test", verdict: VerdictFail, want: []want{{"mx.cert-untrusted", SeverityFail, ""}}},                                          // STS-CERT-2
	{domain: "testing-badcert.example", verdict: VerdictWarn, want: []want{{"mx.cert-expired", SeverityWarn, ""}, {"mx.sts-refuse", SeverityWarn, ""}}}, // STS-CERT-2
	{domain: "testing-badcert.example", strict: true, verdict: VerdictFail, want: []want{{"mx.cert-expired", SeverityFail, ""}}},
	// DANE.
	{domain: "dane.example", want: []want{{"dane.match", SeverityOK, "mx1.dane.example"}}},                 // DANE-7
	{domain: "dane-ta.example", want: []want{{"dane.match", SeverityOK, "mx1.dane-ta.example"}}},           // DANE-8
	{domain: "dane-wrong.example", verdict: VerdictFail, want: []want{{"dane.nomatch", SeverityFail, ""}}}, // DANE-2
	{domain: "dane-insecure.test", want: []want{{"dane.insecure", SeverityWarn, ""}}},                      // DANE-1
	{domain: "dane-unusable.test", want: []want{{"dane.unusable", SeverityWarn, ""}}},                      // DANE-3, DANE-6
	// TLSRPT (RPT-TXT-*).
	{domain: "rpt-none.test", want: []want{{"tlsrpt.missing", SeverityWarn, ""}}},
	{domain: "rpt-multi.test", verdict: VerdictFail, want: []want{{"tlsrpt.multiple", SeverityFail, ""}}},                                    // RPT-TXT-6
	{domain: "rpt-syntax.test", verdict: VerdictFail, want: []want{{"tlsrpt.syntax", SeverityFail, ""}}},                                     // RPT-TXT-3
	{domain: "rpt-scheme.test", verdict: VerdictWarn, want: []want{{"tlsrpt.rua-ignored", SeverityWarn, ""}, {"tlsrpt.ok", SeverityOK, ""}}}, // RPT-TXT-4
	{domain: "rpt-norua.test", verdict: VerdictFail, want: []want{{"tlsrpt.no-rua", SeverityFail, ""}}},                                      // RPT-TXT-4
}

// TestScenarios checks every testnet scenario: each must give its findings
// and verdict, and end within its per-check bound.
func TestScenarios(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	for _, tc := range scenarioCases {
		name := tc.domain
		if tc.strict {
			name += "/strict"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newChecker(t, n, tc.strict)
			// The per-check Timeout (10 s) must end every check: a
			// watchdog far above it, not a time bound that machine load
			// can exceed (TestHangingMXIsBounded tests the bound itself).
			r := watchdog.Within(t, 2*time.Minute, func() *Report { return c.Check(context.Background(), tc.domain) })
			record(r)
			if tc.verdict != "" && r.Verdict != tc.verdict {
				t.Errorf("verdict %q, want %q\n%s", r.Verdict, tc.verdict, dump(r))
			}
			for _, w := range tc.want {
				if !hasFinding(r, w) {
					t.Errorf("missing %s %s %s\n%s", w.sev, w.id, w.host, dump(r))
				}
			}
			if want := strings.TrimPrefix(tc.result, resultUsable); tc.result != "" && string(r.STS.Result) != want {
				t.Errorf("sts.result %q, want %q", r.STS.Result, want)
			}
			for _, id := range tc.absent {
				for _, f := range r.Findings {
					if f.ID == id {
						t.Errorf("unexpected %s: %s", id, f.Message)
					}
				}
			}
			// The schema's arrays are never null (docs/check.md).
			if js, err := json.Marshal(r); err != nil || bytes.Contains(js, []byte(`"mx":null`)) || bytes.Contains(js, []byte(`"findings":null`)) {
				t.Errorf("JSON %s (%v)", js, err)
			}
			for _, f := range r.Findings {
				if f.Severity >= SeverityWarn && f.Fix == "" {
					t.Errorf("%s has no fix hint", f.ID)
				}
				if f.Message == "" || strings.Contains(f.Message, "\n") || f.Ref == "" || f.Group == "internal" {
					t.Errorf("malformed finding %+v", f)
				}
			}
		})
	}
}

// Certificates close to expiry draw a warning (STS-CERT-2, STS-PUB-3).
func TestExpiringCertificates(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	later := time.Now().Add(80 * 24 * time.Hour) // the testnet's certificates last 90 days
	c.Now = func() time.Time { return later }
	r := c.Check(context.Background(), "perfect.test")
	record(r)
	for _, w := range []want{{"sts.policy.cert-expiring", SeverityWarn, ""}, {"mx.cert-expiring", SeverityWarn, "mx1.perfect.test"}} {
		if !hasFinding(r, w) {
			t.Errorf("missing %s\n%s", w.id, dump(r))
		}
	}
}

// A hanging MX costs one probe step, not the whole run; the check ends
// within its own bound even when every step would hang.
func TestHangingMXIsBounded(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	c.ProbeTimeout = time.Hour // only the per-check Timeout can end it
	c.Timeout = 1500 * time.Millisecond
	// The bound that matters is the gap between the per-check Timeout
	// (1.5 s) and the probe timeout (an hour): a watchdog far above the
	// first and far below the second tells them apart on any machine load.
	r := watchdog.Within(t, 2*time.Minute, func() *Report { return c.Check(context.Background(), "mxhang.example") })
	if !hasFinding(r, want{"mx.banner", SeverityWarn, "mx1.mxhang.example"}) {
		t.Errorf("no banner finding:\n%s", dump(r))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := c.Check(ctx, "mxhang.example"); r.Verdict == VerdictPass {
		t.Errorf("a canceled check passed:\n%s", dump(r))
	}
}

func TestInvalidDomain(t *testing.T) {
	t.Parallel()
	var c Checker
	for _, d := range []string{"", "a..b", "exa mple.com", strings.Repeat("a", 64) + ".com"} {
		r := c.Check(context.Background(), d)
		if r.Verdict != VerdictError || !strings.Contains(r.Error, "invalid domain") {
			t.Errorf("%q: verdict %q error %q", d, r.Verdict, r.Error)
		}
	}
}

// IDN input is checked under its A-label and the input is kept
// (STS-TXT-1).
func TestIDNInput(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	r := newChecker(t, n, false).Check(context.Background(), "Bücher.TEST.")
	if r.Domain != "xn--bcher-kva.test" || r.Input != "Bücher.TEST." || r.STS.ID != "x1" {
		t.Errorf("domain %q input %q id %q", r.Domain, r.Input, r.STS.ID)
	}
}

// TestClients probes RFC 8314 endpoints: implicit TLS with a good and a
// wrong certificate, STARTTLS submission, a refused port, a server that
// does not speak TLS, and submission without STARTTLS.
func TestClients(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	good, err := n.CA().Leaf("mta-sts.perfect.test", testnet.CertGood, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := n.CA().Leaf("mta-sts.perfect.test", testnet.CertWrongName, 0)
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := func(cert *tls.Certificate) int {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for range 100 {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					_ = conn.(*tls.Conn).Handshake()
					conn.Close()
				}()
			}
		}()
		return ln.Addr().(*net.TCPAddr).Port
	}
	closedPort := testnet.RefusedPortFor(t)

	c := newChecker(t, n, false)
	// mta-sts.perfect.test resolves to 127.0.0.1, where the listeners are.
	c.Clients = []Endpoint{
		{Host: "mta-sts.perfect.test", Port: tlsPort(good), Service: "submissions"},
		{Host: "mta-sts.perfect.test", Port: tlsPort(bad), Service: "imaps"},
		{Host: "mx1.perfect.test", Port: n.SMTPPort(), Service: "submission", STARTTLS: true},
		{Host: "mta-sts.perfect.test", Port: closedPort, Service: "pop3s"},
		{Host: "mx1.perfect.test", Port: n.SMTPPort(), Service: "submissions"},
		{Host: "mx1.nostarttls.example", Port: n.SMTPPort(), Service: "submission", STARTTLS: true},
	}
	r := c.Check(context.Background(), "perfect.test")
	record(r)
	if len(r.Clients) != len(c.Clients) {
		t.Fatalf("%d endpoint results", len(r.Clients))
	}
	for _, w := range []want{
		{"clients.ok", SeverityOK, "mta-sts.perfect.test:" + itoa(c.Clients[0].Port)},      // TLS8314-1
		{"clients.cert", SeverityFail, "mta-sts.perfect.test:" + itoa(c.Clients[1].Port)},  // TLS8314-4
		{"clients.ok", SeverityOK, "mx1.perfect.test:" + itoa(n.SMTPPort())},               // TLS8314-2
		{"clients.connect", SeverityInfo, "mta-sts.perfect.test:" + itoa(closedPort)},      // not served
		{"clients.tls", SeverityFail, "mx1.perfect.test:" + itoa(n.SMTPPort())},            // TLS8314-1
		{"clients.starttls", SeverityFail, "mx1.nostarttls.example:" + itoa(n.SMTPPort())}, // TLS8314-2
	} {
		if !hasFinding(r, w) {
			t.Errorf("missing %s %s %s\n%s", w.sev, w.id, w.host, dump(r))
		}
	}
	// RFC 8314 §5 checks the name the client uses.
	if r.Clients[1].Probe.Cert == nil || r.Clients[1].Probe.Cert.Problem != certNameMismatch {
		t.Errorf("endpoint 1: %+v", r.Clients[1].Probe)
	}
	got := ClientEndpoints("mail.example")
	ports := map[string]int{}
	for _, ep := range got {
		ports[ep.Service] = ep.Port
		if ep.STARTTLS != (ep.Port == 587 || ep.Port == 143 || ep.Port == 110) {
			t.Errorf("ClientEndpoints: %+v", ep)
		}
	}
	if len(got) != 6 || ports["submissions"] != 465 || ports["submission"] != 587 || ports["imaps"] != 993 ||
		ports["imap"] != 143 || ports["pop3s"] != 995 || ports["pop3"] != 110 {
		t.Errorf("ClientEndpoints: %+v", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestEveryFindingHasAScenario proves that each catalog ID comes out of
// some testnet scenario above, and that docs/check.md documents it.
func TestEveryFindingHasAScenario(t *testing.T) {
	// Not parallel: it runs after the parallel scenario tests of this
	// package have finished (Go runs sequential tests first only within
	// one level, so it waits for them explicitly below).
	t.Run("scenarios", func(t *testing.T) {
		t.Run("TestScenarios", TestScenarios)
		t.Run("TestClients", TestClients)
		t.Run("TestClientsTestnet", TestClientsTestnet)
		t.Run("TestClientsAccount", TestClientsAccount)
		t.Run("TestDraftForms", TestDraftForms)
		t.Run("TestExpiringCertificates", TestExpiringCertificates)
		t.Run("TestDNSFaults", TestDNSFaults)
		t.Run("TestProbeStubs", TestProbeStubs)
	})
	doc, err := os.ReadFile("../../docs/check.md")
	if err != nil {
		t.Fatalf("docs: %v", err)
	}
	for _, id := range IDs() {
		if _, ok := seen.Load(id); !ok {
			t.Errorf("no scenario produces %s", id)
		}
		if !strings.Contains(string(doc), "`"+id+"`") {
			t.Errorf("docs/check.md does not document %s", id)
		}
	}
	prefixes := map[string]string{"sts.record.": GroupSTSRecord, "sts.policy.": GroupSTSPolicy, "sts.mx.": GroupSTSMX,
		"mx.": GroupMX, "dane.": GroupDANE, "tlsrpt.": GroupTLSRPT, "clients.": GroupClients}
	for id, k := range catalog {
		ok := false
		for p, g := range prefixes {
			ok = ok || (strings.HasPrefix(id, p) && k.group == g)
		}
		if !ok || k.ref == "" {
			t.Errorf("%s: group %q ref %q", id, k.group, k.ref)
		}
	}
}
