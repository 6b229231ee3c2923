package testnet

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/smtp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// starttlsState runs EHLO and STARTTLS against an MX host and returns the
// TLS state; it fails the test if the handshake fails.
func starttlsState(t *testing.T, n *Net, mx string, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	state, err := starttls(t, n, mx, cfg)
	if err != nil {
		t.Fatalf("STARTTLS %s: %v", mx, err)
	}
	return state
}

func starttls(t *testing.T, n *Net, mx string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	conn, err := dialMX(t, n, mx)
	if err != nil {
		t.Fatalf("dial %s: %v", mx, err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, mx)
	if err != nil {
		t.Fatalf("banner %s: %v", mx, err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatalf("%s does not advertise STARTTLS", mx)
	}
	if err := c.StartTLS(cfg); err != nil {
		return tls.ConnectionState{}, err
	}
	state, _ := c.TLSConnectionState()
	return state, nil
}

// A full session: STARTTLS verified against RootCAs, then a message that is
// recorded with its TLS state (STS-CERT-1/2/3/5).
func TestSMTPSession(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	const mx = "mx1.enforce.example"
	conn, err := dialMX(t, n, mx)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	banner, _ := br.ReadString('\n')
	if banner != "220 "+mx+" ESMTP testnet\r\n" {
		t.Errorf("banner = %q", banner)
	}
	conn.Close()

	conn, err = dialMX(t, n, mx)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, mx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"STARTTLS", "PIPELINING", "8BITMIME", "SIZE"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO lacks %s", ext)
		}
	}
	if err := c.StartTLS(&tls.Config{ServerName: mx, RootCAs: n.RootCAs(), MinVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised again inside TLS")
	}
	if err := c.Mail("sender@client.example"); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"a@enforce.example", "b@enforce.example"} {
		if err := c.Rcpt(rcpt); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: hi\r\n\r\n.leading dot\r\nbye\r\n"
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := n.Received(mx)
	if len(msgs) != 1 {
		t.Fatalf("Received = %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "sender@client.example" || len(m.To) != 2 || string(m.Data) != body {
		t.Errorf("message = %+v", m)
	}
	if !m.TLS || m.TLSVersion < tls.VersionTLS12 || m.ServerName != mx {
		t.Errorf("TLS state = %v %x %q", m.TLS, m.TLSVersion, m.ServerName)
	}
	if got := n.Received("mx2.enforce.example"); len(got) != 0 {
		t.Errorf("mx2 received %d messages", len(got))
	}
}

// Plaintext delivery is recorded with TLS=false; errors keep the session.
func TestSMTPPlainAndErrors(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	const mx = "mx1.nostarttls.example"
	c := newRawSMTP(t, n, mx)
	send, expect := c.send, c.expect
	expect("MAIL FROM:<a@b.example>", "503 ")
	got := send("EHLO client.example")
	if strings.Contains(got, "STARTTLS") || !strings.HasPrefix(got, "250-") {
		t.Errorf("EHLO = %q, want no STARTTLS (NoSTARTTLS)", got)
	}
	expect("STARTTLS", "502 ")
	expect("RCPT TO:<x@y.example>", "503 ")
	expect("DATA", "503 ")
	expect("BOGUS", "500 ")
	expect(strings.Repeat("x", 5000), "500 ")
	expect("NOOP", "250 ")
	expect("MAIL FROM:<a@b.example> SIZE=99999999999", "552 ")
	expect("MAIL FROM:<a@b.example> SIZE=100", "250 ")
	expect("RCPT TO:<c@nostarttls.example>", "250 ")
	expect("DATA", "354 ")
	expect("line one\r\n..dot\r\n.", "250 ")
	expect("RSET", "250 ")
	expect("QUIT", "221 ")
	msgs := n.Received(mx)
	if len(msgs) != 1 || msgs[0].TLS || string(msgs[0].Data) != "line one\r\n.dot\r\n" {
		t.Errorf("received %+v", msgs)
	}
}

// Certificates of MX hosts by kind, checked against the MX name.
func TestSMTPCertKinds(t *testing.T) {
	t.Parallel()
	sc := &Scenario{}
	for _, k := range []CertKind{CertGood, CertExpired, CertNotYetValid, CertWrongName, CertSelfSigned, CertCNOnly} {
		sc.Domains = append(sc.Domains, Domain{Name: string(k) + ".example", MX: []MXHost{{Name: "mx." + string(k) + ".example", Cert: k}}})
	}
	n := startNet(t, sc)
	for _, tc := range certCases {
		mx := "mx." + string(tc.kind) + ".example"
		_, err := starttls(t, n, mx, &tls.Config{ServerName: mx, RootCAs: n.RootCAs(), MinVersion: tls.VersionTLS12})
		checkCertError(t, mx, err, tc.want)
	}
}

// STS-CERT-6: no SNI, or a wrong one, still gets the host's certificate.
func TestSMTPNoSNI(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	const mx = "mx1.testing.example"
	for _, sni := range []string{"", "other.example"} {
		state := starttlsState(t, n, mx, &tls.Config{InsecureSkipVerify: true, ServerName: sni})
		leaf := state.PeerCertificates[0]
		if err := leaf.VerifyHostname(mx); err != nil {
			t.Errorf("SNI %q: certificate %v not for %s", sni, leaf.DNSNames, mx)
		}
	}
}

// Down refuses, Hang never greets, HandshakeFail aborts the handshake.
func TestSMTPFailures(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	t.Run("down", func(t *testing.T) {
		t.Parallel()
		_, err := dialMX(t, n, "mx1.mxdown.example")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial down host: %v, want connection refused", err)
		}
	})
	t.Run("hang", func(t *testing.T) {
		t.Parallel()
		conn, err := dialMX(t, n, "mx1.mxhang.example")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1)
		_, err = conn.Read(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read from hanging host: %v, want a timeout", err)
		}
	})
	t.Run("handshake", func(t *testing.T) {
		t.Parallel()
		_, err := starttls(t, n, "mx1.mxhandshake.example", &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			t.Error("handshake succeeded")
		}
	})
	t.Run("maxtls", func(t *testing.T) {
		t.Parallel()
		if err := n.Set(Domain{Name: "oldtls.example", MX: []MXHost{{Name: "mx.oldtls.example", MaxTLS: "1.1"}}}); err != nil {
			t.Fatal(err)
		}
		// STS-CERT-7: a TLS 1.2 client cannot talk to a TLS 1.1 server.
		if _, err := starttls(t, n, "mx.oldtls.example", &tls.Config{RootCAs: n.RootCAs(), ServerName: "mx.oldtls.example", MinVersion: tls.VersionTLS12}); err == nil {
			t.Error("TLS 1.2 client accepted a TLS 1.1 server")
		}
		st := starttlsState(t, n, "mx.oldtls.example", &tls.Config{RootCAs: n.RootCAs(), ServerName: "mx.oldtls.example", MinVersion: tls.VersionTLS10})
		if st.Version != tls.VersionTLS11 {
			t.Errorf("version %x, want TLS 1.1", st.Version)
		}
	})
	t.Run("down-live", func(t *testing.T) {
		t.Parallel()
		d := Domain{Name: "flip.example", MX: []MXHost{{Name: "mx.flip.example"}}}
		if err := n.Set(d); err != nil {
			t.Fatal(err)
		}
		c, err := dialMX(t, n, "mx.flip.example")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		d.MX[0].Down = true
		if err := n.Set(d); err != nil {
			t.Fatal(err)
		}
		if _, err := dialMX(t, n, "mx.flip.example"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("after Down: %v", err)
		}
		d.MX[0].Down = false
		if err := n.Set(d); err != nil {
			t.Fatal(err)
		}
		c, err = dialMX(t, n, "mx.flip.example")
		if err != nil {
			t.Fatalf("after up again: %v", err)
		}
		c.Close()
	})
}

// certCases pair each kind with the x509 error a verifying client sees
// (STS-FETCH-2, STS-CERT-2/3).
var certCases = []struct {
	kind CertKind
	want func(error) bool
}{
	{CertGood, func(err error) bool { return err == nil }},
	{CertExpired, isInvalid(x509.Expired)},
	{CertNotYetValid, isInvalid(x509.Expired)},
	{CertWrongName, func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
	{CertCNOnly, func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
	{CertSelfSigned, func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }},
}

func isInvalid(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == reason
	}
}

func checkCertError(t *testing.T, what string, err error, want func(error) bool) {
	t.Helper()
	if !want(err) {
		t.Errorf("%s: unexpected verification result %v", what, err)
	}
}

// rawSMTP is a line-level SMTP client for protocol edge cases.
type rawSMTP struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func newRawSMTP(t *testing.T, n *Net, mx string) *rawSMTP {
	t.Helper()
	conn, err := dialMX(t, n, mx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	s := &rawSMTP{t: t, conn: conn, br: bufio.NewReader(conn)}
	s.expect("", "220 ")
	return s
}

// send writes text (with CRLF added) and returns the next full reply.
func (s *rawSMTP) send(text string) string {
	s.t.Helper()
	if text != "" {
		if _, err := s.conn.Write([]byte(text + "\r\n")); err != nil {
			s.t.Fatal(err)
		}
	}
	var reply strings.Builder
	for {
		l, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("after %.40q: %v", text, err)
		}
		reply.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			return reply.String()
		}
	}
}

func (s *rawSMTP) expect(text, prefix string) {
	s.t.Helper()
	if got := s.send(text); !strings.HasPrefix(got, prefix) {
		s.t.Errorf("%.40q → %q, want %s", text, got, prefix)
	}
}

// RFC 3207 §4.2: commands pipelined after STARTTLS in plaintext are
// discarded, and the session starts over inside TLS.
func TestSMTPStartTLSInjection(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	const mx = "mx1.testing.example"
	s := newRawSMTP(t, n, mx)
	s.expect("EHLO client.example", "250-")
	s.expect("STARTTLS\r\nMAIL FROM:<injected@evil.example>", "220 ")
	tc := tls.Client(s.conn, &tls.Config{ServerName: mx, RootCAs: n.RootCAs(), MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	s.conn, s.br = tc, bufio.NewReader(tc)
	s.expect("MAIL FROM:<a@b.example>", "503 ") // EHLO again first
	s.expect("EHLO client.example", "250-")
	s.expect("RCPT TO:<x@testing.example>", "503 ") // the injected MAIL is gone
	s.expect("MAIL FROM:<a@b.example>", "250 ")
}

// Messages above MaxMessageSize are refused after DATA, and the session
// goes on.
func TestSMTPMessageTooBig(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	const mx = "mx1.none.example"
	s := newRawSMTP(t, n, mx)
	s.expect("HELO client.example", "250 ")
	s.expect("MAIL FROM:<a@b.example>", "250 ")
	s.expect("RCPT TO:<c@none.example>", "250 ")
	s.expect("DATA", "354 ")
	line := strings.Repeat("x", 998) + "\r\n"
	big := strings.Repeat(line, MaxMessageSize/len(line)+10)
	if _, err := s.conn.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	s.expect(".", "552 ")
	s.expect("MAIL FROM:<a@b.example>", "250 ")
	s.expect("RCPT TO:<c@none.example>", "250 ")
	s.expect("DATA", "354 ")
	s.expect(strings.Repeat("y", maxTextLine+1)+"\r\n.", "552 ") // one line too long
	s.expect("QUIT", "221 ")
	if got := n.Received(mx); len(got) != 0 {
		t.Errorf("%d messages stored", len(got))
	}
}
