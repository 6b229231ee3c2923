package outbox

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// TestSendmail: without a relay the signed message goes to sendmail's
// stdin with -f FROM -- TO; EX_TEMPFAIL is retried, EX_NOUSER given up.
func TestSendmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code  int
		state State
	}{{0, StateSent}, {75, StateRetrying}, {67, StateGivenUp}} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "msg")
			script := filepath.Join(dir, "sendmail")
			body := "#!/bin/sh\necho \"$@\" > " + out + ".args\ncat > " + out + "\necho 'sendmail says no' >&2\nexit " + strconv.Itoa(tc.code) + "\n"
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			s := openSQLite(t)
			o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua("mailto:tls%2Creports@policy.example")}),
				Mail: &Mailer{Sendmail: script, From: "tlsrpt@sender.example", DKIM: &DKIMSigner{Domain: "sender.example", Selector: "s", Key: priv}},
				Now:  newClock(t0).Now, Config: Config{DisableSpread: true}}
			if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
				t.Fatal(err)
			}
			runPass(t, o)
			e := only(t, s)
			if e.State != tc.state {
				t.Fatalf("state %s (%q), want %s", e.State, e.LastError, tc.state)
			}
			if tc.code != 0 && !strings.Contains(e.LastError, "sendmail says no") {
				t.Errorf("error %q without sendmail's message", e.LastError)
			}
			args, _ := os.ReadFile(out + ".args")
			msg, _ := os.ReadFile(out)
			// RFC 8460 §3's own example: the comma is percent-decoded, the
			// local part quoted.
			if string(args) != "-i -f tlsrpt@sender.example -- \"tls,reports\"@policy.example\n" {
				t.Errorf("sendmail args %q", args)
			}
			if !strings.HasPrefix(string(msg), "DKIM-Signature:") || !strings.Contains(string(msg), "multipart/report") {
				t.Errorf("message on stdin:\n%.300s", msg)
			}
		})
	}
}

// TestHTTPSHostThroughDNS: without an injected client, an https rua's
// host is resolved through the DNS layer and its certificate verified.
func TestHTTPSHostThroughDNS(t *testing.T) {
	t.Parallel()
	pc := newPostCounter(t)
	port := pc.srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	pool := x509.NewCertPool()
	pool.AddCert(pc.srv.Certificate())
	dns := fakeDNS(map[string]string{"policy.example": rua("https://example.com:" + strconv.Itoa(int(port)) + "/r")})
	dns.SetIP("example.com", netip.MustParseAddr("127.0.0.1")) // the fake's answer, never the real name
	s := openSQLite(t)
	o := &Outbox{Store: s, Resolver: dns, HTTP: &HTTPSPoster{RootCAs: pool, AllowPrivate: true}, Now: newClock(t0).Now, Config: Config{DisableSpread: true}}
	r := testReport(t, "policy.example")
	if err := o.Enqueue(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if res := runPass(t, o); res.Sent != 1 || pc.count(r.ReportID) != 1 {
		t.Fatalf("pass %+v\n%s", res, dump(entries(t, s)))
	}
	found := false
	for _, q := range dns.Queries() {
		found = found || q == "IP example.com"
	}
	if !found {
		t.Errorf("host not resolved through the DNS layer: %v", dns.Queries())
	}
}

func TestLoadDKIMKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(ed)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, p := range []string{
		write("ed.pem", "PRIVATE KEY", p8),
		write("rsa1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)),
	} {
		if k, err := LoadDKIMKey(p); err != nil || k == nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := LoadDKIMKey(write("bad.pem", "PRIVATE KEY", []byte("junk"))); err == nil {
		t.Error("junk key loaded")
	}
	if _, err := LoadDKIMKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

// TestRetryReportAndPrune: a given-up record lookup can be retried ("r"
// ids); Prune drops finished reports only.
func TestRetryReportAndPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := newPostCounter(t)
	s := openSQLite(t)
	dns := &dnsresolve.Fake{}
	clk := newClock(t0)
	o := &Outbox{Store: s, Resolver: dns, HTTP: pc.poster(), Now: clk.Now, Config: Config{DisableSpread: true}}
	if err := o.Enqueue(ctx, testReport(t, "policy.example")); err != nil {
		t.Fatal(err)
	}
	waiting := testReport(t, "other.example")
	waiting.Day = day0.AddDate(0, 0, 5) // not due yet
	if err := o.Enqueue(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	runPass(t, o)
	var id string
	for _, e := range entries(t, s) {
		if e.PolicyDomain == "policy.example" {
			if e.State != StateGivenUp || e.Kind != "report" {
				t.Fatalf("without a record: %+v", e)
			}
			id = e.ID
		}
	}
	dns.SetTXT("_smtp._tls.policy.example", rua(pc.URL()))
	if err := s.Retry(ctx, id, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if res := runPass(t, o); res.Resolved != 1 || res.Sent != 1 {
		t.Fatalf("after retry: %+v", res)
	}
	clk.Add(10 * 24 * time.Hour)
	if n, err := s.Prune(ctx, clk.Now().Add(-11*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune of nothing old enough: %d %v", n, err)
	}
	// A pass deletes finished reports older than Config.Keep (30 days).
	clk.Add(21 * 24 * time.Hour)
	if res := runPass(t, o); res.Pruned != 1 {
		t.Fatalf("pass after 31 days: %+v", res)
	}
	es := entries(t, s)
	if len(es) != 1 || es[0].PolicyDomain != "other.example" {
		t.Fatalf("after prune:\n%s", dump(es))
	}
	if err := s.Retry(ctx, "x", clk.Now()); err == nil {
		t.Error("retry of a bad id accepted")
	}
}

// TestHTTPSBadCertificate: a destination whose certificate does not verify
// gets the report anyway, logged (RPT-HTTP-4), unless valid certificates
// are required.
func TestHTTPSBadCertificate(t *testing.T) {
	t.Parallel()
	for _, require := range []bool{false, true} {
		t.Run(strconv.FormatBool(require), func(t *testing.T) {
			t.Parallel()
			pc := newPostCounter(t)
			s := openSQLite(t)
			o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}),
				HTTP: &HTTPSPoster{RootCAs: x509.NewCertPool(), RequireValidCertificates: require, AllowPrivate: true}, // trusts nothing
				Now:  newClock(t0).Now, Config: Config{DisableSpread: true}}
			if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
				t.Fatal(err)
			}
			runPass(t, o)
			e := only(t, s)
			want, posts := StateSent, int32(1)
			if require {
				want, posts = StateRetrying, 0
			}
			if e.State != want || pc.total.Load() != posts {
				t.Fatalf("state %s (%q), %d posts; want %s", e.State, e.LastError, pc.total.Load(), want)
			}
			if require && !strings.Contains(e.LastError, "certificate") {
				t.Errorf("error %q does not name the certificate", e.LastError)
			}
		})
	}
}

// TestRun: Run passes until its context ends.
func TestRun(t *testing.T) {
	t.Parallel()
	srv := newPostCounter(t)
	s := openSQLite(t)
	r := testReport(t, "policy.example")
	o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(srv.URL())}), HTTP: srv.poster(),
		Now: newClock(t0).Now, Config: Config{DisableSpread: true}}
	if err := o.Enqueue(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, time.Millisecond) }()
	select {
	case <-srv.got:
	case <-time.After(time.Minute):
		t.Fatal("Run delivered nothing within a minute")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if srv.count(r.ReportID) != 1 {
		t.Errorf("%d posts", srv.count(r.ReportID))
	}
}

// TestAttemptBoundedByLease: an attempt that would outlast the lease is
// cut at 90% of it, so no other worker can claim the delivery while it is
// under way; it is then retried like any failure.
func TestAttemptBoundedByLease(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Take the connection and never answer: only the client's own
		// deadline can end the request.
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		<-stop
		conn.Close()
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(stop) })
	s := openSQLite(t)
	o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(hang.URL + "/")}),
		HTTP: &HTTPSPoster{Client: hang.Client(), Timeout: time.Hour}, // the lease, not the HTTP timeout, ends it
		Now:  newClock(t0).Now, Config: Config{DisableSpread: true, Lease: 300 * time.Millisecond}}
	if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
		t.Fatal(err)
	}
	runPass(t, o)
	if e := only(t, s); e.State != StateRetrying || e.Attempts != 1 {
		t.Fatalf("%+v", e)
	}
}

// TestHTTPSNotPublic: a record cannot make the sender POST to its own
// network: rua hosts on loopback or private addresses are given up, by
// address or by name, unless allowed.
func TestHTTPSNotPublic(t *testing.T) {
	t.Parallel()
	pc := newPostCounter(t)
	port := strconv.Itoa(int(pc.srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()))
	dns := fakeDNS(map[string]string{
		"ip.example":   rua("https://127.0.0.1:" + port + "/"),
		"name.example": rua("https://internal.example:" + port + "/"),
		"ten.example":  rua("https://[::ffff:10.1.2.3]:" + port + "/"),
	})
	dns.SetIP("internal.example", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.1"))
	s := openSQLite(t)
	o := &Outbox{Store: s, Resolver: dns, HTTP: &HTTPSPoster{}, Now: newClock(t0).Now, Config: Config{DisableSpread: true}}
	for _, d := range []string{"ip.example", "name.example", "ten.example"} {
		if err := o.Enqueue(context.Background(), testReport(t, d)); err != nil {
			t.Fatal(err)
		}
	}
	runPass(t, o)
	for _, e := range entries(t, s) {
		if e.State != StateGivenUp || !strings.Contains(e.LastError, "not public") {
			t.Errorf("%s: %s %q", e.PolicyDomain, e.State, e.LastError)
		}
	}
	if pc.total.Load() != 0 {
		t.Errorf("%d posts reached a loopback receiver", pc.total.Load())
	}
	for a, want := range map[string]bool{"8.8.8.8": true, "2001:db8::1": true, "127.0.0.1": false, "10.0.0.1": false,
		"169.254.1.1": false, "::1": false, "fe80::1": false, "0.0.0.0": false, "::ffff:192.168.0.1": false, "fc00::1": false} {
		if public(netip.MustParseAddr(a)) != want {
			t.Errorf("public(%s) = %v", a, !want)
		}
	}
}

// TestDestinationCap: a record with many rua gets the report at the first
// MaxDestinations distinct ones only.
func TestDestinationCap(t *testing.T) {
	t.Parallel()
	var uris []string
	for i := range 30 {
		uris = append(uris, "https://r"+strconv.Itoa(i%20)+".example/")
	}
	s := openSQLite(t)
	o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(uris...)}), Now: newClock(t0).Now,
		Config: Config{DisableSpread: true}}
	if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
		t.Fatal(err)
	}
	c, err := s.claimReport(context.Background(), "w", t0, time.Minute)
	if err != nil || c == nil {
		t.Fatal(c, err)
	}
	o.Owner = "w"
	if _, err := o.resolve(context.Background(), o.Config.withDefaults(), c); err != nil {
		t.Fatal(err)
	}
	es := entries(t, s)
	if len(es) != MaxDestinations {
		t.Fatalf("%d deliveries, want %d:\n%s", len(es), MaxDestinations, dump(es))
	}
}
