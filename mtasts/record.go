package mtasts

import (
	"fmt"
	"log/slog"
	"strings"
)

// recordMaxLen caps the TXT record text ParseRecord looks at. A DNS message
// cannot carry more than 65535 bytes, so nothing legitimate is longer; the
// cap only bounds the work done on hostile input.
const recordMaxLen = 65535

// recordVersionTag is the exact, case-sensitive start of every MTA-STS TXT
// record (RFC 8461 §3.1: sts-version = %s"v=STSv1").
const recordVersionTag = "v=" + Version

// ParseRecord parses the text of one _mta-sts TXT record, its
// character-strings already joined with no separator (RFC 8461 §3.1,
// STS-TXT-9), against the ABNF of RFC 8461 §3.1:
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-field-delim = *WSP ";" *WSP
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//	sts-ext-name    = (ALPHA / DIGIT) 0*31(ALPHA / DIGIT / "_" / "-" / ".")
//	sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
//
// Unknown fields are kept in Record.Extensions (RFC 8461 §3.1: they are
// accepted and ignored). When "v" or "id" appears again, the first
// occurrence wins and the later one is dropped (RFC 8461 §3.2, STS-TXT-12);
// the later field must still be syntactically valid. Every error wraps
// ErrRecordSyntax and says what is wrong.
func ParseRecord(txt string) (*Record, error) {
	if len(txt) > recordMaxLen {
		return nil, fmt.Errorf("%w: record is %d bytes, more than %d", ErrRecordSyntax, len(txt), recordMaxLen)
	}
	// RFC 8461 §3.1: the record MUST begin with the version field, compared
	// case-sensitively (RFC 7405 %s).
	if !strings.HasPrefix(txt, recordVersionTag) {
		return nil, fmt.Errorf("%w: record does not begin with %q", ErrRecordSyntax, recordVersionTag)
	}
	rest := txt[len(recordVersionTag):]
	rec := &Record{}
	haveID := false
	fields := 0
	for {
		if rest == "" {
			break
		}
		n := recordDelimLen(rest)
		if n < 0 {
			return nil, fmt.Errorf("%w: expected \";\" at byte %d, found %q", ErrRecordSyntax, len(txt)-len(rest), recordFirstRune(rest))
		}
		rest = rest[n:]
		if rest == "" {
			// RFC 8461 §3.1: one trailing sts-field-delim is allowed.
			break
		}
		end := strings.IndexAny(rest, " \t;")
		if end < 0 {
			end = len(rest)
		}
		field := rest[:end]
		rest = rest[end:]
		// A repeated id is checked only as an extension: it is ignored.
		key, value, err := parseRecordField(field, !haveID)
		if err != nil {
			return nil, err
		}
		fields++
		switch key {
		case "v":
			// A repeated version field is ignored (first one wins).
		case "id":
			if !haveID {
				rec.ID = value
				haveID = true
			}
		default:
			rec.Extensions = append(rec.Extensions, Extension{Key: key, Value: value})
		}
	}
	if fields == 0 {
		return nil, fmt.Errorf("%w: no field after %q", ErrRecordSyntax, recordVersionTag)
	}
	if !haveID {
		// RFC 8461 §3.1: the id field is required.
		return nil, fmt.Errorf("%w: missing id field", ErrRecordSyntax)
	}
	return rec, nil
}

// recordDelimLen returns the length of the sts-field-delim (*WSP ";" *WSP)
// at the start of s, or -1 when s does not start with one.
func recordDelimLen(s string) int {
	i := 0
	for i < len(s) && isWSP(s[i]) {
		i++
	}
	if i == len(s) || s[i] != ';' {
		return -1
	}
	i++
	for i < len(s) && isWSP(s[i]) {
		i++
	}
	return i
}

// recordFirstRune returns the first byte of s as a string for messages.
func recordFirstRune(s string) string {
	if s == "" {
		return ""
	}
	return s[:1]
}

// parseRecordField checks one key=value field of a TXT record. With idRules
// false, a field named "id" is checked as an extension (a repeated id).
func parseRecordField(field string, idRules bool) (key, value string, err error) {
	eq := strings.IndexByte(field, '=')
	if eq < 0 {
		return "", "", fmt.Errorf("%w: field %q has no \"=\"", ErrRecordSyntax, field)
	}
	key, value = field[:eq], field[eq+1:]
	if !validExtName(key) {
		return "", "", fmt.Errorf("%w: field name %q is not 1-32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", ErrRecordSyntax, key)
	}
	if value == "" {
		return "", "", fmt.Errorf("%w: field %q has an empty value", ErrRecordSyntax, key)
	}
	switch {
	case key == "id" && idRules:
		// RFC 8461 §3.1: sts-id = %s"id=" 1*32(ALPHA / DIGIT).
		if len(value) > 32 {
			return "", "", fmt.Errorf("%w: id is %d characters, more than 32", ErrRecordSyntax, len(value))
		}
		for i := 0; i < len(value); i++ {
			if !isAlnum(value[i]) {
				return "", "", fmt.Errorf("%w: id %q has %q, not a letter or digit", ErrRecordSyntax, value, value[i:i+1])
			}
		}
	default:
		// A repeated "v" lands here too: it must still be a valid field.
		for i := 0; i < len(value); i++ {
			if !validRecordExtValueByte(value[i]) {
				return "", "", fmt.Errorf("%w: value of %q has byte 0x%02x, not allowed (printable US-ASCII except \"=\" and \";\")", ErrRecordSyntax, key, value[i])
			}
		}
	}
	return key, value, nil
}

// validRecordExtValueByte reports whether b may appear in an sts-ext-value:
// %x21-3A / %x3C / %x3E-7E. RFC 8461 §3.1: the record is US-ASCII, so bytes
// above 0x7E and control characters are invalid (STS-TXT-2).
func validRecordExtValueByte(b byte) bool {
	return b >= 0x21 && b <= 0x7e && b != '=' && b != ';'
}

// validExtName reports whether s is an extension name, the same grammar for
// TXT records and policies (RFC 8461 §3.1 sts-ext-name, §3.2
// sts-policy-ext-name): a letter or digit, then up to 31 letters, digits,
// "_", "-" or ".".
func validExtName(s string) bool {
	if s == "" || len(s) > 32 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// String returns the record in canonical form, "v=STSv1; id=<id>;" followed
// by " <key>=<value>;" for each extension in order. ParseRecord of the result
// equals r for every record ParseRecord returned.
func (r *Record) String() string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(recordVersionTag)
	b.WriteString("; id=")
	b.WriteString(r.ID)
	b.WriteByte(';')
	for _, e := range r.Extensions {
		b.WriteByte(' ')
		b.WriteString(e.Key)
		b.WriteByte('=')
		b.WriteString(e.Value)
		b.WriteByte(';')
	}
	return b.String()
}

// LogValue implements slog.LogValuer.
func (r *Record) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.String("id", r.ID), slog.Int("extensions", len(r.Extensions)))
}

// isRecordCandidate reports whether txt is an MTA-STS record for the
// multiple-record rule: it begins with "v=STSv1", then optional WSP, then
// ";", or is exactly "v=STSv1".
//
// RFC 8461 §3.1 drops records that do not begin with "v=STSv1;", but its
// ABNF allows WSP before the ";" (STS-ERRATA-2, EID 6285); like
// postfix-tlspol we count "v=STSv1 ;" as a candidate so that a valid record
// is not silently ignored.
func isRecordCandidate(txt string) bool {
	if !strings.HasPrefix(txt, recordVersionTag) {
		return false
	}
	rest := strings.TrimLeft(txt[len(recordVersionTag):], " \t")
	if rest == "" {
		// Exactly "v=STSv1" (no WSP): a candidate that fails ParseRecord.
		return len(txt) == len(recordVersionTag)
	}
	return rest[0] == ';'
}

// SelectRecord picks the MTA-STS record among all TXT records found at
// _mta-sts.<domain>, each given as its character-strings joined with no
// separator (STS-TXT-9).
//
// RFC 8461 §3.1: records that do not begin with "v=STSv1;" are discarded
// (STS-TXT-7; "v=STSv1 ;" counts too, STS-ERRATA-2). With none left it
// returns ErrNoRecord, with more than one ErrMultipleRecords, and when the
// single one is malformed an error wrapping ErrRecordSyntax (STS-TXT-8). In
// all three cases the domain has no available policy.
func SelectRecord(txts []string) (*Record, error) {
	var found string
	n := 0
	for _, t := range txts {
		if isRecordCandidate(t) {
			n++
			found = t
		}
	}
	switch {
	case n == 0:
		return nil, ErrNoRecord
	case n > 1:
		return nil, fmt.Errorf("%w: %d records begin with %q", ErrMultipleRecords, n, recordVersionTag)
	}
	return ParseRecord(found)
}
