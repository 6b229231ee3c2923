package checker

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

// addrOverride answers LookupIP for chosen hosts with fixed addresses and
// passes every other lookup through, to point MX hosts at a test server.
type addrOverride struct {
	dnsresolve.Resolver
	addrs map[string]netip.Addr
}

func (o addrOverride) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	if a, ok := o.addrs[host]; ok {
		return []netip.Addr{a}, dnsresolve.Answer{}, nil
	}
	return o.Resolver.LookupIP(ctx, host)
}

// startTLSStub serves SMTP with STARTTLS on loopback and presents cert
// whatever name the client asks for. It records the SNI names it saw.
func startTLSStub(t *testing.T, cert *tls.Certificate) (port int, snis func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var seen []string
	cfg := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		mu.Lock()
		seen = append(seen, hello.ServerName)
		mu.Unlock()
		return cert, nil
	}}
	go func() {
		for range 20 { // a bounded number of connections
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprint(conn, "220 stub ESMTP\r\n")
				br := bufio.NewReader(conn)
				for range 5 {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch up := strings.ToUpper(line); {
					case strings.HasPrefix(up, "EHLO"):
						fmt.Fprint(conn, "250-stub\r\n250 STARTTLS\r\n")
					case strings.HasPrefix(up, "STARTTLS"):
						fmt.Fprint(conn, "220 go ahead\r\n")
						tc := tls.Server(conn, cfg)
						_ = tc.Handshake()
						_, _ = bufio.NewReader(tc).ReadString('\n') // QUIT
						return
					default:
						fmt.Fprint(conn, "221 bye\r\n")
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// STS-CERT-3 (RFC-CHECKLIST §10 item 6): the certificate is checked
// against the MX host name, not against the policy pattern the name
// matched. Under "mx: *.certname.test", MX mx1.certname.test presenting a
// certificate valid only for mx2.certname.test is refused, although both
// names match the pattern and the certificate chains to a trusted root;
// mx2, presenting the same certificate, passes.
func TestCertForOtherMX(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	const mx1, mx2 = "mx1.certname.test", "mx2.certname.test"
	cert, err := n.CA().Leaf(mx2, testnet.CertGood, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	port, snis := startTLSStub(t, cert)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, strict := range []bool{false, true} {
		c := newChecker(t, n, strict)
		c.DNS = addrOverride{Resolver: c.DNS, addrs: map[string]netip.Addr{mx1: lo, mx2: lo}}
		c.SMTPPort = port
		r := c.Check(context.Background(), "certname.test")
		record(r)
		for _, w := range []want{
			{"sts.mx.match", SeverityOK, mx1}, // the pattern covers the name…
			{"sts.mx.match", SeverityOK, mx2},
			{"mx.cert-name", SeverityFail, mx1}, // …but the certificate does not
			{"mx.sts-refuse", SeverityFail, mx1},
			{"mx.cert-ok", SeverityOK, mx2},
			{"mx.sts-deliver", SeverityOK, mx2},
		} {
			if !hasFinding(r, w) {
				t.Errorf("strict=%v: missing %s %s %s\n%s", strict, w.sev, w.id, w.host, dump(r))
			}
		}
		if r.Verdict != VerdictFail {
			t.Errorf("strict=%v: verdict %q, want fail", strict, r.Verdict)
		}
		if len(r.MX) != 2 {
			t.Fatalf("strict=%v: %d MX results, want 2", strict, len(r.MX))
		}
		m1 := r.MX[0]
		if m1.Host != mx1 || m1.Pattern != "*.certname.test" || m1.STSDecision != "refuse" ||
			m1.Probe.Cert == nil || m1.Probe.Cert.Problem != certNameMismatch || !slices.Equal(m1.Probe.Cert.DNSNames, []string{mx2}) {
			t.Errorf("strict=%v: mx1 result %+v cert %+v", strict, m1, m1.Probe.Cert)
		}
		if m2 := r.MX[1]; m2.STSDecision != "deliver" || m2.Probe.Cert == nil || m2.Probe.Cert.Problem != "" {
			t.Errorf("strict=%v: mx2 result %+v", strict, m2)
		}
	}
	// STS-CERT-5: the probe named each MX host in SNI.
	got := snis()
	if !slices.Contains(got, mx1) || !slices.Contains(got, mx2) {
		t.Errorf("SNI names %q, want both MX names", got)
	}
}
