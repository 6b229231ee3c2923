package postfix

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// KeyKind classifies a TLS policy lookup key.
type KeyKind uint8

// Key kinds. Only KeyDomain names a destination that can have a policy of
// its own; a policy daemon answers NOTFOUND for the others.
const (
	// KeyInvalid: empty, not UTF-8, or not a next-hop Postfix would send
	// (including LMTP "inet:"/"unix:" forms, which Postfix strips).
	KeyInvalid KeyKind = iota
	// KeyDomain: a domain, possibly bracketed and with a port.
	KeyDomain
	// KeyParentProbe: ".example.com", Postfix's parent-domain walk
	// (PFX-POL-2). RFC 8461 §3.4 forbids falling back to a parent zone
	// (STS-SEL-3), so MTA-STS answers NOTFOUND.
	KeyParentProbe
	// KeyIPLiteral: "[192.0.2.1]", "[IPv6:2001:db8::1]" or a bare address.
	// STS-SEL-4: there is no MTA-STS for address literals.
	KeyIPLiteral
)

func (k KeyKind) String() string {
	switch k {
	case KeyDomain:
		return "domain"
	case KeyParentProbe:
		return "parent-probe"
	case KeyIPLiteral:
		return "ip-literal"
	}
	return "invalid"
}

// NextHop is a parsed smtp_tls_policy_maps lookup key (PFX-POL-1).
type NextHop struct {
	// Key is the key exactly as received.
	Key string
	// Domain is the host part, lowercased, one trailing dot removed, without
	// brackets and port. For KeyParentProbe it is the name after the leading
	// dot, for KeyIPLiteral the address; empty for KeyInvalid. Use
	// PolicyDomain rather than reading it directly.
	Domain string
	// Bracketed is set for "[host]" forms: Postfix skipped the MX lookup.
	Bracketed bool
	// Port is the text after "host:" or "[host]:" ("587", "smtp"), if any.
	Port string
	Kind KeyKind
}

// PolicyDomain returns the domain whose policy applies and true, or "" and
// false when the key must be answered NOTFOUND (parent probes, IP literals,
// invalid keys).
//
// OPEN-5 (decided as the checklist recommends): a bracketed or port form
// such as "[relay.example.net]:587" yields "relay.example.net": RFC 8461
// §3.4 makes the smart host's domain the Policy Domain (STS-SEL-2), as
// postfix-mta-sts-resolver does. Callers that prefer postfix-tlspol's
// NOTFOUND can test Bracketed and Port themselves.
func (h NextHop) PolicyDomain() (string, bool) {
	if h.Kind != KeyDomain {
		return "", false
	}
	return h.Domain, true
}

// LogValue implements slog.LogValuer.
func (h NextHop) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key", h.Key), slog.String("kind", h.Kind.String()), slog.String("domain", h.Domain))
}

// maxKeyLen bounds the work on hostile keys: a host name is at most 253
// bytes, plus brackets, an "IPv6:" tag and a port.
const maxKeyLen = 512

// ParseNextHop classifies a TLS policy lookup key (PFX-POL-1, PFX-POL-2,
// GO-12). Socketmap keys arrive without case folding, so the host is
// lowercased and one trailing dot removed here (PFX-SOCKETMAP-9). It never
// fails: bad keys have Kind KeyInvalid.
//
// Accepted forms: "example.com", "example.com:2525", "[relay.example.net]",
// "[relay.example.net]:587", ".example.com" (parent probe), "[192.0.2.1]",
// "[IPv6:2001:db8::1]", "192.0.2.1", "2001:db8::1". Host names may hold
// non-ASCII (UTF-8) labels; converting them to A-labels is the caller's
// job. A name whose last label is all digits is not a domain (RFC 3696 §2).
func ParseNextHop(key string) NextHop {
	h := parseNextHop(key)
	if h.Kind == KeyInvalid {
		return NextHop{Key: key} // no half-parsed fields on invalid keys
	}
	return h
}

func parseNextHop(key string) NextHop {
	h := NextHop{Key: key}
	if key == "" || len(key) > maxKeyLen || !utf8.ValidString(key) {
		return h
	}
	k := strings.ToLower(key)
	if strings.HasPrefix(k, "inet:") || strings.HasPrefix(k, "unix:") {
		return h // LMTP prefixes are not part of TLS policy keys (PFX-POL-1)
	}
	switch {
	case k[0] == '.':
		if d, ok := normalizeHost(k[1:]); ok {
			h.Domain, h.Kind = d, KeyParentProbe
		}
		return h
	case k[0] == '[':
		end := strings.IndexByte(k, ']')
		if end < 0 {
			return h
		}
		host, after := k[1:end], k[end+1:]
		if after != "" {
			port, ok := strings.CutPrefix(after, ":")
			if !ok || !validPort(port) {
				return h
			}
			h.Port = port
		}
		h.Bracketed = true
		// RFC 5321 §4.1.3 address literals.
		if v6, ok := strings.CutPrefix(host, "ipv6:"); ok {
			if a, err := netip.ParseAddr(v6); err == nil && a.Is6() && a.Zone() == "" {
				h.Domain, h.Kind = a.String(), KeyIPLiteral
			}
			return h
		}
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
			h.Domain, h.Kind = a.String(), KeyIPLiteral
			return h
		}
		if d, ok := normalizeHost(host); ok {
			h.Domain, h.Kind = d, KeyDomain
		}
		return h
	}
	if a, err := parseAddr(k); err == nil && a.Zone() == "" {
		h.Domain, h.Kind = a.String(), KeyIPLiteral
		return h
	}
	host := k
	if i := strings.LastIndexByte(k, ':'); i >= 0 {
		if !validPort(k[i+1:]) {
			return h
		}
		host, h.Port = k[:i], k[i+1:]
	}
	if a, err := parseAddr(host); err == nil && a.Is4() {
		h.Domain, h.Kind = a.String(), KeyIPLiteral
		return h
	}
	if d, ok := normalizeHost(host); ok {
		h.Domain, h.Kind = d, KeyDomain
	}
	return h
}

// normalizeHost strips one trailing dot and checks the name.
func normalizeHost(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	return s, validHostname(s, true)
}

// validHostname checks a dot-separated host name: labels of 1-63 bytes made
// of letters, digits, '-' and '_' (or, with unicode, any non-ASCII rune),
// not starting or ending with '-', at most 253 bytes, and a last label that
// is not all digits.
func validHostname(s string, unicode bool) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 0x80 && unicode:
			default:
				return false
			}
		}
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// validPort accepts a decimal port 1-65535 or a service name such as
// "smtp" or "submission" (letters, digits, '-', starting with a letter).
func validPort(p string) bool {
	if p == "" || len(p) > 32 {
		return false
	}
	if p[0] >= '0' && p[0] <= '9' {
		if p[0] == '0' || len(p) > 5 {
			return false
		}
		n := 0
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
			n = n*10 + int(p[i]-'0')
		}
		return n <= 65535
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

var errNotAddr = errors.New("not an IP address")

// parseAddr is netip.ParseAddr without its cost (an error allocation) for
// the common case, a name that cannot be an address: only IPv4 addresses
// consist of digits and dots alone, and only IPv6 addresses hold a colon.
func parseAddr(s string) (netip.Addr, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ':' || c != '.' && (c < '0' || c > '9') {
			if strings.IndexByte(s, ':') < 0 {
				return netip.Addr{}, errNotAddr
			}
			break
		}
	}
	return netip.ParseAddr(s)
}
