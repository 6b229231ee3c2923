package testnet

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Mail-client endpoints (RFC 8314): a ClientHost serves submission, IMAP and
// POP3, each with implicit TLS and with STARTTLS, on its own loopback
// address (allocated like an MX host's) and on ports the Net picks once for
// all client hosts ([Net.ClientPort]). The servers speak just enough of
// each protocol for a client to greet, upgrade to TLS and see the
// certificate: SMTP EHLO/STARTTLS (the MX host's SMTP server, so submitted
// messages show in [Net.Received]), IMAP "* OK"/CAPABILITY/STARTTLS/LOGOUT
// and POP3 "+OK"/CAPA/STLS/QUIT. Nobody can log in.

// ClientService names one RFC 8314 mail-client service by its IANA service
// name.
type ClientService string

// Client services, in the order of [ClientServices].
const (
	ServiceSubmissions ClientService = "submissions" // SMTP submission, implicit TLS (465; RFC 8314 §3.3)
	ServiceSubmission  ClientService = "submission"  // SMTP submission, STARTTLS (587; RFC 3207, RFC 6409)
	ServiceIMAPS       ClientService = "imaps"       // IMAP, implicit TLS (993; RFC 8314 §3.2)
	ServiceIMAP        ClientService = "imap"        // IMAP, STARTTLS (143; RFC 9051 §6.2.1)
	ServicePOP3S       ClientService = "pop3s"       // POP3, implicit TLS (995; RFC 8314 §3.2)
	ServicePOP3        ClientService = "pop3"        // POP3, STLS (110; RFC 2595 §4)
)

// ClientServices returns every client service: implicit TLS first, then its
// STARTTLS sibling, for submission, IMAP and POP3.
func ClientServices() []ClientService {
	return []ClientService{ServiceSubmissions, ServiceSubmission, ServiceIMAPS, ServiceIMAP, ServicePOP3S, ServicePOP3}
}

// StandardPort returns the well-known port of the service (465, 587, 993,
// 143, 995, 110), or 0 for an unknown service.
func (s ClientService) StandardPort() int {
	switch s {
	case ServiceSubmissions:
		return 465
	case ServiceSubmission:
		return 587
	case ServiceIMAPS:
		return 993
	case ServiceIMAP:
		return 143
	case ServicePOP3S:
		return 995
	case ServicePOP3:
		return 110
	}
	return 0
}

// Implicit reports whether the TLS handshake starts as soon as the client
// connects (RFC 8314 §3); the other services upgrade with STARTTLS or STLS.
func (s ClientService) Implicit() bool {
	return s == ServiceSubmissions || s == ServiceIMAPS || s == ServicePOP3S
}

func (s ClientService) index() int {
	for i, c := range ClientServices() {
		if c == s {
			return i
		}
	}
	return -1
}

// ClientHost scripts the mail-client endpoints of one host name. Every
// service is served unless its endpoint says Down; the zero endpoint is a
// good one.
type ClientHost struct {
	// Name is the host name clients use (A-label form after
	// normalization). It may also be an MX host of some domain: the two
	// then share the address.
	Name string `yaml:"name"`
	// Cert is the certificate of every endpoint that does not set its own.
	Cert CertKind `yaml:"cert,omitempty"`
	// The six endpoints, by service.
	Submissions ClientEndpoint `yaml:"submissions,omitempty"`
	Submission  ClientEndpoint `yaml:"submission,omitempty"`
	IMAPS       ClientEndpoint `yaml:"imaps,omitempty"`
	IMAP        ClientEndpoint `yaml:"imap,omitempty"`
	POP3S       ClientEndpoint `yaml:"pop3s,omitempty"`
	POP3        ClientEndpoint `yaml:"pop3,omitempty"`
	// Fault breaks the A record of the host.
	Fault Fault `yaml:"fault,omitempty"`
	// SRV publishes the RFC 6186 SRV records of the domain listing this
	// host: _submissions._tcp, _submission._tcp, _imaps._tcp, _imap._tcp,
	// _pop3s._tcp and _pop3._tcp, each pointing at this host on the port
	// of [Net.ClientPort], unless the endpoint's SRV says otherwise.
	SRV bool `yaml:"srv,omitempty"`
	// SRVPriority and SRVWeight go into every SRV record of this host.
	SRVPriority uint16 `yaml:"srv_priority,omitempty"`
	SRVWeight   uint16 `yaml:"srv_weight,omitempty"`
}

// SRVKind selects what a ClientHost with SRV publishes for one service.
type SRVKind string

// SRV kinds.
const (
	SRVTarget SRVKind = ""     // a record pointing at the host (the default)
	SRVOmit   SRVKind = "omit" // no record for this service
	// SRVNone publishes the target "." (RFC 2782, RFC 6186 §4): the
	// service is decidedly not offered at this domain.
	SRVNone SRVKind = "none"
)

func (k SRVKind) valid() bool { return k == SRVTarget || k == SRVOmit || k == SRVNone }

// ClientEndpoint scripts one service of a ClientHost.
type ClientEndpoint struct {
	// Cert is the certificate presented; "" means the host's Cert.
	Cert CertKind `yaml:"cert,omitempty"`
	// NoSTARTTLS strips STARTTLS (STLS for POP3): it is not advertised
	// and the command is unknown, so the session stays in cleartext. Only
	// for submission, imap and pop3.
	NoSTARTTLS bool `yaml:"no_starttls,omitempty"`
	// MaxTLS caps the TLS version, as for PolicyHost.
	MaxTLS string `yaml:"max_tls,omitempty"`
	// Down refuses connections to this service.
	Down bool `yaml:"down,omitempty"`
	// SRV selects this service's SRV record when the host has SRV.
	SRV SRVKind `yaml:"srv,omitempty"`
}

// Endpoint returns the effective definition of one service of h (with the
// host's Cert filled in).
func (h ClientHost) Endpoint(s ClientService) ClientEndpoint {
	var e ClientEndpoint
	switch s {
	case ServiceSubmissions:
		e = h.Submissions
	case ServiceSubmission:
		e = h.Submission
	case ServiceIMAPS:
		e = h.IMAPS
	case ServiceIMAP:
		e = h.IMAP
	case ServicePOP3S:
		e = h.POP3S
	case ServicePOP3:
		e = h.POP3
	}
	if e.Cert == "" {
		e.Cert = h.Cert
	}
	return e
}

// normalize validates h and rewrites its name to canonical form.
func (h *ClientHost) normalize() error {
	name, err := canonicalName(h.Name)
	if err != nil {
		return fmt.Errorf("client host %q: %w", h.Name, err)
	}
	h.Name = name
	if !h.Cert.valid() || !h.Fault.valid() {
		return fmt.Errorf("client host %s: unknown cert %q or fault %q", name, h.Cert, h.Fault)
	}
	for _, s := range ClientServices() {
		e := h.Endpoint(s)
		if !e.Cert.valid() || !validMaxTLS(e.MaxTLS) || !e.SRV.valid() {
			return fmt.Errorf("client host %s: %s: unknown cert %q, max_tls %q or srv %q", name, s, e.Cert, e.MaxTLS, e.SRV)
		}
		if e.NoSTARTTLS && s.Implicit() {
			return fmt.Errorf("client host %s: %s: no_starttls applies to submission, imap and pop3 only (%s is implicit TLS)", name, s, s)
		}
	}
	return nil
}

type clientEntry struct {
	conf ClientHost
	refs map[string]bool // domains listing this host
}

// ClientPort returns the port every client host serves the service on (0
// for an unknown service). The ports are picked at Start, like SMTPPort.
func (n *Net) ClientPort(s ClientService) int {
	if i := s.index(); i >= 0 {
		return n.clientPorts[i]
	}
	return 0
}

// reserveClientPorts picks the client ports on the port reservation address
// first; connections there are closed at once.
func (n *Net) reserveClientPorts(ctx context.Context, first netip.Addr) error {
	var lc net.ListenConfig
	for i, s := range ClientServices() {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(first.String(), "0"))
		if err != nil {
			return fmt.Errorf("testnet: %s port reservation on %s: %w: %w", s, first, errBind, err)
		}
		n.clientPorts[i] = ln.Addr().(*net.TCPAddr).Port
		n.serveClientListener(netip.AddrPortFrom(first, uint16(n.clientPorts[i])), s, ln)
	}
	return nil
}

// reconcileClients makes the client listeners of a host name match its
// definition: one per service that is not Down.
func (n *Net) reconcileClients(name string) error {
	n.mu.RLock()
	addr, ok := n.addrs[name]
	e := n.clients[name]
	var conf ClientHost
	if e != nil {
		conf = e.conf
	}
	n.mu.RUnlock()
	if !ok {
		return nil
	}
	for i, s := range ClientServices() {
		ap := netip.AddrPortFrom(addr, uint16(n.clientPorts[i]))
		want := e != nil && !conf.Endpoint(s).Down
		n.life.Lock()
		ln, closed := n.clientLns[ap], n.closed
		if closed {
			n.life.Unlock()
			return nil
		}
		if !want && ln != nil {
			ln.Close()
			delete(n.clientLns, ap)
		}
		n.life.Unlock()
		if !want || ln != nil {
			continue
		}
		var lc net.ListenConfig
		l, err := lc.Listen(n.ctx, "tcp", ap.String())
		if err != nil {
			return fmt.Errorf("testnet: %s listener for %s on %s: %w: %w", s, name, ap, errBind, err)
		}
		n.serveClientListener(ap, s, l)
	}
	return nil
}

// serveClientListener registers ln and starts its accept loop.
func (n *Net) serveClientListener(ap netip.AddrPort, s ClientService, ln net.Listener) {
	n.startListener(ln, func() { n.clientLns[ap] = ln }, func(c net.Conn) { n.serveClient(c, ap.Addr(), s) })
}

// serveClient runs one session of service s for whichever client host
// owns addr now.
func (n *Net) serveClient(c net.Conn, addr netip.Addr, s ClientService) {
	n.mu.RLock()
	name := n.names[addr]
	e := n.clients[name]
	var conf ClientHost
	if e != nil {
		conf = e.conf
	}
	n.mu.RUnlock()
	if e == nil {
		return // the port reservation address, or a removed host
	}
	ep := conf.Endpoint(s)
	log := n.log.With("client_host", name, "service", string(s), "remote", c.RemoteAddr().String())
	var err error
	switch s {
	case ServiceSubmissions, ServiceSubmission:
		err = n.serveSubmission(c, name, ep, s.Implicit())
	case ServiceIMAPS, ServiceIMAP:
		err = n.serveIMAP(c, name, ep, s.Implicit())
	case ServicePOP3S, ServicePOP3:
		err = n.servePOP3(c, name, ep, s.Implicit())
	}
	log.Debug("testnet: client session ended", "err", err)
}

// clientTLS runs the server side of a TLS handshake for a client endpoint.
func (n *Net) clientTLS(c net.Conn, name string, ep ClientEndpoint) (*tls.Conn, error) {
	cert, err := n.ca.Leaf(name, ep.Cert, n.opts.CertValidity)
	if err != nil {
		return nil, err
	}
	// Without SNI, or with another name, the host's own certificate is
	// presented (as MX hosts do).
	tc := tls.Server(c, tlsConfig(cert, ep.MaxTLS))
	ctx, cancel := context.WithTimeout(n.ctx, handshakeTimout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// serveSubmission runs the MX host's SMTP server as a submission server:
// after an implicit TLS handshake (465), or with STARTTLS (587).
func (n *Net) serveSubmission(c net.Conn, name string, ep ClientEndpoint, implicit bool) error {
	s := &smtpSession{n: n, raw: c, conn: c, name: name, conf: MXHost{Name: name, NoSTARTTLS: ep.NoSTARTTLS, Cert: ep.Cert, MaxTLS: ep.MaxTLS}}
	if implicit {
		tc, err := n.clientTLS(c, name, ep)
		if err != nil {
			return err
		}
		st := tc.ConnectionState()
		s.conn, s.tls, s.tlsVersion, s.serverName = tc, true, st.Version, st.ServerName
	}
	s.r = bufio.NewReaderSize(s.conn, 4096)
	s.w = bufio.NewWriter(s.conn)
	return s.run()
}

// lineSession is the line-oriented core of the IMAP and POP3 servers:
// bounded lines, bounded errors, deadlines on every read and write.
type lineSession struct {
	n      *Net
	name   string
	ep     ClientEndpoint
	raw    net.Conn
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	tls    bool
	errors int
}

func newLineSession(n *Net, c net.Conn, name string, ep ClientEndpoint) *lineSession {
	s := &lineSession{n: n, name: name, ep: ep, raw: c}
	s.use(c)
	return s
}

func (s *lineSession) use(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReaderSize(c, 4096)
	s.w = bufio.NewWriter(c)
}

func (s *lineSession) send(lines ...string) error {
	for _, l := range lines {
		s.w.WriteString(l)
		s.w.WriteString("\r\n")
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	return s.w.Flush()
}

// readLine reads one command line of at most maxCommandLine bytes; a
// longer one is consumed and reported as errLineTooLong.
func (s *lineSession) readLine() (string, error) {
	line, err := readBoundedLine(s.conn, s.r, maxCommandLine, time.Now().Add(commandTimeout))
	return string(line), err
}

// bad sends an error reply and reports, after too many, that the session
// must end.
func (s *lineSession) bad(lines ...string) error {
	s.errors++
	if s.errors > maxErrors {
		return errors.New("too many errors")
	}
	return s.send(lines...)
}

// upgrade runs the TLS handshake after a STARTTLS/STLS go-ahead. Like
// RFC 3207 §4.2 for SMTP, RFC 2595 §3.1 and RFC 9051 §6.2.1 discard what
// was learned, and any pipelined plaintext, before TLS.
func (s *lineSession) upgrade() error {
	tc, err := s.n.clientTLS(s.raw, s.name, s.ep)
	if err != nil {
		return err
	}
	s.use(tc)
	s.tls = true
	return nil
}

// serveIMAP speaks enough IMAP4rev1 (RFC 9051, RFC 3501) for a client to
// read the greeting and capabilities and to STARTTLS.
func (n *Net) serveIMAP(c net.Conn, name string, ep ClientEndpoint, implicit bool) error {
	s := newLineSession(n, c, name, ep)
	if implicit {
		if err := s.upgrade(); err != nil {
			return err
		}
	}
	caps := func() string {
		switch {
		case !s.tls && !ep.NoSTARTTLS:
			// RFC 9051 §6.2.3: no cleartext login before STARTTLS.
			return "IMAP4rev1 STARTTLS LOGINDISABLED"
		default:
			return "IMAP4rev1 AUTH=PLAIN"
		}
	}
	if err := s.send("* OK [CAPABILITY " + caps() + "] " + name + " IMAP testnet ready"); err != nil {
		return err
	}
	for range maxCommands {
		line, err := s.readLine()
		if errors.Is(err, errLineTooLong) {
			if err := s.bad("* BAD line too long"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		tag, rest, _ := strings.Cut(line, " ")
		if tag == "" || strings.ContainsAny(tag, "*+(){%\"\\") {
			err = s.bad("* BAD missing or invalid tag")
		} else {
			cmd, _, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(cmd) {
			case "CAPABILITY":
				err = s.send("* CAPABILITY "+caps(), tag+" OK CAPABILITY completed")
			case "NOOP":
				err = s.send(tag + " OK NOOP completed")
			case "LOGOUT":
				_ = s.send("* BYE "+name+" logging out", tag+" OK LOGOUT completed")
				return nil
			case "STARTTLS":
				switch {
				case ep.NoSTARTTLS:
					err = s.bad(tag + " BAD unknown command")
				case s.tls:
					err = s.bad(tag + " BAD TLS already active")
				default:
					if err = s.send(tag + " OK begin TLS negotiation now"); err == nil {
						err = s.upgrade()
					}
				}
			case "LOGIN", "AUTHENTICATE":
				if !s.tls && !ep.NoSTARTTLS {
					err = s.bad(tag + " NO [PRIVACYREQUIRED] STARTTLS first")
				} else {
					err = s.bad(tag + " NO [AUTHENTICATIONFAILED] the testnet has no accounts")
				}
			default:
				err = s.bad(tag + " BAD unknown command")
			}
		}
		if err != nil {
			return err
		}
	}
	_ = s.send("* BYE too many commands")
	return errors.New("too many commands")
}

// servePOP3 speaks enough POP3 (RFC 1939, CAPA of RFC 2449, STLS of RFC
// 2595) for a client to read the greeting and capabilities and to STLS.
func (n *Net) servePOP3(c net.Conn, name string, ep ClientEndpoint, implicit bool) error {
	s := newLineSession(n, c, name, ep)
	if implicit {
		if err := s.upgrade(); err != nil {
			return err
		}
	}
	if err := s.send("+OK " + name + " POP3 testnet ready"); err != nil {
		return err
	}
	for range maxCommands {
		line, err := s.readLine()
		if errors.Is(err, errLineTooLong) {
			if err := s.bad("-ERR line too long"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		cmd, _, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "CAPA":
			caps := []string{"+OK capability list follows", "TOP", "UIDL", "USER"}
			if !s.tls && !ep.NoSTARTTLS {
				caps = append(caps, "STLS")
			}
			err = s.send(append(caps, ".")...)
		case "NOOP":
			err = s.send("+OK")
		case "QUIT":
			_ = s.send("+OK " + name + " bye")
			return nil
		case "STLS":
			switch {
			case ep.NoSTARTTLS:
				err = s.bad("-ERR unknown command")
			case s.tls:
				err = s.bad("-ERR TLS already active")
			default:
				if err = s.send("+OK begin TLS negotiation"); err == nil {
					err = s.upgrade()
				}
			}
		case "USER", "PASS", "APOP", "AUTH":
			if !s.tls && !ep.NoSTARTTLS {
				err = s.bad("-ERR [AUTH] STLS first")
			} else {
				err = s.bad("-ERR [AUTH] the testnet has no accounts")
			}
		default:
			err = s.bad("-ERR unknown command")
		}
		if err != nil {
			return err
		}
	}
	_ = s.send("-ERR too many commands")
	return errors.New("too many commands")
}

// refsSecure reports whether any of the listed domains is Secure.
func (n *Net) refsSecure(refs map[string]bool) bool {
	for d := range refs {
		if e := n.domains[d]; e != nil && e.d.Secure {
			return true
		}
	}
	return false
}

// clientSRV returns the SRV records at _service._tcp.<domain> for the
// domain's client hosts with SRV (RFC 6186 §3), and whether the name
// exists. A "." target (SRVNone) replaces all others: RFC 2782 allows it
// only alone. n.mu must be held.
func (n *Net) clientSRV(name, owner string) (rrs []dns.RR, exists, secure bool) {
	label, rest, ok := strings.Cut(name, "._tcp.")
	if !ok || !strings.HasPrefix(label, "_") {
		return nil, false, false
	}
	s := ClientService(label[1:])
	e := n.domains[rest]
	if s.index() < 0 || e == nil {
		return nil, false, false
	}
	for _, h := range e.d.Clients {
		if !h.SRV {
			continue
		}
		switch h.Endpoint(s).SRV {
		case SRVOmit:
			continue
		case SRVNone:
			return []dns.RR{&dns.SRV{Hdr: hdr(owner, dns.TypeSRV), Target: "."}}, true, e.d.Secure
		}
		rrs = append(rrs, &dns.SRV{Hdr: hdr(owner, dns.TypeSRV), Priority: h.SRVPriority, Weight: h.SRVWeight,
			Port: uint16(n.ClientPort(s)), Target: h.Name + "."})
	}
	return rrs, len(rrs) > 0, e.d.Secure
}

// hasClientSRV reports whether the domain publishes any client SRV
// record, making _tcp.<domain> an empty non-terminal. n.mu must be held.
func (n *Net) hasClientSRV(domain string) bool {
	e := n.domains[domain]
	if e == nil {
		return false
	}
	for _, h := range e.d.Clients {
		if h.SRV {
			return true
		}
	}
	return false
}
