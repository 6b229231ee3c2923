// Package postfixlog turns the delivery log of Postfix's smtp(8) client
// into TLS reporting results, for the Postfix that distributions ship
// (without libtlsrpt): each delivery attempt to a next-hop domain becomes
// one session result, joined with the policy that `mailsts policyd`
// answered for that domain (outgoing.Answer).
//
// Lines used (Postfix 3.x wording), per smtp(8) process:
//
//	Verified|Trusted|Untrusted|Anonymous TLS connection established to HOST[IP]:PORT: …
//	server certificate verification failed for HOST[IP]:PORT: num=N:REASON
//	certificate verification failed for HOST[IP]:PORT: REASON
//	QUEUEID: Server certificate not verified        (one MX failed, the next is tried)
//	QUEUEID: to=<RCPT>, relay=HOST[IP]:PORT, …, status=sent|deferred|bounced (TEXT)
//
// A session counts once, at its first delivery line (one line per
// recipient follows for the same connection). status=sent after a TLS
// connection line is a success; a deferral or bounce whose text says why
// TLS failed ("TLS is required, but was not offered", "Server certificate
// not verified", "Server certificate not trusted", "Cannot start TLS") is
// a failure with the result type the text and the process's verification
// line give. Deliveries without TLS whose text says nothing about TLS are
// not counted: the log does not tell whether TLS was offered.
package postfixlog

import (
	"regexp"
	"strings"
	"time"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Kinds of parsed lines.
const (
	KindOther     = iota
	KindTLS       // a TLS connection was established
	KindVerify    // a server certificate failed verification
	KindDelivery  // a delivery attempt's status
	KindAttempt   // a failed attempt to one MX host, before the next is tried
	KindMessageID // cleanup(8) logged a queued message's Message-ID
)

// Line is one parsed smtp(8) log line.
type Line struct {
	Kind int
	Time time.Time
	// PID is the smtp(8) process (service name and pid).
	PID string
	// Host and IP of the server (relay).
	Host, IP string
	// TLS: the trust level word (Verified, Trusted, Untrusted,
	// Anonymous).
	Level string
	// Verify: the OpenSSL error number and text.
	VerifyNum    int
	VerifyReason string
	// Delivery: queue id, recipient domain, status and its text.
	QueueID, Domain, Status, Text string
}

var (
	// Syslog prefix: "Mmm dd hh:mm:ss host prog[pid]: " or an RFC 3339
	// time stamp instead of the first three fields.
	prefixRE = regexp.MustCompile(`^(\S+(?: +\d+ \d\d:\d\d:\d\d)?) \S+ (postfix[^\[\s]*/smtp)\[(\d+)\]: (.*)$`)
	tlsRE    = regexp.MustCompile(`^(Verified|Trusted|Untrusted|Anonymous) TLS connection established to ([^\[\s]+)\[([^\]]+)\](?::\d+)?`)
	verifyRE = regexp.MustCompile(`^(?:server )?certificate verification failed for ([^\[\s]+)\[([^\]]+)\](?::\d+)?: (?:num=(\d+):)?(.*)$`)
	// A failed attempt to one MX host before the next one is tried:
	// "QUEUEID: Server certificate not verified" (no recipient).
	attemptRE = regexp.MustCompile(`^([0-9A-Za-z]+): (Server certificate not (?:verified|trusted)|TLS is required, but .*|Cannot start TLS.*)$`)
	// cleanup(8): "QUEUEID: message-id=<…>", for every queued message.
	cleanupRE  = regexp.MustCompile(`^(\S+(?: +\d+ \d\d:\d\d:\d\d)?) \S+ postfix[^\[\s]*/cleanup\[\d+\]: ([0-9A-Za-z]+): message-id=<?([^>\s]*)>?$`)
	deliveryRE = regexp.MustCompile(`^([0-9A-Za-z]+): to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=([^\[\s,]+)(?:\[([^\]]+)\](?::\d+)?)?, .*status=(sent|deferred|bounced) \((.*)\)$`)
)

// MaxLine is the longest line parsed; longer ones are skipped.
const MaxLine = 8192

// Parse parses one log line; year and loc date syslog's year-less
// time stamps (nil loc means UTC).
func Parse(s string, year int, loc *time.Location) (Line, bool) {
	if len(s) > MaxLine {
		return Line{}, false
	}
	m := prefixRE.FindStringSubmatch(s)
	if m == nil {
		if c := cleanupRE.FindStringSubmatch(s); c != nil {
			return Line{Kind: KindMessageID, Time: parseTime(c[1], year, loc), QueueID: c[2], Text: c[3]}, true
		}
		return Line{}, false
	}
	l := Line{PID: m[2] + "[" + m[3] + "]", Time: parseTime(m[1], year, loc)}
	msg := m[4]
	if t := tlsRE.FindStringSubmatch(msg); t != nil {
		l.Kind, l.Level, l.Host, l.IP = KindTLS, t[1], strings.ToLower(t[2]), t[3]
		return l, true
	}
	if v := verifyRE.FindStringSubmatch(msg); v != nil {
		l.Kind, l.Host, l.IP, l.VerifyReason = KindVerify, strings.ToLower(v[1]), v[2], v[4]
		l.VerifyNum = -1
		if v[3] != "" {
			l.VerifyNum = 0
		}
		for _, c := range v[3] {
			l.VerifyNum = l.VerifyNum*10 + int(c-'0')
			if l.VerifyNum > 1<<20 {
				break
			}
		}
		return l, true
	}
	if a := attemptRE.FindStringSubmatch(msg); a != nil {
		l.Kind, l.QueueID, l.Text = KindAttempt, a[1], a[2]
		return l, true
	}
	if d := deliveryRE.FindStringSubmatch(msg); d != nil {
		_, dom, ok := strings.Cut(d[2], "@")
		if !ok || dom == "" {
			return Line{}, false
		}
		if i := strings.LastIndexByte(dom, '@'); i >= 0 {
			dom = dom[i+1:]
		}
		l.Kind, l.QueueID, l.Domain = KindDelivery, d[1], strings.TrimSuffix(strings.ToLower(dom), ".")
		l.Host, l.IP, l.Status, l.Text = strings.ToLower(d[3]), d[4], d[5], d[6]
		return l, true
	}
	return Line{}, false
}

func parseTime(s string, year int, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.ParseInLocation("Jan _2 15:04:05", s, loc); err == nil {
		return t.AddDate(year, 0, 0).UTC()
	}
	if t, err := time.ParseInLocation("Jan 2 15:04:05", s, loc); err == nil {
		return t.AddDate(year, 0, 0).UTC()
	}
	return time.Time{}
}

// Outcome classifies a delivery line given the process's TLS state:
// ok (a TLS session), or the failure's result type; counted is false
// when the line says nothing about TLS.
func Outcome(d Line, tlsLevel string, verify *Line) (failure result.Type, counted bool) {
	t := d.Text
	switch {
	case strings.Contains(t, "TLS is required, but was not offered"),
		strings.Contains(t, "refused to start TLS"):
		return result.STARTTLSNotSupported, true
	case strings.Contains(t, "Server certificate not verified"), strings.Contains(t, "Server certificate not trusted"):
		if verify != nil {
			return verifyResult(verify.VerifyNum, verify.VerifyReason), true
		}
		if strings.Contains(t, "not trusted") {
			return result.CertificateNotTrusted, true
		}
		return result.ValidationFailure, true
	case strings.Contains(t, "Cannot start TLS"), strings.Contains(t, "TLS handshake failed"):
		return result.ValidationFailure, true
	}
	if d.Status == "sent" && tlsLevel != "" {
		return "", true
	}
	return "", false
}

// verifyResult maps OpenSSL's X509_V_ERR numbers (or, on lines without
// one, the reason text) to RFC 8460 result types: 10 expired, 62 host
// name mismatch, 65 no matching DANE TLSA record, the chain errors not
// trusted, anything else a validation failure.
func verifyResult(num int, reason string) result.Type {
	switch num {
	case 10:
		return result.CertificateExpired
	case 62:
		return result.CertificateHostMismatch
	case 65:
		return result.TLSAInvalid
	case 2, 18, 19, 20, 21, 27:
		return result.CertificateNotTrusted
	case -1:
		switch {
		case strings.Contains(reason, "expired"):
			return result.CertificateExpired
		case strings.Contains(reason, "hostname mismatch"), strings.Contains(reason, "name mismatch"):
			return result.CertificateHostMismatch
		case strings.Contains(reason, "TLSA"):
			return result.TLSAInvalid
		case strings.Contains(reason, "self-signed"), strings.Contains(reason, "self signed"),
			strings.Contains(reason, "issuer"), strings.Contains(reason, "untrusted"):
			return result.CertificateNotTrusted
		}
	}
	return result.ValidationFailure
}
