package tlsrpt

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendReport appends Marshal's encoding of r to b. It writes the bytes
// that encoding/json's Encoder writes for the report's wire form (members
// in the RFC's order, two-space indentation, no HTML escaping, a final
// newline), without reflection or the indentation pass: the report store
// hashes every report it receives in this form (its content hash), and
// the encoder was most of that cost. TestMarshalMatchesEncodingJSON and
// FuzzMarshalMatchesEncodingJSON compare the two byte for byte.
func appendReport(b []byte, r *Report) []byte {
	b = append(b, "{\n  \"organization-name\": "...)
	b = appendString(b, r.OrganizationName)
	b = append(b, ",\n  \"date-range\": {\n    \"start-datetime\": "...)
	b = appendTime(b, r.DateRange.Start)
	b = append(b, ",\n    \"end-datetime\": "...)
	b = appendTime(b, r.DateRange.End)
	b = append(b, "\n  },\n  \"contact-info\": "...)
	b = appendString(b, r.ContactInfo)
	b = append(b, ",\n  \"report-id\": "...)
	b = appendString(b, r.ReportID)
	b = append(b, ",\n  \"policies\": "...)
	b = appendArray(b, r.Policies, appendPolicyResult, "\n  ]")
	return append(b, "\n}\n"...)
}

// appendArray appends an array of objects, never null: each element as
// elem appends it (starting with its line break), and end after the
// last; an empty array is "[]".
func appendArray[T any](b []byte, s []T, elem func([]byte, *T) []byte, end string) []byte {
	if len(s) == 0 {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	for i := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, &s[i])
	}
	return append(b, end...)
}

// appendPolicyResult appends one element of "policies", at the
// indentation of its array (two levels).
func appendPolicyResult(b []byte, p *PolicyResult) []byte {
	b = append(b, "\n    {\n      \"policy\": {\n        \"policy-type\": "...)
	b = appendString(b, p.Policy.Type)
	b = append(b, ",\n        \"policy-string\": "...)
	b = appendStrings(b, p.Policy.String, "\n          ", "\n        ]")
	b = append(b, ",\n        \"policy-domain\": "...)
	b = appendString(b, p.Policy.Domain)
	b = append(b, ",\n        \"mx-host\": "...)
	b = appendStrings(b, p.Policy.MXHost, "\n          ", "\n        ]")
	b = append(b, "\n      },\n      \"summary\": {\n        \"total-successful-session-count\": "...)
	b = strconv.AppendInt(b, p.Summary.TotalSuccessfulSessionCount, 10)
	b = append(b, ",\n        \"total-failure-session-count\": "...)
	b = strconv.AppendInt(b, p.Summary.TotalFailureSessionCount, 10)
	b = append(b, "\n      },\n      \"failure-details\": "...)
	b = appendArray(b, p.FailureDetails, appendFailureDetails, "\n      ]")
	return append(b, "\n    }"...)
}

// appendFailureDetails appends one element of "failure-details"; the
// optional members are left out when empty (omitempty).
func appendFailureDetails(b []byte, d *FailureDetails) []byte {
	const in = ",\n          \""
	b = append(b, "\n        {\n          \"result-type\": "...)
	b = appendString(b, string(d.ResultType))
	opt := func(b []byte, name, v string) []byte {
		if v == "" {
			return b
		}
		b = append(b, in...)
		b = append(b, name...)
		b = append(b, "\": "...)
		return appendString(b, v)
	}
	b = opt(b, "sending-mta-ip", d.SendingMTAIP)
	b = opt(b, "receiving-mx-hostname", d.ReceivingMXHostname)
	b = opt(b, "receiving-mx-helo", d.ReceivingMXHelo)
	b = opt(b, "receiving-ip", d.ReceivingIP)
	b = append(b, in+"failed-session-count\": "...)
	b = strconv.AppendInt(b, d.FailedSessionCount, 10)
	b = opt(b, "additional-information", d.AdditionalInformation)
	b = opt(b, "failure-reason-code", d.FailureReasonCode)
	return append(b, "\n        }"...)
}

// appendStrings appends a string array, never null: each element after
// indent, and end after the last; an empty array is "[]".
func appendStrings(b []byte, ss []string, indent, end string) []byte {
	if len(ss) == 0 {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, indent...)
		b = appendString(b, s)
	}
	return append(b, end...)
}

// appendTime appends FormatTime(t) as a JSON string (its characters
// never need escaping).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString appends s as a JSON string as encoding/json writes it with
// HTML escaping off: '"' and '\\' escaped, the control characters as \b,
// \f, \n, \r, \t or \u00XX, invalid UTF-8 as \ufffd, and U+2028 and U+2029
// escaped (JavaScript reads them as line ends).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
