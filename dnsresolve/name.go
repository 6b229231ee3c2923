package dnsresolve

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalidName is returned by [Normalize] (and, wrapped together with
// [ErrLookupFailed], by every Resolver method) when a name cannot be turned
// into a valid DNS name: empty, an empty label, a label over 63 octets, a
// name over 253 octets, a character outside letters, digits, '-' and '_', or
// a U-label that IDNA rejects. The caller should treat the input itself as
// bad (report it, do not retry).
var ErrInvalidName = errors.New("dns: invalid domain name")

// Limits from RFC 1035 §2.3.4 (presentation form, without the root dot).
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// lookupProfile is the IDNA Lookup profile (RFC 5891 §5, UTS #46
// non-transitional) with two relaxations needed for DNS rather than host
// names: '_' is allowed (service labels such as _mta-sts and _25._tcp), and
// hyphen placement is not policed (names like "r3---sn-x" exist in the wild;
// the DNS does not care). It is never modified after initialisation.
var lookupProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
)

// Normalize returns name in the form used for DNS queries and map keys in
// mailsts: IDNA A-labels (Lookup profile), lowercase, without the trailing
// dot. "Bücher.Example." becomes "xn--bcher-kva.example".
//
// RFC 8461 §3.1 (STS-TXT-1): the _mta-sts name is built from the A-label form
// of the domain, and a trailing root dot must not produce a double dot.
//
// Errors wrap [ErrInvalidName].
func Normalize(name string) (string, error) {
	if len(name) > 4*maxNameLen {
		// Hostile input: no valid name, even as U-labels, is this long.
		return "", fmt.Errorf("%w: name of %d bytes is too long", ErrInvalidName, len(name))
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidName, name)
	}
	s := name
	if needsIDNA(s) {
		var err error
		s, err = lookupProfile.ToASCII(s)
		if err != nil {
			return "", fmt.Errorf("%w %q: %w", ErrInvalidName, name, err)
		}
	} else {
		s = strings.ToLower(s)
	}
	s = strings.TrimSuffix(s, ".")
	if reason := checkName(s); reason != "" {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidName, name, reason)
	}
	return s, nil
}

// FQDN returns name with exactly one trailing dot, as DNS messages carry it.
// It does not normalize; use [Normalize] first for user input.
func FQDN(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// needsIDNA reports whether s has non-ASCII bytes or an "xn--" label that
// must be validated as Punycode. Plain ASCII names take a fast path.
func needsIDNA(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) >= 4 && strings.EqualFold(label[:4], "xn--") {
			return true
		}
	}
	return false
}

// checkName validates a lowercase ASCII name without trailing dot and
// returns a reason when it is not a usable DNS name, or "" when it is.
func checkName(s string) string {
	if s == "" {
		return "empty name"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("name longer than %d octets", maxNameLen)
	}
	labelLen := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if labelLen == 0 {
				return "empty label"
			}
			labelLen = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return fmt.Sprintf("invalid character %q", c)
		}
		labelLen++
		if labelLen > maxLabelLen {
			return fmt.Sprintf("label longer than %d octets", maxLabelLen)
		}
	}
	if labelLen == 0 {
		return "empty label"
	}
	return ""
}
