package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// The hosted domains of these tests and the policies serve must derive
// from their configuration.
const (
	pubDomain   = "hosted.example"
	pubMXConfig = `[mx1.hosted.example, mx2.hosted.example]`
)

func pubPolicy(t testing.TB, mode mtasts.Mode) *publish.Served {
	t.Helper()
	sv, err := publish.Render(pubDomain, mode, []string{"mx1.hosted.example", "mx2.hosted.example"}, 86400)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// pubNet is the fake Internet of the publish tests: hosted.example with
// two good MX hosts, its _mta-sts TXT record carrying the id of the
// testing policy and mta-sts.hosted.example pointing at 127.0.0.1, where
// the test's serve listens; stale.example publishes an id that is not
// the served policy's; nolive.example has no TXT record at all.
var pubNet = testnet.Shared{Start: func() (*testnet.Net, error) {
	sv, err := publish.Render(pubDomain, mtasts.ModeTesting, []string{"mx1.hosted.example", "mx2.hosted.example"}, 86400)
	if err != nil {
		return nil, err
	}
	good := func(name string) testnet.Domain {
		return testnet.Domain{Name: name,
			MX:      []testnet.MXHost{{Name: "mx1." + name, Pref: 10}, {Name: "mx2." + name, Pref: 20}},
			Records: []string{"mta-sts." + name + ". 300 IN A 127.0.0.1"}}
	}
	hosted := good(pubDomain)
	hosted.STSTXT = [][]string{{sv.Record()}}
	hosted.TLSRPTTXT = [][]string{{"v=TLSRPTv1; rua=mailto:tlsrpt@hosted.example"}}
	stale := good("stale.example")
	stale.STSTXT = [][]string{{"v=STSv1; id=old1"}}
	badmx := good("badmx.example")
	badmx.STSTXT = [][]string{{"v=STSv1; id=x1"}}
	badmx.MX[1].Cert = testnet.CertExpired
	// RFC 8461 §8.2: deleg.example delegates its policy to hosted.example
	// (both CNAMEs); halfdeleg.example only points its policy host there.
	deleg := testnet.Domain{Name: "deleg.example", Records: []string{
		"mta-sts.deleg.example. 300 IN CNAME mta-sts.hosted.example.",
		"_mta-sts.deleg.example. 300 IN CNAME _mta-sts.hosted.example."}}
	halfdeleg := testnet.Domain{Name: "halfdeleg.example", Records: []string{
		"mta-sts.halfdeleg.example. 300 IN CNAME mta-sts.hosted.example."}}
	sc := &testnet.Scenario{Domains: []testnet.Domain{hosted, stale, good("nolive.example"), badmx, deleg, halfdeleg}}
	return testnet.Start(context.Background(), sc, testnet.Options{})
}}

// writeLeaf writes a certificate of the test network's CA for names into
// dir and returns the file names.
func writeLeaf(t *testing.T, n *testnet.Net, dir, name string, kind testnet.CertKind) (certFile, keyFile string) {
	t.Helper()
	c, err := n.CA().Leaf(name, kind, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cb bytes.Buffer
	for _, der := range c.Certificate {
		pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	k, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, cb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// pubConfig writes a serve configuration hosting hosted.example in mode
// on 127.0.0.1 with certificates in a cert_dir, plus extra lines for the
// publish section, and returns its path.
func pubConfig(t *testing.T, n *testnet.Net, mode string, extra string) string {
	t.Helper()
	return pubConfigDomains(t, n, fmt.Sprintf(`
    - domain: %s
      mode: %s
      mx: %s
      max_age: 86400
`, pubDomain, mode, pubMXConfig), extra)
}

// pubConfigDomains writes a serve configuration with the given domains:
// list and extra lines of the publish section.
func pubConfigDomains(t *testing.T, n *testnet.Net, domains, extra string) string {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o700)
	for _, d := range []string{pubDomain, "nolive.example", "badmx.example"} {
		writeLeaf(t, n, certs, "mta-sts."+d, testnet.CertGood)
	}
	writeLeaf(t, n, certs, "mta-sts.stale.example", testnet.CertExpiring)
	y := fmt.Sprintf(`dns: [%q]
publish:
  listen: 127.0.0.1:0
  cert_dir: %q
  state_file: %q
  check_interval: -1s
%s
  domains:%s`, n.DNSAddr(), certs, filepath.Join(dir, "state.json"), extra, domains)
	p := filepath.Join(dir, "mailsts.yml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startPublish runs serve with the configuration file and returns the
// policy host's port.
func startPublish(t *testing.T, cfgFile string) int {
	t.Helper()
	_, port := startPublishRun(t, cfgFile)
	return port
}

// startPublishRun is startPublish returning the running serve too.
func startPublishRun(t *testing.T, cfgFile string) (*serveRun, int) {
	t.Helper()
	return startPublishRunWith(t, cfgFile, nil)
}

// startPublishRunWith is startPublishRun calling before (when not nil)
// once the listeners are open, before serve runs.
func startPublishRunWith(t *testing.T, cfgFile string, before func(*serveRun)) (*serveRun, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var errb bytes.Buffer
	env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: tempStateEnv(t)}
	args := []string{"--config", cfgFile, "--db", "sqlite:" + filepath.Join(t.TempDir(), "r.db"), "--log-level", "error",
		"--listen", "127.0.0.1:0", "--api=false"}
	sr, code := prepareServe(ctx, env, args)
	if sr == nil {
		cancel()
		t.Fatalf("prepareServe: exit %d: %s", code, errb.String())
	}
	if before != nil {
		before(sr)
	}
	done := make(chan error, 1)
	go func() { done <- sr.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
		sr.close()
	})
	ln := sr.servers[len(sr.servers)-1]
	if ln.name != "policy host" {
		t.Fatalf("last listener is %q", ln.name)
	}
	return sr, ln.ln.Addr().(*net.TCPAddr).Port
}

// TestServePublishFetchedBySender: the hosted policy, fetched through the
// fake Internet by mailsts's own sender-side client, is the configured
// one, under the id the TXT record carries (STS-PUB-1, STS-PUB-2,
// STS-PUB-3).
func TestServePublishFetchedBySender(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	port := startPublish(t, pubConfig(t, n, "testing", ""))
	dns, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	c := &mtasts.Client{DNS: dns, RootCAs: n.RootCAs(), HTTPSPort: port, Timeout: time.Hour}
	ctx := context.Background()
	rec, pol, err := c.Get(ctx, pubDomain)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := pubPolicy(t, mtasts.ModeTesting)
	if rec.ID != want.ID || pol.String() != want.Policy.String() {
		t.Errorf("got id %s policy %q, want %s %q", rec.ID, pol, want.ID, want.Policy)
	}
	raw, err := c.FetchRaw(ctx, pubDomain)
	if err != nil {
		t.Fatal(err)
	}
	if publish.PolicyID(raw.Body) != rec.ID || raw.ContentType != "text/plain" || raw.StatusCode != 200 {
		t.Errorf("raw fetch: %d %q %q", raw.StatusCode, raw.ContentType, raw.Body)
	}
	if raw.TLS == nil || raw.TLS.PeerCertificates[0].VerifyHostname("mta-sts."+pubDomain) != nil {
		t.Error("the policy host did not present its own certificate")
	}

	// mailsts resolve and mailsts check judge it as senders do.
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, Getenv: tempStateEnv(t)}
	netArgs := []string{"--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(port)}
	if code := Main(ctx, append(append([]string{"resolve", "--json"}, netArgs...), pubDomain), env); code != 0 {
		t.Fatalf("resolve: exit %d: %s %s", code, out.String(), errb.String())
	}
	var res struct {
		ID, Mode, Error string
		MX              []string
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.ID != want.ID || res.Mode != "testing" || res.Error != "" {
		t.Errorf("resolve: %+v %v: %s", res, err, out.String())
	}
	out.Reset()
	code := Main(ctx, append(append([]string{"check", "--json", "--strict", "--smtp-port", strconv.Itoa(n.SMTPPort())}, netArgs...), pubDomain), env)
	var rep struct {
		Verdict  string
		Findings []struct{ ID, Severity, Message string }
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("check: exit %d: %v: %s %s", code, err, out.String(), errb.String())
	}
	for _, f := range rep.Findings {
		if f.Severity == "fail" {
			t.Errorf("check: %s: %s", f.ID, f.Message)
		}
	}
}

// TestServePublishRefusesBadConfig: a bad publish section stops serve
// from starting with one line per problem.
func TestServePublishRefusesBadConfig(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "strict", "")
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte("max_age: 86400"), []byte("max_age: 99999999"), 1)
	os.WriteFile(cfg, b, 0o600)
	var errb bytes.Buffer
	env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: tempStateEnv(t)}
	sr, code := prepareServe(context.Background(), env, []string{"--config", cfg, "--db", "sqlite:" + filepath.Join(t.TempDir(), "r.db"),
		"--listen", "127.0.0.1:0", "--api=false"})
	if sr != nil || code != ExitError {
		t.Fatalf("started: %d", code)
	}
	for _, want := range []string{`hosted.example: mode "strict" is not enforce`, "hosted.example: max_age 99999999 is above"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

// TestServePublishPlainHTTP: behind a TLS proxy the policy host serves
// plain HTTP, matching the Host header the proxy passes on.
func TestServePublishPlainHTTP(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", "  plain_http: true")
	b, _ := os.ReadFile(cfg)
	b = regexpCertDir.ReplaceAll(b, nil)
	os.WriteFile(cfg, b, 0o600)
	port := startPublish(t, cfg)
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, publish.WellKnownPath), nil)
	req.Host = "MTA-STS.hosted.example"
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := pubPolicy(t, mtasts.ModeTesting); res.StatusCode != 200 || string(body) != string(want.Text) {
		t.Errorf("%d %q", res.StatusCode, body)
	}
}

var regexpCertDir = regexp.MustCompile(`(?m)^  cert_dir: .*\n`)

// TestServePublishChecksMetrics: serve's checks of its hosted domains
// end up in the log and in the metrics on publish.metrics_listen.
func TestServePublishChecksMetrics(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfigDomains(t, n, fourDomains, "  metrics_listen: 127.0.0.1:0")
	sr, port := startPublishRun(t, cfg)
	pr := sr.publish
	dns, _ := dnsresolve.NewClient(n.DNSAddr())
	// The checks of serve, aimed at the test network's ports.
	c := statusChecker(&mtasts.Client{DNS: dns, RootCAs: n.RootCAs(), HTTPSPort: port, Timeout: time.Hour}, n.SMTPPort())
	var logb bytes.Buffer
	sts := c.CheckAll(context.Background(), pr.current(), pr.observer, slog.New(slog.NewTextHandler(&logb, nil)))
	if len(sts) != 4 {
		t.Fatalf("%d statuses", len(sts))
	}
	if !strings.Contains(logb.String(), "finding=publish.txt.stale") || !strings.Contains(logb.String(), "domain=badmx.example finding=publish.mx.tls host=mx2.badmx.example") {
		t.Errorf("log:\n%s", logb.String())
	}
	res, err := http.Get("http://" + pr.metricsLn.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`mailsts_publish_domain_ok{domain="hosted.example"} 1`,
		`mailsts_publish_domain_ok{domain="badmx.example"} 0`,
		`mailsts_publish_findings{domain="nolive.example",id="publish.txt.missing"} 1`,
		`mailsts_publish_findings{domain="stale.example",id="publish.cert.expiring"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestServePublishReload: a reload (SIGHUP) serves the edited
// configuration and records the new mode in the state file; an invalid
// edit keeps the previous policies served.
func TestServePublishReload(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", "")
	sr, _ := startPublishRun(t, cfg)
	pr := sr.publish
	host := "mta-sts." + pubDomain
	if err := publish.SetModeInFile(cfg, pubDomain, "enforce"); err != nil {
		t.Fatal(err)
	}
	if err := pr.reload(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	want := pubPolicy(t, mtasts.ModeEnforce)
	if got := pr.host.Lookup(host); got == nil || got.ID != want.ID {
		t.Fatalf("after reload: %+v", got)
	}
	st, err := publish.LoadState(filepath.Join(filepath.Dir(cfg), "state.json"))
	if err != nil || st.Domains[pubDomain].Mode != "enforce" || len(st.Domains[pubDomain].Earlier) != 1 {
		t.Errorf("state: %+v %v", st.Domains[pubDomain], err)
	}
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte("max_age: 86400"), []byte("max_age: 99999999"), 1), 0o600)
	if err := pr.reload(context.Background(), true); err == nil || !strings.Contains(err.Error(), "max_age 99999999") {
		t.Errorf("bad edit: %v", err)
	}
	if got := pr.host.Lookup(host); got == nil || got.ID != want.ID {
		t.Errorf("after a bad edit: %+v", got)
	}
}

// TestServePublishMXAutoRefresh: an mx: auto domain follows its live MX
// records at each refresh (a new id for the new policy), and a refresh
// that finds the MX gone keeps serving the last good policy.
func TestServePublishMXAutoRefresh(t *testing.T) {
	t.Parallel()
	dom := testnet.Domain{Name: "auto.example", MX: []testnet.MXHost{{Name: "mx1.auto.example", Pref: 10}},
		Records: []string{"mta-sts.auto.example. 300 IN A 127.0.0.1"}}
	n, err := testnet.Start(context.Background(), &testnet.Scenario{Domains: []testnet.Domain{dom}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cfg := pubConfigDomains(t, n, "\n    - {domain: auto.example, mode: enforce, mx: auto, max_age: 86400}\n", "")
	sr, _ := startPublishRun(t, cfg)
	pr := sr.publish
	before := pr.host.Lookup("mta-sts.auto.example")
	if before == nil || !strings.Contains(string(before.Text), "mx: mx1.auto.example\r\n") {
		t.Fatalf("%+v", before)
	}
	dom.MX = append(dom.MX, testnet.MXHost{Name: "mx2.auto.example", Pref: 20})
	if err := n.Set(dom); err != nil {
		t.Fatal(err)
	}
	if err := pr.reload(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	after := pr.host.Lookup("mta-sts.auto.example")
	if after == nil || !strings.Contains(string(after.Text), "mx: mx2.auto.example\r\n") || after.ID == before.ID {
		t.Fatalf("after the MX change: %+v", after)
	}
	dom.MX = nil
	n.Set(dom)
	if err := pr.reload(context.Background(), false); err == nil || !strings.Contains(err.Error(), "no MX records") {
		t.Errorf("MX gone: %v", err)
	}
	if got := pr.host.Lookup("mta-sts.auto.example"); got == nil || got.ID != after.ID {
		t.Errorf("after a failed refresh: %+v", got)
	}
}
