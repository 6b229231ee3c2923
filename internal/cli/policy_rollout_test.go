package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt"
)

// reportsDB writes a SQLite report database holding one report for
// hosted.example two days ago, with the given failure (none: all good).
func reportsDB(t *testing.T, failure tlsrpt.ResultType) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "r.db")
	st, err := sqlstore.OpenSQLite(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var a tlsrpt.Aggregator
	pol := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: strings.Split(strings.TrimSpace(strings.ReplaceAll(string(pubPolicy(t, mtasts.ModeTesting).Text), "\r", "")), "\n"),
		Domain: pubDomain, MXHost: []string{"mx1.hosted.example", "mx2.hosted.example"}}
	a.AddSuccess(pol, 1000)
	if failure != "" {
		a.AddFailure(pol, tlsrpt.FailureDetails{ResultType: failure, ReceivingMXHostname: "mx2.hosted.example"})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: "Big Sender", ContactInfo: "tlsrpt@big.example", PolicyDomain: pubDomain,
		Day: time.Now().UTC().Add(-48 * time.Hour)})
	reportstest.Put(t, st, r, nil)
	return "sqlite:" + p
}

// backdate rewrites the state file as if hosted.example had been served
// in testing for days.
func backdate(t *testing.T, cfg string, days int) {
	t.Helper()
	p := filepath.Join(filepath.Dir(cfg), "state.json")
	st, err := publish.LoadState(p)
	if err != nil || st.Domains[pubDomain] == nil {
		t.Fatalf("serve did not record %s: %v", pubDomain, err)
	}
	st.Domains[pubDomain].ModeSince = time.Now().Add(-time.Duration(days) * 24 * time.Hour)
	if err := st.Save(p); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyPromote: promote refuses while testing is too recent or the
// reports show failures enforce would defer, lists its evidence, and
// writes enforce (comments kept) when everything allows it or with
// --force.
func TestPolicyPromote(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", "  # keep this comment")
	port := startPublish(t, cfg)
	net := []string{"--config", cfg, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(port), "--smtp-port", strconv.Itoa(n.SMTPPort())}
	promote := func(db string, extra ...string) (int, string, string) {
		return runPolicyCLI(t, append(append(append([]string{"policy", "promote", "--db", db}, net...), extra...), pubDomain)...)
	}

	// Just started: the testing period is not over.
	code, out, errs := promote(reportsDB(t, ""))
	if code != ExitFailure || !strings.Contains(out, "[NO] testing period") || !strings.Contains(out, "[ok] mx: every live MX host matches") {
		t.Fatalf("fresh: exit %d\n%s%s", code, out, errs)
	}
	backdate(t, cfg, 20)
	// Failures that enforce would turn into deferred mail.
	bad := reportsDB(t, tlsrpt.ResultCertificateExpired)
	code, out, _ = promote(bad)
	if code != ExitFailure || !strings.Contains(out, "[NO] tls reports") || !strings.Contains(out, "certificate-expired at mx2.hosted.example (Big Sender)") ||
		!strings.Contains(out, "[ok] testing period") {
		t.Fatalf("bad reports: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "mode: testing") {
		t.Fatal("a refused promote changed the configuration")
	}
	// Clean reports allow it.
	code, out, errs = promote(reportsDB(t, ""))
	want := pubPolicy(t, mtasts.ModeEnforce)
	if code != ExitOK || !strings.Contains(out, "Wrote mode: enforce") || !strings.Contains(out, want.ID) {
		t.Fatalf("clean: exit %d\n%s%s", code, out, errs)
	}
	b, _ := os.ReadFile(cfg)
	if !strings.Contains(string(b), "mode: enforce") || !strings.Contains(string(b), "# keep this comment") {
		t.Errorf("configuration after promote:\n%s", b)
	}
	_, out, _ = runPolicyCLI(t, "policy", "records", "--json", "--config", cfg)
	var recs []struct{ ID, Mode string }
	if json.Unmarshal([]byte(out), &recs); len(recs) != 1 || recs[0].ID != want.ID || recs[0].Mode != "enforce" {
		t.Errorf("records after promote: %s", out)
	}
	// Already enforce: refused.
	if code, out, _ := promote(reportsDB(t, "")); code != ExitFailure || !strings.Contains(out, "[NO] mode") {
		t.Errorf("again: exit %d\n%s", code, out)
	}
}

// TestPolicyPromoteForce: --force writes enforce over failed evidence,
// with a warning.
func TestPolicyPromoteForce(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", "")
	port := startPublish(t, cfg)
	code, out, errs := runPolicyCLI(t, "policy", "promote", "--force", "--db", reportsDB(t, tlsrpt.ResultSTARTTLSNotSupported), "--config", cfg,
		"--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(port), "--smtp-port", strconv.Itoa(n.SMTPPort()), pubDomain)
	if code != ExitOK || !strings.Contains(errs, "WARNING: --force") || !strings.Contains(out, "[NO] testing period") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runPolicyCLI(t, "policy", "promote", "--config", cfg); code != ExitUsage {
		t.Errorf("no domain: exit %d", code)
	}
}

// TestPolicyRetire: retire writes mode none and says until when to serve
// it: the max_age of the policy served now (STS-PUB-6).
func TestPolicyRetire(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", "")
	startPublish(t, cfg)
	before := time.Now()
	code, out, errs := runPolicyCLI(t, "policy", "retire", "--config", cfg, pubDomain)
	if code != ExitOK || !strings.Contains(out, "Wrote mode: none") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	i := strings.Index(out, "TXT record until ")
	if i < 0 {
		t.Fatalf("no date:\n%s", out)
	}
	until, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.Fields(out[i+len("TXT record until "):])[0], ";"))
	if err != nil || until.Before(before.Add(86400*time.Second-time.Minute)) || until.After(time.Now().Add(86400*time.Second+time.Minute)) {
		t.Errorf("until %v (%v), want now + max_age 86400s", until, err)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "mode: none") {
		t.Errorf("%s", b)
	}
}

// TestPolicyRecordsMXMoveWarning: adding an MX pattern to an enforce
// policy warns until senders' cached copies of the served one expire.
func TestPolicyRecordsMXMoveWarning(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "enforce", "")
	startPublish(t, cfg)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(b, []byte("      mx_planned: [mx3.hosted.example]\n")...), 0o600)
	code, out, errs := runPolicyCLI(t, "policy", "records", "--config", cfg)
	if code != ExitOK || !strings.Contains(errs, "WARNING: hosted.example: new mx mx3.hosted.example: senders holding the cached enforce policy id") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}
