package tlsrpt

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Filename is a report file name (RFC 8460 §5.1):
//
//	sender "!" policy-domain "!" begin-timestamp "!" end-timestamp [ "!" unique-id ] "." ( "json" / "json.gz" )
//
// The timestamps are Unix seconds. The name is advisory: when it disagrees
// with the report body, the body wins (RFC 8460 §5.6, RPT-DELIV-6).
type Filename struct {
	// Sender is the domain of contact-info, in A-labels.
	Sender string
	// PolicyDomain is the reported domain, in A-labels.
	PolicyDomain string
	Begin        time.Time
	End          time.Time
	// UniqueID is optional. RFC 8460 allows letters and digits; ParseFilename
	// also accepts "-", "_" and "." seen from real senders (quirk 22).
	UniqueID string
	// Gzip selects the "json.gz" extension (RPT-DELIV-3).
	Gzip bool
}

// String formats f; ParseFilename(f.String()) equals f.
func (f Filename) String() string {
	var b strings.Builder
	b.WriteString(f.Sender + "!" + f.PolicyDomain + "!")
	b.WriteString(strconv.FormatInt(f.Begin.Unix(), 10) + "!" + strconv.FormatInt(f.End.Unix(), 10))
	if f.UniqueID != "" {
		b.WriteString("!" + f.UniqueID)
	}
	if f.Gzip {
		b.WriteString(".json.gz")
	} else {
		b.WriteString(".json")
	}
	return b.String()
}

// LogValue implements slog.LogValuer.
func (f Filename) LogValue() slog.Value { return slog.StringValue(f.String()) }

// ParseFilename parses a report file name. It does not assume the range is
// aligned to days (F-11) and accepts an end that is the next midnight
// (quirk 7). Errors wrap ErrFilename.
func ParseFilename(s string) (Filename, error) {
	var f Filename
	base, ok := strings.CutSuffix(s, ".json.gz")
	if ok {
		f.Gzip = true
	} else if base, ok = strings.CutSuffix(s, ".json"); !ok {
		return f, fmt.Errorf("%w: %q does not end in .json or .json.gz", ErrFilename, clip(s))
	}
	parts := strings.Split(base, "!")
	if len(parts) != 4 && len(parts) != 5 {
		return f, fmt.Errorf("%w: %q has %d '!'-separated fields, want 4 or 5", ErrFilename, clip(s), len(parts))
	}
	f.Sender, f.PolicyDomain = parts[0], parts[1]
	for _, d := range []string{f.Sender, f.PolicyDomain} {
		if !validFilenameDomain(d) {
			return Filename{}, fmt.Errorf("%w: %q is not a domain", ErrFilename, clip(d))
		}
	}
	var ts [2]time.Time
	for i, p := range parts[2:4] {
		if p == "" || len(p) > 12 || strings.Trim(p, "0123456789") != "" {
			return Filename{}, fmt.Errorf("%w: timestamp %q is not decimal Unix seconds", ErrFilename, clip(p))
		}
		n, _ := strconv.ParseInt(p, 10, 64)
		if strconv.FormatInt(n, 10) != p {
			return Filename{}, fmt.Errorf("%w: timestamp %q has leading zeros", ErrFilename, clip(p))
		}
		ts[i] = time.Unix(n, 0).UTC()
	}
	f.Begin, f.End = ts[0], ts[1]
	if len(parts) == 5 {
		f.UniqueID = parts[4]
		if !validUniqueID(f.UniqueID) {
			return Filename{}, fmt.Errorf("%w: unique-id %q", ErrFilename, clip(f.UniqueID))
		}
	}
	return f, nil
}

func validFilenameDomain(d string) bool {
	if d == "" || len(d) > 253 || d[0] == '.' || strings.HasSuffix(d, ".") {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

func validUniqueID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}
