package libtlsrpt

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// decodeFast decodes a datagram in the shape libtlsrpt writes into raw,
// without reflection and with one copy of the datagram for all its
// strings. It is strict: it reports false, leaving the datagram to
// encoding/json (the reference), on anything it does not fully
// understand: a top-level value that is not one object, a member name
// other than the protocol's (exact spelling; encoding/json would also
// match other cases), a member twice, null, a string with an escape or a
// control character or invalid UTF-8, a number that is not a plain
// integer of at most 9 digits, a value of an unexpected type, more than
// MaxPolicies policies, or trailing data. What it accepts, it decodes to
// exactly what the reference would (FuzzParseEquivalence checks it).
func decodeFast(b []byte, raw *rawDatagram) bool {
	sc := scanner{b: b}
	if !sc.consume('{') {
		return false
	}
	var seen uint8
	const (
		sDPV = 1 << iota
		sD
		sPR
		sPolicies
	)
	if !sc.consume('}') {
		for {
			key, ok := sc.key()
			if !ok {
				return false
			}
			var bit uint8
			switch key {
			case "dpv":
				bit = sDPV
				raw.hasDPV = true
				raw.dpv, ok = sc.str()
			case "d":
				bit = sD
				raw.hasD = true
				raw.d, ok = sc.str()
			case "pr":
				bit = sPR
				raw.hasPR = true
				raw.pr, ok = sc.str()
			case "policies":
				bit = sPolicies
				raw.hasPolicies = true
				raw.policies, ok = sc.policies()
			default:
				return false
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			if sc.consume('}') {
				break
			}
			if !sc.consume(',') {
				return false
			}
		}
	}
	sc.ws()
	return sc.i == len(sc.b)
}

// scanner walks a datagram. s is the datagram as one string, made on the
// first string value: every string decoded is a slice of it.
type scanner struct {
	b []byte
	s string
	i int
}

func (sc *scanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, if c is next.
func (sc *scanner) consume(c byte) bool {
	sc.ws()
	if sc.i < len(sc.b) && sc.b[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// key reads a member name and its colon.
func (sc *scanner) key() (string, bool) {
	k, ok := sc.str()
	if !ok || !sc.consume(':') {
		return "", false
	}
	return k, true
}

// str reads a string without escapes or control characters, in valid
// UTF-8 (encoding/json would replace invalid bytes).
func (sc *scanner) str() (string, bool) {
	if !sc.consume('"') {
		return "", false
	}
	start := sc.i
	n := bytes.IndexByte(sc.b[start:], '"')
	if n < 0 {
		return "", false
	}
	// An escaped quote has a backslash before it, in the span: refused.
	if span := sc.b[start : start+n]; !plainASCII(span) && (hasEscapeOrControl(span) || !utf8.Valid(span)) {
		return "", false
	}
	if sc.s == "" {
		sc.s = string(sc.b)
	}
	sc.i = start + n + 1
	return sc.s[start : start+n], true
}

// plainASCII reports whether b is printable ASCII without a backslash,
// eight bytes at a time.
func plainASCII(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		y := x ^ ('\\' * lo)
		// With no high bit set, (v - lo*n) & ^v & hi is nonzero
		// exactly when some byte of v is below n.
		if x&hi != 0 || (x-0x20*lo)&^x&hi != 0 || (y-lo)&^y&hi != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

func hasEscapeOrControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' {
			return true
		}
	}
	return false
}

// num reads an integer of at most 9 digits in JSON's grammar (no leading
// zeros), not followed by a fraction or exponent.
func (sc *scanner) num() (int, bool) {
	sc.ws()
	neg := false
	if sc.i < len(sc.b) && sc.b[sc.i] == '-' {
		neg = true
		sc.i++
	}
	start := sc.i
	n := 0
	for sc.i < len(sc.b) && sc.b[sc.i] >= '0' && sc.b[sc.i] <= '9' {
		n = n*10 + int(sc.b[sc.i]-'0')
		sc.i++
	}
	digits := sc.i - start
	if digits == 0 || digits > 9 || (digits > 1 && sc.b[start] == '0') {
		return 0, false
	}
	if sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// strs reads an array of strings; an empty array is an empty, non-nil
// slice, as encoding/json makes it.
func (sc *scanner) strs() ([]string, bool) {
	if !sc.consume('[') {
		return nil, false
	}
	out := []string{}
	if sc.consume(']') {
		return out, true
	}
	for {
		v, ok := sc.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if sc.consume(']') {
			return out, true
		}
		if !sc.consume(',') {
			return nil, false
		}
	}
}

func (sc *scanner) policies() ([]rawPolicy, bool) {
	if !sc.consume('[') {
		return nil, false
	}
	out := []rawPolicy{}
	if sc.consume(']') {
		return out, true
	}
	for {
		if len(out) == MaxPolicies {
			return nil, false
		}
		out = append(out, rawPolicy{})
		if !sc.policy(&out[len(out)-1]) {
			return nil, false
		}
		if sc.consume(']') {
			return out, true
		}
		if !sc.consume(',') {
			return nil, false
		}
	}
}

func (sc *scanner) policy(p *rawPolicy) bool {
	if !sc.consume('{') {
		return false
	}
	if sc.consume('}') {
		return true
	}
	var seen uint8
	const (
		sType = 1 << iota
		sDomain
		sStrings
		sMX
		sFailures
		sT
		sF
	)
	for {
		key, ok := sc.key()
		if !ok {
			return false
		}
		var bit uint8
		switch key {
		case "policy-type":
			bit = sType
			p.hasType = true
			p.typ, ok = sc.num()
		case "policy-domain":
			bit = sDomain
			p.hasDomain = true
			p.domain, ok = sc.str()
		case "policy-string":
			bit = sStrings
			p.strs, ok = sc.strs()
		case "mx-host":
			bit = sMX
			p.mx, ok = sc.strs()
		case "failure-details":
			bit = sFailures
			p.failures, ok = sc.failures()
		case "t":
			bit = sT
			p.hasT = true
			p.t, ok = sc.num()
		case "f":
			bit = sF
			p.hasF = true
			p.f, ok = sc.num()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if sc.consume('}') {
			return true
		}
		if !sc.consume(',') {
			return false
		}
	}
}

func (sc *scanner) failures() ([]rawFailure, bool) {
	if !sc.consume('[') {
		return nil, false
	}
	out := []rawFailure{}
	if sc.consume(']') {
		return out, true
	}
	for {
		out = append(out, rawFailure{})
		if !sc.failure(&out[len(out)-1]) {
			return nil, false
		}
		if sc.consume(']') {
			return out, true
		}
		if !sc.consume(',') {
			return nil, false
		}
	}
}

func (sc *scanner) failure(f *rawFailure) bool {
	if !sc.consume('{') {
		return false
	}
	if sc.consume('}') {
		return true
	}
	var seen uint8
	for {
		key, ok := sc.key()
		if !ok || len(key) != 1 {
			return false
		}
		var bit uint8
		var dst *string
		switch key[0] {
		case 'c':
			bit = 1
			f.hasC = true
			f.c, ok = sc.num()
		case 's':
			bit, dst = 2, &f.s
		case 'n':
			bit, dst = 4, &f.n
		case 'h':
			bit, dst = 8, &f.h
		case 'r':
			bit, dst = 16, &f.r
		case 'a':
			bit, dst = 32, &f.a
		case 'f':
			bit, dst = 64, &f.f
		default:
			return false
		}
		if dst != nil {
			*dst, ok = sc.str()
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if sc.consume('}') {
			return true
		}
		if !sc.consume(',') {
			return false
		}
	}
}
