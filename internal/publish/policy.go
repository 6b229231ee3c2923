package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailsts/mailsts/mtasts"
)

// PolicyIDLen is the length of a derived TXT id: 32 characters, the most
// RFC 8461 §3.1 allows (sts-id = 1*32(ALPHA / DIGIT)).
const PolicyIDLen = 32

// PolicyID derives the _mta-sts TXT id from the exact bytes served: the
// first 32 lowercase hex digits of their SHA-256 (128 bits). It is stable
// across releases (a golden test pins it) and changes exactly when the
// served policy changes (RFC 8461 §3.1: the id must change with the
// policy, STS-PUB-1). Reproduce it with
//
//	curl -s https://mta-sts.example.org/.well-known/mta-sts.txt | sha256sum | cut -c1-32
func PolicyID(served []byte) string {
	sum := sha256.Sum256(served)
	return hex.EncodeToString(sum[:])[:PolicyIDLen]
}

// Served is one policy as the host serves it.
type Served struct {
	// Domain is the policy domain (lowercase A-labels).
	Domain string
	// Policy is the parsed policy.
	Policy *mtasts.Policy
	// Text is the exact body served: CRLF line endings.
	Text []byte
	// ID is PolicyID(Text).
	ID string
}

// Record returns the _mta-sts TXT record value: "v=STSv1; id=<ID>".
func (s *Served) Record() string { return "v=STSv1; id=" + s.ID }

// Render builds the canonical served text of a policy: version, mode,
// each mx in order, max_age, each line ended by CRLF (RFC 8461 §3.2
// allows LF or CRLF; senders must accept both, STS-POL-4). It checks the text with mtasts.ParsePolicyStrict,
// so what is served is exactly what a strict sender accepts.
func Render(domain string, mode mtasts.Mode, mx []string, maxAge int64) (*Served, error) {
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	line("version", mtasts.Version)
	line("mode", string(mode))
	for _, p := range mx {
		line("mx", p)
	}
	line("max_age", strconv.FormatInt(maxAge, 10))
	text := []byte(b.String())
	p, err := mtasts.ParsePolicyStrict(text)
	if err != nil {
		return nil, fmt.Errorf("%s: the policy would not parse strictly: %w", domain, err)
	}
	return &Served{Domain: domain, Policy: p, Text: text, ID: PolicyID(text)}, nil
}
