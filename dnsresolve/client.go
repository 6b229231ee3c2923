package dnsresolve

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the zero-valued fields of [Client].
const (
	DefaultTimeout  = 2 * time.Second
	DefaultAttempts = 2
)

const (
	// ednsUDPSize is the EDNS0 UDP payload size we advertise: the DNS Flag
	// Day 2020 value, which avoids IP fragmentation.
	ednsUDPSize = 1232
	// maxCNAMEHops bounds CNAME chains (STS-TXT-10). Resolvers use similar
	// limits (BIND and Unbound stop around 8–16).
	maxCNAMEHops = 8
	// maxIgnoredReplies bounds how many unusable UDP datagrams (wrong ID,
	// wrong question, unparseable) one attempt reads before giving up.
	maxIgnoredReplies = 16
	// maxUDPReply is the UDP read buffer. We advertise 1232 bytes, but some
	// servers ignore that and send up to the old common 4096; a larger
	// datagram is cut, fails to parse and is ignored like a forgery.
	maxUDPReply = 4096
)

// Client is a [Resolver] that sends queries with github.com/miekg/dns to
// recursive servers, by default those of /etc/resolv.conf.
//
// Every query carries EDNS0 (UDP payload 1232) with the DO bit, so a
// validating resolver reports DNSSEC status in the AD bit, which the Client
// exposes as [Answer.Authenticated]. A truncated UDP reply is retried over
// TCP with the same server. Each server is tried in order, and the list is
// walked Attempts times, for timeouts, network errors, unusable replies and
// rcodes other than NOERROR and NXDOMAIN.
//
// UDP queries go out on connected sockets that the Client reuses, one query
// at a time per socket: a socket returns to a small per-server pool only
// after a clean exchange and is replaced after 100 queries or 10 seconds,
// so that source ports keep changing; every reply is still checked for the
// query's ID and question.
//
// The zero value is usable. Set the fields before the first lookup and do not
// change them afterwards; a Client is then safe for concurrent use and takes
// no lock on the lookup path. A Client must not be copied after first use.
type Client struct {
	// Servers are "host:port" addresses of recursive resolvers (a bare IP
	// gets :53). Nil: the nameservers of /etc/resolv.conf.
	Servers []string
	// Timeout bounds each query attempt (one datagram exchange, or one TCP
	// exchange). Zero: DefaultTimeout. The context bounds the whole lookup.
	Timeout time.Duration
	// Attempts is how many times the server list is walked. Zero:
	// DefaultAttempts.
	Attempts int
	// Logger receives a debug line per failed attempt. Nil: discard.
	Logger *slog.Logger

	once    sync.Once
	servers []string // normalized, set by once
	initErr error
	bufs    sync.Pool // *[]byte of maxUDPReply
	udp     udpPool   // idle connected UDP sockets per server
}

// NewClient returns a Client querying servers ("host:port", or a bare IP for
// port 53), or the nameservers of /etc/resolv.conf when none are given. It
// fails when an address is invalid or no server can be found. The server
// list is fixed from then on; Timeout, Attempts and Logger may still be set
// before the first lookup.
func NewClient(servers ...string) (*Client, error) {
	c := &Client{}
	if len(servers) > 0 {
		c.Servers = make([]string, 0, len(servers))
		for _, s := range servers {
			n, err := NormalizeServer(s)
			if err != nil {
				return nil, err
			}
			c.Servers = append(c.Servers, n)
		}
	}
	if _, err := c.init(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) init() ([]string, error) {
	c.once.Do(func() {
		if len(c.Servers) == 0 {
			c.servers, c.initErr = ServersFromResolvConf(DefaultResolvConf)
			return
		}
		for _, s := range c.Servers {
			n, err := NormalizeServer(s)
			if err != nil {
				c.initErr = err
				return
			}
			c.servers = append(c.servers, n)
		}
	})
	return c.servers, c.initErr
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return DefaultAttempts
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// LookupTXT implements [Resolver].
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, Answer, error) {
	rrs, ans, err := c.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, ans, err
	}
	txts := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		// RFC 8461 §3.1 (STS-TXT-9): the character-strings of one TXT RR
		// are concatenated with no separator. miekg/dns escapes special
		// bytes in presentation form; undo that to get the wire bytes.
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		var b strings.Builder
		for _, s := range t.Txt {
			b.WriteString(unescapeTXT(s))
		}
		txts = append(txts, b.String())
	}
	return txts, ans, nil
}

// LookupMX implements [Resolver].
func (c *Client) LookupMX(ctx context.Context, name string) ([]MX, Answer, error) {
	rrs, ans, err := c.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, ans, err
	}
	mxs := make([]MX, 0, len(rrs))
	for _, rr := range rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		mxs = append(mxs, MX{Pref: mx.Preference, Host: mxHost(mx.Mx)})
	}
	sortMX(mxs)
	return mxs, ans, nil
}

// mxHost lowercases an exchange and strips the root dot. RFC 7505 §3: a
// null MX has the exchange "." and stays ".".
func mxHost(h string) string {
	if h == "." || h == "" {
		return "."
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// sortMX orders by preference, keeping the received order for equal
// preferences (RFC 5321 §5.1 leaves the tie order to the client; a stable
// order keeps results reproducible).
func sortMX(mxs []MX) {
	slices.SortStableFunc(mxs, func(a, b MX) int { return int(a.Pref) - int(b.Pref) })
}

// LookupIP implements [Resolver]. A and AAAA are queried concurrently.
// Answer.Authenticated is true only when both replies arrived and both had
// the AD bit (DANE-1 needs the host's address records to be secure).
func (c *Client) LookupIP(ctx context.Context, host string) ([]netip.Addr, Answer, error) {
	type result struct {
		rrs []dns.RR
		ans Answer
		err error
	}
	aaaa := make(chan result, 1)
	go func() {
		rrs, ans, err := c.lookup(ctx, host, dns.TypeAAAA)
		aaaa <- result{rrs, ans, err}
	}()
	var r4 result
	r4.rrs, r4.ans, r4.err = c.lookup(ctx, host, dns.TypeA)
	r6 := <-aaaa

	var addrs []netip.Addr
	for _, rr := range r4.rrs {
		if a4, ok := rr.(*dns.A); ok {
			if a, ok := netip.AddrFromSlice(a4.A.To4()); ok {
				addrs = append(addrs, a)
			}
		}
	}
	for _, rr := range r6.rrs {
		if a6, ok := rr.(*dns.AAAA); ok {
			if a, ok := netip.AddrFromSlice(a6.AAAA.To16()); ok {
				addrs = append(addrs, a)
			}
		}
	}
	ans := Answer{
		Authenticated: r4.ans.Authenticated && r6.ans.Authenticated &&
			!isFailure(r4.err) && !isFailure(r6.err),
		CanonicalName: r4.ans.CanonicalName,
	}
	if ans.CanonicalName == "" {
		ans.CanonicalName = r6.ans.CanonicalName
	}
	if len(addrs) > 0 {
		return addrs, ans, nil
	}
	switch {
	case isFailure(r4.err):
		return nil, ans, r4.err
	case isFailure(r6.err):
		return nil, ans, r6.err
	case r4.err != nil:
		return nil, ans, r4.err
	case r6.err != nil:
		return nil, ans, r6.err
	}
	// Both succeeded with records we could not use; should not happen.
	return nil, ans, &Error{Name: host, Qtype: "A", Rcode: dns.RcodeSuccess,
		Err: fmt.Errorf("no usable address records: %w", ErrNotFound)}
}

// LookupIPv4 implements [IPv4Resolver]: the A query alone.
func (c *Client) LookupIPv4(ctx context.Context, host string) ([]netip.Addr, Answer, error) {
	rrs, ans, err := c.lookup(ctx, host, dns.TypeA)
	if err != nil {
		return nil, ans, err
	}
	var addrs []netip.Addr
	for _, rr := range rrs {
		if a4, ok := rr.(*dns.A); ok {
			if a, ok := netip.AddrFromSlice(a4.A.To4()); ok {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, ans, &Error{Name: host, Qtype: "A", Rcode: dns.RcodeSuccess,
			Err: fmt.Errorf("no usable address records: %w", ErrNotFound)}
	}
	return addrs, ans, nil
}

// ValidatesDNSSEC implements [DNSSECProber]: each server is asked ". SOA"
// (Attempts times at most, each within Timeout) with the DO and AD bits.
func (c *Client) ValidatesDNSSEC(ctx context.Context) (bool, error) {
	servers, err := c.init()
	if err != nil {
		return false, fmt.Errorf("%w: %w", err, ErrLookupFailed)
	}
	var unknown error
	for _, server := range servers {
		var msg *dns.Msg
		for range c.attempts() {
			if msg, err = c.exchangeOne(ctx, server, ".", dns.TypeSOA); err == nil || ctx.Err() != nil {
				break
			}
		}
		switch {
		case err != nil:
			if unknown == nil {
				unknown = &Error{Name: ".", Qtype: "SOA", Rcode: RcodeNone, Server: server, Err: err}
			}
		case msg.Rcode != dns.RcodeSuccess:
			if unknown == nil {
				unknown = &Error{Name: ".", Qtype: "SOA", Rcode: msg.Rcode, Server: server,
					Err: fmt.Errorf("%s%s from %s: %w", rcodeString(msg.Rcode), extendedError(msg), server, ErrLookupFailed)}
			}
		case msg.AuthenticatedData:
			// One validating server is enough for authenticated
			// answers to be possible.
			return true, nil
		}
	}
	if unknown != nil {
		return false, unknown
	}
	return false, nil
}

func isFailure(err error) bool { return err != nil && !errors.Is(err, ErrNotFound) }

// LookupTLSA implements [Resolver]: the TLSA records at _port._proto.host
// (RFC 6698 §3, RFC 7672 §2.2 for SMTP: _25._tcp.<mx-host>).
func (c *Client) LookupTLSA(ctx context.Context, port int, proto, host string) ([]TLSA, Answer, error) {
	name, err := TLSAName(port, proto, host)
	if err != nil {
		return nil, Answer{}, &Error{Name: host, Qtype: "TLSA", Rcode: RcodeNone,
			Err: fmt.Errorf("%w: %w", err, ErrLookupFailed)}
	}
	rrs, ans, err := c.lookup(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, ans, err
	}
	out := make([]TLSA, 0, len(rrs))
	for _, rr := range rrs {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			return nil, ans, &Error{Name: name, Qtype: "TLSA", Rcode: RcodeNone,
				Err: fmt.Errorf("malformed TLSA data: %w: %w", err, ErrLookupFailed)}
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return out, ans, nil
}

// TLSAName returns the normalized owner name of TLSA records for a service:
// "_25._tcp.mx.example.com" for (25, "tcp", "MX.example.com.").
func TLSAName(port int, proto, host string) (string, error) {
	if port <= 0 || port > 65535 {
		return "", fmt.Errorf("%w: TLSA port %d out of range", ErrInvalidName, port)
	}
	if proto == "" || strings.ContainsAny(proto, "._") {
		return "", fmt.Errorf("%w: TLSA protocol %q", ErrInvalidName, proto)
	}
	return Normalize("_" + strconv.Itoa(port) + "._" + proto + "." + host)
}

// lookup normalizes name, queries it and follows CNAMEs. It returns the RRs
// of qtype owned by the canonical name. On ErrNotFound the Answer describes
// the denial (its AD bit matters for DANE-4).
func (c *Client) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, Answer, error) {
	typ := dns.TypeToString[qtype]
	qname, err := Normalize(name)
	if err != nil {
		// Keep the Resolver contract: every error is ErrNotFound or
		// ErrLookupFailed. An invalid name is not "no record".
		return nil, Answer{}, &Error{Name: name, Qtype: typ, Rcode: RcodeNone,
			Err: fmt.Errorf("%w: %w", err, ErrLookupFailed)}
	}
	fail := func(rcode int, server string, err error) *Error {
		return &Error{Name: qname, Qtype: typ, Rcode: rcode, Server: server, Err: err}
	}

	cur := qname + "."
	ans := Answer{Authenticated: true, CanonicalName: cur}
	var seen map[string]bool // names visited, allocated on the first CNAME
	hops := 0
	for {
		msg, server, rcode, err := c.exchange(ctx, cur, qtype)
		if err != nil {
			return nil, Answer{CanonicalName: cur}, fail(rcode, server, err)
		}
		// The AD bit covers only the data in this reply; an answer built
		// from several replies is authenticated only if all of them were.
		ans.Authenticated = ans.Authenticated && msg.AuthenticatedData

		// RFC 8461 §3.1 (STS-TXT-10) and RFC 1034 §3.6.2: follow CNAMEs.
		// Recursive resolvers usually put the whole chain in one reply.
		var found []dns.RR
		followed := false
		for {
			target := ""
			for _, rr := range msg.Answer {
				h := rr.Header()
				if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, cur) {
					continue
				}
				if h.Rrtype == qtype {
					found = append(found, rr)
				} else if cn, ok := rr.(*dns.CNAME); ok && target == "" {
					target = strings.ToLower(dns.Fqdn(cn.Target))
				}
			}
			if len(found) > 0 || target == "" {
				break
			}
			hops++
			if hops > maxCNAMEHops {
				return nil, Answer{CanonicalName: cur}, fail(RcodeNone, server,
					fmt.Errorf("CNAME chain longer than %d: %w", maxCNAMEHops, ErrLookupFailed))
			}
			if seen == nil {
				seen = map[string]bool{qname + ".": true}
			}
			if seen[target] {
				return nil, Answer{CanonicalName: cur}, fail(RcodeNone, server,
					fmt.Errorf("CNAME loop at %s: %w", target, ErrLookupFailed))
			}
			seen[target] = true
			cur, followed = target, true
		}
		ans.CanonicalName = cur
		if len(found) > 0 {
			return found, ans, nil
		}
		// RFC 6604 §3: with a CNAME chain, the rcode is about the last name.
		if msg.Rcode == dns.RcodeNameError {
			return nil, ans, fail(msg.Rcode, server, fmt.Errorf("NXDOMAIN%s from %s: %w", at(cur, qname), server, ErrNotFound))
		}
		if !followed {
			return nil, ans, fail(msg.Rcode, server, fmt.Errorf("NODATA%s from %s: %w", at(cur, qname), server, ErrNotFound))
		}
		// The reply ended the chain at a name it says nothing about (an
		// authoritative server outside the target's zone, or a resolver
		// that did not chase): ask about the target. hops bounds this loop.
	}
}

// at describes the chain end in messages when it differs from the name asked.
func at(cur, qname string) string {
	if strings.TrimSuffix(cur, ".") == qname {
		return ""
	}
	return " at " + cur
}

// exchange asks the servers one question and returns the first reply with
// rcode NOERROR or NXDOMAIN. On failure it returns the last rcode seen (or
// RcodeNone), the server and an error wrapping ErrLookupFailed.
func (c *Client) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, int, error) {
	servers, err := c.init()
	if err != nil {
		return nil, "", RcodeNone, fmt.Errorf("%w: %w", err, ErrLookupFailed)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", RcodeNone, fmt.Errorf("%w: %w", err, ErrLookupFailed)
	}
	lastServer, lastRcode := "", RcodeNone
	var lastErr error
	attempts := c.attempts()
	for round := range attempts {
		for _, server := range servers {
			msg, err := c.exchangeOne(ctx, server, name, qtype)
			if err == nil && (msg.Rcode == dns.RcodeSuccess || msg.Rcode == dns.RcodeNameError) {
				return msg, server, msg.Rcode, nil
			}
			lastServer, lastRcode = server, RcodeNone
			if err == nil {
				lastRcode = msg.Rcode
				err = fmt.Errorf("%s%s from %s: %w", rcodeString(msg.Rcode), extendedError(msg), server, ErrLookupFailed)
			}
			lastErr = err
			c.logger().LogAttrs(ctx, slog.LevelDebug, "dns attempt failed",
				slog.String("name", name), slog.String("type", dns.TypeToString[qtype]),
				slog.String("server", server), slog.Int("round", round+1), slog.Any("error", err))
			if ctx.Err() != nil {
				return nil, lastServer, lastRcode, lastErr
			}
		}
	}
	return nil, lastServer, lastRcode, lastErr
}

// extendedError describes the RFC 8914 Extended DNS Error of a reply, if
// any: " (EDE 6 DNSSEC Bogus: text)". It tells a validation failure (DANE-5)
// from a broken server. The server's free text is quoted and capped.
func extendedError(m *dns.Msg) string {
	opt := m.IsEdns0()
	if opt == nil {
		return ""
	}
	for _, o := range opt.Option {
		e, ok := o.(*dns.EDNS0_EDE)
		if !ok {
			continue
		}
		s := " (EDE " + strconv.Itoa(int(e.InfoCode))
		if name, ok := dns.ExtendedErrorCodeToString[e.InfoCode]; ok {
			s += " " + name
		}
		if text := e.ExtraText; text != "" {
			if len(text) > 100 {
				text = text[:100]
			}
			s += ": " + strconv.Quote(text)
		}
		return s + ")"
	}
	return ""
}

func rcodeString(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rcode)
}

// exchangeOne does one attempt with one server: UDP, then TCP if the UDP
// reply is truncated. Errors wrap ErrLookupFailed.
func (c *Client) exchangeOne(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	edns := true
	msg, err := c.roundTrip(ctx, "udp", server, name, qtype, edns)
	if err == nil && msg.Rcode == dns.RcodeFormatError && msg.IsEdns0() == nil {
		// RFC 6891 §7: a FORMERR without OPT means the server does not
		// speak EDNS0; retry once without it. The AD bit of that reply
		// is still reported (RFC 6840 §5.7 lets AD in the query ask
		// for it).
		edns = false
		msg, err = c.roundTrip(ctx, "udp", server, name, qtype, edns)
	}
	if err == nil && msg.Truncated {
		// RFC 7766 §5: a truncated UDP reply is retried over TCP.
		msg, err = c.roundTrip(ctx, "tcp", server, name, qtype, edns)
	}
	return msg, err
}

// newQuery builds a recursive query, with EDNS0 and the DO bit if edns.
func newQuery(name string, qtype uint16, edns bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	// RFC 6840 §5.7: setting AD in a query asks for the AD bit in the
	// reply; DO (RFC 3225) does too, and also asks for DNSSEC records.
	q.AuthenticatedData = true
	if edns {
		q.SetEdns0(ednsUDPSize, true)
	}
	return q
}

// roundTrip sends one query over network and reads the matching reply
// within the attempt's timeout.
func (c *Client) roundTrip(ctx context.Context, network, server, name string, qtype uint16, edns bool) (*dns.Msg, error) {
	q := newQuery(name, qtype, edns)
	packed, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w: %w", err, ErrLookupFailed)
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	deadline, _ := actx.Deadline()

	var (
		conn net.Conn
		sock *udpSock // UDP: the pooled socket (see udppool.go)
	)
	if network == "udp" {
		sock, err = c.udp.get(actx, server)
		if sock != nil {
			conn = sock.conn
		}
	} else {
		var d net.Dialer
		conn, err = d.DialContext(actx, network, server)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrLookupFailed)
	}
	reuse := false
	defer func() {
		if reuse {
			c.udp.put(server, sock)
		} else {
			_ = conn.Close()
		}
	}()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrLookupFailed)
	}
	// Cancellation of ctx interrupts blocked reads and writes at once.
	stop := context.AfterFunc(actx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })

	var reply *dns.Msg
	if network == "udp" {
		bp := c.getBuf()
		reply, err = readUDP(conn, packed, q, *bp)
		c.bufs.Put(bp)
	} else {
		reply, err = readTCP(conn, packed, q)
	}
	// A UDP socket is reused only after a clean exchange: the AfterFunc
	// did not run (its deadline would stick) and the reply matched.
	reuse = stop() && err == nil && sock != nil
	if err != nil {
		ctxErr := ctx.Err()
		timedOut := errors.Is(err, os.ErrDeadlineExceeded) || actx.Err() != nil
		if pd, ok := ctx.Deadline(); ctxErr == nil && timedOut && ok && !pd.After(deadline) {
			// The socket deadline was the caller's; the context's own
			// timer may not have fired yet.
			ctxErr = context.DeadlineExceeded
		}
		if ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w: %w", network, server, ctxErr, ErrLookupFailed)
		}
		if timedOut {
			return nil, fmt.Errorf("%s %s: no reply within %v (%w): %w", network, server, c.timeout(), err, ErrLookupFailed)
		}
		return nil, fmt.Errorf("%s %s: %w: %w", network, server, err, ErrLookupFailed)
	}
	return reply, nil
}

func (c *Client) getBuf() *[]byte {
	if bp, ok := c.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, maxUDPReply)
	return &b
}

// readUDP sends the query and returns the first reply that matches it.
// Datagrams with another ID or question, or that do not parse, are ignored
// (they may be forgeries or late replies to an earlier query), as Go's own
// resolver does; if nothing usable arrives, the error names the last one.
func readUDP(conn net.Conn, packed []byte, q *dns.Msg, buf []byte) (*dns.Msg, error) {
	if _, err := conn.Write(packed); err != nil {
		return nil, err
	}
	var ignored error
	for range maxIgnoredReplies {
		n, err := conn.Read(buf)
		if err != nil {
			if ignored != nil {
				return nil, fmt.Errorf("%w (after ignoring %w)", err, ignored)
			}
			return nil, err
		}
		reply, err := parseReply(buf[:n], q)
		if err != nil {
			ignored = err
			continue
		}
		return reply, nil
	}
	return nil, fmt.Errorf("too many unusable replies, last: %w", ignored)
}

// readTCP sends the query with its RFC 1035 §4.2.2 length prefix and reads
// one reply; on TCP the stream is ours, so any mismatch is an error.
func readTCP(conn net.Conn, packed []byte, q *dns.Msg) (*dns.Msg, error) {
	out := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(out, uint16(len(packed)))
	copy(out[2:], packed)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	var prefix [2]byte
	if _, err := io.ReadFull(conn, prefix[:]); err != nil {
		return nil, err
	}
	// At most 64 KiB by construction of the prefix.
	buf := make([]byte, binary.BigEndian.Uint16(prefix[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	return parseReply(buf, q)
}

// errMismatch marks replies that are not an answer to our query.
var errMismatch = errors.New("reply does not match query")

// parseReply unpacks a reply and checks it answers q: same ID, QR set,
// opcode QUERY, and the same question. Some servers omit the question in
// error replies (REFUSED, SERVFAIL); those are accepted since they can only
// make the lookup fail.
func parseReply(b []byte, q *dns.Msg) (*dns.Msg, error) {
	reply := new(dns.Msg)
	if err := reply.Unpack(b); err != nil {
		return nil, fmt.Errorf("malformed reply: %w", err)
	}
	switch {
	case reply.Id != q.Id:
		return nil, fmt.Errorf("%w: ID %d, want %d", errMismatch, reply.Id, q.Id)
	case !reply.Response || reply.Opcode != dns.OpcodeQuery:
		return nil, fmt.Errorf("%w: not a query response", errMismatch)
	}
	want := q.Question[0]
	if len(reply.Question) == 0 && reply.Rcode != dns.RcodeSuccess && reply.Rcode != dns.RcodeNameError {
		return reply, nil
	}
	if len(reply.Question) != 1 {
		return nil, fmt.Errorf("%w: %d questions", errMismatch, len(reply.Question))
	}
	got := reply.Question[0]
	if got.Qtype != want.Qtype || got.Qclass != want.Qclass || !strings.EqualFold(got.Name, want.Name) {
		return nil, fmt.Errorf("%w: question %s %s, want %s %s", errMismatch,
			got.Name, dns.TypeToString[got.Qtype], want.Name, dns.TypeToString[want.Qtype])
	}
	return reply, nil
}

// unescapeTXT turns a miekg/dns presentation-form character-string (with
// \" \\ and \DDD escapes) back into its raw bytes.
func unescapeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b = append(b, s[i])
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v <= 255 {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
