package tlsrpt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Repair is one normalisation Parse (or Decode, or ParseMessage) applied to
// make a report usable. Code is stable and short (listed below); Detail says
// where and what, for humans.
//
// Report repairs: "utf8-bom", "invalid-utf8", "control-character-in-string",
// "duplicate-member", "unknown-member",
// "<member>-null" for string members ("contact-info-null"), "string-type",
// "time-without-zone", "time-date-only", "time-space-separator",
// "mx-host-string", "mx-host-missing", "mx-host-prefix",
// "policy-string-string", "policy-string-missing",
// "tlsa-policy-string-nested-json", "policy-string-nested-json",
// "policies-not-array", "failure-details-not-array", "summary-missing",
// "summary-counter-missing", "count-string", "count-not-integer-literal",
// "count-null", "count-missing", "result-type-missing",
// "ipv6-noncanonical", "ip-invalid", "failure-count-mismatch",
// "failure-count-from-details", "failure-details-merged",
// "failure-details-capped", "repairs-truncated".
type Repair struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (r Repair) String() string { return r.Code + ": " + r.Detail }

// Informational reports whether the repair only notes a deviation and left
// the data as sent. "failure-count-mismatch" is one: RFC 8460 §4 lets
// failure details overlap, so their counts may sum above the total
// (RPT-AGG-4), yet a receiver wants to see it (quirk 8).
func (r Repair) Informational() bool { return r.Code == "failure-count-mismatch" }

// maxRepairs bounds the repair list of one hostile document.
const maxRepairs = 200

// maxDepth bounds JSON nesting; a report needs 5 levels.
const maxDepth = 32

// Caps on what one report may hold (RFC 8460 §7: hostile input must not
// cost unbounded work). A 19 KB gzip body can decompress to 6.5 million
// empty failure details; Parse reads failure details one by one, merges
// identical ones and keeps at most these many, so such a body costs
// kilobytes, not gigabytes. Real reports have a handful of policies and
// details: Google and Microsoft send one detail per (result type, sending
// IP, MX) and merge the rest (RPT-AGG-9).
const (
	// MaxPolicies caps the policies of one report. More fail Parse with
	// ErrTooLarge.
	MaxPolicies = 1000
	// MaxFailureDetails caps the distinct failure details kept per policy.
	// Identical details (all members but failed-session-count equal) are
	// merged, their counts summed ("failure-details-merged"); distinct
	// details beyond the cap are dropped and counted in the repair
	// "failure-details-capped".
	MaxFailureDetails = 1000
	// MaxReportFailureDetails caps the distinct failure details kept over
	// all policies of one report, like MaxFailureDetails.
	MaxReportFailureDetails = 10000
	// maxNodes caps the JSON values Parse keeps in memory at once (failure
	// details are converted and released one at a time). More fail Parse
	// with ErrTooLarge.
	maxNodes = 100000
)

// Parse decodes a JSON TLS report as real senders send it (RFC 8460 §4.4,
// read liberally per RPT-RECV-5 and the quirk list). It returns the report,
// the repairs applied in document order, and an error wrapping ErrSyntax when
// the input is not a report even after repairs: not JSON, not an object,
// no "policies", no parseable "date-range", a policy without "policy-type",
// or a count that is negative, fractional or above 2^53.
//
// Parse never rejects a report for its dates (see Report.Problems), for
// unknown result or policy types, or for missing optional members.
// Empty arrays come back as nil slices.
//
// Parse bounds its work whatever the input: failure details are merged
// and capped (MaxFailureDetails, MaxReportFailureDetails) as they are read,
// and a report with more than MaxPolicies policies or an unreasonable number
// of other JSON values fails with an error wrapping ErrTooLarge.
func Parse(data []byte) (*Report, []Repair, error) {
	p := &parser{}
	root, err := p.decode(data)
	if err != nil {
		return nil, p.repairs, err
	}
	r, err := p.report(root)
	if err != nil {
		return nil, p.repairs, err
	}
	return r, p.repairs, nil
}

// ParseStrict parses data like Parse but fails with ErrNotStrict when any
// repair that is not Informational was needed; the error lists the codes. Use it to lint
// reports, not to receive them.
func ParseStrict(data []byte) (*Report, error) {
	r, repairs, err := Parse(data)
	if err != nil {
		return nil, err
	}
	var codes []string
	for _, rp := range repairs {
		if !rp.Informational() {
			codes = append(codes, rp.Code)
		}
	}
	if len(codes) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotStrict, strings.Join(codes, ", "))
	}
	return r, nil
}

type parser struct {
	repairs   []Repair
	truncated bool
	// n counts the repairs recorded, deferred ones included.
	n int
	// deferred, when set, collects the repairs of failure details read
	// during decoding; policyResult adds them where the details are
	// interpreted, so that repairs stay in document order.
	deferred *[]Repair
	// nodes counts the JSON values held in memory (maxNodes).
	nodes int
	// detailsKept counts the failure details kept over all policies
	// (MaxReportFailureDetails).
	detailsKept int
}

func (p *parser) repair(code, format string, args ...any) {
	dst := &p.repairs
	if p.deferred != nil {
		dst = p.deferred
	}
	if p.n >= maxRepairs {
		if !p.truncated {
			p.truncated = true
			*dst = append(*dst, Repair{Code: "repairs-truncated", Detail: "more repairs were applied but not listed"})
		}
		return
	}
	p.n++
	*dst = append(*dst, Repair{Code: code, Detail: fmt.Sprintf(format, detach(args)...)})
}

// listing reports whether a repair would still be recorded (or mark the
// list truncated). Callers whose arguments cost an allocation (join,
// clip) check it first: a hostile report can trigger millions of repairs.
func (p *parser) listing() bool { return p.n < maxRepairs || !p.truncated }

// summary records a repair that summarises many (merged or dropped
// failure details) even when the list is full: there are at most two per
// policy, and they say what happened to the data.
func (p *parser) summary(code, format string, args ...any) {
	dst := &p.repairs
	if p.deferred != nil {
		dst = p.deferred
	}
	*dst = append(*dst, Repair{Code: code, Detail: fmt.Sprintf(format, detach(args)...)})
}

// detach copies the arguments of a repair so that they do not escape to
// the heap: the callers' variadic slices and boxed strings then stay on
// the stack, and a repair that is not recorded because the list is full
// costs no allocation. That matters when a hostile report triggers the
// same repair millions of times. Repairs pass strings and integers only.
func detach(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = strings.Clone(v)
		case int:
			out[i] = v
		case int64:
			out[i] = v
		default:
			out[i] = "(?)"
		}
	}
	return out
}

// A small ordered JSON tree, built token by token so duplicate members are
// seen (RPT-JSON-1, GO-7).
type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

var kindNames = [...]string{"null", "boolean", "number", "string", "object", "array"}

type jvalue struct {
	kind    jkind
	s       string // string value or number text
	b       bool
	members []jmember
	elems   []*jvalue
	// details is set on a failure-details array read by detailArray: the
	// details already interpreted, merged and capped, with the repairs
	// recorded while reading them.
	details *detailSet
}

type jmember struct {
	key string
	val *jvalue
}

func (v *jvalue) get(key string) *jvalue {
	for _, m := range v.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

func (p *parser) decode(data []byte) (*jvalue, error) {
	if b, ok := bytes.CutPrefix(data, []byte("\xef\xbb\xbf")); ok {
		p.repair("utf8-bom", "removed a UTF-8 byte order mark")
		data = b
	}
	if !utf8.Valid(data) {
		// I-JSON (RFC 7493 §2.1) requires UTF-8; encoding/json substitutes
		// U+FFFD for invalid bytes.
		p.repair("invalid-utf8", "invalid UTF-8 bytes replaced by U+FFFD")
	}
	if fixed, n := repairControlChars(data); n > 0 {
		// RFC 8460 Appendix B prints a raw line break inside a string
		// (RPT-ERRATA-3); repair it rather than lose the report.
		p.repair("control-character-in-string", "%d control character(s) inside strings removed or escaped", n)
		data = fixed
	}
	dec := newTokens(data)
	v, err := p.value(dec, "", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON document", ErrSyntax)
	}
	return v, nil
}

func (p *parser) value(dec *tokens, path string, depth int) (*jvalue, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrSyntax, maxDepth)
	}
	tok, err := token(dec)
	if err != nil {
		return nil, err
	}
	return p.valueOf(dec, tok, path, depth, nil)
}

func token(dec *tokens) (json.Token, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	return tok, nil
}

// valueOf builds the value that starts with tok. An object is built into
// into when it is not nil (reused for failure details).
func (p *parser) valueOf(dec *tokens, tok json.Token, path string, depth int, into *jvalue) (*jvalue, error) {
	p.nodes++
	if p.nodes > maxNodes {
		return nil, fmt.Errorf("%w: report holds more than %d JSON values", ErrTooLarge, maxNodes)
	}
	switch t := tok.(type) {
	case nil:
		return &jvalue{kind: jNull}, nil
	case bool:
		return &jvalue{kind: jBool, b: t}, nil
	case json.Number:
		return &jvalue{kind: jNumber, s: string(t)}, nil
	case string:
		return &jvalue{kind: jString, s: t}, nil
	case json.Delim:
		switch t {
		case '{':
			v := into
			if v == nil {
				v = &jvalue{}
			}
			*v = jvalue{kind: jObject, members: v.members[:0]}
			// seen makes the duplicate check linear for objects with
			// many members.
			var seen map[string]bool
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
				}
				key, _ := kt.(string)
				var val *jvalue
				if key == "failure-details" && isPolicyResultPath(path) {
					val, err = p.detailArray(dec, join(path, key), depth+1)
				} else {
					val, err = p.value(dec, join(path, key), depth+1)
				}
				if err != nil {
					return nil, err
				}
				dup := false
				if seen != nil {
					dup = seen[key]
				} else {
					dup = v.get(key) != nil
					if len(v.members) >= 16 {
						seen = make(map[string]bool, 2*len(v.members))
						for _, m := range v.members {
							seen[m.key] = true
						}
					}
				}
				if dup {
					// Decision (RPT-JSON-1): the first occurrence wins.
					if p.listing() {
						p.repair("duplicate-member", "%s: later duplicate ignored, first value kept", join(path, key))
					}
					continue
				}
				if seen != nil {
					seen[key] = true
				}
				v.members = append(v.members, jmember{key: key, val: val})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
			}
			return v, nil
		case '[':
			v := &jvalue{kind: jArray}
			for i := 0; dec.More(); i++ {
				if path == "policies" && i >= MaxPolicies {
					return nil, fmt.Errorf("%w: more than %d policies", ErrTooLarge, MaxPolicies)
				}
				el, err := p.value(dec, index(path, i), depth+1)
				if err != nil {
					return nil, err
				}
				v.elems = append(v.elems, el)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: unexpected token %v", ErrSyntax, tok)
}

// isPolicyResultPath reports whether path names an element of policies
// (or policies itself, when it is a single object).
func isPolicyResultPath(path string) bool {
	return path == "policies" || strings.HasPrefix(path, "policies[") && !strings.Contains(path, ".")
}

// detailSet is a failure-details array as read: details interpreted,
// identical ones merged, distinct ones beyond the caps dropped.
type detailSet struct {
	details []FailureDetails
	index   map[FailureDetails]int // detail without its count → position
	repairs []Repair
	err     error
}

// detailArray reads the value of a policy's failure-details member. An
// array is read element by element: each element is interpreted (detail)
// and released, identical details are merged and distinct ones beyond
// MaxFailureDetails or MaxReportFailureDetails dropped, so a report with
// millions of entries never holds more than the caps in memory. Other
// values are returned as they are for policyResult to judge.
func (p *parser) detailArray(dec *tokens, path string, depth int) (*jvalue, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrSyntax, maxDepth)
	}
	tok, err := token(dec)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return p.valueOf(dec, tok, path, depth, nil)
	}
	p.nodes++
	set := &detailSet{index: make(map[FailureDetails]int)}
	// The repairs of the details are recorded where policyResult reads
	// them, as when the array was interpreted after decoding.
	saved := p.deferred
	p.deferred = &set.repairs
	defer func() { p.deferred = saved }()
	var scratch jvalue
	var elems, merged, dropped int
	var droppedSessions int64
	anyPath := path + "[…]"
	for i := 0; dec.More(); i++ {
		// Element paths name the index only while repairs are still
		// listed: formatting one per element costs an allocation each.
		epath := anyPath
		if !p.truncated {
			epath = index(path, i)
		}
		base := p.nodes
		tok, err := token(dec)
		if err != nil {
			return nil, err
		}
		el, err := p.valueOf(dec, tok, epath, depth+1, &scratch)
		if err != nil {
			return nil, err
		}
		d, err := p.detail(el, epath)
		// The element is released: its values no longer count.
		p.nodes = base
		if err != nil {
			if set.err == nil {
				set.err = fmt.Errorf("%w (failure detail %d)", err, i)
			}
			continue
		}
		elems++
		key := d
		key.FailedSessionCount = 0
		if j, ok := set.index[key]; ok {
			merged++
			sum := set.details[j].FailedSessionCount + d.FailedSessionCount
			if sum > MaxCount {
				if set.err == nil {
					set.err = fmt.Errorf("%w: %s: identical failure details have failed-session-count values summing above 2^53", ErrSyntax, path)
				}
				continue
			}
			set.details[j].FailedSessionCount = sum
			continue
		}
		if len(set.details) >= MaxFailureDetails || p.detailsKept >= MaxReportFailureDetails {
			dropped++
			droppedSessions = min(droppedSessions+d.FailedSessionCount, MaxCount)
			continue
		}
		p.detailsKept++
		set.index[key] = len(set.details)
		set.details = append(set.details, d)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	set.index = nil
	if merged > 0 {
		p.summary("failure-details-merged", "%s: %d of %d details were identical but for failed-session-count and were merged, their counts summed (RPT-AGG-9)",
			path, merged, elems)
	}
	if dropped > 0 {
		p.summary("failure-details-capped", "%s: %d distinct details (%d failed sessions) beyond the cap of %d per policy and %d per report were dropped",
			path, dropped, droppedSessions, MaxFailureDetails, MaxReportFailureDetails)
	}
	return &jvalue{kind: jArray, details: set}, nil
}

// index names element i of the array at path: "policies[2]".
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// repairControlChars removes raw line breaks (and the indentation after
// them) inside JSON strings and escapes other control characters. It returns
// the input unchanged and 0 when there is nothing to repair.
func repairControlChars(data []byte) ([]byte, int) {
	if !controlInString(data) {
		return data, 0 // the common case, found faster
	}
	return escapeControlChars(data)
}

// escapeControlChars is repairControlChars, byte by byte.
func escapeControlChars(data []byte) ([]byte, int) {
	var out []byte
	n := 0
	inStr, esc := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case !inStr:
			inStr = c == '"'
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			inStr = false
		case c < 0x20:
			if out == nil {
				out = make([]byte, 0, len(data))
				out = append(out, data[:i]...)
			}
			n++
			if c == '\n' || c == '\r' {
				for i+1 < len(data) && (data[i+1] == '\n' || data[i+1] == '\r' || data[i+1] == ' ' || data[i+1] == '\t') {
					i++
				}
			} else {
				out = fmt.Appendf(out, `\u%04x`, c)
			}
			continue
		}
		if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return data, 0
	}
	return out, n
}

// controlInString reports whether a control character stands inside a
// JSON string of data (not right after a backslash), as the loop of
// repairControlChars reads strings: it jumps from string to string with
// bytes.IndexByte and looks at the bytes of strings only.
func controlInString(data []byte) bool {
	for i := 0; i < len(data); {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return false
		}
		for i += q + 1; i < len(data); {
			c := data[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' {
				i += 2
				continue
			}
			if c < 0x20 {
				return true
			}
			i++
		}
	}
	return false
}

var knownMembers = map[string][]string{
	"":                {"organization-name", "date-range", "contact-info", "report-id", "policies"},
	"date-range":      {"start-datetime", "end-datetime"},
	"policy-result":   {"policy", "summary", "failure-details"},
	"policy":          {"policy-type", "policy-string", "policy-domain", "mx-host"},
	"summary":         {"total-successful-session-count", "total-failure-session-count"},
	"failure-details": {"result-type", "sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo", "receiving-ip", "failed-session-count", "additional-information", "failure-reason-code"},
}

// unknown records members we do not know (RPT-JSON-12: tolerated, but not
// silently: the receiver keeps the raw bytes).
func (p *parser) unknown(v *jvalue, schema, path string) {
	known := knownMembers[schema]
outer:
	for _, m := range v.members {
		for _, k := range known {
			if m.key == k {
				continue outer
			}
		}
		if p.listing() {
			p.repair("unknown-member", "%s: ignored", join(path, m.key))
		}
	}
}

func (p *parser) report(root *jvalue) (*Report, error) {
	if root.kind != jObject {
		return nil, fmt.Errorf("%w: top level is a JSON %s, not an object", ErrSyntax, kindNames[root.kind])
	}
	p.unknown(root, "", "")
	r := &Report{}
	r.OrganizationName = p.str(root, "organization-name", "")
	dr := root.get("date-range")
	if dr == nil || dr.kind != jObject {
		return nil, fmt.Errorf("%w: date-range missing or not an object", ErrSyntax)
	}
	p.unknown(dr, "date-range", "date-range")
	var err error
	if r.DateRange.Start, err = p.time(dr, "start-datetime", "date-range"); err != nil {
		return nil, err
	}
	if r.DateRange.End, err = p.time(dr, "end-datetime", "date-range"); err != nil {
		return nil, err
	}
	r.ContactInfo = p.str(root, "contact-info", "")
	r.ReportID = p.str(root, "report-id", "")
	pols := root.get("policies")
	switch {
	case pols == nil:
		return nil, fmt.Errorf("%w: no policies member", ErrSyntax)
	case pols.kind == jObject:
		p.repair("policies-not-array", "policies: a single object, taken as a one-element array")
		pols = &jvalue{kind: jArray, elems: []*jvalue{pols}}
	case pols.kind != jArray:
		return nil, fmt.Errorf("%w: policies is a JSON %s", ErrSyntax, kindNames[pols.kind])
	}
	for i, pv := range pols.elems {
		pr, err := p.policyResult(pv, index("policies", i))
		if err != nil {
			return nil, err
		}
		r.Policies = append(r.Policies, pr)
	}
	return r, nil
}

func (p *parser) policyResult(v *jvalue, path string) (PolicyResult, error) {
	var pr PolicyResult
	if v.kind != jObject {
		return pr, fmt.Errorf("%w: %s is a JSON %s", ErrSyntax, path, kindNames[v.kind])
	}
	p.unknown(v, "policy-result", path)
	pol := v.get("policy")
	if pol == nil || pol.kind != jObject {
		return pr, fmt.Errorf("%w: %s.policy missing or not an object", ErrSyntax, path)
	}
	ppath := path + ".policy"
	p.unknown(pol, "policy", ppath)
	t := pol.get("policy-type")
	if t == nil || t.kind != jString {
		return pr, fmt.Errorf("%w: %s.policy-type missing or not a string", ErrSyntax, ppath)
	}
	pr.Policy.Type = t.s
	pr.Policy.String = p.policyString(pol, ppath, t.s)
	pr.Policy.Domain = p.str(pol, "policy-domain", ppath)
	pr.Policy.MXHost = p.mxHost(pol, ppath)

	spath := path + ".summary"
	sum := v.get("summary")
	// failureAbsent: no total-failure-session-count (or null, or no
	// summary at all); filled in from the details below.
	failureAbsent := sum == nil || sum.kind == jNull
	if sum != nil && sum.kind == jObject {
		c := sum.get("total-failure-session-count")
		failureAbsent = c == nil || c.kind == jNull
	}
	switch {
	case sum == nil || sum.kind == jNull:
		p.repair("summary-missing", "%s: missing, counts taken as 0", spath)
	case sum.kind != jObject:
		return pr, fmt.Errorf("%w: %s is a JSON %s", ErrSyntax, spath, kindNames[sum.kind])
	default:
		p.unknown(sum, "summary", spath)
		var err error
		if pr.Summary.TotalSuccessfulSessionCount, err = p.count(sum, "total-successful-session-count", spath, "summary-counter-missing"); err != nil {
			return pr, err
		}
		if pr.Summary.TotalFailureSessionCount, err = p.count(sum, "total-failure-session-count", spath, "summary-counter-missing"); err != nil {
			return pr, err
		}
	}

	fpath := path + ".failure-details"
	fd := v.get("failure-details")
	if fd != nil && fd.kind == jObject {
		p.repair("failure-details-not-array", "%s: a single object, taken as a one-element array", fpath)
		fd = &jvalue{kind: jArray, elems: []*jvalue{fd}}
	}
	if fd != nil && fd.kind != jArray && fd.kind != jNull {
		return pr, fmt.Errorf("%w: %s is a JSON %s", ErrSyntax, fpath, kindNames[fd.kind])
	}
	var sum64 int64
	switch {
	case fd != nil && fd.details != nil:
		set := fd.details
		p.repairs = append(p.repairs, set.repairs...)
		if set.err != nil {
			return pr, set.err
		}
		pr.FailureDetails = set.details
	case fd != nil:
		for j, dv := range fd.elems {
			d, err := p.detail(dv, index(fpath, j))
			if err != nil {
				return pr, err
			}
			pr.FailureDetails = append(pr.FailureDetails, d)
		}
	}
	for _, d := range pr.FailureDetails {
		// Each count is at most MaxCount (2^53): the sum saturates there
		// and cannot overflow.
		sum64 = min(sum64+d.FailedSessionCount, MaxCount)
	}
	switch {
	case failureAbsent && sum64 > 0:
		// A report with failure details but no failure total would read
		// as 100% success. The details' sum is the estimate at hand (it
		// may count a session twice, RFC 8460 §4), better than none.
		p.repair("failure-count-from-details", "%s: no total-failure-session-count; taken as %d, the sum of failed-session-count over the failure details",
			path, sum64)
		pr.Summary.TotalFailureSessionCount = sum64
	case sum64 > pr.Summary.TotalFailureSessionCount:
		// RFC 8460 §4 lets details overlap (one session, several results),
		// so this is noted, not corrected (quirk 8, RPT-AGG-4).
		p.repair("failure-count-mismatch", "%s: failed-session-count values sum to %d, above total-failure-session-count %d; kept as sent",
			path, sum64, pr.Summary.TotalFailureSessionCount)
	}
	return pr, nil
}

func (p *parser) detail(v *jvalue, path string) (FailureDetails, error) {
	var d FailureDetails
	if v.kind != jObject {
		return d, fmt.Errorf("%w: %s is a JSON %s", ErrSyntax, path, kindNames[v.kind])
	}
	p.unknown(v, "failure-details", path)
	if v.get("result-type") == nil {
		p.repair("result-type-missing", "%s: no result-type", path)
	}
	d.ResultType = ResultType(p.str(v, "result-type", path))
	d.SendingMTAIP = p.ip(v, "sending-mta-ip", path)
	d.ReceivingMXHostname = p.str(v, "receiving-mx-hostname", path)
	d.ReceivingMXHelo = p.str(v, "receiving-mx-helo", path)
	d.ReceivingIP = p.ip(v, "receiving-ip", path)
	var err error
	if d.FailedSessionCount, err = p.count(v, "failed-session-count", path, "count-missing"); err != nil {
		return d, err
	}
	d.AdditionalInformation = p.str(v, "additional-information", path)
	d.FailureReasonCode = p.str(v, "failure-reason-code", path)
	return d, nil
}

// str reads an optional string member. null becomes "" ("<key>-null"), a
// number or boolean its JSON text ("string-type"); objects and arrays are
// dropped with "string-type".
func (p *parser) str(obj *jvalue, key, path string) string {
	v := obj.get(key)
	if v == nil {
		return ""
	}
	switch v.kind {
	case jString:
		return v.s
	case jNull:
		if p.listing() {
			p.repair(key+"-null", "%s: null taken as empty", join(path, key))
		}
		return ""
	case jNumber:
		if p.listing() {
			p.repair("string-type", "%s: number %s taken as a string", join(path, key), v.s)
		}
		return v.s
	case jBool:
		if p.listing() {
			p.repair("string-type", "%s: boolean taken as a string", join(path, key))
		}
		return strconv.FormatBool(v.b)
	default:
		if p.listing() {
			p.repair("string-type", "%s: JSON %s ignored", join(path, key), kindNames[v.kind])
		}
		return ""
	}
}

// time reads an RFC 3339 date-time (RFC 8460 §4.4), tolerating a missing
// zone (quirk 1: Microsoft), a bare date and a space separator. Result in UTC.
func (p *parser) time(obj *jvalue, key, path string) (time.Time, error) {
	where := join(path, key)
	v := obj.get(key)
	if v == nil || v.kind != jString {
		return time.Time{}, fmt.Errorf("%w: %s missing or not a string", ErrSyntax, where)
	}
	s := strings.TrimSpace(v.s)
	if len(s) > 10 && s[10] == ' ' {
		p.repair("time-space-separator", "%s: space between date and time", where)
		s = s[:10] + "T" + s[11:]
	}
	s = strings.ToUpper(s) // RFC 3339 §5.6 allows "t" and "z".
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC); err == nil {
		p.repair("time-without-zone", "%s: %q has no time zone, taken as UTC", where, clip(v.s))
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.UTC); err == nil {
		p.repair("time-date-only", "%s: %q is a date without time, taken as 00:00:00Z", where, clip(v.s))
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %s: %q is not an RFC 3339 date-time", ErrSyntax, where, clip(v.s))
}

// count reads a session count: a JSON integer in 0..2^53 (RPT-JSON-4,
// I-JSON). Defensive repairs: integral numbers in other forms, decimal
// strings, null. missingCode is recorded when the member is absent.
func (p *parser) count(obj *jvalue, key, path, missingCode string) (int64, error) {
	// where is built only when needed: this runs once per failure
	// detail, and a hostile report has millions.
	where := func() string { return join(path, key) }
	v := obj.get(key)
	if v == nil {
		if p.listing() {
			p.repair(missingCode, "%s: missing, taken as 0", where())
		}
		return 0, nil
	}
	text := v.s
	switch v.kind {
	case jNull:
		if p.listing() {
			p.repair("count-null", "%s: null taken as 0", where())
		}
		return 0, nil
	case jString:
		text = strings.TrimSpace(text)
		if text == "" || strings.Trim(text, "0123456789.eE+-") != "" {
			return 0, fmt.Errorf("%w: %s: string %q is not a number", ErrSyntax, where(), clip(v.s))
		}
		if p.listing() {
			p.repair("count-string", "%s: string %q taken as a number", where(), clip(v.s))
		}
	case jNumber:
	default:
		return 0, fmt.Errorf("%w: %s is a JSON %s, not an integer", ErrSyntax, where(), kindNames[v.kind])
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		if n < 0 || n > MaxCount {
			return 0, fmt.Errorf("%w: %s: %d is outside 0..2^53", ErrSyntax, where(), n)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f > MaxCount {
		return 0, fmt.Errorf("%w: %s: %q is not an integer in 0..2^53", ErrSyntax, where(), clip(text))
	}
	if v.kind == jNumber {
		if p.listing() {
			p.repair("count-not-integer-literal", "%s: %s taken as %d", where(), clip(text), int64(f))
		}
	}
	return int64(f), nil
}

// ip reads an address member, canonicalising IPv6 text to RFC 5952
// (RPT-RECV-5; the RFC's own example has 2001:db8:abcd:0012::1).
func (p *parser) ip(obj *jvalue, key, path string) string {
	s := p.str(obj, key, path)
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if p.listing() {
			p.repair("ip-invalid", "%s: %q is not an IP address; kept as sent", join(path, key), clip(s))
		}
		return s
	}
	if c := a.String(); c != s && a.Is6() {
		if p.listing() {
			p.repair("ipv6-noncanonical", "%s: %q rewritten as %q (RFC 5952)", join(path, key), clip(s), c)
		}
		return c
	}
	return s
}

// policyString reads policy-string: an array of strings (RFC 8460 §4.5).
func (p *parser) policyString(pol *jvalue, path, ptype string) []string {
	where := path + ".policy-string"
	v := pol.get("policy-string")
	switch {
	case v == nil || v.kind == jNull:
		p.repair("policy-string-missing", "%s: missing", where)
		return nil
	case v.kind == jString:
		// Quirk 32 (Halon): one string instead of an array. Split policy
		// lines so each becomes one element, as §4.5 wants.
		p.repair("policy-string-string", "%s: a string, split into lines", where)
		return splitLines(v.s)
	case v.kind != jArray:
		p.repair("string-type", "%s: JSON %s ignored", where, kindNames[v.kind])
		return nil
	}
	var out []string
	for i, el := range v.elems {
		if el.kind != jString {
			p.repair("string-type", "%s[%d]: JSON %s ignored", where, i, kindNames[el.kind])
			continue
		}
		out = append(out, el.s)
	}
	// Quirk 11 (Microsoft): a one-element array whose element is itself a
	// JSON-encoded array of TLSA records. Unpacked until it is not (bounded),
	// so that parsing is idempotent.
	for range maxDepth {
		if len(out) != 1 || !strings.HasPrefix(strings.TrimSpace(out[0]), "[") {
			break
		}
		var inner []string
		if err := json.Unmarshal([]byte(out[0]), &inner); err != nil {
			break
		}
		code := "policy-string-nested-json"
		if ptype == PolicyTypeTLSA {
			code = "tlsa-policy-string-nested-json"
		}
		p.repair(code, "%s: element was a JSON-encoded array of %d strings, unpacked", where, len(inner))
		out = inner
		if len(out) == 0 {
			out = nil
		}
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// mxHost reads mx-host: an array of strings per §4.4, a string per the
// Appendix B example (erratum 6241, quirks 2 and 4), or nothing (quirk 3).
// A "mx: " prefix copied from the policy text is removed (quirk 5).
func (p *parser) mxHost(pol *jvalue, path string) []string {
	where := path + ".mx-host"
	v := pol.get("mx-host")
	var raw []string
	switch {
	case v == nil || v.kind == jNull:
		p.repair("mx-host-missing", "%s: missing, taken as empty", where)
		return nil
	case v.kind == jString:
		p.repair("mx-host-string", "%s: a string, taken as a one-element array (erratum 6241)", where)
		if strings.TrimSpace(v.s) != "" {
			raw = []string{v.s}
		}
	case v.kind == jArray:
		for i, el := range v.elems {
			if el.kind != jString {
				p.repair("string-type", "%s[%d]: JSON %s ignored", where, i, kindNames[el.kind])
				continue
			}
			raw = append(raw, el.s)
		}
	default:
		p.repair("string-type", "%s: JSON %s ignored", where, kindNames[v.kind])
		return nil
	}
	var out []string
	for _, h := range raw {
		t := h
		for range maxDepth {
			rest, ok := cutPrefixFold(strings.TrimSpace(t), "mx:")
			if !ok {
				break
			}
			p.repair("mx-host-prefix", "%s: %q: policy-text prefix removed", where, clip(h))
			t = strings.TrimSpace(rest)
		}
		out = append(out, t)
	}
	return out
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
