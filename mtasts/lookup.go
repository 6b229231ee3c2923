package mtasts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
)

// ErrInvalidDomain: the domain given to a lookup is not a valid domain name
// (empty, an empty label, bad characters, IDNA failure, or an IP address).
// The input is wrong; do not retry, and do not treat it as "no policy"
// silently: report it. It wraps dnsresolve.ErrInvalidName when the name
// itself is malformed.
var ErrInvalidDomain = errors.New("mtasts: invalid domain")

// normalizeDomain applies STS-SEL-6: lowercase, one trailing dot stripped,
// IDNA converted to A-labels, empty labels rejected. An IPv4 address in
// dotted-decimal form is rejected too: it is a valid string of DNS labels,
// but RFC 8461 §3.4 gives address literals no MTA-STS policy (STS-SEL-4),
// and querying _mta-sts.192.0.2.1 would only leak the address to the
// resolver. (Bracketed and IPv6 literals already fail the name syntax.)
func normalizeDomain(domain string) (string, error) {
	d, err := dnsresolve.Normalize(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidDomain, err)
	}
	if mayBeAddr(d) {
		if _, err := netip.ParseAddr(d); err != nil {
			return d, nil
		}
		return "", fmt.Errorf("%w: %q is an IP address; address literals have no MTA-STS policy (RFC 8461 §3.4)", ErrInvalidDomain, domain)
	}
	return d, nil
}

// mayBeAddr reports whether s could be an IP address: IPv4 addresses hold
// only digits and dots, IPv6 addresses a colon. It keeps the hot path free
// of netip.ParseAddr's error allocation for ordinary names.
func mayBeAddr(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ':' {
			return true
		} else if c != '.' && (c < '0' || c > '9') {
			return strings.IndexByte(s, ':') >= 0
		}
	}
	return true
}

// LookupRecord looks up the _mta-sts TXT record of domain (RFC 8461 §3.1)
// and selects the one v=STSv1 record. CNAMEs at _mta-sts.<domain> are
// followed by the resolver (STS-TXT-10); the returned Answer says where the
// record was found. That never changes the policy host: the policy is still
// fetched from mta-sts.<domain>.
//
// Errors: ErrNoRecord (NXDOMAIN, NODATA or no v=STSv1 record),
// ErrMultipleRecords (STS-TXT-7), ErrRecordSyntax (STS-TXT-8), ErrDNS when
// the lookup failed (SERVFAIL, timeout; wrapping the dnsresolve error,
// STS-TXT-13), ErrInvalidDomain.
func (c *Client) LookupRecord(ctx context.Context, domain string) (*Record, dnsresolve.Answer, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	dns, err := c.resolver()
	if err != nil {
		return nil, dnsresolve.Answer{}, err
	}
	name := "_mta-sts." + d
	txts, ans, err := dns.LookupTXT(ctx, name)
	if err != nil {
		// STS-TXT-13: NXDOMAIN and NODATA mean "no record"; anything else
		// means the answer is unknown.
		if errors.Is(err, dnsresolve.ErrNotFound) {
			err = fmt.Errorf("%w: %w", ErrNoRecord, err)
		} else {
			err = fmt.Errorf("%w: %w", ErrDNS, err)
		}
		c.logger().LogAttrs(ctx, slog.LevelDebug, "mta-sts txt lookup", slog.String("name", name), slog.Any("error", err))
		return nil, ans, err
	}
	rec, err := SelectRecord(txts)
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
	}
	c.logger().LogAttrs(ctx, slog.LevelDebug, "mta-sts txt lookup", slog.String("name", name),
		slog.String("canonical", ans.CanonicalName), slog.Int("records", len(txts)), slog.Any("error", err))
	return rec, ans, err
}

// Get discovers the current policy of domain without any cache: the TXT
// record, then the policy over HTTPS. Use a [Cache] to deliver mail; Get is
// for tools that want to see the live state.
//
// RFC 8461 §3.1, STS-TXT-10, STS-SEL-5: the policy is fetched from
// mta-sts.<domain> for the domain as given, even when the TXT record was
// reached through a CNAME.
//
// When the TXT lookup fails, Get returns its error and does not fetch. When
// the fetch fails, the record is returned with the error.
func (c *Client) Get(ctx context.Context, domain string) (*Record, *Policy, error) {
	rec, _, err := c.LookupRecord(ctx, domain)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.Fetch(ctx, domain)
	if err != nil {
		return rec, nil, err
	}
	return rec, p, nil
}
