package mailclient

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Level is a confidentiality level (RFC 8314 §5.2), ordered: a higher
// level protects more.
type Level int

// Levels.
const (
	LevelUnknown   Level = iota // nothing seen yet
	LevelCleartext              // no TLS: anyone on the path reads the password and the mail
	LevelTLS                    // TLS, but the certificate was not validated: an active attacker can intercept
	LevelValidated              // TLS with a certificate validated by PKIX or DANE
)

var levelNames = [...]string{"unknown", "cleartext", "tls-unvalidated", "validated"}

func (l Level) String() string {
	if l >= 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// MarshalText implements encoding.TextMarshaler.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Level) UnmarshalText(b []byte) error {
	for i, n := range levelNames {
		if string(b) == n {
			*l = Level(i)
			return nil
		}
	}
	return fmt.Errorf("mailclient: unknown level %q", b)
}

// Validation says how a server certificate was validated.
type Validation string

// Validations.
const (
	NotValidated Validation = ""     // not validated (or no TLS)
	PKIX         Validation = "pkix" // chains to a trusted root and names the host (RFC 7817, RFC 9525)
	DANE         Validation = "dane" // matches DNSSEC-signed TLSA records (RFC 7672 §3, RFC 6698)
)

// Observation is what one connection achieved.
type Observation struct {
	Endpoint Endpoint `json:"endpoint"`
	// TLS is true when the session is protected by TLS (implicit or after
	// STARTTLS).
	TLS bool `json:"tls"`
	// TLSVersion is the negotiated version (tls.VersionTLS12, …), 0
	// without TLS.
	TLSVersion uint16 `json:"tls_version,omitempty"`
	// Validation is how the certificate was validated; ValidationError
	// says why it was not, when it was not.
	Validation      Validation `json:"validation,omitempty"`
	ValidationError string     `json:"validation_error,omitempty"`
	// Greeting is the server's cleartext greeting (STARTTLS services).
	Greeting string `json:"greeting,omitempty"`
	// STARTTLSMissing is true when a STARTTLS service did not offer the
	// upgrade (or refused it), so the session stayed in cleartext.
	STARTTLSMissing bool `json:"starttls_missing,omitempty"`
}

// Level returns the confidentiality level of the observation.
func (o Observation) Level() Level {
	switch {
	case !o.TLS:
		return LevelCleartext
	case o.Validation == NotValidated:
		return LevelTLS
	}
	return LevelValidated
}

// Latch is what a client remembers about an account and protocol, as HSTS
// remembers a web site: once a protection was seen, a later connection
// without it is refused until the user resets the latch explicitly. The
// idea is the DEEP drafts' (draft-ietf-uta-email-deep, which became RFC
// 8314 without it): a downgrade an attacker can cause (stripping STARTTLS,
// presenting a certificate the client cannot validate) must not go
// unnoticed after the first good connection.
type Latch struct {
	// TLS: every connection must use TLS.
	TLS bool `json:"tls"`
	// MinTLSVersion: the highest TLS version seen; older ones are refused.
	MinTLSVersion uint16 `json:"min_tls_version,omitempty"`
	// Validated: the certificate must be validated (by PKIX or DANE).
	Validated bool `json:"validated"`
	// Validation is how it was validated the last time.
	Validation Validation `json:"validation,omitempty"`
	// Host and Port of the last accepted connection, for the user.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// Since is when the latch was first set; Seen when it was last
	// confirmed by a connection.
	Since time.Time `json:"since"`
	Seen  time.Time `json:"seen"`
}

// Level is the level the latch requires.
func (l Latch) Level() Level {
	switch {
	case l.Validated:
		return LevelValidated
	case l.TLS:
		return LevelTLS
	case !l.Since.IsZero():
		return LevelCleartext
	}
	return LevelUnknown
}

// LogValue implements slog.LogValuer.
func (l Latch) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("tls", l.TLS), slog.String("min_tls_version", tlsVersionName(l.MinTLSVersion)),
		slog.Bool("validated", l.Validated), slog.String("validation", string(l.Validation)), slog.Time("since", l.Since))
}

// Raise returns the latch after an accepted observation: protections only
// ever grow (a connection with less was refused before getting here).
func (l Latch) Raise(o Observation, now time.Time) Latch {
	if l.Since.IsZero() {
		l.Since = now
	}
	l.Seen = now
	l.Host, l.Port = o.Endpoint.Host, o.Endpoint.Port
	if o.TLS {
		l.TLS = true
		l.MinTLSVersion = max(l.MinTLSVersion, o.TLSVersion)
	}
	if o.Validation != NotValidated {
		l.Validated = true
		l.Validation = o.Validation
	}
	return l
}

// Policy is an account's configured minimum, independent of what was seen.
type Policy struct {
	// MinLevel is the lowest level accepted; the zero value means
	// LevelValidated (RFC 8314 §5.2: by default a client requires TLS
	// with a validated certificate, TLS8314-4).
	MinLevel Level
	// MinTLSVersion is the lowest TLS version accepted; 0 means TLS 1.2
	// (RFC 8314 §4.1 retired SSL and TLS 1.0, RFC 8997 TLS 1.1).
	MinTLSVersion uint16
}

func (p Policy) minLevel() Level {
	if p.MinLevel == LevelUnknown {
		return LevelValidated
	}
	return p.MinLevel
}

func (p Policy) minTLSVersion() uint16 {
	if p.MinTLSVersion == 0 {
		return tls.VersionTLS12
	}
	return p.MinTLSVersion
}

// Verdict is the decision about one connection.
type Verdict struct {
	Accept bool `json:"accept"`
	// Latched is true when the latch, not the policy, refused.
	Latched bool `json:"latched,omitempty"`
	// Reasons explain a refusal, one line each.
	Reasons []string `json:"reasons,omitempty"`
}

// Decide judges an observation against the account's policy and latch
// (ok false: nothing remembered yet).
func Decide(o Observation, p Policy, l Latch, ok bool) Verdict {
	var v Verdict
	refuse := func(latched bool, format string, args ...any) {
		v.Reasons = append(v.Reasons, fmt.Sprintf(format, args...))
		v.Latched = v.Latched || latched
	}
	level := o.Level()
	if level < p.minLevel() {
		refuse(false, "%s is below the account's minimum, %s%s", level, p.minLevel(), why(o))
	}
	if o.TLS && o.TLSVersion < p.minTLSVersion() {
		refuse(false, "%s is older than the account's minimum, %s", tlsVersionName(o.TLSVersion), tlsVersionName(p.minTLSVersion()))
	}
	if ok {
		switch {
		case l.TLS && !o.TLS:
			refuse(true, "TLS was used since %s and is missing now%s", l.Since.UTC().Format(time.DateOnly), why(o))
		case l.Validated && o.Validation == NotValidated:
			refuse(true, "the certificate was validated (%s) since %s and is not now%s", l.Validation, l.Since.UTC().Format(time.DateOnly), why(o))
		}
		if o.TLS && o.TLSVersion < l.MinTLSVersion {
			refuse(true, "%s was used before and %s now", tlsVersionName(l.MinTLSVersion), tlsVersionName(o.TLSVersion))
		}
	}
	v.Accept = len(v.Reasons) == 0
	return v
}

func why(o Observation) string {
	switch {
	case o.STARTTLSMissing:
		return " (STARTTLS was not offered: stripped by the server or by an attacker)"
	case o.TLS && o.ValidationError != "":
		return " (" + o.ValidationError + ")"
	}
	return ""
}

func tlsVersionName(v uint16) string {
	if v == 0 {
		return "none"
	}
	return tls.VersionName(v)
}
