package mailclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/dane"
	"github.com/mailsts/mailsts/dnsresolve"
)

// Errors of the Dialer.
var (
	// ErrRefused: the connection was made but falls below the account's
	// policy or latch; the error is a [*RefusedError] with the details.
	// Tell the user; do not retry silently with less protection.
	ErrRefused = errors.New("mailclient: connection refused by policy")
	// ErrUnconfirmed: the endpoint needs the user's confirmation
	// (Endpoint.Confirm) and Dialer.ConfirmHost did not give it.
	ErrUnconfirmed = errors.New("mailclient: host not confirmed")
	// ErrConnect: the endpoint could not be reached or spoke something
	// unexpected before TLS. Try another endpoint or later.
	ErrConnect = errors.New("mailclient: cannot connect")
	// ErrNoEndpoint: the discovery has no endpoint for the protocol.
	ErrNoEndpoint = errors.New("mailclient: no endpoint")
)

// RefusedError says why a connection was refused.
type RefusedError struct {
	Account     string
	Observation Observation
	Verdict     Verdict
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("mailclient: %s for %s refused: %v", e.Observation.Endpoint, e.Account, e.Verdict.Reasons)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Session is an accepted connection, ready for a protocol client.
type Session struct {
	// Conn is ready for the protocol client, which reads the greeting
	// itself (imapclient.New, smtp.NewClient, a POP3 client):
	//   - implicit TLS: the *tls.Conn, greeting unread;
	//   - after STARTTLS: a [*STARTTLSConn] over the *tls.Conn that
	//     replays a greeting first, so the client starts as on a fresh
	//     connection (SMTP clients then send EHLO again, as RFC 3207 §4.2
	//     requires);
	//   - accepted cleartext (only when the policy allows it and nothing
	//     is latched): a new plain connection, greeting unread.
	Conn        net.Conn
	Observation Observation
	// Latch is what is remembered now, after this connection.
	Latch Latch
}

// STARTTLSConn is the connection after a STARTTLS upgrade: reads return a
// greeting first, then the TLS stream.
type STARTTLSConn struct {
	*tls.Conn
	greeting io.Reader
}

// Read implements net.Conn.
func (c *STARTTLSConn) Read(p []byte) (int, error) {
	if c.greeting != nil {
		n, err := c.greeting.Read(p)
		if err == io.EOF {
			c.greeting, err = nil, nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return c.Conn.Read(p)
}

// TLS returns the underlying TLS connection (for ConnectionState).
func (c *STARTTLSConn) TLS() *tls.Conn { return c.Conn }

func replayGreeting(p Protocol, host string) string {
	switch p {
	case SMTP:
		return "220 " + host + " ESMTP (TLS established by mailclient)\r\n"
	case IMAP:
		return "* OK " + host + " (TLS established by mailclient)\r\n"
	}
	return "+OK " + host + " (TLS established by mailclient)\r\n"
}

// NetDialer makes TCP connections; *net.Dialer implements it.
type NetDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Dialer connects a mail client to its servers: it picks endpoints,
// upgrades with STARTTLS itself, validates the certificate (PKIX, or DANE
// when the host has DNSSEC-signed TLSA records), decides with [Decide],
// and keeps the account's latches in Store. The zero value works with the
// system's resolvers and roots, TLS with validation required, and latches
// kept in memory for the Dialer's life.
type Dialer struct {
	// Resolver resolves host names, TLSA records and (for Discover) SRV
	// records; nil means a dnsresolve.Client on the system's resolvers.
	Resolver interface {
		dnsresolve.Resolver
		dnsresolve.SRVResolver
	}
	// NetDialer makes TCP connections; nil means a net.Dialer.
	NetDialer NetDialer
	// RootCAs are the PKIX roots; nil means the system pool.
	RootCAs *x509.CertPool
	// Store keeps latches; nil means an in-memory store.
	Store Store
	// Policy is the accounts' minimum.
	Policy Policy
	// Ports replaces standard ports for well-known host names (see
	// Discoverer.Ports).
	Ports map[Service]int
	// ConfirmHost is asked about endpoints with Confirm set (RFC 6186 §6);
	// nil refuses them.
	ConfirmHost func(Endpoint) bool
	// EHLOName is sent in SMTP EHLO before STARTTLS; "" means "localhost".
	EHLOName string
	// Timeout bounds one connection attempt through TLS; 0 means 30s.
	Timeout time.Duration
	// Now is the clock for certificates and latches; nil means time.Now.
	Now func() time.Time
	// Logger receives latch changes (Info), refusals and resets (Warn);
	// nil discards.
	Logger *slog.Logger
	// Rand returns a uniform integer in [0, n) for the weighted order of
	// SRV targets of equal priority (RFC 2782); nil means math/rand/v2.
	Rand func(n int) int

	mem MemoryStore
	mu  sync.Mutex // serializes latch updates
}

func (d *Dialer) resolver() interface {
	dnsresolve.Resolver
	dnsresolve.SRVResolver
} {
	if d.Resolver != nil {
		return d.Resolver
	}
	return &dnsresolve.Client{}
}

func (d *Dialer) store() Store {
	if d.Store != nil {
		return d.Store
	}
	return &d.mem
}

func (d *Dialer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dialer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Discover finds the account's endpoints with the Dialer's resolver and
// ports.
func (d *Dialer) Discover(ctx context.Context, account string) (*Discovery, error) {
	return (&Discoverer{Resolver: d.resolver(), Ports: d.Ports, Logger: d.Logger}).Discover(ctx, account)
}

// DialProtocol connects to the first acceptable endpoint of p in disc, in
// the order of disc.For, except that SRV targets of one service and
// priority are tried in RFC 2782's weighted random order. Refusals and
// connection failures move on to the next endpoint; when none is
// accepted the error joins them all (errors.Is finds ErrRefused when any
// endpoint was refused).
func (d *Dialer) DialProtocol(ctx context.Context, account string, disc *Discovery, p Protocol) (*Session, error) {
	eps := weightedOrder(disc.For(p), d.intN)
	if len(eps) == 0 {
		return nil, fmt.Errorf("%w: %s for %s", ErrNoEndpoint, p, disc.Domain)
	}
	var errs []error
	for _, ep := range eps {
		s, err := d.Dial(ctx, account, ep)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrStore) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Dial connects to one endpoint for account, judges the connection and
// updates the latch. It returns a *RefusedError (ErrRefused) when the
// connection falls below the policy or the latch.
func (d *Dialer) Dial(ctx context.Context, account string, ep Endpoint) (*Session, error) {
	if !ep.Service.Valid() {
		return nil, fmt.Errorf("%w: unknown service %q", ErrConnect, ep.Service)
	}
	if ep.Confirm && (d.ConfirmHost == nil || !d.ConfirmHost(ep)) {
		return nil, fmt.Errorf("%w: %s comes from an unsigned SRV record outside the account's domain", ErrUnconfirmed, ep)
	}
	p := ep.Service.Protocol()
	latch, latched, err := d.store().Get(ctx, account, p)
	if err != nil {
		return nil, err
	}
	conn, obs, err := d.connect(ctx, ep)
	if err != nil {
		return nil, err
	}
	v := Decide(obs, d.Policy, latch, latched)
	log := d.logger().With("account", account, "endpoint", ep)
	if !v.Accept {
		conn.Close()
		log.Warn("mailclient: connection refused", "level", obs.Level(), "latched", v.Latched, "reasons", v.Reasons)
		return nil, &RefusedError{Account: account, Observation: obs, Verdict: v}
	}
	if !obs.TLS {
		// The STARTTLS attempt consumed the greeting: start afresh.
		conn.Close()
		if conn, err = d.dialTCP(ctx, ep); err != nil {
			return nil, err
		}
	}
	// Raise what is stored now, not what was read before connecting:
	// another connection of this Dialer may have raised it meanwhile.
	d.mu.Lock()
	cur, _, err := d.store().Get(ctx, account, p)
	next := cur.Raise(obs, d.now())
	if err == nil {
		err = d.store().Put(ctx, account, p, next)
	}
	d.mu.Unlock()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if next.Level() != latch.Level() || next.MinTLSVersion != latch.MinTLSVersion {
		log.Info("mailclient: latch raised", "protocol", p, "latch", next)
	}
	return &Session{Conn: conn, Observation: obs, Latch: next}, nil
}

// Reset forgets what was remembered for account and protocol: the next
// connection is judged by the policy alone and latches anew. Call it only
// on the user's explicit request (after a server change they trust); it is
// logged with the reason.
func (d *Dialer) Reset(ctx context.Context, account string, p Protocol, reason string) error {
	old, ok, err := d.store().Get(ctx, account, p)
	if err != nil {
		return err
	}
	if err := d.store().Delete(ctx, account, p); err != nil {
		return err
	}
	d.logger().Warn("mailclient: latch reset", "account", account, "protocol", p, "had_latch", ok, "latch", old, "reason", reason)
	return nil
}

// AccountLevel returns the confidentiality level to show for account: the
// lowest level latched among its protocols (a user reading mail over
// validated TLS but sending over cleartext is at cleartext), and the
// latches. LevelUnknown when nothing is remembered.
func (d *Dialer) AccountLevel(ctx context.Context, account string) (Level, map[Protocol]Latch, error) {
	return AccountLevel(ctx, d.store(), account)
}

// AccountLevel is [Dialer.AccountLevel] for any Store.
func AccountLevel(ctx context.Context, s Store, account string) (Level, map[Protocol]Latch, error) {
	level := LevelUnknown
	latches := map[Protocol]Latch{}
	for _, p := range Protocols() {
		l, ok, err := s.Get(ctx, account, p)
		if err != nil {
			return LevelUnknown, nil, err
		}
		if !ok {
			continue
		}
		latches[p] = l
		if level == LevelUnknown || l.Level() < level {
			level = l.Level()
		}
	}
	return level, latches, nil
}

func (d *Dialer) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 30 * time.Second
}

// dialTCP resolves the host with the Dialer's resolver and connects to the
// first address that answers.
func (d *Dialer) dialTCP(ctx context.Context, ep Endpoint) (net.Conn, error) {
	addrs, _, err := d.resolver().LookupIP(ctx, ep.Host)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConnect, ep, err)
	}
	nd := d.NetDialer
	if nd == nil {
		nd = &net.Dialer{}
	}
	var errs []error
	for i, a := range addrs {
		if i == 4 {
			break // bounded: a hostile zone may list many
		}
		c, err := nd.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(ep.Port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrConnect, ep, errors.Join(errs...))
}

// connect makes the connection and observes it: STARTTLS where needed, the
// handshake, the certificate's validation. On success the connection is
// returned with what was observed, also when it is below every policy
// (the caller decides).
func (d *Dialer) connect(ctx context.Context, ep Endpoint) (net.Conn, Observation, error) {
	obs := Observation{Endpoint: ep}
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	raw, err := d.dialTCP(ctx, ep)
	if err != nil {
		return nil, obs, err
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	fail := func(err error) (net.Conn, Observation, error) {
		raw.Close()
		return nil, obs, fmt.Errorf("%w: %s: %w", ErrConnect, ep, err)
	}
	p := ep.Service.Protocol()
	if !ep.Service.Implicit() {
		br := bufio.NewReaderSize(raw, maxLine)
		ehlo := d.EHLOName
		if ehlo == "" {
			ehlo = "localhost"
		}
		ct, err := StartTLS(raw, br, p, ehlo, nil)
		obs.Greeting = clip(ct.Greeting)
		if errors.Is(err, errNoSTARTTLS) {
			obs.STARTTLSMissing = true
			_ = raw.SetDeadline(time.Time{})
			return raw, obs, nil
		}
		if err != nil {
			return fail(err)
		}
		if br.Buffered() > 0 {
			// RFC 3207 §4.2, RFC 2595 §3.1: nothing may follow the
			// go-ahead in cleartext; bytes here were injected.
			return fail(fmt.Errorf("%w: %d bytes after the STARTTLS go-ahead", errProtocol, br.Buffered()))
		}
	}
	tc := tls.Client(raw, &tls.Config{
		ServerName: ep.Host,
		// Validation is done below, so that a connection that fails it
		// can still be observed and judged (and shown as TLS without
		// validation when the account's policy allows that).
		InsecureSkipVerify: true,
		// Old versions are negotiated to be observed; Decide refuses them.
		MinVersion: tls.VersionTLS10,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("TLS handshake: %w", err))
	}
	st := tc.ConnectionState()
	obs.TLS, obs.TLSVersion = true, st.Version
	obs.Validation, obs.ValidationError = d.validate(ctx, ep, st.PeerCertificates)
	_ = raw.SetDeadline(time.Time{})
	if ep.Service.Implicit() {
		return tc, obs, nil
	}
	return &STARTTLSConn{Conn: tc, greeting: strings.NewReader(replayGreeting(p, ep.Host))}, obs, nil
}

// validate checks the chain by DANE when the host has usable TLSA records
// in a DNSSEC-signed zone (RFC 7672 §3 applied to submission and access,
// as RFC 6186 §6 allows), else by PKIX against the host name (RFC 7817 §3:
// the name the client connected to, which discovery restricted to the
// account's domain or a DNSSEC-signed or confirmed SRV target).
func (d *Dialer) validate(ctx context.Context, ep Endpoint, chain []*x509.Certificate) (Validation, string) {
	if len(chain) == 0 {
		return NotValidated, "no certificate"
	}
	now := d.now()
	if recs, ans, err := d.resolver().LookupTLSA(ctx, ep.Port, "tcp", ep.Host); err == nil && ans.Authenticated && dane.AnyUsable(recs) {
		if _, err := dane.Verify(recs, chain, []string{ep.Host}, now); err == nil {
			return DANE, ""
		}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: d.RootCAs, Intermediates: inter, DNSName: ep.Host, CurrentTime: now})
	if err != nil {
		return NotValidated, certProblem(err, chain[0], now)
	}
	return PKIX, ""
}

func certProblem(err error, leaf *x509.Certificate, now time.Time) string {
	var inv x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		if now.After(leaf.NotAfter) {
			return "certificate expired on " + leaf.NotAfter.UTC().Format(time.DateOnly)
		}
		return "certificate not valid before " + leaf.NotBefore.UTC().Format(time.DateOnly)
	case errors.As(err, &host):
		return "certificate not valid for " + host.Host
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "certificate issued by an untrusted authority"
	}
	return "certificate invalid: " + err.Error()
}
