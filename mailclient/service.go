package mailclient

// Protocol is what a mail client speaks to a server: SMTP submission,
// IMAP or POP3. Latches are kept per account and protocol.
type Protocol string

// Protocols.
const (
	SMTP Protocol = "smtp" // message submission (RFC 6409)
	IMAP Protocol = "imap" // IMAP4 (RFC 9051, RFC 3501)
	POP3 Protocol = "pop3" // POP3 (RFC 1939)
)

// Protocols returns SMTP, IMAP and POP3.
func Protocols() []Protocol { return []Protocol{SMTP, IMAP, POP3} }

// Service is an RFC 8314 mail-client service by its IANA service name,
// which is also its RFC 6186 SRV label.
type Service string

// Services.
const (
	Submissions Service = "submissions" // SMTP submission, implicit TLS, 465 (RFC 8314 §3.3)
	Submission  Service = "submission"  // SMTP submission, STARTTLS, 587 (RFC 6409, RFC 3207)
	IMAPS       Service = "imaps"       // IMAP, implicit TLS, 993 (RFC 8314 §3.2)
	IMAPPlain   Service = "imap"        // IMAP, STARTTLS, 143 (RFC 9051 §6.2.1)
	POP3S       Service = "pop3s"       // POP3, implicit TLS, 995 (RFC 8314 §3.2)
	POP3Plain   Service = "pop3"        // POP3, STLS, 110 (RFC 2595 §4)
)

// Services returns the six services: for each protocol the implicit-TLS
// service before its STARTTLS sibling (RFC 8314 §3 prefers implicit TLS).
func Services() []Service {
	return []Service{Submissions, Submission, IMAPS, IMAPPlain, POP3S, POP3Plain}
}

// ServicesFor returns the two services of p, implicit TLS first.
func ServicesFor(p Protocol) []Service {
	switch p {
	case SMTP:
		return []Service{Submissions, Submission}
	case IMAP:
		return []Service{IMAPS, IMAPPlain}
	case POP3:
		return []Service{POP3S, POP3Plain}
	}
	return nil
}

// Protocol returns the protocol spoken by s ("" for an unknown service).
func (s Service) Protocol() Protocol {
	switch s {
	case Submissions, Submission:
		return SMTP
	case IMAPS, IMAPPlain:
		return IMAP
	case POP3S, POP3Plain:
		return POP3
	}
	return ""
}

// Implicit reports whether TLS starts as soon as the client connects
// (RFC 8314 §3); the other services upgrade with STARTTLS (STLS for POP3).
func (s Service) Implicit() bool { return s == Submissions || s == IMAPS || s == POP3S }

// StandardPort returns the well-known port: 465, 587, 993, 143, 995, 110,
// or 0 for an unknown service.
func (s Service) StandardPort() int {
	switch s {
	case Submissions:
		return 465
	case Submission:
		return 587
	case IMAPS:
		return 993
	case IMAPPlain:
		return 143
	case POP3S:
		return 995
	case POP3Plain:
		return 110
	}
	return 0
}

// Valid reports whether s is one of the six services.
func (s Service) Valid() bool { return s.Protocol() != "" }
