package mtasts

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testca"
)

// testCA is a throw-away certificate authority for policy host tests.
type testCA struct {
	t    *testing.T
	root *testca.CA
	cert *x509.Certificate
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	root, err := testca.New("mtasts test")
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, root: root, cert: root.Certificate(), pool: root.Pool()}
}

// certOpts describes a leaf certificate.
type certOpts struct {
	dnsNames []string
	cn       string
	expired  bool
	self     bool // self-signed instead of issued by the CA
}

func (ca *testCA) issue(o certOpts) tls.Certificate {
	ca.t.Helper()
	l := testca.Leaf{CommonName: o.cn, DNSNames: o.dnsNames, SelfSigned: o.self}
	if o.expired {
		l.NotBefore, l.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	}
	cert, err := ca.root.Issue(l)
	if err != nil {
		ca.t.Fatal(err)
	}
	return *cert
}

// policyHost is an HTTPS policy host on loopback.
type policyHost struct {
	srv    *httptest.Server
	mu     sync.Mutex
	sni    []string
	curves []tls.CurveID
	req    []*http.Request
}

func (h *policyHost) port() int {
	_, p, _ := net.SplitHostPort(h.srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

func (h *policyHost) requests() []*http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*http.Request(nil), h.req...)
}

// lastCurves returns the groups the last client hello offered.
func (h *policyHost) lastCurves() []tls.CurveID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]tls.CurveID(nil), h.curves...)
}

func (h *policyHost) snis() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.sni...)
}

// startHost starts a TLS policy host serving handler with cert; cfg, when
// not nil, adjusts the server's TLS configuration.
func startHost(t *testing.T, cert tls.Certificate, handler http.HandlerFunc, cfg func(*tls.Config)) *policyHost {
	t.Helper()
	h := &policyHost{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.req = append(h.req, r)
		h.mu.Unlock()
		handler(w, r)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			h.mu.Lock()
			h.sni = append(h.sni, hello.ServerName)
			h.curves = append(h.curves[:0], hello.SupportedCurves...)
			h.mu.Unlock()
			return nil, nil
		},
	}
	if cfg != nil {
		cfg(srv.TLS)
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.srv = srv
	return h
}

// policyHandler serves body as text/plain.
func policyHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(body))
	}
}

const (
	testDomain = "example.com"
	policyF2   = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// netEnv is a fake DNS, a test CA and a Client wired to a policy host.
type netEnv struct {
	dns    *dnsresolve.Fake
	ca     *testCA
	host   *policyHost
	client *Client
}

// newNetEnv starts a policy host for testDomain with a valid certificate,
// publishes its address and the TXT record id "1".
func newNetEnv(t *testing.T, handler http.HandlerFunc) *netEnv {
	t.Helper()
	ca := newTestCA(t)
	host := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts." + testDomain}}), handler, nil)
	return newNetEnvWith(t, ca, host)
}

func newNetEnvWith(t *testing.T, ca *testCA, host *policyHost) *netEnv {
	t.Helper()
	fake := &dnsresolve.Fake{}
	fake.SetIP("mta-sts."+testDomain, loopback)
	fake.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=1")
	return &netEnv{
		dns:  fake,
		ca:   ca,
		host: host,
		client: &Client{
			DNS:       fake,
			RootCAs:   ca.pool,
			HTTPSPort: host.port(),
			Timeout:   10 * time.Second,
		},
	}
}
