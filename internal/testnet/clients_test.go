package testnet

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// mua is a minimal mail client of one endpoint: it dials the address the
// host's A record gives on the service's port and reads lines.
type mua struct {
	t    *testing.T
	n    *Net
	host string
	conn net.Conn
	r    *bufio.Reader
}

func dialClient(t *testing.T, n *Net, host string, s ClientService) (*mua, error) {
	t.Helper()
	r := mustQuery(t, n, "udp", host, dns.TypeA)
	if len(r.Answer) != 1 {
		t.Fatalf("A %s: %v", host, r)
	}
	ip := r.Answer[0].(*dns.A).A
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(n.ClientPort(s))))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	m := &mua{t: t, n: n, host: host, conn: c, r: bufio.NewReader(c)}
	if s.Implicit() {
		m.startTLS()
	}
	return m, nil
}

func (m *mua) mustDial(s ClientService) *mua {
	m.t.Helper()
	c, err := dialClient(m.t, m.n, m.host, s)
	if err != nil {
		m.t.Fatalf("dial %s %s: %v", m.host, s, err)
	}
	return c
}

func (m *mua) startTLS() {
	m.t.Helper()
	// Verified below by verify, so that every certificate kind can be seen.
	tc := tls.Client(m.conn, &tls.Config{ServerName: m.host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		m.t.Fatalf("%s: TLS handshake: %v", m.host, err)
	}
	m.conn, m.r = tc, bufio.NewReader(tc)
}

// verify checks the presented certificate for the host as a client would.
func (m *mua) verify() error {
	tc, ok := m.conn.(*tls.Conn)
	if !ok {
		return errors.New("not TLS")
	}
	certs := tc.ConnectionState().PeerCertificates
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: m.n.RootCAs(), Intermediates: inter, DNSName: m.host})
	return err
}

func (m *mua) send(line string) {
	m.t.Helper()
	if _, err := io.WriteString(m.conn, line+"\r\n"); err != nil {
		m.t.Fatalf("send %q: %v", line, err)
	}
}

func (m *mua) line() string {
	m.t.Helper()
	l, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatalf("read: %v (after %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads lines up to and including the first with prefix (at most
// 20 lines) and returns them joined.
func (m *mua) until(prefix string) string {
	m.t.Helper()
	var got []string
	for range 20 {
		l := m.line()
		got = append(got, l)
		if strings.HasPrefix(l, prefix) {
			return strings.Join(got, "\n")
		}
	}
	m.t.Fatalf("no line starting with %q in %q", prefix, got)
	return ""
}

// smtpReply reads one SMTP reply.
func (m *mua) smtpReply() string {
	m.t.Helper()
	var got []string
	for range 20 {
		l := m.line()
		got = append(got, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(got, "\n")
		}
	}
	m.t.Fatalf("endless reply %q", got)
	return ""
}

// TLS8314-1, TLS8314-2, TLS8314-3: every endpoint of the default scenario's
// good client host greets, upgrades (or starts with TLS) and presents a
// certificate valid for the host name.
func TestClientEndpointsGood(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	const host = "mail.clients.example"
	for _, s := range ClientServices() {
		if n.ClientPort(s) == 0 {
			t.Fatalf("no port for %s", s)
		}
	}
	m := (&mua{t: t, n: n, host: host})

	// Submission: implicit TLS, then STARTTLS.
	c := m.mustDial(ServiceSubmissions)
	if got := c.smtpReply(); !strings.HasPrefix(got, "220 "+host) {
		t.Errorf("465 greeting %q", got)
	}
	c.send("EHLO client.example")
	if got := c.smtpReply(); !strings.HasPrefix(got, "250") || strings.Contains(got, "STARTTLS") {
		t.Errorf("465 EHLO %q: no STARTTLS inside TLS", got)
	}
	if err := c.verify(); err != nil {
		t.Errorf("465 certificate: %v", err)
	}
	c = m.mustDial(ServiceSubmission)
	c.smtpReply()
	c.send("EHLO client.example")
	if got := c.smtpReply(); !strings.Contains(got, "250-STARTTLS") {
		t.Errorf("587 EHLO %q", got)
	}
	c.send("STARTTLS")
	if got := c.smtpReply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("587 STARTTLS %q", got)
	}
	c.startTLS()
	if err := c.verify(); err != nil {
		t.Errorf("587 certificate: %v", err)
	}
	c.send("EHLO client.example")
	if got := c.smtpReply(); strings.Contains(got, "STARTTLS") {
		t.Errorf("587 EHLO after TLS %q", got)
	}

	// IMAP.
	c = m.mustDial(ServiceIMAPS)
	if got := c.line(); !strings.HasPrefix(got, "* OK ") || strings.Contains(got, "STARTTLS") {
		t.Errorf("993 greeting %q", got)
	}
	if err := c.verify(); err != nil {
		t.Errorf("993 certificate: %v", err)
	}
	c.send("a1 LOGOUT")
	if got := c.until("a1 "); !strings.Contains(got, "* BYE") || !strings.HasSuffix(got, "a1 OK LOGOUT completed") {
		t.Errorf("993 LOGOUT %q", got)
	}
	c = m.mustDial(ServiceIMAP)
	if got := c.line(); !strings.HasPrefix(got, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED]") {
		t.Errorf("143 greeting %q", got)
	}
	c.send("a1 LOGIN user pass")
	if got := c.until("a1 "); !strings.Contains(got, "PRIVACYREQUIRED") {
		t.Errorf("143 LOGIN before TLS %q", got)
	}
	c.send("a2 CAPABILITY")
	if got := c.until("a2 "); !strings.Contains(got, "* CAPABILITY IMAP4rev1 STARTTLS") || !strings.HasSuffix(got, "a2 OK CAPABILITY completed") {
		t.Errorf("143 CAPABILITY %q", got)
	}
	c.send("a3 STARTTLS")
	if got := c.until("a3 "); got != "a3 OK begin TLS negotiation now" {
		t.Fatalf("143 STARTTLS %q", got)
	}
	c.startTLS()
	if err := c.verify(); err != nil {
		t.Errorf("143 certificate: %v", err)
	}
	c.send("a4 CAPABILITY")
	if got := c.until("a4 "); strings.Contains(got, "STARTTLS") || !strings.Contains(got, "AUTH=PLAIN") {
		t.Errorf("143 CAPABILITY after TLS %q", got)
	}
	c.send("a5 STARTTLS")
	if got := c.until("a5 "); !strings.HasPrefix(got, "a5 BAD") {
		t.Errorf("143 second STARTTLS %q", got)
	}

	// POP3.
	c = m.mustDial(ServicePOP3S)
	if got := c.line(); !strings.HasPrefix(got, "+OK "+host) {
		t.Errorf("995 greeting %q", got)
	}
	if err := c.verify(); err != nil {
		t.Errorf("995 certificate: %v", err)
	}
	c.send("CAPA")
	if got := c.until("."); strings.Contains(got, "STLS") || !strings.Contains(got, "USER") {
		t.Errorf("995 CAPA %q", got)
	}
	c = m.mustDial(ServicePOP3)
	c.line()
	c.send("CAPA")
	if got := c.until("."); !strings.Contains(got, "\nSTLS\n") {
		t.Errorf("110 CAPA %q", got)
	}
	c.send("USER someone")
	if got := c.line(); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("110 USER before TLS %q", got)
	}
	c.send("STLS")
	if got := c.line(); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("110 STLS %q", got)
	}
	c.startTLS()
	if err := c.verify(); err != nil {
		t.Errorf("110 certificate: %v", err)
	}
	c.send("QUIT")
	if got := c.line(); !strings.HasPrefix(got, "+OK") {
		t.Errorf("110 QUIT %q", got)
	}
}

// The default scenario's bad client host: an expired certificate on 993
// (TLS8314-4) and STARTTLS stripped on 587 (TLS8314-2); the rest is good.
func TestClientEndpointsBad(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	m := &mua{t: t, n: n, host: "mail.badclients.example"}
	c := m.mustDial(ServiceIMAPS)
	c.line()
	var inv x509.CertificateInvalidError
	if err := c.verify(); !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Errorf("993: %v, want an expired certificate", err)
	}
	c = m.mustDial(ServiceSubmission)
	c.smtpReply()
	c.send("EHLO client.example")
	if got := c.smtpReply(); strings.Contains(got, "STARTTLS") {
		t.Errorf("587 EHLO offers STARTTLS: %q", got)
	}
	c.send("STARTTLS")
	if got := c.smtpReply(); !strings.HasPrefix(got, "502 ") {
		t.Errorf("587 STARTTLS %q", got)
	}
	for _, s := range []ClientService{ServiceSubmissions, ServiceIMAP, ServicePOP3S} {
		c := m.mustDial(s)
		if !s.Implicit() {
			c.line()
			c.send("a STARTTLS")
			c.line()
			c.startTLS()
		}
		if err := c.verify(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// Every certificate kind, stripped STARTTLS on IMAP and POP3, a Down
// endpoint, and removal of the host.
func TestClientEndpointFaults(t *testing.T) {
	t.Parallel()
	sc := &Scenario{Domains: []Domain{{
		Name: "faults.example",
		MX:   []MXHost{{Name: "mail.faults.example"}},
		Clients: []ClientHost{
			{Name: "wrong.faults.example", Cert: CertWrongName},
			{Name: "self.faults.example", IMAPS: ClientEndpoint{Cert: CertSelfSigned}},
			{Name: "mail.faults.example", // also the MX host
				IMAP: ClientEndpoint{NoSTARTTLS: true}, POP3: ClientEndpoint{NoSTARTTLS: true},
				POP3S: ClientEndpoint{Down: true}, Submissions: ClientEndpoint{MaxTLS: "1.2"}},
		},
	}}}
	n := startNet(t, sc)
	var host x509.HostnameError
	if err := (&mua{t: t, n: n, host: "wrong.faults.example"}).mustDial(ServicePOP3S).verify(); !errors.As(err, &host) {
		t.Errorf("wrong-name: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := (&mua{t: t, n: n, host: "self.faults.example"}).mustDial(ServiceIMAPS).verify(); !errors.As(err, &unknown) {
		t.Errorf("self-signed: %v", err)
	}
	m := &mua{t: t, n: n, host: "mail.faults.example"}
	if c := m.mustDial(ServiceSubmissions); c.conn.(*tls.Conn).ConnectionState().Version != tls.VersionTLS12 {
		t.Error("max_tls 1.2 not applied")
	}
	c := m.mustDial(ServiceIMAP)
	if got := c.line(); strings.Contains(got, "STARTTLS") || strings.Contains(got, "LOGINDISABLED") {
		t.Errorf("stripped 143 greeting %q", got)
	}
	c.send("a1 STARTTLS")
	if got := c.until("a1 "); got != "a1 BAD unknown command" {
		t.Errorf("stripped 143 STARTTLS %q", got)
	}
	c.send("a2 LOGIN user pass") // accepted in cleartext: the danger
	if got := c.until("a2 "); !strings.Contains(got, "AUTHENTICATIONFAILED") {
		t.Errorf("stripped 143 LOGIN %q", got)
	}
	c = m.mustDial(ServicePOP3)
	c.line()
	c.send("CAPA")
	if got := c.until("."); strings.Contains(got, "STLS") {
		t.Errorf("stripped 110 CAPA %q", got)
	}
	c.send("STLS")
	if got := c.line(); got != "-ERR unknown command" {
		t.Errorf("stripped 110 STLS %q", got)
	}
	if _, err := dialClient(t, n, "mail.faults.example", ServicePOP3S); err == nil {
		t.Error("down 995 accepted a connection")
	}
	// The MX host at the same address still speaks SMTP.
	mx, err := dialMX(t, n, "mail.faults.example")
	if err != nil {
		t.Fatal(err)
	}
	mx.Close()

	addr, ok := n.MXAddr("mail.faults.example")
	if !ok {
		t.Fatal("no address")
	}
	n.Remove("faults.example")
	if c, err := net.Dial("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(n.ClientPort(ServiceIMAP)))); err == nil {
		c.Close()
		t.Error("removed host still accepts connections")
	}
}

// Input is bounded: an overlong line is answered and skipped, and a
// session of errors is closed.
func TestClientEndpointBoundedInput(t *testing.T) {
	t.Parallel()
	n := startNet(t, DefaultScenario())
	m := &mua{t: t, n: n, host: "mail.clients.example"}
	for _, s := range []ClientService{ServiceIMAP, ServicePOP3} {
		c := m.mustDial(s)
		c.line()
		c.send(strings.Repeat("x", 100_000))
		want := "* BAD line too long"
		if s == ServicePOP3 {
			want = "-ERR line too long"
		}
		if got := c.line(); got != want {
			t.Errorf("%s: long line answered %q", s, got)
		}
		closed := false
		for i := range 2 * maxErrors {
			if _, err := io.WriteString(c.conn, "a"+strconv.Itoa(i)+" BOGUS\r\n"); err != nil {
				closed = true
				break
			}
			if _, err := c.r.ReadString('\n'); err != nil {
				closed = true
				break
			}
		}
		if !closed {
			t.Errorf("%s: %d bad commands did not end the session", s, 2*maxErrors)
		}
	}
}

func TestClientScenarioYAML(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario([]byte(`
domains:
  - name: Y.example
    clients:
      - name: Mail.Y.example.
        cert: wrong-name
        imaps: {cert: good}
        submission: {no_starttls: true}
        pop3: {down: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := sc.Domains[0].Clients[0]
	if h.Name != "mail.y.example" || h.Endpoint(ServiceIMAPS).Cert != CertGood || h.Endpoint(ServiceIMAP).Cert != CertWrongName ||
		!h.Endpoint(ServiceSubmission).NoSTARTTLS || !h.Endpoint(ServicePOP3).Down {
		t.Errorf("%+v", h)
	}
	out, err := sc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadScenario(out)
	if err != nil || back.Domains[0].Clients[0] != h {
		t.Errorf("round trip: %v\n%s", err, out)
	}
	for _, bad := range []string{
		"domains: [{name: a.example, clients: [{name: m.a.example, imaps: {no_starttls: true}}]}]",
		"domains: [{name: a.example, clients: [{name: m.a.example, cert: bogus}]}]",
		"domains: [{name: a.example, clients: [{name: m.a.example, pop3: {max_tls: '9'}}]}]",
		"domains: [{name: a.example, clients: [{name: m.a.example}, {name: M.a.example}]}]",
		"domains: [{name: a.example, clients: [{name: m.a.example, smtp: {}}]}]",
		"domains: [{name: a.example, clients: [{name: m.x.example}]}, {name: b.example, clients: [{name: m.x.example, cert: expired}]}]",
	} {
		if _, err := LoadScenario([]byte(bad)); !errors.Is(err, ErrScenario) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, s := range ClientServices() {
		if s.StandardPort() == 0 {
			t.Errorf("%s: no standard port", s)
		}
	}
}
