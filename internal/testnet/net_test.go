package testnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestCloseNoLeak is deliberately not parallel: it counts goroutines, and
// parallel tests are paused (their goroutine count is stable) while
// sequential tests run.
func TestCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	n, err := Start(t.Context(), DefaultScenario(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Exercise every server, leaving connections open at Close.
	mustQuery(t, n, "udp", "_mta-sts.enforce.example", dns.TypeTXT)
	tcpc, err := net.Dial("tcp", n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer tcpc.Close()
	c := policyClient(t, n, nil)
	resp, err := c.Get(policyURL("enforce.example"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hang, err := dialMX(t, n, "mx1.mxhang.example")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	idle, err := dialMX(t, n, "mx1.enforce.example")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	starttlsState(t, n, "mx1.testing.example", &tls.Config{ServerName: "mx1.testing.example", RootCAs: n.RootCAs()})
	caFile := n.CAFile()
	addrs := []string{n.DNSAddr(), n.HTTPSAddr()}
	mx, _ := n.MXAddr("mx1.enforce.example")
	addrs = append(addrs, net.JoinHostPort(mx.String(), strconv.Itoa(n.SMTPPort())))

	n.Close()
	n.Close() // idempotent
	c.CloseIdleConnections()

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before:\n%s", got, before, buf[:runtime.Stack(buf, true)])
	}
	if _, err := os.Stat(caFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CA file %s still there: %v", caFile, err)
	}
	// The ports are free again.
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("port %s not freed: %v", a, err)
			continue
		}
		ln.Close()
	}
	pc, err := net.ListenPacket("udp", addrs[0])
	if err != nil {
		t.Errorf("UDP port %s not freed: %v", addrs[0], err)
	} else {
		pc.Close()
	}
}

func TestStartOptions(t *testing.T) {
	t.Parallel()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	// Pick ports and a prefix ourselves, as a Postfix test would.
	free := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	prefix := netip.MustParsePrefix("127.77." + strconv.Itoa(int(time.Now().UnixNano()%200)+20) + ".0/29")
	opts := Options{HTTPSPort: free(), SMTPPort: free(), MXPrefix: prefix, CA: ca, CertValidity: time.Hour}
	sc := &Scenario{Domains: []Domain{{Name: "a.example", MX: []MXHost{{Name: "mx1.a.example"}, {Name: "mx2.a.example"}}}}}
	n, err := Start(t.Context(), sc, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.HTTPSPort() != opts.HTTPSPort || n.SMTPPort() != opts.SMTPPort || n.MXPrefix() != prefix {
		t.Errorf("ports %d/%d prefix %v, want %d/%d %v", n.HTTPSPort(), n.SMTPPort(), n.MXPrefix(), opts.HTTPSPort, opts.SMTPPort, prefix)
	}
	if n.CA() != ca || !bytes.Equal(n.CAPEM(), ca.PEM()) {
		t.Error("Options.CA not used")
	}
	data, err := os.ReadFile(n.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("CA file is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA || !cert.Equal(ca.Certificate()) {
		t.Errorf("CA file holds %v, %v", cert, err)
	}
	a1, _ := n.MXAddr("mx1.a.example")
	a2, _ := n.MXAddr("mx2.a.example")
	if !prefix.Contains(a1) || !prefix.Contains(a2) || a1 == a2 {
		t.Errorf("MX addresses %v %v not distinct in %v", a1, a2, prefix)
	}
	// A /29 has room for 5 MX hosts: .2 … .6.
	var mx []MXHost
	for i := range 4 {
		mx = append(mx, MXHost{Name: "mx" + strconv.Itoa(i) + ".b.example"})
	}
	if err := n.Set(Domain{Name: "b.example", MX: mx}); !errors.Is(err, ErrScenario) {
		t.Errorf("Set beyond the prefix: %v, want ErrScenario", err)
	}
	if _, ok := n.Domain("b.example"); ok {
		t.Error("a failed Set changed the network")
	}
	if err := n.Set(Domain{Name: "b.example", MX: mx[:3]}); err != nil {
		t.Errorf("Set within the prefix: %v", err)
	}
	// Ports in use are an error, not a silent change.
	_, err = Start(t.Context(), sc, Options{HTTPSPort: opts.HTTPSPort})
	if err == nil {
		t.Error("Start on a busy HTTPS port succeeded")
	}
}

func TestStartInvalid(t *testing.T) {
	t.Parallel()
	_, err := Start(t.Context(), &Scenario{Domains: []Domain{{Name: "a.example"}, {Name: "A.EXAMPLE"}}}, Options{})
	if !errors.Is(err, ErrScenario) {
		t.Errorf("duplicate domains: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, DefaultScenario(), Options{}); err == nil {
		t.Error("Start with a cancelled context succeeded")
	}
	// nil scenario: an empty network.
	n, err := Start(t.Context(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if r := mustQuery(t, n, "udp", "anything.example", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("empty network: %v", r)
	}
}

// Start does not keep references to the caller's scenario.
func TestStartCopiesScenario(t *testing.T) {
	t.Parallel()
	sc := &Scenario{Domains: []Domain{{Name: "a.example", STSTXT: [][]string{{"v=STSv1; id=1"}}}}}
	n := startNet(t, sc)
	sc.Domains[0].STSTXT[0][0] = "changed"
	if got := txtOf(mustQuery(t, n, "udp", "_mta-sts.a.example", dns.TypeTXT)); len(got) != 1 || got[0] != "v=STSv1; id=1" {
		t.Errorf("TXT = %q after the caller changed its scenario", got)
	}
}

func TestCALeafCache(t *testing.T) {
	t.Parallel()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	certs := make([]any, 8)
	for i := range certs {
		wg.Go(func() {
			c, err := ca.Leaf("mx.example", CertGood, 0)
			if err != nil {
				t.Error(err)
			}
			certs[i] = c
		})
	}
	wg.Wait()
	for _, c := range certs[1:] {
		if c != certs[0] {
			t.Fatal("concurrent Leaf calls issued different certificates")
		}
	}
	good, _ := ca.Leaf("mx.example", CertGood, 0)
	expired, _ := ca.Leaf("mx.example", CertExpired, 0)
	if good == expired {
		t.Error("kinds share a certificate")
	}
	if len(good.Certificate) != 2 {
		t.Errorf("chain of %d certificates, want leaf and root", len(good.Certificate))
	}
	if got := good.Leaf.NotAfter.Sub(good.Leaf.NotBefore); got < DefaultCertValidity {
		t.Errorf("validity %v", got)
	}
	// Issue 11 item 15: good certificates outlive the checker's 14-day
	// expiry warning (so good demo domains pass); "expiring" ones do not.
	if left := time.Until(good.Leaf.NotAfter); left < 60*24*time.Hour {
		t.Errorf("a good certificate expires in %v", left)
	}
	expiring, err := ca.Leaf("mx.example", CertExpiring, 0)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(expiring.Leaf.NotAfter); left > ExpiringCertValidity || left < ExpiringCertValidity-time.Hour {
		t.Errorf("an expiring certificate expires in %v, want about %v", left, ExpiringCertValidity)
	}
	if _, err := ca.Leaf("x.example", "bogus", 0); !errors.Is(err, ErrScenario) {
		t.Errorf("bogus kind: %v", err)
	}
}

func BenchmarkStart(b *testing.B) {
	sc := Generate(10_000, 1)
	ca, err := NewCA()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n, err := Start(context.Background(), sc, Options{CA: ca})
		if err != nil {
			b.Fatal(err)
		}
		n.Close()
	}
}
