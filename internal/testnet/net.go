package testnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Options configure Start. The zero value gives a loopback network on free
// ports.
type Options struct {
	// IP is the address of the DNS server and of every policy host
	// (default 127.0.0.1). mta-sts.<domain> resolves to it.
	IP netip.Addr
	// DNSPort, HTTPSPort and SMTPPort are the ports to listen on; 0 picks
	// free ones. The DNS port serves UDP and TCP.
	DNSPort, HTTPSPort, SMTPPort int
	// MXPrefix holds the addresses of the MX hosts: each MX host name gets
	// its own address inside it, all listening on SMTPPort. The first
	// address after the prefix base is kept as a port reservation. Default:
	// a random /24 inside 127.0.0.0/8 other than 127.0.0.0/24, retried on
	// bind collisions. A /24 holds 253 MX hosts.
	MXPrefix netip.Prefix
	// CertValidity is the lifetime of good leaf certificates (default
	// DefaultCertValidity).
	CertValidity time.Duration
	// CA issues every certificate; nil means a fresh NewCA.
	CA *CA
	// Logger receives debug logs of DNS faults, HTTPS requests and SMTP
	// sessions; nil discards them.
	Logger *slog.Logger
	// Validating makes the DNS server answer the root zone (". SOA") with
	// the AD bit, as a validating resolver does (RFC 6840 §5.7), also
	// when no scenario domain is Secure. Without it, the root's answers
	// carry the AD bit while some domain is Secure: a scenario with
	// DNSSEC is served by a validating resolver, one without by a
	// resolver that does not validate.
	Validating bool
}

// Message is one message accepted by an MX host.
type Message struct {
	From       string
	To         []string
	Data       []byte
	TLS        bool
	TLSVersion uint16
	// ServerName is the SNI the client sent in the STARTTLS handshake.
	ServerName string
}

// Net is a running fake Internet. All methods are safe for concurrent use.
type Net struct {
	opts   Options
	log    *slog.Logger
	ca     *CA
	caDir  string
	caFile string

	// ctx is cancelled by Close; slow handlers (Delay, Drip, Hang) watch it.
	ctx    context.Context
	cancel context.CancelFunc

	dnsUDP, dnsTCP *dns.Server
	dnsAddr        string
	https          *http.Server
	httpsLn        net.Listener
	httpsPort      int
	prefix         netip.Prefix
	smtpPort       int
	clientPorts    [6]int // by ClientServices order

	// mu guards the scenario state, read by every DNS query.
	mu      sync.RWMutex
	domains map[string]*domainEntry
	mx      map[string]*mxEntry
	clients map[string]*clientEntry
	raw     map[string][]rawRecord
	ents    map[string]int // ancestors of existing names (empty non-terminals)
	addrs   map[string]netip.Addr
	names   map[netip.Addr]string
	next    netip.Addr

	// setMu serializes Set and Remove (listener reconciliation).
	setMu sync.Mutex

	// life guards the listeners, connections and goroutine accounting.
	life    sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	smtpLns map[netip.Addr]net.Listener
	conns   map[net.Conn]struct{}
	// clientLns (guarded by life) are the mail-client listeners.
	clientLns map[netip.AddrPort]net.Listener

	stats    sync.Mutex
	requests map[string]int
	queries  map[dnsQuestion]int
	nqueries atomic.Int64
	sni      []string
	sniSeen  map[string]bool
	received map[string][]Message
}

type domainEntry struct {
	d    Domain
	body []byte // policy body after PadTo
	raw  []dns.RR
}

type mxEntry struct {
	conf MXHost
	refs map[string]bool // domains listing this host
}

type rawRecord struct {
	domain string
	rr     dns.RR
}

// Bounds on the logs kept by a Net.
const (
	maxSNILog       = 100_000
	maxMessagesKept = 10_000
)

// Start builds the network described by sc and starts serving DNS, HTTPS
// and SMTP. ctx bounds the start-up only; the network runs until Close. sc
// is copied and may be reused.
func Start(ctx context.Context, sc *Scenario, opts Options) (*Net, error) {
	if sc == nil {
		sc = &Scenario{}
	}
	domains := make([]Domain, len(sc.Domains))
	for i, d := range sc.Domains {
		domains[i] = d.clone()
	}
	if err := (&Scenario{Domains: domains}).Validate(); err != nil {
		return nil, err
	}
	if !opts.IP.IsValid() {
		opts.IP = netip.MustParseAddr("127.0.0.1")
	}
	if opts.CertValidity <= 0 {
		opts.CertValidity = DefaultCertValidity
	}
	n := &Net{
		opts:     opts,
		log:      opts.Logger,
		ca:       opts.CA,
		requests: make(map[string]int),
		queries:  make(map[dnsQuestion]int),
		sniSeen:  make(map[string]bool),
		received: make(map[string][]Message),
		smtpLns:  make(map[netip.Addr]net.Listener),
		conns:    make(map[net.Conn]struct{}),
	}
	n.clientLns = make(map[netip.AddrPort]net.Listener)
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	if n.ca == nil {
		ca, err := NewCA()
		if err != nil {
			return nil, err
		}
		n.ca = ca
	}
	if err := n.writeCAFile(); err != nil {
		return nil, err
	}
	if err := n.startDNS(ctx); err != nil {
		return nil, err
	}
	if err := n.startHTTPS(ctx); err != nil {
		return nil, err
	}
	if err := n.startSMTP(ctx, domains); err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

func (n *Net) writeCAFile() error {
	dir, err := os.MkdirTemp("", "mailsts-testnet-")
	if err != nil {
		return fmt.Errorf("testnet: CA file: %w", err)
	}
	n.caDir = dir
	n.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(n.caFile, n.ca.PEM(), 0o644); err != nil {
		return fmt.Errorf("testnet: CA file: %w", err)
	}
	return nil
}

// startDNS listens on UDP and TCP on the same port and serves n.ServeDNS.
func (n *Net) startDNS(ctx context.Context) error {
	var pc net.PacketConn
	var ln net.Listener
	var lc net.ListenConfig
	for attempt := 0; ; attempt++ {
		addr := net.JoinHostPort(n.opts.IP.String(), strconv.Itoa(n.opts.DNSPort))
		var err error
		pc, err = lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("testnet: DNS: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort(n.opts.IP.String(), strconv.Itoa(port)))
		if err == nil {
			break
		}
		pc.Close()
		if n.opts.DNSPort != 0 || attempt >= 20 {
			return fmt.Errorf("testnet: DNS: %w", err)
		}
	}
	n.dnsAddr = ln.Addr().String()
	n.dnsUDP = &dns.Server{PacketConn: pc, Handler: n}
	n.dnsTCP = &dns.Server{Listener: ln, Handler: n, ReadTimeout: 10 * time.Second}
	for _, s := range []*dns.Server{n.dnsUDP, n.dnsTCP} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			errc <- s.ActivateAndServe()
		}()
		select {
		case <-started:
		case err := <-errc:
			return fmt.Errorf("testnet: DNS: %w", err)
		}
	}
	return nil
}

// startSMTP picks the MX prefix and port, loads the domains and binds one
// listener per MX host.
func (n *Net) startSMTP(ctx context.Context, domains []Domain) error {
	var lastErr error
	for attempt := 0; attempt < 16; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("testnet: start: %w", err)
		}
		prefix := n.opts.MXPrefix
		if !prefix.IsValid() {
			// A random /24 in 127.0.0.0/8, never 127.0.0.0/24.
			prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(rand.IntN(255) + 1), byte(rand.IntN(256)), 0}), 24)
		}
		prefix = prefix.Masked()
		err := n.loadSMTP(ctx, prefix, domains)
		if err == nil {
			return nil
		}
		lastErr = err
		n.resetSMTP()
		retry := errors.Is(err, errBind) && (!n.opts.MXPrefix.IsValid() || n.opts.SMTPPort == 0)
		if !retry {
			break
		}
	}
	return lastErr
}

var errBind = errors.New("bind failed")

func (n *Net) loadSMTP(ctx context.Context, prefix netip.Prefix, domains []Domain) error {
	first := prefix.Addr().Next()
	if !prefix.Contains(first) {
		return fmt.Errorf("%w: MX prefix %s is too small", ErrScenario, prefix)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(first.String(), strconv.Itoa(n.opts.SMTPPort)))
	if err != nil {
		return fmt.Errorf("testnet: SMTP port reservation on %s: %w: %w", first, errBind, err)
	}
	n.prefix = prefix
	n.smtpPort = ln.Addr().(*net.TCPAddr).Port
	n.next = first.Next()
	n.serveSMTPListener(first, ln)
	if err := n.reserveClientPorts(ctx, first); err != nil {
		return err
	}
	n.mu.Lock()
	n.domains = make(map[string]*domainEntry, len(domains))
	n.mx = make(map[string]*mxEntry)
	n.clients = make(map[string]*clientEntry)
	n.raw = make(map[string][]rawRecord)
	n.ents = make(map[string]int)
	n.addrs = make(map[string]netip.Addr)
	n.names = make(map[netip.Addr]string)
	touched := make(map[string]bool)
	for _, d := range domains {
		names, err := n.setLocked(d)
		if err != nil {
			n.mu.Unlock()
			return err
		}
		for _, m := range names {
			touched[m] = true
		}
	}
	n.mu.Unlock()
	for _, m := range slices.Sorted(maps.Keys(touched)) {
		if err := n.reconcileHost(m); err != nil {
			return err
		}
	}
	return nil
}

// reconcileHost reconciles the SMTP and client listeners of a host name.
func (n *Net) reconcileHost(name string) error {
	if err := n.reconcile(name); err != nil {
		return err
	}
	return n.reconcileClients(name)
}

// resetSMTP closes every SMTP listener after a failed load.
func (n *Net) resetSMTP() {
	n.life.Lock()
	for a, ln := range n.smtpLns {
		ln.Close()
		delete(n.smtpLns, a)
	}
	for a, ln := range n.clientLns {
		ln.Close()
		delete(n.clientLns, a)
	}
	n.life.Unlock()
}

// Close stops every server, closes every connection, waits for their
// goroutines and removes the CA file. It is safe to call more than once.
func (n *Net) Close() {
	n.life.Lock()
	if n.closed {
		n.life.Unlock()
		return
	}
	n.closed = true
	n.cancel()
	for _, ln := range n.smtpLns {
		ln.Close()
	}
	for _, ln := range n.clientLns {
		ln.Close()
	}
	for c := range n.conns {
		c.Close()
	}
	n.life.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n.https != nil {
		if err := n.https.Shutdown(ctx); err != nil {
			n.https.Close()
		}
	} else if n.httpsLn != nil {
		n.httpsLn.Close()
	}
	for _, s := range []*dns.Server{n.dnsUDP, n.dnsTCP} {
		if s != nil {
			if err := s.ShutdownContext(ctx); err != nil {
				// Never started: close the sockets directly.
				if s.PacketConn != nil {
					s.PacketConn.Close()
				}
				if s.Listener != nil {
					s.Listener.Close()
				}
			}
		}
	}
	n.wg.Wait()
	if n.caDir != "" {
		os.RemoveAll(n.caDir)
	}
}

// DNSAddr returns the host:port of the DNS server (UDP and TCP).
func (n *Net) DNSAddr() string { return n.dnsAddr }

// HTTPSPort returns the port of every policy host.
func (n *Net) HTTPSPort() int { return n.httpsPort }

// HTTPSAddr returns the host:port every policy host listens on.
func (n *Net) HTTPSAddr() string {
	return net.JoinHostPort(n.opts.IP.String(), strconv.Itoa(n.httpsPort))
}

// SMTPPort returns the port every MX host listens on.
func (n *Net) SMTPPort() int { return n.smtpPort }

// MXPrefix returns the prefix holding the MX host addresses.
func (n *Net) MXPrefix() netip.Prefix { return n.prefix }

// MXAddr returns the address assigned to an MX host name or a client host
// name, as served in its A record.
func (n *Net) MXAddr(mxName string) (netip.Addr, bool) {
	name, err := canonicalName(mxName)
	if err != nil {
		return netip.Addr{}, false
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	a, ok := n.addrs[name]
	return a, ok
}

// CA returns the certificate authority behind every certificate.
func (n *Net) CA() *CA { return n.ca }

// RootCAs returns a new pool trusting the test CA.
func (n *Net) RootCAs() *x509.CertPool { return n.ca.Pool() }

// CAFile returns the path of the CA certificate in PEM form. The file is
// removed by Close.
func (n *Net) CAFile() string { return n.caFile }

// CAPEM returns the CA certificate in PEM form.
func (n *Net) CAPEM() []byte { return n.ca.PEM() }

// dnsQuestion is a query's type and name (lowercase, no trailing dot; ""
// for the root).
type dnsQuestion struct {
	qtype uint16
	name  string
}

// DNSQueryTotal returns how many DNS queries the server has received.
func (n *Net) DNSQueryTotal() int64 { return n.nqueries.Load() }

// DNSQueries returns how many DNS queries of type qtype ("MX", "TXT",
// "SOA", …) asked name (without the trailing dot; "." for the root zone),
// over UDP and TCP.
func (n *Net) DNSQueries(qtype, name string) int {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	n.stats.Lock()
	defer n.stats.Unlock()
	return n.queries[dnsQuestion{dns.StringToType[strings.ToUpper(qtype)], name}]
}

// Requests returns how many HTTPS requests reached mta-sts.<policyDomain>
// (any path, counted before Delay).
func (n *Net) Requests(policyDomain string) int {
	name, err := canonicalName(policyDomain)
	if err != nil {
		return 0
	}
	n.stats.Lock()
	defer n.stats.Unlock()
	return n.requests[name]
}

// SNIs returns the distinct server names sent in HTTPS handshakes, in order
// of first appearance ("" for none), up to 100,000 entries.
func (n *Net) SNIs() []string {
	n.stats.Lock()
	defer n.stats.Unlock()
	return slices.Clone(n.sni)
}

// Received returns copies of the messages accepted by an MX host, oldest
// first (the last 10,000 are kept).
func (n *Net) Received(mxName string) []Message {
	name, err := canonicalName(mxName)
	if err != nil {
		return nil
	}
	n.stats.Lock()
	defer n.stats.Unlock()
	msgs := n.received[name]
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		m.To = slices.Clone(m.To)
		m.Data = slices.Clone(m.Data)
		out[i] = m
	}
	return out
}

// Domain returns a copy of the current definition of a domain.
func (n *Net) Domain(name string) (Domain, bool) {
	name, err := canonicalName(name)
	if err != nil {
		return Domain{}, false
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	e, ok := n.domains[name]
	if !ok {
		return Domain{}, false
	}
	return e.d.clone(), true
}

// Set adds or atomically replaces a domain while the network serves: the
// next DNS query, HTTPS request or SMTP connection sees the new definition.
// An MX host shared with other domains takes the definition given last.
func (n *Net) Set(d Domain) error {
	d = d.clone()
	if err := d.normalize(); err != nil {
		return err
	}
	n.setMu.Lock()
	defer n.setMu.Unlock()
	n.mu.Lock()
	touched, err := n.setLocked(d)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	for _, m := range touched {
		if err := n.reconcileHost(m); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes a domain; its names then answer NXDOMAIN, and MX hosts no
// other domain lists stop accepting connections.
func (n *Net) Remove(name string) {
	name, err := canonicalName(name)
	if err != nil {
		return
	}
	n.setMu.Lock()
	defer n.setMu.Unlock()
	n.mu.Lock()
	old := n.domains[name]
	var touched []string
	if old != nil {
		touched = n.unrefLocked(old)
		delete(n.domains, name)
		n.addAncestors(name, -1)
	}
	n.mu.Unlock()
	for _, m := range touched {
		// Closing a listener cannot fail in a way the caller can act on.
		_ = n.reconcileHost(m)
	}
}

// setLocked installs a normalized domain and returns the MX names whose
// listeners need reconciling. n.mu must be held for writing.
func (n *Net) setLocked(d Domain) ([]string, error) {
	e := &domainEntry{d: d}
	if d.Policy != nil {
		body, err := paddedBody(d.Policy.Body, d.Policy.PadTo)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrScenario, err)
		}
		e.body = []byte(body)
	}
	for _, r := range d.Records {
		rr, err := dns.NewRR(r)
		if err != nil {
			return nil, fmt.Errorf("%w: record %q: %w", ErrScenario, r, err)
		}
		e.raw = append(e.raw, rr)
	}
	// Allocate addresses first so that a full prefix changes nothing.
	var fresh []string
	isFresh := map[string]bool{}
	for _, name := range d.hostNames() {
		if _, ok := n.addrs[name]; !ok && !isFresh[name] {
			isFresh[name] = true
			fresh = append(fresh, name)
		}
	}
	next := n.next
	for range fresh {
		if !n.prefix.Contains(next) || !n.prefix.Contains(next.Next()) {
			return nil, fmt.Errorf("%w: MX prefix %s has no address left for %d new MX or client hosts; use a larger Options.MXPrefix", ErrScenario, n.prefix, len(fresh))
		}
		next = next.Next()
	}
	for _, m := range fresh {
		n.addrs[m] = n.next
		n.names[n.next] = m
		n.next = n.next.Next()
	}
	var touched []string
	if old := n.domains[d.Name]; old != nil {
		touched = n.unrefLocked(old)
	} else {
		n.addAncestors(d.Name, +1)
	}
	n.domains[d.Name] = e
	for _, h := range d.MX {
		m := n.mx[h.Name]
		if m == nil {
			m = &mxEntry{refs: make(map[string]bool)}
			n.mx[h.Name] = m
			n.addAncestors(h.Name, +1)
		}
		conf := h
		conf.Pref = 0
		m.conf = conf
		m.refs[d.Name] = true
		touched = append(touched, h.Name)
	}
	for _, h := range d.Clients {
		ce := n.clients[h.Name]
		if ce == nil {
			ce = &clientEntry{refs: make(map[string]bool)}
			n.clients[h.Name] = ce
			n.addAncestors(h.Name, +1)
		}
		ce.conf = h
		ce.refs[d.Name] = true
		touched = append(touched, h.Name)
	}
	for _, rr := range e.raw {
		owner := strings.ToLower(strings.TrimSuffix(rr.Header().Name, "."))
		if len(n.raw[owner]) == 0 {
			n.addAncestors(owner, +1)
		}
		n.raw[owner] = append(n.raw[owner], rawRecord{domain: d.Name, rr: rr})
	}
	return touched, nil
}

// unrefLocked removes what an installed domain contributed to the MX and
// raw-record indexes and returns its MX names.
func (n *Net) unrefLocked(old *domainEntry) []string {
	var touched []string
	for _, h := range old.d.MX {
		touched = append(touched, h.Name)
		m := n.mx[h.Name]
		if m == nil {
			continue
		}
		delete(m.refs, old.d.Name)
		if len(m.refs) == 0 {
			delete(n.mx, h.Name)
			n.addAncestors(h.Name, -1)
		}
	}
	for _, h := range old.d.Clients {
		touched = append(touched, h.Name)
		ce := n.clients[h.Name]
		if ce == nil {
			continue
		}
		delete(ce.refs, old.d.Name)
		if len(ce.refs) == 0 {
			delete(n.clients, h.Name)
			n.addAncestors(h.Name, -1)
		}
	}
	for _, rr := range old.raw {
		owner := strings.ToLower(strings.TrimSuffix(rr.Header().Name, "."))
		kept := slices.DeleteFunc(n.raw[owner], func(r rawRecord) bool { return r.domain == old.d.Name })
		if len(kept) == 0 {
			delete(n.raw, owner)
			n.addAncestors(owner, -1)
		} else {
			n.raw[owner] = kept
		}
	}
	return touched
}

// addAncestors counts the proper ancestors of name as existing
// (empty non-terminals answer NODATA, not NXDOMAIN).
func (n *Net) addAncestors(name string, delta int) {
	for {
		_, rest, ok := strings.Cut(name, ".")
		if !ok {
			return
		}
		name = rest
		n.ents[name] += delta
		if n.ents[name] <= 0 {
			delete(n.ents, name)
		}
	}
}

// clone returns a deep copy of d.
func (d Domain) clone() Domain {
	c := d
	c.STSTXT = cloneTXT(d.STSTXT)
	c.TLSRPTTXT = cloneTXT(d.TLSRPTTXT)
	c.MX = slices.Clone(d.MX)
	c.Clients = slices.Clone(d.Clients)
	c.Records = slices.Clone(d.Records)
	if d.Policy != nil {
		p := *d.Policy
		p.Headers = maps.Clone(d.Policy.Headers)
		c.Policy = &p
	}
	return c
}

func cloneTXT(rrs [][]string) [][]string {
	if rrs == nil {
		return nil
	}
	out := make([][]string, len(rrs))
	for i, rr := range rrs {
		out[i] = slices.Clone(rr)
	}
	return out
}

// track registers a connection for Close; false means the Net is closed
// and the connection was closed.
func (n *Net) track(c net.Conn) bool {
	n.life.Lock()
	defer n.life.Unlock()
	if n.closed {
		c.Close()
		return false
	}
	n.conns[c] = struct{}{}
	n.wg.Add(1)
	return true
}

func (n *Net) untrack(c net.Conn) {
	c.Close()
	n.life.Lock()
	delete(n.conns, c)
	n.life.Unlock()
	n.wg.Done()
}

func (n *Net) recordSNI(name string) {
	n.stats.Lock()
	defer n.stats.Unlock()
	if !n.sniSeen[name] && len(n.sni) < maxSNILog {
		n.sniSeen[name] = true
		n.sni = append(n.sni, name)
	}
}

// tlsConfig is the base of every server-side TLS configuration: TLS 1.0 is
// allowed so that MaxTLS can simulate old servers.
func tlsConfig(cert *tls.Certificate, maxTLS string) *tls.Config {
	maxV, _ := maxTLSVersion(maxTLS)
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   maxV,
	}
}
