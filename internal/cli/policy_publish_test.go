package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish/dnsupdate/dnsupdatetest"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/internal/watchdog"
	"github.com/mailsts/mailsts/mtasts"
)

// TestPolicyPublishDNSUpdate: ids reach a real primary (BIND) only once
// the policy is served (STS-PUB-4): `policy publish` before serve runs is
// refused and changes nothing; serve publishes at start; an enforce
// domain whose MX fails is refused, by serve and by the command, and its
// zone stays unchanged; refusals are counted in the metrics.
func TestPolicyPublishDNSUpdate(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	p := dnsupdatetest.Start(t, dnsupdatetest.Options{Zone: "example", Records: `_mta-sts.hosted IN TXT "v=STSv1; id=old1;"`})
	domains := fmt.Sprintf(`
    - domain: %s
      mode: testing
      mx: %s
      max_age: 86400
      records: {rua: "mailto:tlsrpt@hosted.example"}
    - domain: badmx.example
      mode: enforce
      mx: [mx1.badmx.example, mx2.badmx.example]
      max_age: 86400
`, pubDomain, pubMXConfig)
	cfg := pubConfigDomains(t, n, domains, fmt.Sprintf("  metrics_listen: 127.0.0.1:0\n  dns_update: {server: %q, zone: example, key_file: %q, ttl: 60}", p.Addr, p.KeyFile))
	state := filepath.Join(t.TempDir(), "state")
	want := pubPolicy(t, mtasts.ModeTesting)
	serial := func() uint32 {
		s, err := p.Serial()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The policy host port senders use: not serving yet.
	port := testnet.RefusedPortFor(t)
	publishArgs := func(extra ...string) []string {
		return append([]string{"policy", "publish", "--config", cfg, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(),
			"--https-port", fmt.Sprint(port), "--smtp-port", fmt.Sprint(n.SMTPPort())}, extra...)
	}
	before := serial()
	code, out, errOut := runStdin(t, nil, state, publishArgs("--json")...)
	var ans []struct {
		Domain, Outcome, Reason, ID string
		Records                     []struct{ Name, Value string }
	}
	if err := json.Unmarshal([]byte(out), &ans); err != nil || len(ans) != 2 || code != ExitFailure {
		t.Fatalf("publish before serve: exit %d, %v: %s %s", code, err, out, errOut)
	}
	for _, a := range ans {
		if a.Outcome != "refused" || !strings.Contains(a.Reason, "policy host") {
			t.Errorf("before serve: %+v", a)
		}
	}
	if serial() != before || !slices.Equal(p.TXT(t, "_mta-sts.hosted.example"), []string{"v=STSv1; id=old1;"}) {
		t.Error("a refused publication changed the zone")
	}

	// serve publishes at start, once its policy is fetched as a sender.
	dns, _ := dnsresolve.NewClient(n.DNSAddr())
	sr, _ := startPublishRunWith(t, cfg, func(sr *serveRun) {
		_, pport := listenHostPort(sr.servers[len(sr.servers)-1].ln)
		sr.publish.announcer.Checker = statusChecker(&mtasts.Client{DNS: dns, RootCAs: n.RootCAs(), HTTPSPort: pport, Timeout: time.Hour}, n.SMTPPort())
		port = pport
	})
	watchdog.Within(t, 2*time.Minute, func() struct{} { <-sr.publish.firstRound; return struct{}{} })
	if got := p.TXT(t, "_mta-sts.hosted.example"); !slices.Equal(got, []string{want.Record() + ";"}) {
		t.Errorf("after serve started: _mta-sts %q, want %q", got, want.Record())
	}
	if got := p.TXT(t, "_smtp._tls.hosted.example"); !slices.Equal(got, []string{"v=TLSRPTv1; rua=mailto:tlsrpt@hosted.example"}) {
		t.Errorf("_smtp._tls %q", got)
	}
	if got := p.TXT(t, "_mta-sts.badmx.example"); len(got) != 0 {
		t.Errorf("enforce with a failing MX published: %q", got)
	}
	// The dashboard's page shows the last publication of each domain.
	for _, r := range sr.publish.rows(nil) {
		switch r.Domain {
		case pubDomain:
			if !strings.HasPrefix(r.DNS, "published ") {
				t.Errorf("dashboard row %+v", r)
			}
		case "badmx.example":
			if !strings.HasPrefix(r.DNS, "refused ") || !strings.Contains(r.DNSDetail, "mx2.badmx.example") {
				t.Errorf("dashboard row %+v", r)
			}
		}
	}
	res, err := http.Get("http://" + sr.publish.metricsLn.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, m := range []string{`mailsts_publish_dns_updates_total{outcome="published"} 1`, `mailsts_publish_dns_updates_total{outcome="refused"} 1`} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}

	// The command, now that the policies are served: enforce with a
	// failing MX is refused, the zone unchanged.
	before = serial()
	code, out, errOut = runStdin(t, nil, state, publishArgs("badmx.example")...)
	if code != ExitFailure || !strings.Contains(out, "badmx.example: refused, nothing written") || !strings.Contains(out, "mx2.badmx.example") {
		t.Errorf("enforce with a failing MX: exit %d: %s %s", code, out, errOut)
	}
	if serial() != before {
		t.Error("a refused enforce publication changed the zone")
	}
	code, out, errOut = runStdin(t, nil, state, publishArgs("--dry-run", pubDomain)...)
	if code != ExitOK || !strings.Contains(out, "would publish") || !strings.Contains(out, want.ID) || serial() != before {
		t.Errorf("dry run: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut = runStdin(t, nil, state, publishArgs("--dry-run", "nothosted.example")...)
	checkUsageError(t, code, out, errOut, "policy publish")
	code, out, errOut = runStdin(t, nil, state, publishArgs(pubDomain)...)
	if code != ExitOK || !strings.Contains(out, pubDomain+": published") {
		t.Errorf("publish: exit %d: %s %s", code, out, errOut)
	}
	// A reload that changes the policy publishes the new id; an invalid
	// edit publishes nothing.
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "max_age: 86400", "max_age: 604800", 1)), 0o600)
	if err := sr.publish.reload(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	newID := sr.publish.current().Domain(pubDomain).Policy().ID
	if newID == want.ID {
		t.Fatal("the edit did not change the id")
	}
	// The round the reload asks for (run here, where its end is known).
	sr.publish.effectsRound(t.Context())
	if got := p.TXT(t, "_mta-sts.hosted.example"); !slices.Equal(got, []string{"v=STSv1; id=" + newID + ";"}) {
		t.Errorf("after reload: _mta-sts %q, want id %s", got, newID)
	}
	before = serial()
	b, _ = os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "max_age: 604800", "max_age: 99999999", 1)), 0o600)
	if err := sr.publish.reload(t.Context(), true); err == nil {
		t.Fatal("invalid edit applied")
	}
	sr.publish.effectsRound(t.Context())
	if serial() != before {
		t.Error("an invalid edit changed the zone")
	}
	// Without dns_update, only --dry-run runs.
	b, _ = os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), "max_age: 99999999", "max_age: 86400", 1))
	noUpdate := filepath.Join(t.TempDir(), "no-update.yml")
	os.WriteFile(noUpdate, []byte(strings.Split(string(b), "  dns_update:")[0]+"  domains:"+strings.SplitN(string(b), "  domains:", 2)[1]), 0o600)
	if code, _, errOut := runStdin(t, nil, state, "policy", "publish", "--config", noUpdate, "--dns", n.DNSAddr(), pubDomain); code != ExitError || !strings.Contains(errOut, "dns_update is not configured") {
		t.Errorf("no dns_update: exit %d: %s", code, errOut)
	}
}
