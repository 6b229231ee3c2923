package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish/certs/certstest"
	"github.com/mailsts/mailsts/internal/testnet"
)

func TestMain(m *testing.M) {
	// Pebble reads these when its VA and WFE are built: no random sleeps
	// before validations, no artificially rejected nonces. Validation
	// itself stays real (PEBBLE_VA_ALWAYS_VALID is not set).
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	os.Exit(m.Run())
}

// The fake Internet of these tests. provider.test hosts policies;
// customers delegate to it fully, halfway or not at all.
const (
	providerHost = "mta-sts.provider.test"
	providerSTS  = "_mta-sts.provider.test"
)

var providerAddr = netip.MustParseAddr("127.0.0.1")

var shared = testnet.Shared{Start: func() (*testnet.Net, error) {
	rec := func(d string, rrs ...string) testnet.Domain { return testnet.Domain{Name: d, Records: rrs} }
	sc := &testnet.Scenario{Domains: []testnet.Domain{
		rec("provider.test",
			"mta-sts.provider.test. 300 IN A 127.0.0.1",
			`_mta-sts.provider.test. 300 IN TXT "v=STSv1; id=20261206"`),
		rec("hosted.test", "mta-sts.hosted.test. 300 IN A 127.0.0.1"),
		rec("hosted2.test", "mta-sts.hosted2.test. 300 IN A 127.0.0.1"),
		rec("hosted3.test", "mta-sts.hosted3.test. 300 IN A 127.0.0.1"),
		rec("hosted4.test", "mta-sts.hosted4.test. 300 IN A 127.0.0.1"),
		// RFC 8461 §8.2 delegation with two CNAMEs.
		rec("good.test",
			"mta-sts.good.test. 300 IN CNAME mta-sts.provider.test.",
			"_mta-sts.good.test. 300 IN CNAME _mta-sts.provider.test."),
		rec("good2.test",
			"mta-sts.good2.test. 300 IN CNAME mta-sts.provider.test.",
			"_mta-sts.good2.test. 300 IN CNAME _mta-sts.provider.test."),
		// An A record equal to ours instead of the first CNAME.
		rec("byaddr.test",
			"mta-sts.byaddr.test. 300 IN A 127.0.0.1",
			"_mta-sts.byaddr.test. 300 IN CNAME _mta-sts.provider.test."),
		// Half done: only the policy host's CNAME.
		rec("half.test", "mta-sts.half.test. 300 IN CNAME mta-sts.provider.test."),
		// Half done the other way: only the _mta-sts CNAME.
		rec("otherhalf.test", "_mta-sts.otherhalf.test. 300 IN CNAME _mta-sts.provider.test."),
		// Points at someone else's address.
		rec("foreign.test",
			"mta-sts.foreign.test. 300 IN A 127.0.0.9",
			"_mta-sts.foreign.test. 300 IN CNAME _mta-sts.provider.test."),
		// Its own TXT record rather than a CNAME to ours.
		rec("owntxt.test",
			"mta-sts.owntxt.test. 300 IN CNAME mta-sts.provider.test.",
			`_mta-sts.owntxt.test. 300 IN TXT "v=STSv1; id=1"`),
	}}
	return testnet.Start(context.Background(), sc, testnet.Options{})
}}

// startPebble runs a pebble CA whose VA resolves through dnsAddr and
// validates HTTP-01 on httpPort and TLS-ALPN-01 on tlsPort.
func startPebble(t testing.TB, dnsAddr string, httpPort, tlsPort int) *certstest.CA {
	t.Helper()
	o := certstest.Options{DNSAddr: dnsAddr, HTTPPort: httpPort, TLSPort: tlsPort}
	if os.Getenv("PEBBLE_LOG") != "" {
		o.Log = log.New(os.Stderr, "pebble ", log.LstdFlags)
	}
	c := certstest.Start(o)
	t.Cleanup(c.Close)
	return c
}

// env is a policy host on loopback: a Manager behind an HTTP listener (for
// HTTP-01) and a TLS listener (TLS-ALPN-01 and the certificates), with
// pebble validating against both.
type env struct {
	m                 *Manager
	ca                *certstest.CA
	tlsAddr           string
	httpPort, tlsPort int
}

type envOptions struct {
	disableHTTP, disableALPN bool
	delegation               *Delegation
	storage                  certmagic.Storage
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	n := shared.Net(t)
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := httpLn.Addr().(*net.TCPAddr).Port
	tlsPort := tlsLn.Addr().(*net.TCPAddr).Port
	acme := startPebble(t, n.DNSAddr(), httpPort, tlsPort)
	res, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	st := o.storage
	if st == nil {
		st = &certmagic.FileStorage{Path: t.TempDir()}
	}
	m, err := New(Config{
		CA:               acme.URL,
		TrustedRoots:     acme.APIRoots,
		Storage:          st,
		HTTPPort:         httpPort,
		TLSPort:          tlsPort,
		ListenHost:       "127.0.0.1",
		DisableHTTP01:    o.disableHTTP,
		DisableTLSALPN01: o.disableALPN,
		Email:            "hostmaster@provider.test",
		Delegation:       o.delegation,
		Resolver:         res,
		Logger:           testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next handler") })
	hs := &http.Server{Handler: m.HTTPHandler(next), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(httpLn)
	t.Cleanup(func() { hs.Close() })
	cfg := m.TLSConfig()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					io.WriteString(tc, "ok")
				}
			}()
		}
	}()
	t.Cleanup(func() { tlsLn.Close(); wg.Wait() })
	return &env{m: m, ca: acme, tlsAddr: tlsLn.Addr().String(), httpPort: httpPort, tlsPort: tlsPort}
}

// handshake connects to the policy host with SNI name and verifies its
// certificate against pebble's root.
func (e *env) handshake(name string) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{ServerName: name, RootCAs: e.ca.CertRoots}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", e.tlsAddr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

func providerDelegation() *Delegation {
	return &Delegation{Host: providerHost, STSName: providerSTS, Addresses: []netip.Addr{providerAddr}}
}

// testLogger sends the package's logs to the test log until the test
// ends (certmagic's goroutines may log later; those lines are dropped).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}
