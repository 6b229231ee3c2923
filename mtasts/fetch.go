package mtasts

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// Defaults for the [Client] fields.
const (
	// DefaultFetchTimeout bounds a whole policy fetch: DNS of the policy
	// host, connect, TLS, headers and body. RFC 8461 §3.3 suggests one
	// minute (STS-FETCH-8).
	DefaultFetchTimeout = 60 * time.Second
	// DefaultMaxBodySize is the policy body cap suggested by RFC 8461 §3.3
	// (STS-POL-13): 64 KiB.
	DefaultMaxBodySize = 64 << 10

	// maxHeaderBytes caps the response headers of a policy host.
	maxHeaderBytes = 64 << 10
	// dialTimeout bounds the TCP connect to one address of the policy
	// host, so one black-holed address leaves time for the next.
	dialTimeout = 15 * time.Second
)

// Client discovers MTA-STS policies over the network: the _mta-sts TXT
// record through a [dnsresolve.Resolver], and the policy over HTTPS. The
// zero value is ready to use; a Client is safe for concurrent use and must
// not be copied after first use.
//
// Policy fetches follow RFC 8461 §3.3 strictly:
//   - HTTPS only, to https://mta-sts.<domain>/.well-known/mta-sts.txt
//     (STS-FETCH-1, STS-POL-1), certificate verified for that name with SNI
//     set to it (STS-FETCH-2, STS-FETCH-13), TLS 1.2 or later (STS-FETCH-14);
//     the verification of the part of a chain above the leaf's issuer is
//     shared by the policy hosts presenting the same chain (on Linux and
//     the BSDs, outside FIPS mode), accepting exactly the chains
//     crypto/x509 accepts (chains.go);
//   - the policy host's address comes from the Client's DNS layer (A and
//     AAAA, tried in turn), never from the system resolver or /etc/hosts;
//   - no redirects (STS-FETCH-5, GO-2), no HTTP caching or validators
//     (STS-FETCH-6), no compression requested (GO-3), only status 200
//     (STS-FETCH-4), Content-Type text/plain (STS-POL-2, GO-6), body at most
//     MaxBodySize bytes (STS-POL-13), everything within Timeout
//     (STS-FETCH-8);
//   - no proxy: HTTP_PROXY/HTTPS_PROXY are ignored on purpose. A proxy
//     would resolve the policy host itself, bypassing the DNS layer the
//     operator configured, and would add a party that sees which domains
//     we deliver to. Deployments that must egress through a proxy are not
//     supported.
type Client struct {
	// DNS resolves the TXT record and the policy host. Nil means a
	// dnsresolve client using the servers of /etc/resolv.conf, created on
	// first use.
	DNS dnsresolve.Resolver
	// RootCAs verifies policy host certificates. Nil means the system pool
	// (see [LoadRootCAs] to add private roots).
	RootCAs *x509.CertPool
	// RootsFor, when set and returning a pool, verifies the policy host
	// of the given policy domain instead of RootCAs: roots chosen per
	// domain (policyd's fetch.zone_roots).
	RootsFor func(domain string) *x509.CertPool
	// Timeout bounds a whole fetch including the body (the policy host's
	// A/AAAA lookups, connect, TLS, headers, body); in a [Cache] it bounds
	// a whole discovery, the TXT lookup included. 0 means
	// DefaultFetchTimeout.
	Timeout time.Duration
	// MaxBodySize caps the policy body; 0 means DefaultMaxBodySize. A larger
	// body is a fetch failure.
	MaxBodySize int64
	// UserAgent is sent with every fetch; "" means
	// "mailsts/<version> (+https://github.com/mailsts/mailsts)".
	UserAgent string
	// HTTPSPort is the TCP port of policy hosts; 0 means 443. Other values
	// exist for tests and labs with a policy host on loopback.
	HTTPSPort int
	// LenientContentType accepts a response without a Content-Type header.
	// RFC 8461 §3.2 says the body SHOULD only be used when the media type is
	// text/plain, and mailsts rejects a missing header by default; some
	// static hosts omit it, and operators who prefer availability over
	// strictness may set this. A present header other than text/plain is
	// always rejected.
	LenientContentType bool
	// Logger receives debug logs of each lookup and fetch; nil discards.
	Logger *slog.Logger
	// IPv6 reports whether this machine can connect to IPv6 addresses
	// (policyd asks the routing table); nil means it can. When it returns
	// false and DNS implements [dnsresolve.IPv4Resolver], the policy host's
	// A records are asked alone, saving the AAAA query of every cold
	// lookup; AAAA is still asked when the host has no IPv4 address or
	// none of them accepts the connection, so the outcome of a fetch is
	// the same as with both queries, only the order of the addresses
	// tried (IPv4 first, as always) decides earlier.
	IPv6 func() bool

	chainsOnce sync.Once
	chains     *chainCache // shared chain verification (chains.go)

	dnsOnce sync.Once
	dnsDef  dnsresolve.Resolver
	dnsErr  error
	uaOnce  sync.Once // the default User-Agent: reading the build info costs
	ua      string
}

// FetchResult is what a policy fetch saw, for diagnostics (the checker shows
// it). FetchRaw returns it even with an error whenever the policy host
// answered, so callers can show the status, type and body.
type FetchResult struct {
	// URL is the policy URL fetched.
	URL string
	// StatusCode is the HTTP status, 0 when no response arrived.
	StatusCode int
	// ContentType is the raw Content-Type header.
	ContentType string
	// Header holds the response headers.
	Header http.Header
	// Body is the response body (at most MaxBodySize bytes), set for
	// status 200 only.
	Body []byte
	// TLS is the state of the TLS connection, nil when none was made.
	TLS *tls.ConnectionState
	// Addr is the address (ip:port) the response came from.
	Addr string
	// Elapsed is the time from the start of the fetch to its end.
	Elapsed time.Duration
}

// LoadRootCAs returns the system certificate pool (which Go lets the
// SSL_CERT_FILE and SSL_CERT_DIR environment variables override) plus the
// PEM certificates in extraCAFile, when it is not "". A file without any
// certificate is an error.
func LoadRootCAs(extraCAFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if extraCAFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(extraCAFile)
	if err != nil {
		return nil, fmt.Errorf("mtasts: reading CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mtasts: CA file %s holds no PEM certificate", extraCAFile)
	}
	return pool, nil
}

// roots returns the pool verifying the policy host of domain.
func (c *Client) roots(domain string) *x509.CertPool {
	if c.RootsFor != nil {
		if p := c.RootsFor(domain); p != nil {
			return p
		}
	}
	return c.RootCAs
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultFetchTimeout
}

func (c *Client) maxBody() int64 {
	if c.MaxBodySize > 0 {
		return c.MaxBodySize
	}
	return DefaultMaxBodySize
}

func (c *Client) port() int {
	if c.HTTPSPort > 0 {
		return c.HTTPSPort
	}
	return 443
}

func (c *Client) userAgent() string {
	if c.UserAgent != "" {
		return c.UserAgent
	}
	c.uaOnce.Do(func() { c.ua = "mailsts/" + moduleVersion() + " (+https://github.com/mailsts/mailsts)" })
	return c.ua
}

// moduleVersion returns the version of the mailsts module in this binary,
// "devel" when unknown.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	const path = "github.com/mailsts/mailsts"
	if bi.Main.Path == path && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == path && d.Version != "" {
			return d.Version
		}
	}
	return "devel"
}

// resolver returns c.DNS, or the default resolver created once.
func (c *Client) resolver() (dnsresolve.Resolver, error) {
	if c.DNS != nil {
		return c.DNS, nil
	}
	c.dnsOnce.Do(func() {
		r, err := dnsresolve.NewClient()
		if err != nil {
			c.dnsErr = fmt.Errorf("%w: creating the default DNS client: %w", ErrDNS, err)
			return
		}
		c.dnsDef = r
	})
	return c.dnsDef, c.dnsErr
}

// Fetch fetches and parses the policy of domain (leniently, see
// [ParsePolicy]). Errors wrap ErrPolicyFetch, ErrPolicyCertificate or
// ErrPolicySyntax (see [FetchRaw]); an invalid domain gives ErrInvalidDomain.
func (c *Client) Fetch(ctx context.Context, domain string) (*Policy, error) {
	return c.fetchPolicy(ctx, domain, nil)
}

// fetchPolicy is Fetch with the policy host's addresses possibly looked up
// ahead (nil: looked up when connecting).
func (c *Client) fetchPolicy(ctx context.Context, domain string, ahead *addrLookup) (*Policy, error) {
	res, err := c.fetchRaw(ctx, domain, ahead)
	if err != nil {
		return nil, err
	}
	p, notices, err := ParsePolicyDetail(res.Body, false)
	if err != nil {
		if !errors.Is(err, ErrPolicySyntax) {
			err = fmt.Errorf("%w: %w", ErrPolicySyntax, err)
		}
		return nil, fmt.Errorf("policy at %s: %w", res.URL, err)
	}
	// OPEN-2, OPEN-3: what the lenient parse tolerated (a clamped max_age,
	// a BOM, trailing blank lines, …) is logged so operators can tell the
	// publisher.
	for _, n := range notices {
		c.logger().Info("policy accepted with a deviation from RFC 8461", "domain", domain, "url", res.URL, "notice", n.String())
	}
	return p, nil
}

// FetchRaw fetches the policy body of domain without parsing it. The error,
// when not nil, wraps exactly one of:
//   - ErrPolicyCertificate: the policy host's certificate failed
//     verification for mta-sts.<domain> (RFC 8460 sts-webpki-invalid);
//   - ErrPolicyFetch: the policy host has no address, could not be
//     reached, failed the TLS handshake for another reason (e.g. TLS older
//     than 1.2), answered a status other than 200 (a redirect included) or a
//     body over MaxBodySize, or did not finish within Timeout (RFC 8460
//     sts-policy-fetch-error);
//   - ErrPolicySyntax: the media type is not text/plain (RFC 8460
//     sts-policy-invalid); the result then still carries the body;
//   - ErrInvalidDomain: domain is not a valid domain name.
//
// The result is non-nil whenever the policy host answered, even with an
// error. On a certificate failure, errors.As with a
// *tls.CertificateVerificationError gives the chain the host presented.
func (c *Client) FetchRaw(ctx context.Context, domain string) (*FetchResult, error) {
	return c.fetchRaw(ctx, domain, nil)
}

func (c *Client) fetchRaw(ctx context.Context, domain string, ahead *addrLookup) (*FetchResult, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := c.fetch(ctx, d, ahead)
	res.Elapsed = time.Since(start)
	c.logger().LogAttrs(ctx, slog.LevelDebug, "mta-sts policy fetch",
		slog.String("domain", d), slog.Int("status", res.StatusCode),
		slog.Duration("elapsed", res.Elapsed), slog.Any("error", err))
	if res.StatusCode == 0 && res.TLS == nil {
		return nil, err
	}
	return res, err
}

// fetchCurves are the key exchange groups offered to policy hosts, in
// order; only the first gets a key share, the others cost a
// HelloRetryRequest round trip with the rare server that wants them.
var fetchCurves = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// fetch does the work of FetchRaw; it always returns a non-nil result.
// ahead, when not nil, is the policy host's address lookup already under
// way.
func (c *Client) fetch(ctx context.Context, domain string, ahead *addrLookup) (*FetchResult, error) {
	host := "mta-sts." + domain
	res := &FetchResult{URL: PolicyURL(domain)}
	dns, err := c.resolver()
	if err != nil {
		// %v: the cause wraps ErrDNS, and a fetch error matches one
		// sentinel only.
		return res, fmt.Errorf("%w: cannot resolve the policy host: %v", ErrPolicyFetch, err)
	}

	timeout := c.timeout()
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(fctx, http.MethodGet, res.URL, nil)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrPolicyFetch, err)
	}
	// RFC 8461 §3.3: no HTTP caching, so no validators
	// (If-None-Match, If-Modified-Since) are ever sent (STS-FETCH-6). GO-3:
	// no Accept-Encoding either, so nothing is decoded behind our back and
	// the body cap applies to the bytes on the wire. One request per
	// connection.
	req.Header.Set("User-Agent", c.userAgent())
	req.Header.Set("Accept", "text/plain")
	req.Close = true

	resp, err := c.exchange(fctx, dns, ahead, host, req, res)
	if err != nil {
		return res, c.classify(ctx, fctx, res.URL, "connecting to", err)
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	res.Header = resp.Header
	res.ContentType = resp.Header.Get("Content-Type")

	// RFC 8461 §3.3: only status 200 produces a policy (STS-FETCH-4).
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc := resp.Header.Get("Location")
			switch {
			case loc == "":
				loc = "(no Location)"
			case len(loc) > 200:
				loc = strings.ToValidUTF8(loc[:200], "") + "…"
			}
			return res, fmt.Errorf("%w: %s answered %s redirect to %s; redirects are not followed (RFC 8461 §3.3)",
				ErrPolicyFetch, res.URL, statusText(resp.StatusCode), loc)
		}
		return res, fmt.Errorf("%w: %s answered %s; only 200 OK carries a policy (RFC 8461 §3.3)",
			ErrPolicyFetch, res.URL, statusText(resp.StatusCode))
	}

	// RFC 8461 §3.3 (STS-POL-13, GO-3): cap the body; read one byte more to
	// tell "exactly the cap" from "over the cap".
	limit := c.maxBody()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil && fctx.Err() != nil {
		// When the context ends during the read, net/http may report a
		// clean EOF for the cut-off body: trust the context, not the EOF.
		err = fctx.Err()
	}
	if err != nil {
		return res, c.classify(ctx, fctx, res.URL, "reading the body of", err)
	}
	if int64(len(body)) > limit {
		return res, fmt.Errorf("%w: %s sent a body over %d bytes; policies are capped at %d bytes (RFC 8461 §3.3)",
			ErrPolicyFetch, res.URL, limit, limit)
	}
	res.Body = body

	if err := c.checkContentType(res.ContentType); err != nil {
		return res, fmt.Errorf("%w: %s: %v", ErrPolicySyntax, res.URL, err)
	}
	return res, nil
}

// exchange connects to the policy host, makes the TLS handshake and sends
// req over HTTP/1.1, all under ctx (the fetch's Timeout), and returns the
// response; res gets the address and the TLS state. It is a single
// request on a connection of its own, so it does what net/http's Transport
// would without its pooling machinery:
//   - no proxy (see the Client doc);
//   - RFC 8461 §3.3: redirects are not followed (GO-2); a 3xx response is
//     returned as is and fails the status check;
//   - response headers are capped at maxHeaderBytes;
//   - interim 1xx responses (103 Early Hints) are skipped, a bounded
//     number of them.
//
// The returned response's Body closes the connection.
func (c *Client) exchange(ctx context.Context, dns dnsresolve.Resolver, ahead *addrLookup, host string, req *http.Request, res *FetchResult) (*http.Response, error) {
	raw, err := c.dial(ctx, dns, ahead, "tcp", host, strconv.Itoa(c.port()))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = raw.Close()
		}
	}()
	res.Addr = raw.RemoteAddr().String()
	// The end of ctx (Timeout included) interrupts blocked reads and
	// writes at once; no socket deadline of its own, so that ctx.Err()
	// says why the exchange ended.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	cfg := &tls.Config{
		// GO-5, STS-FETCH-13: ServerName sets the SNI and the name the
		// certificate is verified for (STS-FETCH-2).
		ServerName: host,
		RootCAs:    c.roots(strings.TrimPrefix(host, "mta-sts.")),
		// RFC 8461 §7.2, STS-FETCH-14: TLS 1.2 or later.
		MinVersion: tls.VersionTLS12,
		// Classical key exchange only. The policy is public and its
		// authenticity rests on the certificate, not on the key exchange;
		// Go's default post-quantum hybrid (X25519MLKEM768) protects
		// confidentiality the fetch does not need and costs about a fifth
		// of a cold lookup's CPU, on both ends.
		CurvePreferences: fetchCurves,
		// HTTP/1.1 only, as net/http's Transport with a custom TLS
		// configuration would.
		NextProtos: []string{"http/1.1"},
	}
	c.chainsOnce.Do(func() { c.chains = newChainCache() })
	verified := c.chains.tlsConfig(cfg)
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		stop()
		return nil, err
	}
	st := conn.ConnectionState()
	if st.VerifiedChains == nil {
		st.VerifiedChains = verified()
	}
	res.TLS = &st
	// One write of the whole request: a bytes.Buffer spares Request.Write
	// its own 4 KiB bufio.Writer.
	var out bytes.Buffer
	if err := req.Write(&out); err != nil {
		stop()
		return nil, err
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		stop()
		return nil, err
	}
	// The header cap: the reader sees at most maxHeaderBytes until the
	// headers are parsed, then enough for a capped body and its framing.
	lr := &io.LimitedReader{R: conn, N: maxHeaderBytes}
	br := bufio.NewReaderSize(lr, 1<<10) // headers are small; longer lines still parse
	var resp *http.Response
	for range maxInterim + 1 {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			stop()
			if lr.N == 0 {
				return nil, fmt.Errorf("%w: response headers over %d bytes", ErrPolicyFetch, maxHeaderBytes)
			}
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		_ = resp.Body.Close()
	}
	if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		stop()
		return nil, fmt.Errorf("%w: more than %d interim responses", ErrPolicyFetch, maxInterim)
	}
	// Chunked framing may double a small body; the body itself is capped
	// by the caller.
	lr.N = 2*c.maxBody() + maxHeaderBytes
	// Closing the TCP connection without a TLS close_notify: the request
	// said "Connection: close", and the alert would cost an encryption
	// and a write per fetch for nothing.
	resp.Body = &connBody{ReadCloser: resp.Body, conn: raw, stop: stop}
	ok = true
	return resp, nil
}

// maxInterim bounds the 1xx responses skipped before the final one.
const maxInterim = 5

// connBody is a response body that closes its connection.
type connBody struct {
	io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (b *connBody) Close() error {
	b.stop()
	err := b.ReadCloser.Close()
	_ = b.conn.Close()
	return err
}

// checkContentType applies RFC 8461 §3.2 (STS-POL-2, GO-6): the media type
// must be text/plain; parameters, charset included, are ignored and the
// body is read as UTF-8 in any case.
func (c *Client) checkContentType(ct string) error {
	if ct == "" {
		if c.LenientContentType {
			return nil
		}
		return errors.New("no Content-Type header; a policy must be served as text/plain (RFC 8461 §3.2)")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("malformed Content-Type %q: %v", ct, err)
	}
	if mt != "text/plain" {
		return fmt.Errorf("Content-Type is %q; a policy must be served as text/plain (RFC 8461 §3.2)", mt)
	}
	return nil
}

// addrLookup is the A/AAAA lookup of a policy host started before the TXT
// record is known (see [Client.lookupAhead]).
type addrLookup struct {
	host   string
	done   chan struct{}
	addrs  []netip.Addr
	v4only bool // AAAA not asked (see Client.lookupHost)
	err    error
}

// lookupAhead starts looking up the addresses of mta-sts.<domain> (domain
// normalized) in the background, under ctx; the caller cancels ctx when it
// no longer needs the answer. It returns nil when there is no resolver.
//
// This is DNS only: RFC 8461 §3.3 lets a sender fetch the policy only once
// the TXT record says one exists, and the caller still decides that. Looking
// up the policy host together with the TXT record saves a round trip on
// every cold lookup of a domain that has a policy, at the cost of an unused
// A/AAAA query for one that has none.
func (c *Client) lookupAhead(ctx context.Context, domain string) *addrLookup {
	dns, err := c.resolver()
	if err != nil {
		return nil
	}
	l := &addrLookup{host: "mta-sts." + domain, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.addrs, l.v4only, l.err = c.lookupHost(ctx, dns, l.host)
	}()
	return l
}

// lookupHost looks up the addresses of a policy host: A and AAAA
// together, or (without IPv6, see [Client.IPv6]) A alone when it finds an
// address, which v4only then says.
func (c *Client) lookupHost(ctx context.Context, dns dnsresolve.Resolver, host string) (addrs []netip.Addr, v4only bool, err error) {
	if c.IPv6 != nil && !c.IPv6() {
		if r4, ok := dns.(dnsresolve.IPv4Resolver); ok {
			if addrs, _, err := r4.LookupIPv4(ctx, host); err == nil && len(addrs) > 0 {
				return addrs, true, nil
			}
			// No IPv4 address (or the query failed): ask for both, as
			// without the shortcut.
		}
	}
	addrs, _, err = dns.LookupIP(ctx, host)
	return addrs, false, err
}

// hostAddrs returns the addresses of host: the lookup ahead's when it was
// for host and did not fail (a failure is retried, as a lookup made now
// would be), else a new lookup. v4only says AAAA was not asked.
func (c *Client) hostAddrs(ctx context.Context, dns dnsresolve.Resolver, ahead *addrLookup, host string) ([]netip.Addr, bool, error) {
	if ahead != nil && ahead.host == host {
		select {
		case <-ahead.done:
			if ahead.err == nil || errors.Is(ahead.err, dnsresolve.ErrNotFound) {
				return ahead.addrs, ahead.v4only, ahead.err
			}
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return c.lookupHost(ctx, dns, host)
}

// dial resolves host through the DNS layer (or takes the addresses looked
// up ahead) and connects to each address in turn. Errors wrap
// ErrPolicyFetch.
func (c *Client) dial(ctx context.Context, dns dnsresolve.Resolver, ahead *addrLookup, network, host, port string) (net.Conn, error) {
	addrs, v4only, err := c.hostAddrs(ctx, dns, ahead, host)
	if err != nil {
		if errors.Is(err, dnsresolve.ErrNotFound) {
			return nil, fmt.Errorf("%w: policy host %s has no A or AAAA record: %w", ErrPolicyFetch, host, err)
		}
		return nil, markTemporary(fmt.Errorf("%w: resolving policy host %s: %w", ErrPolicyFetch, host, err))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: policy host %s has no address", ErrPolicyFetch, host)
	}
	d := net.Dialer{Timeout: dialTimeout}
	var errs []error
	for round := 0; round < 2; round++ {
		for _, a := range addrs {
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if !v4only || ctx.Err() != nil {
			break
		}
		// No IPv4 address accepted the connection and AAAA was not
		// asked: try the IPv6 addresses, as a lookup of both would have.
		all, _, err := dns.LookupIP(ctx, host)
		if err != nil {
			break
		}
		tried := addrs
		addrs = slices.DeleteFunc(all, func(a netip.Addr) bool { return slices.Contains(tried, a) })
		v4only = false
	}
	return nil, markTemporary(fmt.Errorf("%w: connecting to policy host %s: %w", ErrPolicyFetch, host, errors.Join(errs...)))
}

// classify turns an error of the HTTP exchange into one wrapping the right
// sentinel, with a message for humans. parent is the caller's context, fctx
// the one bounded by Timeout.
func (c *Client) classify(parent, fctx context.Context, u, doing string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var (
		verr  *tls.CertificateVerificationError
		herr  x509.HostnameError
		uaerr x509.UnknownAuthorityError
		cierr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &herr):
		return fmt.Errorf("%w: %s: the certificate is not valid for %s (RFC 8461 §3.3): %w",
			ErrPolicyCertificate, u, herr.Host, err)
	case errors.As(err, &uaerr):
		return fmt.Errorf("%w: %s: the certificate is not signed by a trusted authority (RFC 8461 §3.3): %w",
			ErrPolicyCertificate, u, err)
	case errors.As(err, &cierr):
		return fmt.Errorf("%w: %s: the certificate is invalid (RFC 8461 §3.3): %w", ErrPolicyCertificate, u, err)
	case errors.As(err, &verr):
		return fmt.Errorf("%w: %s: certificate verification failed (RFC 8461 §3.3): %w", ErrPolicyCertificate, u, err)
	case parent.Err() != nil:
		return markTemporary(fmt.Errorf("%w: %s %s: %w", ErrPolicyFetch, doing, u, parent.Err()))
	case errors.Is(fctx.Err(), context.DeadlineExceeded):
		return markTemporary(fmt.Errorf("%w: %s %s: not finished within %v (RFC 8461 §3.3 suggests one minute): %w",
			ErrPolicyFetch, doing, u, c.timeout(), context.DeadlineExceeded))
	case errors.Is(err, ErrPolicyFetch):
		return err
	}
	err = fmt.Errorf("%w: %s %s: %w", ErrPolicyFetch, doing, u, err)
	if transportTemporary(err) {
		return markTemporary(err)
	}
	return err
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}
