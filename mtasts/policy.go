package mtasts

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// policyParseMaxBytes caps the policy body the parser accepts: the 64 KiB
// RFC 8461 §3.3 suggests for the fetch (STS-POL-13). Callers that read
// policies from elsewhere (files, the linter) get the same bound.
const policyParseMaxBytes = 64 << 10

// policyBOM is the UTF-8 byte-order mark (STS-POL-14).
const policyBOM = "\xef\xbb\xbf"

// The policy keys of RFC 8461 §3.2, case-sensitive (RFC 7405 %s).
const (
	policyKeyVersion = "version"
	policyKeyMode    = "mode"
	policyKeyMX      = "mx"
	policyKeyMaxAge  = "max_age"
)

// SyntaxError reports why a policy body is invalid. It wraps
// ErrPolicySyntax, so errors.Is(err, ErrPolicySyntax) holds; use errors.As
// to get the line.
type SyntaxError struct {
	// Line is the 1-based line the problem is on, or 0 when it concerns
	// the whole body (a missing field, the size cap).
	Line int
	// Msg says what is wrong.
	Msg string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%v: line %d: %s", ErrPolicySyntax, e.Line, e.Msg)
	}
	return fmt.Sprintf("%v: %s", ErrPolicySyntax, e.Msg)
}

// Unwrap returns ErrPolicySyntax.
func (e *SyntaxError) Unwrap() error { return ErrPolicySyntax }

// Notice is one deviation from the strict grammar that a lenient parse
// tolerated (or, in both modes, a duplicate key that was ignored). Linters
// and the checker show them to operators.
type Notice struct {
	// Line is 1-based, or 0 for the whole body.
	Line int
	Msg  string
}

func (n Notice) String() string {
	if n.Line > 0 {
		return fmt.Sprintf("line %d: %s", n.Line, n.Msg)
	}
	return n.Msg
}

// ParsePolicy parses a policy body leniently, the way a sender should
// (OPEN-3): it accepts everything ParsePolicyStrict accepts, plus the
// tolerances listed in the package documentation (trailing blank lines, a
// UTF-8 BOM, leading whitespace before a key, one trailing dot on an mx
// pattern, an extension with an empty value, and max_age above 31557600,
// which is clamped). Errors are *SyntaxError wrapping ErrPolicySyntax.
func ParsePolicy(body []byte) (*Policy, error) {
	p, _, err := ParsePolicyDetail(body, false)
	return p, err
}

// ParsePolicyStrict parses a policy body against the ABNF of RFC 8461 §3.2
// exactly, for linting: every tolerance of ParsePolicy is an error, and so
// is max_age above 31557600 (the prose maximum, STS-ERRATA-3). Errors are
// *SyntaxError wrapping ErrPolicySyntax.
func ParsePolicyStrict(body []byte) (*Policy, error) {
	p, _, err := ParsePolicyDetail(body, true)
	return p, err
}

// ParsePolicyDetail parses a policy body, strictly or leniently, and also
// returns the notices: what a lenient parse tolerated, and in both modes the
// repeated keys it ignored. On error the notices gathered so far are
// returned with a nil policy.
//
// The grammar (RFC 8461 §3.2), in short: lines end with LF or CRLF, the last
// one may have no terminator (STS-POL-4, STS-ERRATA-1); a line is
// key ":" *WSP value *WSP with no WSP before the ":" (STS-POL-5); keys and
// the fixed values are case-sensitive (STS-POL-6); unknown keys are
// extensions, kept in Policy.Extensions (STS-POL-10); for every key but mx
// the first occurrence wins (STS-POL-11); field order is free (STS-POL-12).
func ParsePolicyDetail(body []byte, strict bool) (*Policy, []Notice, error) {
	ps := policyParser{strict: strict}
	p, err := ps.parse(body)
	if err != nil {
		return nil, ps.notices, err
	}
	return p, ps.notices, nil
}

type policyParser struct {
	strict  bool
	notices []Notice
}

func (ps *policyParser) notice(line int, format string, args ...any) {
	ps.notices = append(ps.notices, Notice{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// tolerate records a tolerated deviation in lenient mode, or returns it as
// the error in strict mode.
func (ps *policyParser) tolerate(line int, format string, args ...any) error {
	if ps.strict {
		return &SyntaxError{Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	ps.notice(line, format, args...)
	return nil
}

func (ps *policyParser) parse(body []byte) (*Policy, error) {
	if len(body) > policyParseMaxBytes {
		// RFC 8461 §3.3: senders MAY cap the body size (STS-POL-13).
		return nil, &SyntaxError{Msg: fmt.Sprintf("body is %d bytes, more than %d", len(body), policyParseMaxBytes)}
	}
	if bytes.HasPrefix(body, []byte(policyBOM)) {
		// STS-POL-14: some editors write a BOM; it is not in the grammar.
		if err := ps.tolerate(1, "UTF-8 byte-order mark before the first key"); err != nil {
			return nil, err
		}
		body = body[len(policyBOM):]
	}
	lines := splitPolicyLines(body)
	// Trailing blank lines: the grammar has none, OPEN-3 tolerates them.
	last := len(lines)
	for last > 0 && strings.Trim(lines[last-1], " \t") == "" {
		last--
	}
	if last < len(lines) {
		if last == 0 {
			return nil, &SyntaxError{Line: 1, Msg: "empty policy"}
		}
		if err := ps.tolerate(last+1, "blank line at the end of the policy"); err != nil {
			return nil, err
		}
		lines = lines[:last]
	}

	p := &Policy{}
	var haveVersion, haveMode, haveMaxAge bool
	seenExt := map[string]bool{}
	for i, line := range lines {
		n := i + 1
		if !utf8.ValidString(line) {
			// STS-POL-14: the body is UTF-8.
			return nil, &SyntaxError{Line: n, Msg: "invalid UTF-8"}
		}
		if line == "" || strings.Trim(line, " \t") == "" {
			return nil, &SyntaxError{Line: n, Msg: "blank line (the policy grammar has none)"}
		}
		if isWSP(line[0]) {
			// STS-POL-5: keys have no leading whitespace.
			if err := ps.tolerate(n, "whitespace before the key"); err != nil {
				return nil, err
			}
			line = strings.TrimLeft(line, " \t")
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("no \":\" in %q", policyClip(line))}
		}
		key := line[:colon]
		if !validExtName(key) {
			msg := fmt.Sprintf("key %q is not 1-32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", policyClip(key))
			if strings.TrimRight(key, " \t") != key {
				msg = fmt.Sprintf("whitespace between key %q and \":\"", strings.TrimRight(key, " \t"))
			}
			return nil, &SyntaxError{Line: n, Msg: msg}
		}
		// field-delim = ":" *WSP, and every field may be followed by *WSP.
		value := strings.Trim(line[colon+1:], " \t")
		if err := checkPolicyValue(value); err != nil {
			if value == "" && !isPolicyKnownKey(key) {
				// An empty extension value: the extension is ignored anyway.
				if err := ps.tolerate(n, "extension %q has an empty value; ignored", key); err != nil {
					return nil, err
				}
				continue
			}
			return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("value of %q: %v", key, err)}
		}
		switch key {
		case policyKeyVersion:
			if haveVersion {
				ps.duplicate(n, key)
				continue
			}
			if value != Version {
				return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("version %q is not %q", policyClip(value), Version)}
			}
			haveVersion = true
		case policyKeyMode:
			if haveMode {
				ps.duplicate(n, key)
				continue
			}
			// The constant, not the value: a substring would keep the
			// whole body alive as long as the policy is cached.
			switch m := Mode(value); m {
			case ModeEnforce:
				p.Mode = ModeEnforce
			case ModeTesting:
				p.Mode = ModeTesting
			case ModeNone:
				p.Mode = ModeNone
			default:
				return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("mode %q is not enforce, testing or none", policyClip(value))}
			}
			haveMode = true
		case policyKeyMaxAge:
			if haveMaxAge {
				ps.duplicate(n, key)
				continue
			}
			age, err := ps.maxAge(n, value)
			if err != nil {
				return nil, err
			}
			p.MaxAge = age
			haveMaxAge = true
		case policyKeyMX:
			// RFC 8461 §3.2: every mx line counts (STS-POL-9).
			pat := value
			if strings.HasSuffix(pat, ".") && patternProblem(pat[:len(pat)-1]) == "" {
				if err := ps.tolerate(n, "mx %q ends with a dot; read as %q", pat, pat[:len(pat)-1]); err != nil {
					return nil, err
				}
				pat = pat[:len(pat)-1]
			}
			if problem := patternProblem(pat); problem != "" {
				return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("mx %q: %s", policyClip(pat), problem)}
			}
			p.MX = append(p.MX, pat)
		default:
			// RFC 8461 §3.2: unknown fields are accepted and ignored; we
			// keep the first of each for round trips and the linter.
			if seenExt[key] {
				ps.duplicate(n, key)
				continue
			}
			seenExt[key] = true
			p.Extensions = append(p.Extensions, Extension{Key: key, Value: value})
		}
	}
	// RFC 8461 §3.2: version, mode and max_age are required, and at least
	// one mx unless the mode is none (STS-POL-3).
	switch {
	case !haveVersion:
		return nil, &SyntaxError{Msg: "missing version field"}
	case !haveMode:
		return nil, &SyntaxError{Msg: "missing mode field"}
	case !haveMaxAge:
		return nil, &SyntaxError{Msg: "missing max_age field"}
	case len(p.MX) == 0 && p.Mode != ModeNone:
		return nil, &SyntaxError{Msg: fmt.Sprintf("mode %s needs at least one mx field", p.Mode)}
	}
	return p.Compact(), nil
}

// Compact returns a copy of p that owns its memory in as few allocations
// as possible: the mode is the package constant when it is one, all strings
// are cut from one string of their own, and slices have exact capacity (nil
// slices stay nil). The copy shares nothing with p, whose strings may be
// substrings of a larger buffer (a fetched body, a decoded row) that a
// cached policy would otherwise keep alive: roughly 200 bytes per cached
// domain for a one-line mx. Parse returns compact policies; stores that
// keep policies from elsewhere call it.
func (p *Policy) Compact() *Policy {
	q := &Policy{Mode: p.Mode, MaxAge: p.MaxAge}
	// The constants' strings, not substrings of the input.
	switch p.Mode {
	case ModeEnforce:
		q.Mode = ModeEnforce
	case ModeTesting:
		q.Mode = ModeTesting
	case ModeNone:
		q.Mode = ModeNone
	default:
		q.Mode = Mode(strings.Clone(string(p.Mode)))
	}
	n := 0
	for _, mx := range p.MX {
		n += len(mx)
	}
	for _, x := range p.Extensions {
		n += len(x.Key) + len(x.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for _, mx := range p.MX {
		b.WriteString(mx)
	}
	for _, x := range p.Extensions {
		b.WriteString(x.Key)
		b.WriteString(x.Value)
	}
	s := b.String()
	next := func(l int) string {
		v := s[:l]
		s = s[l:]
		return v
	}
	if p.MX != nil {
		q.MX = make([]string, len(p.MX))
		for i, mx := range p.MX {
			q.MX[i] = next(len(mx))
		}
	}
	if p.Extensions != nil {
		q.Extensions = make([]Extension, len(p.Extensions))
		for i, x := range p.Extensions {
			q.Extensions[i] = Extension{Key: next(len(x.Key)), Value: next(len(x.Value))}
		}
	}
	return q
}

func (ps *policyParser) duplicate(line int, key string) {
	// RFC 8461 §3.2: for a repeated field the first occurrence wins
	// (STS-POL-11); later ones are ignored without checking their values.
	ps.notice(line, "repeated %q ignored; the first one counts", key)
}

// maxAge parses sts-policy-max-age-value = 1*10(DIGIT).
func (ps *policyParser) maxAge(line int, value string) (int64, error) {
	if len(value) > 10 {
		return 0, &SyntaxError{Line: line, Msg: fmt.Sprintf("max_age %q has more than 10 digits", policyClip(value))}
	}
	for i := 0; i < len(value); i++ {
		if value[i] < '0' || value[i] > '9' {
			return 0, &SyntaxError{Line: line, Msg: fmt.Sprintf("max_age %q is not a number of seconds (digits only)", value)}
		}
	}
	// Ten digits fit in int64: no overflow (STS-ERRATA-3).
	age, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return 0, &SyntaxError{Line: line, Msg: fmt.Sprintf("max_age %q: %v", value, err)}
	}
	if age > MaxMaxAge {
		// RFC 8461 §3.2: max_age has a maximum of 31557600 (OPEN-2: clamp).
		if err := ps.tolerate(line, "max_age %d is above the maximum %d; clamped", age, MaxMaxAge); err != nil {
			return 0, err
		}
		age = MaxMaxAge
	}
	return age, nil
}

// splitPolicyLines splits body at LF, dropping one CR before each LF
// (RFC 8461 §3.2: sts-policy-term = LF / CRLF). A final terminator does not
// start another line. A CR elsewhere stays in the line and makes it invalid.
func splitPolicyLines(body []byte) []string {
	s := string(body)
	if s == "" {
		return nil
	}
	terminated := strings.HasSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		// Only a CR right before an LF belongs to the terminator.
		if i < len(lines)-1 || terminated {
			lines[i] = strings.TrimSuffix(l, "\r")
		}
	}
	return lines
}

// checkPolicyValue checks sts-policy-ext-value, which every value (already
// stripped of surrounding WSP) must satisfy: one or more UTF-8 characters,
// no controls, and no whitespace other than inner spaces.
func checkPolicyValue(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("invalid UTF-8")
	}
	for i := 0; i < len(v); i++ {
		// CTL (RFC 5234: %x00-1F / %x7F), tab included; bytes of UTF-8
		// sequences are all 0x80 or above.
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character 0x%02x at byte %d", c, i)
		}
	}
	return nil
}

func isPolicyKnownKey(k string) bool {
	switch k {
	case policyKeyVersion, policyKeyMode, policyKeyMX, policyKeyMaxAge:
		return true
	}
	return false
}

// policyClip shortens s for an error message.
func policyClip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Lines returns the policy as lines without terminators, in the canonical
// order of String: version, mode, each mx, max_age, then the extensions.
// This is the "policy-string" of an RFC 8460 report (§4.5, fixture F-7) and
// Postfix's policy_string attribute.
func (p *Policy) Lines() []string {
	if p == nil {
		return nil
	}
	lines := make([]string, 0, 3+len(p.MX)+len(p.Extensions))
	lines = append(lines, policyKeyVersion+": "+Version, policyKeyMode+": "+string(p.Mode))
	for _, mx := range p.MX {
		lines = append(lines, policyKeyMX+": "+mx)
	}
	lines = append(lines, policyKeyMaxAge+": "+strconv.FormatInt(p.MaxAge, 10))
	for _, e := range p.Extensions {
		lines = append(lines, e.Key+": "+e.Value)
	}
	return lines
}

// String returns the policy in canonical form: the Lines, each ended by LF.
// ParsePolicy of the result equals p for every policy ParsePolicy returned,
// and ParsePolicyStrict does for every policy Validate accepts.
func (p *Policy) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for _, l := range p.Lines() {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// Validate checks a policy built in code (for example by a publisher)
// against what ParsePolicyStrict accepts: a known mode, mx patterns valid per
// ValidPattern (at least one unless the mode is none), max_age within
// 0..31557600, and extensions with valid, distinct names that are not
// policy keys and valid values. Errors wrap ErrPolicySyntax.
func (p *Policy) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: nil policy", ErrPolicySyntax)
	}
	switch p.Mode {
	case ModeEnforce, ModeTesting, ModeNone:
	default:
		return fmt.Errorf("%w: mode %q is not enforce, testing or none", ErrPolicySyntax, p.Mode)
	}
	if len(p.MX) == 0 && p.Mode != ModeNone {
		return fmt.Errorf("%w: mode %s needs at least one mx pattern", ErrPolicySyntax, p.Mode)
	}
	for _, mx := range p.MX {
		if err := ValidPattern(mx); err != nil {
			return err
		}
	}
	if p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
		return fmt.Errorf("%w: max_age %d is outside 0..%d", ErrPolicySyntax, p.MaxAge, MaxMaxAge)
	}
	seen := make(map[string]bool, len(p.Extensions))
	for _, e := range p.Extensions {
		if !validExtName(e.Key) {
			return fmt.Errorf("%w: extension name %q is not 1-32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", ErrPolicySyntax, e.Key)
		}
		if isPolicyKnownKey(e.Key) {
			return fmt.Errorf("%w: extension name %q is a policy key", ErrPolicySyntax, e.Key)
		}
		if seen[e.Key] {
			return fmt.Errorf("%w: extension %q appears twice", ErrPolicySyntax, e.Key)
		}
		seen[e.Key] = true
		if e.Value != strings.Trim(e.Value, " \t") {
			return fmt.Errorf("%w: extension %q value has leading or trailing whitespace", ErrPolicySyntax, e.Key)
		}
		if err := checkPolicyValue(e.Value); err != nil {
			return fmt.Errorf("%w: extension %q: %v", ErrPolicySyntax, e.Key, err)
		}
	}
	return nil
}

// PolicyURL returns the URL of the policy for domain (RFC 8461 §3.2,
// STS-POL-1): https://mta-sts.<domain>/.well-known/mta-sts.txt. The domain
// must already be in A-label form; one trailing dot is removed.
func PolicyURL(domain string) string {
	return "https://mta-sts." + strings.TrimSuffix(domain, ".") + "/.well-known/mta-sts.txt"
}
