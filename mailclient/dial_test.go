package mailclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailsts/mailsts/internal/testnet"
)

// imapEndpoint is the STARTTLS IMAP endpoint of host on n.
func endpoint(n *testnet.Net, s Service, host string) Endpoint {
	return Endpoint{Service: s, Host: host, Port: n.ClientPort(testnet.ClientService(s)), Source: FromConfigured}
}

func refusal(t *testing.T, err error) *RefusedError {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
		t.Fatalf("want a refusal, got %v", err)
	}
	return re
}

// A latched account refuses a stripped STARTTLS and a certificate that
// no longer validates, even with a policy that accepts cleartext, and
// accepts them after an explicit, logged reset (TLS8314-4; the DEEP
// drafts' latching).
func TestLatchRefusesDowngrades(t *testing.T) {
	t.Parallel()
	const host = "mail.latch.test"
	dom := func(imap testnet.ClientEndpoint) testnet.Domain {
		return testnet.Domain{Name: "latch.test", Clients: []testnet.ClientHost{{Name: host, IMAP: imap}}}
	}
	n := ownNet(t, dom(testnet.ClientEndpoint{}))
	d := newDialer(t, n)
	var logs bytes.Buffer
	d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	d.Policy = Policy{MinLevel: LevelCleartext} // the user allowed anything
	ctx := context.Background()
	const acct = "user@latch.test"
	ep := endpoint(n, IMAPPlain, host)
	level := func(want Level) {
		t.Helper()
		if got, _, err := d.AccountLevel(ctx, acct); err != nil || got != want {
			t.Errorf("AccountLevel = %s, %v; want %s", got, err, want)
		}
	}
	level(LevelUnknown)

	s, err := d.Dial(ctx, acct, ep)
	if err != nil {
		t.Fatal(err)
	}
	s.Conn.Close()
	if l := s.Latch; !l.TLS || !l.Validated || l.Validation != PKIX || l.MinTLSVersion != tls.VersionTLS13 || l.Host != host {
		t.Errorf("latch %+v", l)
	}
	level(LevelValidated)

	// STARTTLS stripped: refused by the latch, not by the policy.
	if err := n.Set(dom(testnet.ClientEndpoint{NoSTARTTLS: true})); err != nil {
		t.Fatal(err)
	}
	_, err = d.Dial(ctx, acct, ep)
	re := refusal(t, err)
	if !re.Verdict.Latched || !re.Observation.STARTTLSMissing || re.Observation.Level() != LevelCleartext ||
		!strings.Contains(strings.Join(re.Verdict.Reasons, ";"), "STARTTLS was not offered") {
		t.Errorf("stripped: %+v", re)
	}

	// Expired certificate: refused by the latch.
	if err := n.Set(dom(testnet.ClientEndpoint{Cert: testnet.CertExpired})); err != nil {
		t.Fatal(err)
	}
	_, err = d.Dial(ctx, acct, ep)
	re = refusal(t, err)
	if !re.Verdict.Latched || re.Observation.Level() != LevelTLS || !strings.Contains(re.Observation.ValidationError, "expired") {
		t.Errorf("expired: %+v", re)
	}
	level(LevelValidated) // refusals change nothing

	// The user resets: the expired certificate is accepted (the policy
	// allows it), and latches TLS without validation.
	if err := d.Reset(ctx, acct, IMAP, "server certificate renewal pending"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "latch reset") || !strings.Contains(logs.String(), "renewal pending") {
		t.Errorf("reset not logged:\n%s", logs.String())
	}
	s, err = d.Dial(ctx, acct, ep)
	if err != nil {
		t.Fatal(err)
	}
	s.Conn.Close()
	level(LevelTLS)

	// Stripped again: TLS is still latched.
	if err := n.Set(dom(testnet.ClientEndpoint{NoSTARTTLS: true})); err != nil {
		t.Fatal(err)
	}
	if _, err = d.Dial(ctx, acct, ep); !refusal(t, err).Verdict.Latched {
		t.Error("not latched")
	}
	if err := d.Reset(ctx, acct, IMAP, "test"); err != nil {
		t.Fatal(err)
	}
	s, err = d.Dial(ctx, acct, ep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Conn.Close()
	level(LevelCleartext)
	// An accepted cleartext session is a fresh connection: greeting unread.
	_ = s.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	if g, err := bufio.NewReader(s.Conn).ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
		t.Errorf("cleartext greeting %q, %v", g, err)
	}
}

// With the default policy (validated TLS, RFC 8314 §5.2), expired and
// wrong-name certificates and a stripped STARTTLS are refused without any
// latch; a TLS version below the latched one is refused by the latch.
func TestPolicyAndVersionLatch(t *testing.T) {
	t.Parallel()
	const host = "mail.policy.test"
	dom := func(h testnet.ClientHost) testnet.Domain {
		h.Name = host
		return testnet.Domain{Name: "policy.test", Clients: []testnet.ClientHost{h}}
	}
	n := ownNet(t, dom(testnet.ClientHost{
		IMAPS:       testnet.ClientEndpoint{Cert: testnet.CertExpired},
		POP3S:       testnet.ClientEndpoint{Cert: testnet.CertWrongName},
		Submission:  testnet.ClientEndpoint{NoSTARTTLS: true},
		Submissions: testnet.ClientEndpoint{MaxTLS: "1.1"},
	}))
	d := newDialer(t, n)
	ctx := context.Background()
	for s, want := range map[Service]string{
		IMAPS:       "certificate expired",
		POP3S:       "not valid for " + host,
		Submission:  "STARTTLS was not offered",
		Submissions: "TLS 1.1 is older than the account's minimum, TLS 1.2",
	} {
		_, err := d.Dial(ctx, "u@policy.test", endpoint(n, s, host))
		re := refusal(t, err)
		if re.Verdict.Latched || !strings.Contains(strings.Join(re.Verdict.Reasons, ";"), want) {
			t.Errorf("%s: %v, want %q", s, re.Verdict.Reasons, want)
		}
	}
	// TLS 1.3 latched on IMAP, then the server drops to 1.2.
	if s, err := d.Dial(ctx, "u@policy.test", endpoint(n, IMAPPlain, host)); err != nil {
		t.Fatal(err)
	} else {
		s.Conn.Close()
	}
	if err := n.Set(dom(testnet.ClientHost{IMAP: testnet.ClientEndpoint{MaxTLS: "1.2"}})); err != nil {
		t.Fatal(err)
	}
	_, err := d.Dial(ctx, "u@policy.test", endpoint(n, IMAPPlain, host))
	if re := refusal(t, err); !re.Verdict.Latched || !strings.Contains(re.Verdict.Reasons[0], "TLS 1.3 was used before and TLS 1.2 now") {
		t.Errorf("version: %v", re.Verdict)
	}
}

// The sessions work with real protocol clients: go-imap v2's imapclient
// on implicit TLS and after STARTTLS (the replayed greeting), and net/smtp
// on submissions; DialProtocol skips a refused endpoint.
func TestSessionsWithClients(t *testing.T) {
	t.Parallel()
	n := shared.Net(t)
	d := newDialer(t, n)
	ctx := context.Background()
	for _, s := range []Service{IMAPS, IMAPPlain} {
		sess, err := d.Dial(ctx, "user@clients.example", endpoint(n, s, "mail.clients.example"))
		if err != nil {
			t.Fatal(err)
		}
		_ = sess.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		c := imapclient.New(sess.Conn, nil)
		caps, err := c.Capability().Wait()
		if err != nil || !caps.Has("AUTH=PLAIN") || caps.Has("STARTTLS") {
			t.Errorf("%s: caps %v, %v", s, caps, err)
		}
		if err := c.Logout().Wait(); err != nil {
			t.Errorf("%s: logout: %v", s, err)
		}
		c.Close()
	}
	for _, s := range []Service{Submissions, Submission} {
		sess, err := d.Dial(ctx, "user@clients.example", endpoint(n, s, "mail.clients.example"))
		if err != nil {
			t.Fatal(err)
		}
		_ = sess.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := smtp.NewClient(sess.Conn, "mail.clients.example")
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := c.Hello("client.test"); err != nil {
			t.Errorf("%s: EHLO: %v", s, err)
		}
		if ok, _ := c.Extension("STARTTLS"); ok {
			t.Errorf("%s: STARTTLS offered inside TLS", s)
		}
		_ = c.Quit()
	}
	// badclients.example: imaps has an expired certificate, so IMAP goes
	// to the STARTTLS endpoint; submission without STARTTLS is refused
	// but submissions is tried first and accepted.
	disc, err := d.Discover(ctx, "user@badclients.example")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := d.DialProtocol(ctx, "user@badclients.example", disc, IMAP)
	if err != nil || sess.Observation.Endpoint.Service != IMAPPlain {
		t.Fatalf("IMAP: %+v, %v", sess, err)
	}
	sess.Conn.Close()
	if _, err := d.DialProtocol(ctx, "user@badclients.example", &Discovery{Domain: "badclients.example", Endpoints: disc.For(SMTP)[1:]}, SMTP); !errors.Is(err, ErrRefused) {
		t.Errorf("submission: %v", err)
	}
	if _, err := d.DialProtocol(ctx, "user@badclients.example", disc, POP3); err != nil {
		t.Errorf("POP3: %v", err)
	}
}

// Concurrent dials of one account share the latch without a race, and
// the FileStore keeps one latch per protocol.
func TestConcurrentDials(t *testing.T) {
	t.Parallel()
	n := shared.Net(t)
	d := newDialer(t, n)
	d.Store = &FileStore{Path: t.TempDir() + "/latches.json"}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			s := IMAPS
			if i%2 == 1 {
				s = Submissions
			}
			sess, err := d.Dial(context.Background(), "user@clients.example", endpoint(n, s, "mail.clients.example"))
			if err == nil {
				sess.Conn.Close()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	level, latches, err := d.AccountLevel(context.Background(), "user@clients.example")
	if err != nil || level != LevelValidated || len(latches) != 2 {
		t.Errorf("level %s, latches %v, %v", level, latches, err)
	}
}
