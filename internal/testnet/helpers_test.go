package testnet

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startNet starts sc on loopback and closes it when the test ends.
func startNet(t testing.TB, sc *Scenario) *Net {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, sc, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// query sends one raw query over proto ("udp" or "tcp").
func query(t testing.TB, n *Net, proto, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, n.DNSAddr())
	return r, err
}

// mustQuery is query that fails the test on a transport error.
func mustQuery(t testing.TB, n *Net, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := query(t, n, proto, name, qtype, 5*time.Second)
	if err != nil {
		t.Fatalf("%s %s %s: %v", proto, name, dns.TypeToString[qtype], err)
	}
	return r
}

// policyClient is an HTTPS client that reaches every policy host of n and
// never follows redirects (STS-FETCH-5).
func policyClient(t testing.TB, n *Net, cfg *tls.Config) *http.Client {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = n.RootCAs()
	}
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", n.HTTPSAddr())
		},
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: false,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// dialMX connects to an MX host at the address its A record gives.
func dialMX(t testing.TB, n *Net, mx string) (net.Conn, error) {
	t.Helper()
	r := mustQuery(t, n, "udp", mx, dns.TypeA)
	if len(r.Answer) != 1 {
		t.Fatalf("A %s: %v", mx, r)
	}
	ip := r.Answer[0].(*dns.A).A
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.Dial("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(n.SMTPPort())))
}
