package mtaststest

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
)

// PolicyServer is an HTTPS server on loopback that plays the policy host
// mta-sts.<domain> of any number of policy domains, with the fake DNS and
// the test CA that a [mtasts.Client] needs to reach it. [PolicyServer.Client]
// returns a client wired to it.
//
// Like [httptest.Server], it is for tests: NewPolicyServer, SetPolicy and
// Handle panic when they cannot start or issue a certificate.
type PolicyServer struct {
	// DNS answers for the policy domains: the _mta-sts TXT record that
	// SetPolicy publishes and the loopback address of every policy host.
	// Add MX records, CNAMEs or faults to it as the test needs.
	DNS *dnsresolve.Fake
	// CA issued the policy hosts' certificates; the client trusts it.
	CA *CA

	srv  *httptest.Server
	addr netip.AddrPort

	mu    sync.Mutex
	hosts map[string]*policyHost // by policy host name, lower case
}

// wellKnownPath is where a policy host serves its policy (RFC 8461 §3.2).
const wellKnownPath = "/.well-known/mta-sts.txt"

type policyHost struct {
	cert    *tls.Certificate
	handler http.Handler
}

// NewPolicyServer starts a policy server with no domains. The caller must
// Close it (t.Cleanup(srv.Close)).
func NewPolicyServer() *PolicyServer {
	ca, err := NewCA()
	if err != nil {
		panic(fmt.Sprintf("mtaststest: %v", err))
	}
	s := &PolicyServer{DNS: &dnsresolve.Fake{}, CA: ca, hosts: make(map[string]*policyHost)}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.TLS = &tls.Config{GetCertificate: s.certificate}
	// Handshakes that fail on purpose are the tests' business, not log
	// noise.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	s.addr, err = netip.ParseAddrPort(s.srv.Listener.Addr().String())
	if err != nil {
		s.srv.Close()
		panic(fmt.Sprintf("mtaststest: listener address: %v", err))
	}
	return s
}

// Close shuts the server down and blocks until all its requests are done.
func (s *PolicyServer) Close() { s.srv.Close() }

// Port returns the TCP port every policy host listens on.
func (s *PolicyServer) Port() int { return int(s.addr.Port()) }

// Client returns a new [mtasts.Client] that resolves with DNS, trusts CA
// and connects to Port: set its other fields as the test needs.
func (s *PolicyServer) Client() *mtasts.Client {
	return &mtasts.Client{DNS: s.DNS, RootCAs: s.CA.Pool(), HTTPSPort: s.Port()}
}

// SetPolicy publishes a policy for domain: the TXT record
// "_mta-sts.<domain> v=STSv1; id=<id>", the address of mta-sts.<domain>,
// and policy as the text/plain body of
// https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.2). The
// text is served as given, valid or not. Calling it again replaces the
// policy, as a domain publishing a new one.
func (s *PolicyServer) SetPolicy(domain, id, policy string) {
	domain = normalize(domain)
	s.DNS.SetTXT("_mta-sts."+domain, "v=STSv1; id="+id)
	s.Handle(domain, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != wellKnownPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, policy)
	}))
}

// Handle serves every request to mta-sts.<domain> with h, for a policy
// host that fails (a status code, a redirect, a slow or huge body). It
// publishes the host's address but no TXT record: call SetPolicy first or
// set one on DNS.
func (s *PolicyServer) Handle(domain string, h http.Handler) {
	host := "mta-sts." + normalize(domain)
	s.DNS.SetIP(host, s.addr.Addr())
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.hosts[host]; ok {
		p.handler = h
		return
	}
	cert, err := s.CA.Issue(host)
	if err != nil {
		panic(fmt.Sprintf("mtaststest: %v", err))
	}
	s.hosts[host] = &policyHost{cert: cert, handler: h}
}

func (s *PolicyServer) host(name string) *policyHost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[normalize(name)]
}

// certificate picks the policy host's certificate by SNI.
func (s *PolicyServer) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if p := s.host(hello.ServerName); p != nil {
		return p.cert, nil
	}
	return nil, fmt.Errorf("mtaststest: no policy host %q", hello.ServerName)
}

func (s *PolicyServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.Host
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	p := s.host(name)
	if p == nil {
		http.Error(w, "no such policy host", http.StatusMisdirectedRequest)
		return
	}
	s.mu.Lock()
	h := p.handler
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
