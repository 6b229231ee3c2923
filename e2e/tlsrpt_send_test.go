//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/cli"
	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/tlsrpt"
)

// sendCase is one message sent through Postfix for the TLS reporting
// test, and the report its domain must get for the day.
type sendCase struct {
	id     string // checklist IDs
	domain string
	mx     string // the MX host Postfix connects to
	// deliver: the message must reach mx; otherwise it must stay deferred.
	deliver bool
	// want is the report's content in the form of reportSummary.
	want string
}

// Names of the TLS reporting test's own part of the fake Internet.
const (
	sendSubmitter  = "sender.example"              // contact-info's domain, DKIM d=
	sendReportsBox = "tlsrpt@reports.example"      // the mailto rua
	sendReceiver   = "reports.receiver.example"    // mailsts serve's name
	sendHTTPSPort  = 8443                          // mailsts serve's port
	sendMetrics    = "127.0.0.1:9463"              // tlsrpt collect --metrics
	sendPolicydAt  = "127.0.0.1:8465"              // mailsts policyd
	sendContact    = "tlsrpt@" + sendSubmitter     // contact-info
	sendFrom       = "tlsrpt-out@" + sendSubmitter // the report mail's sender
)

// sendCases are what a real Postfix under mailsts policyd meets on the
// fake Internet, one message each, and what the day's report of each
// domain must say: the sessions Postfix made (one per message: retries
// are an hour away) and the failures it met.
var sendCases = []sendCase{
	{
		id: "RPT-JSON-4 success", domain: "enforce.example", mx: "mx1.enforce.example", deliver: true,
		want: "sts ok=1 fail=0",
	},
	{
		id: "RPT-JSON-5 starttls-not-supported", domain: "nostarttls.example", mx: "mx1.nostarttls.example",
		want: "sts ok=0 fail=1 [starttls-not-supported mx1.nostarttls.example x1]",
	},
	{
		id: "RPT-JSON-5 certificate-host-mismatch", domain: "badmxcert.example", mx: "mx1.badmxcert.example",
		want: "sts ok=0 fail=1 [certificate-host-mismatch mx1.badmxcert.example x1]",
	},
	{
		// Testing mode: delivered over TLS with an expired certificate.
		// Postfix logs "Untrusted" without the reason at the level
		// policyd answers for testing mode, hence not-trusted, not expired.
		id: "RPT-JSON-5 STS-CERT-2 testing", domain: "testing-badcert.example", mx: "mx1.testing-badcert.example", deliver: true,
		want: "sts ok=0 fail=1 [certificate-not-trusted mx1.testing-badcert.example x1]",
	},
	{
		id: "RPT-JSON-3 no-policy-found", domain: "nosts.example", mx: "mx1.nosts.example", deliver: true,
		want: "no-policy-found ok=1 fail=0",
	},
	{
		// Two MX hosts: the preferred one's certificate is self-signed,
		// the second is good. Two sessions, one failed.
		id: "RPT-JSON-5 two MX", domain: "dane-partial.example", mx: "mx2.dane-partial.example", deliver: true,
		want: "sts ok=1 fail=1 [certificate-not-trusted mx1.dane-partial.example x1]",
	},
	{
		// The policy host's certificate has expired: policyd reports the
		// discovery failure, and Postfix delivers without a policy.
		id: "RPT-JSON-5 sts-webpki-invalid", domain: "expired.example", mx: "mx1.expired.example", deliver: true,
		want: "no-policy-found ok=1 fail=1 [sts-webpki-invalid  x1]",
	},
}

// sendScenario is the e2e scenario (dane_test.go) with an _smtp._tls record for
// every domain of sendCases (a mailto and an https rua), the report
// receiver's name, the mailbox domain of the mailto rua and the
// submitter's DKIM key.
func sendScenario(dkimPub ed25519.PublicKey) *testnet.Scenario {
	sc := scenario()
	rua := fmt.Sprintf("v=TLSRPTv1; rua=mailto:%s,https://%s:%d/tlsrpt", sendReportsBox, sendReceiver, sendHTTPSPort)
	for i := range sc.Domains {
		if slices.ContainsFunc(sendCases, func(c sendCase) bool { return c.domain == sc.Domains[i].Name }) {
			sc.Domains[i].TLSRPTTXT = [][]string{{rua}}
		}
	}
	key := base64.StdEncoding.EncodeToString(dkimPub)
	sc.Domains = append(sc.Domains,
		testnet.Domain{Name: sendSubmitter, Records: []string{
			`tlsrpt._domainkey.` + sendSubmitter + `. 300 IN TXT "v=DKIM1; k=ed25519; s=tlsrpt; p=` + key + `"`,
		}},
		// The mailbox of the mailto rua: no MTA-STS, a good certificate,
		// and a TLSRPT record of its own, so that the report mail's own
		// session would be reportable if it were counted.
		testnet.Domain{Name: "reports.example", MX: []testnet.MXHost{{Name: "mx1.reports.example", Pref: 10}},
			TLSRPTTXT: [][]string{{"v=TLSRPTv1; rua=mailto:" + sendReportsBox}}},
		testnet.Domain{Name: "receiver.example", Records: []string{sendReceiver + `. 300 IN A 127.0.0.1`}},
	)
	return sc
}

// TestTLSRPTSend is the sending side of TLS reporting (RFC 8460) against a
// real Postfix: mail goes to MX hosts with good and broken certificates
// under mailsts policyd (tlsrpt_results on), `mailsts tlsrpt collect`
// follows Postfix's log, the day's reports are built (by the outgoing
// package's Builder, with the clock a day ahead, as a second node would)
// and delivered through the outbox to mailsts serve's HTTPS receiver and,
// DKIM-signed through the same Postfix, to a mailbox that `mailsts tlsrpt
// ingest` reads. Both receivers must hold reports that say exactly what
// Postfix did, and the report mail itself must not be counted.
func TestTLSRPTSend(t *testing.T) {
	if ns := os.Getenv(envInside); ns != "" {
		testSendInside(t, ns)
		return
	}
	t.Parallel()
	requirePrereqs(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	bin := buildMailsts(t, ctx, t.TempDir())
	ns := newNamespace(t, ctx)
	reexecInside(t, ctx, ns, "TestTLSRPTSend", envBinary+"="+bin)
}

func testSendInside(t *testing.T, ns string) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	bin := os.Getenv(envBinary)
	if bin == "" {
		t.Fatal(envBinary + " is not set: the outer test builds mailsts and sets it")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, err := testnet.Start(ctx, sendScenario(pub), testnet.Options{
		IP: netip.MustParseAddr("127.0.0.1"), DNSPort: 53, HTTPSPort: 443, SMTPPort: 25,
	})
	if err != nil {
		t.Fatalf("testnet in namespace %s: %v", ns, err)
	}
	t.Cleanup(n.Close)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sendDB := filepath.Join(dir, "tlsrpt-send.db")

	// mailsts policyd, recording its answers and failures.
	policydCfg := file("policyd.yml", "tlsrpt_results: sqlite:"+sendDB+"\n")
	pd := startProcess(t, "mailsts policyd", nil, bin, "policyd", "--config", policydCfg,
		"--listen", sendPolicydAt, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(),
		"--https-port", strconv.Itoa(n.HTTPSPort()), "--state-dir", t.TempDir(), "--cache", "memory")
	waitReady(t, ctx, policyDaemon{name: "mailsts", addr: sendPolicydAt, enforces: true}, pd)

	// Postfix, without retries during the test: every message makes one
	// delivery attempt, so the sessions to report are known.
	pf := startPostfix(t, ctx, "tlsrpt", sendPolicydAt, n.CAFile(),
		"queue_run_delay=1h", "minimal_backoff_time=1h", "maximal_backoff_time=1h")
	if err := poll(ctx, 20*time.Second, 100*time.Millisecond, func() error {
		_, err := os.Stat(pf.maillog)
		return err
	}); err != nil {
		t.Fatalf("Postfix log %s: %v", pf.maillog, err)
	}

	// mailsts serve: the HTTPS receiver of the https rua.
	leaf, err := n.CA().Leaf(sendReceiver, testnet.CertGood, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var chain []byte
	for _, der := range leaf.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	certFile := file("receiver.pem", string(chain))
	keyFile := file("receiver.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	httpDB := filepath.Join(dir, "received-https.db")
	receiverAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sendHTTPSPort))
	sv := startProcess(t, "mailsts serve", nil, bin, "serve", "--listen", receiverAddr,
		"--tls-cert", certFile, "--tls-key", keyFile, "--db", "sqlite:"+httpDB, "--api=false")

	// mailsts tlsrpt collect: follows the Postfix log into the results
	// store; building is left to the test (another node, in effect).
	col := startProcess(t, "mailsts tlsrpt collect", nil, bin, "tlsrpt", "collect",
		"--no-socket", "--postfix-log", pf.maillog, "--db", "sqlite:"+sendDB, "--no-build", "--no-deliver",
		"--metrics", sendMetrics, "--stats-interval", "0", "--log-level", "debug")
	for _, p := range []*process{sv, col} {
		addr := map[*process]string{sv: receiverAddr, col: sendMetrics}[p]
		if err := poll(ctx, 20*time.Second, 100*time.Millisecond, func() error {
			if done, err := p.exited(); done {
				return fmt.Errorf("%w: %s exited: %w", errGiveUp, p.name, err)
			}
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			t.Fatalf("%s not listening on %s: %v\n%s", p.name, addr, err, p.out.String())
		}
	}

	// The follower started at the log's end: the lines before are not
	// its. Once the idle log and the count of lines read stand still,
	// their difference is what it skipped.
	skipped := skippedLines(t, ctx, pf)

	// The mail.
	rcpt := func(c sendCase) string { return "rpt@" + c.domain }
	for _, c := range sendCases {
		pf.send(t, ctx, rcpt(c), "token-tlsrpt-"+c.domain)
	}
	if err := poll(ctx, 60*time.Second, 250*time.Millisecond, func() error {
		q, err := pf.queued(ctx)
		if err != nil {
			return err
		}
		var pending []string
		for _, c := range sendCases {
			got := len(n.Received(c.mx))
			_, deferred := deferredReason(q, rcpt(c))
			if (c.deliver && got == 0) || (!c.deliver && !deferred) {
				pending = append(pending, c.domain)
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("not settled: %s", strings.Join(pending, ", "))
		}
		return nil
	}); err != nil {
		q, _ := pf.queued(ctx)
		t.Fatalf("mail did not settle: %v\nqueue: %+v", err, q)
	}
	for _, c := range sendCases {
		// One delivery attempt per message: one status line.
		if lines := pf.logLines("to=<" + rcpt(c) + ">"); len(lines) != 1 {
			t.Errorf("%s: Postfix logged %d delivery attempts, want 1:\n%s", c.domain, len(lines), strings.Join(lines, "\n"))
		}
	}
	waitCollected(t, ctx, pf, col, skipped)

	// The day's reports, built as the node that owns building would after
	// midnight UTC: the same Builder, its clock a day ahead.
	ahead := func() time.Time { return time.Now().Add(25 * time.Hour) }
	results, err := outgoing.Open(ctx, "sqlite:"+sendDB, dir, outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer results.Close()
	reportsCfg := file("reports.yml", fmt.Sprintf(`dns: ["127.0.0.1:53"]
send:
  organization_name: mailsts e2e
  contact_info: %s
delivery:
  db: sqlite:%s
  spread: 1s
  retry_base: 1s
  ca_file: %s
  https_verify: require
  https_allow_private: true
  mail:
    from: %s
    sendmail: %s
    dkim:
      domain: %s
      selector: tlsrpt
      key_file: %s
`, sendContact, filepath.Join(dir, "tlsrpt-outbox.db"), n.CAFile(), sendFrom,
		sendmailWrapper(t, dir, pf), sendSubmitter, dkimKeyFile(t, dir, priv)))
	cfg, err := reports.LoadConfig(reportsCfg)
	if err != nil {
		t.Fatal(err)
	}
	obStore, err := outbox.Open(ctx, cfg.Delivery.DB, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer obStore.Close()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ob, err := cli.NewOutbox(cfg, obStore, log)
	if err != nil {
		t.Fatal(err)
	}
	ob.Now = ahead
	built := map[string]outgoing.BuiltReport{}
	b := &outgoing.Builder{Store: results, OrganizationName: cfg.Send.OrganizationName, ContactInfo: cfg.Send.ContactInfo,
		Now: ahead, Logger: log, Sink: outgoing.SinkFunc(func(ctx context.Context, r outgoing.BuiltReport) error {
			built[r.PolicyDomain] = r
			return ob.Enqueue(ctx, outbox.Report(r))
		})}
	bs, err := b.RunOnce(ctx)
	if err != nil || bs.Failed > 0 {
		t.Fatalf("building: %+v %v", bs, err)
	}
	for _, c := range sendCases {
		if _, ok := built[c.domain]; !ok {
			t.Errorf("%s: no report built (built: %v)", c.domain, slices.Sorted(maps.Keys(built)))
		}
	}

	// Delivery: one pass sends every report to both rua.
	pass, err := ob.RunOnce(ctx)
	if err != nil {
		t.Fatalf("outbox pass: %v", err)
	}
	if pass.Sent != 2*len(built) || pass.Retrying+pass.GivenUp != 0 {
		entries, _ := obStore.List(ctx, outbox.ListOptions{})
		t.Fatalf("outbox pass %+v, want %d sent; outbox:\n%+v", pass, 2*len(built), entries)
	}

	// The report mail travels through Postfix to the mailbox; each is
	// ingested as an MTA pipe would.
	mailDB := filepath.Join(dir, "received-mail.db")
	var mails []testnet.Message
	if err := poll(ctx, 30*time.Second, 250*time.Millisecond, func() error {
		mails = n.Received("mx1.reports.example")
		if len(mails) < len(built) {
			return fmt.Errorf("%d of %d report mails arrived", len(mails), len(built))
		}
		return nil
	}); err != nil {
		q, _ := pf.queued(ctx)
		t.Fatalf("%v; queue: %+v", err, q)
	}
	for _, m := range mails {
		if !m.TLS || !slices.Equal(m.To, []string{sendReportsBox}) {
			t.Errorf("report mail to %v, TLS %v", m.To, m.TLS)
		}
		cmd := exec.CommandContext(ctx, bin, "tlsrpt", "ingest", "--db", "sqlite:"+mailDB, "--dns", "127.0.0.1:53")
		cmd.Stdin = bytes.NewReader(m.Data)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("mailsts tlsrpt ingest: %v\n%s", err, out)
		}
	}

	// Both receivers hold each report once, byte-equivalent to what was
	// built, and it says what Postfix did.
	httpStore, err := sqlstore.Open(ctx, "sqlite:"+httpDB, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer httpStore.Close()
	mailStore, err := sqlstore.Open(ctx, "sqlite:"+mailDB, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mailStore.Close()
	for _, c := range sendCases {
		br, ok := built[c.domain]
		if !ok {
			continue
		}
		want, err := decodeBuilt(br)
		if err != nil {
			t.Fatalf("%s: built report: %v", c.domain, err)
		}
		if got := reportSummary(want); got != c.want {
			t.Errorf("%s %s: built report says %q, want %q", c.id, c.domain, got, c.want)
		}
		for _, rc := range []struct {
			name   string
			st     reports.Store
			source string
		}{{"HTTPS receiver", httpStore, reports.SourceHTTP}, {"mail ingest", mailStore, reports.SourceMail}} {
			got, err := rc.st.Show(ctx, br.ReportID)
			if err != nil || len(got) != 1 {
				t.Errorf("%s: %s holds %d reports %s (%v), want 1", c.domain, rc.name, len(got), br.ReportID, err)
				continue
			}
			if got[0].Source != rc.source {
				t.Errorf("%s: %s stored source %q", c.domain, rc.name, got[0].Source)
			}
			if rc.source == reports.SourceMail && (!got[0].Authenticated || got[0].DKIMDomain != sendSubmitter) {
				t.Errorf("%s: mail report authenticated %v by %q, want DKIM of %s (RPT-MAIL-5)",
					c.domain, got[0].Authenticated, got[0].DKIMDomain, sendSubmitter)
			}
			if s := reportSummary(got[0].Report); s != c.want {
				t.Errorf("%s %s: %s stored %q, want %q", c.id, c.domain, rc.name, s, c.want)
			}
			for _, p := range got[0].Report.Policies {
				if p.Policy.Domain != c.domain {
					t.Errorf("%s: %s: policy-domain %q", c.domain, rc.name, p.Policy.Domain)
				}
			}
		}
	}

	// The report mail's own sessions were not counted (no report about
	// reports): reports.example has no results, although Postfix
	// delivered to it over TLS and it publishes a TLSRPT record.
	waitCollected(t, ctx, pf, col, skipped)
	if lines := pf.logLines("to=<" + sendReportsBox + ">"); len(lines) < len(built) {
		t.Errorf("Postfix logged %d deliveries of report mail, want %d", len(lines), len(built))
	}
	pending, err := results.Pending(ctx, time.Now().Add(72*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, dd := range pending {
		t.Errorf("results for %s on %s after the reports were built: the report mail was counted", dd.Domain, dd.Day.Format(time.DateOnly))
	}
	t.Logf("TLS reporting end to end: %d reports, %d deliveries, %d report mails in %v",
		len(built), pass.Sent, len(mails), time.Since(started).Round(time.Millisecond))
}

// skippedLines returns how many lines of the idle Postfix log `mailsts
// tlsrpt collect` did not read because they were there when it started.
func skippedLines(t *testing.T, ctx context.Context, pf *postfixInstance) int {
	t.Helper()
	last := [2]float64{-1, -1}
	var skipped int
	err := poll(ctx, 20*time.Second, 300*time.Millisecond, func() error {
		lines, err := grepFile(pf.maillog, func(string) bool { return true })
		if err != nil {
			return err
		}
		m, err := scrape(ctx, "http://"+sendMetrics+"/metrics")
		if err != nil {
			return err
		}
		read, ok := m["mailsts_tlsrpt_collect_log_lines_total"]
		if !ok {
			return errors.New("no log_lines metric")
		}
		now := [2]float64{float64(len(lines)), read}
		if now != last {
			last = now
			return fmt.Errorf("log at %d lines, %v read", len(lines), read)
		}
		skipped = len(lines) - int(read)
		return nil
	})
	if err != nil {
		t.Fatalf("Postfix log did not stand still: %v", err)
	}
	return skipped
}

// waitCollected waits until `mailsts tlsrpt collect` has read every line
// of the Postfix log written so far (but the skipped ones before it
// started) and stored every result it recorded,
// as its metrics tell.
func waitCollected(t *testing.T, ctx context.Context, pf *postfixInstance, col *process, skipped int) {
	t.Helper()
	lines, err := grepFile(pf.maillog, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, 30*time.Second, 200*time.Millisecond, func() error {
		if done, err := col.exited(); done {
			return fmt.Errorf("%w: tlsrpt collect exited: %w", errGiveUp, err)
		}
		m, err := scrape(ctx, "http://"+sendMetrics+"/metrics")
		if err != nil {
			return err
		}
		read := m["mailsts_tlsrpt_collect_log_lines_total"]
		rec, wr := m[`mailsts_tlsrpt_collect_results_total{outcome="recorded"}`], m[`mailsts_tlsrpt_collect_results_total{outcome="written"}`]
		if read < float64(len(lines)-skipped) || rec != wr {
			return fmt.Errorf("collect read %v of %d log lines, wrote %v of %v results", read, len(lines)-skipped, wr, rec)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, col.out.String())
	}
}

// scrape reads a Prometheus text exposition into name{labels} → value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// reportSummary is what the test compares: per policy (sorted), its type,
// totals and failure details with the receiving MX host and count.
func reportSummary(r *tlsrpt.Report) string {
	var ps []string
	for _, p := range r.Policies {
		s := fmt.Sprintf("%s ok=%d fail=%d", p.Policy.Type, p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount)
		var ds []string
		for _, d := range p.FailureDetails {
			ds = append(ds, fmt.Sprintf("%s %s x%d", d.ResultType, d.ReceivingMXHostname, d.FailedSessionCount))
		}
		slices.Sort(ds)
		if len(ds) > 0 {
			s += " [" + strings.Join(ds, "; ") + "]"
		}
		ps = append(ps, s)
	}
	slices.Sort(ps)
	return strings.Join(ps, " | ")
}

// decodeBuilt parses a built report's gzip body strictly.
func decodeBuilt(br outgoing.BuiltReport) (*tlsrpt.Report, error) {
	js, _, err := tlsrpt.Decode(bytes.NewReader(br.Body), tlsrpt.MediaTypeGzip, tlsrpt.Limits{})
	if err != nil {
		return nil, err
	}
	return tlsrpt.ParseStrict(js)
}

// sendmailWrapper is the outbox's sendmail: Postfix's, for this instance.
func sendmailWrapper(t *testing.T, dir string, pf *postfixInstance) string {
	t.Helper()
	p := filepath.Join(dir, "sendmail")
	script := fmt.Sprintf("#!/bin/sh\nexec %s -C %s \"$@\"\n", pf.sendmail, pf.conf)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// dkimKeyFile writes the submitter's DKIM key as PKCS #8 PEM.
func dkimKeyFile(t *testing.T, dir string, priv ed25519.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "dkim.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testWriter sends a logger's lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
