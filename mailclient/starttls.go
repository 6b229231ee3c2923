package mailclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Bounds on what a server may send before TLS: hostile servers (or an
// attacker on the path) get short lines and few of them.
const (
	maxLine  = 2048 // bytes per reply line
	maxLines = 64   // lines per reply
)

// errProtocol is wrapped by errors about malformed or unexpected replies.
var errProtocol = errors.New("unexpected reply")

// errNoSTARTTLS means the server did not offer the upgrade, or refused it:
// the session would stay in cleartext.
var errNoSTARTTLS = errors.New("no STARTTLS")

// readLine reads one reply line of at most maxLine bytes.
func readLine(br *bufio.Reader) (string, error) {
	raw, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line longer than %d bytes", errProtocol, maxLine)
	}
	if errors.Is(err, io.EOF) && len(raw) > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(raw), "\r\n"), nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// smtpReply reads a possibly multi-line SMTP reply (RFC 5321 §4.2) and
// returns its code and lines (text after the code).
func smtpReply(br *bufio.Reader) (string, []string, error) {
	var lines []string
	for range maxLines {
		l, err := readLine(br)
		if err != nil {
			return "", nil, err
		}
		if len(l) < 3 || (len(l) > 3 && l[3] != ' ' && l[3] != '-') {
			return "", nil, fmt.Errorf("%w: %q", errProtocol, clip(l))
		}
		lines = append(lines, strings.TrimSpace(l[min(len(l), 4):]))
		if len(l) == 3 || l[3] == ' ' {
			return l[:3], lines, nil
		}
	}
	return "", nil, fmt.Errorf("%w: more than %d lines in a reply", errProtocol, maxLines)
}

// Step is a step of the cleartext phase before a STARTTLS upgrade, as
// [StartTLS] reports it to callers that judge servers.
type Step int

// The steps, in order.
const (
	// StepGreeting: waiting for the server's greeting.
	StepGreeting Step = iota
	// StepCapabilities: EHLO (SMTP), CAPABILITY (IMAP) or CAPA (POP3).
	StepCapabilities
	// StepUpgrade: whether STARTTLS (POP3: STLS) is offered, and the
	// command itself; an IMAP PREAUTH greeting ends here too (RFC 9051
	// §6.2.1: an authenticated session cannot STARTTLS).
	StepUpgrade
)

// Cleartext is what the cleartext phase of a STARTTLS session saw.
type Cleartext struct {
	// Greeting is the server's greeting (SMTP: code and text).
	Greeting string
	// Step is the step reached: where the phase failed, or StepUpgrade
	// when the server agreed to the upgrade.
	Step Step
	// Offered: the server listed STARTTLS (POP3: STLS) among its
	// capabilities.
	Offered bool
}

// StartTLS runs the cleartext phase of p's STARTTLS on conn: greeting,
// capabilities, the upgrade command (RFC 3207 for SMTP, sending EHLO
// ehlo; RFC 9051 §6.2.1 and RFC 2595 §3.1 for IMAP; RFC 2595 §4 and RFC
// 2449 for POP3). It reads through br, a reader on conn of at least
// 2048 bytes that the caller drops before the TLS handshake; bytes still
// buffered in br after a nil error were sent after the go-ahead and are
// injected plaintext (RFC 3207 §4.2): refuse them. before, when set, is
// called as each step starts (to set deadlines). The error says what
// failed and where; [Cleartext.Step] tells the step. [Dialer] uses it.
func StartTLS(conn net.Conn, br *bufio.Reader, p Protocol, ehlo string, before func(Step)) (Cleartext, error) {
	s := &cleartext{conn: conn, br: br, before: before}
	var err error
	switch p {
	case IMAP:
		err = s.imap()
	case POP3:
		err = s.pop3()
	default:
		err = s.smtp(ehlo)
	}
	return s.ct, err
}

// cleartext is one cleartext phase under way.
type cleartext struct {
	conn   net.Conn
	br     *bufio.Reader
	before func(Step)
	ct     Cleartext
}

// step starts step st.
func (s *cleartext) step(st Step) {
	s.ct.Step = st
	if s.before != nil {
		s.before(st)
	}
}

// smtp runs the cleartext phase of submission (RFC 3207, RFC 6409):
// greeting, EHLO, STARTTLS.
func (s *cleartext) smtp(ehlo string) error {
	s.step(StepGreeting)
	code, lines, err := smtpReply(s.br)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	s.ct.Greeting = code + " " + strings.Join(lines, " ")
	if code != "220" {
		return fmt.Errorf("%w: greeting %q", errProtocol, clip(s.ct.Greeting))
	}
	s.step(StepCapabilities)
	if _, err := fmt.Fprintf(s.conn, "EHLO %s\r\n", ehlo); err != nil {
		return err
	}
	code, lines, err = smtpReply(s.br)
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if code != "250" {
		return fmt.Errorf("%w: EHLO answered %s", errProtocol, code)
	}
	s.step(StepUpgrade)
	for _, l := range lines[1:] {
		kw, _, _ := strings.Cut(l, " ")
		s.ct.Offered = s.ct.Offered || strings.EqualFold(kw, "STARTTLS")
	}
	if !s.ct.Offered {
		quit(s.conn, "QUIT\r\n")
		return fmt.Errorf("%w: STARTTLS is not offered in the EHLO reply", errNoSTARTTLS)
	}
	if _, err := io.WriteString(s.conn, "STARTTLS\r\n"); err != nil {
		return err
	}
	code, lines, err = smtpReply(s.br)
	if err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	if code != "220" {
		return fmt.Errorf("%w: STARTTLS answered %s %s", errNoSTARTTLS, code, clip(strings.Join(lines, " ")))
	}
	return nil
}

// imapTagged sends a tagged command and reads to its tagged response.
func imapTagged(conn net.Conn, br *bufio.Reader, tag, cmd string) (untagged []string, status string, err error) {
	if _, err := fmt.Fprintf(conn, "%s %s\r\n", tag, cmd); err != nil {
		return nil, "", err
	}
	for range maxLines {
		l, err := readLine(br)
		if err != nil {
			return nil, "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest, nil
		}
		untagged = append(untagged, l)
	}
	return nil, "", fmt.Errorf("%w: no tagged response in %d lines", errProtocol, maxLines)
}

// imapOK reports whether a tagged status is OK (RFC 9051 §7.1).
func imapOK(status string) bool {
	kw, _, _ := strings.Cut(status, " ")
	return strings.EqualFold(kw, "OK")
}

// imap runs the cleartext phase of IMAP (RFC 9051 §6.2.1, RFC 2595
// §3.1): greeting, CAPABILITY, STARTTLS.
func (s *cleartext) imap() error {
	s.step(StepGreeting)
	greeting, err := readLine(s.br)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	s.ct.Greeting = greeting
	kw := ""
	if f := strings.Fields(greeting); len(f) >= 2 && f[0] == "*" {
		kw = strings.ToUpper(f[1])
	}
	switch kw {
	case "OK":
	case "PREAUTH":
		// RFC 9051 §6.2.1: STARTTLS only in the not-authenticated
		// state; a cleartext PREAUTH session can never be protected.
		s.step(StepUpgrade)
		return fmt.Errorf("%w: the greeting is PREAUTH: the session is authenticated in cleartext and cannot STARTTLS", errNoSTARTTLS)
	default:
		return fmt.Errorf("%w: greeting %q; expected * OK", errProtocol, clip(greeting))
	}
	s.step(StepCapabilities)
	untagged, status, err := imapTagged(s.conn, s.br, "a1", "CAPABILITY")
	if err != nil {
		return fmt.Errorf("CAPABILITY: %w", err)
	}
	if !imapOK(status) {
		return fmt.Errorf("%w: CAPABILITY answered %s", errProtocol, clip(status))
	}
	s.step(StepUpgrade)
	for _, l := range untagged {
		if hasPrefixFold(l, "* CAPABILITY ") {
			for _, c := range strings.Fields(l[len("* CAPABILITY "):]) {
				// RFC 9051 §7.2.2: capability names are case-insensitive.
				s.ct.Offered = s.ct.Offered || strings.EqualFold(c, "STARTTLS")
			}
		}
	}
	if !s.ct.Offered {
		quit(s.conn, "a2 LOGOUT\r\n")
		return fmt.Errorf("%w: STARTTLS is not offered in the CAPABILITY response", errNoSTARTTLS)
	}
	_, status, err = imapTagged(s.conn, s.br, "a2", "STARTTLS")
	if err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	if !imapOK(status) {
		return fmt.Errorf("%w: STARTTLS answered %s", errNoSTARTTLS, clip(status))
	}
	return nil
}

// pop3OK reports whether a POP3 status line is positive (RFC 1939 §3).
func pop3OK(l string) bool { return hasPrefixFold(l+" ", "+OK ") }

// pop3 runs the cleartext phase of POP3 (RFC 2595 §4, RFC 2449):
// greeting, CAPA, STLS.
func (s *cleartext) pop3() error {
	s.step(StepGreeting)
	greeting, err := readLine(s.br)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	s.ct.Greeting = greeting
	if !pop3OK(greeting) {
		return fmt.Errorf("%w: greeting %q; expected +OK", errProtocol, clip(greeting))
	}
	s.step(StepCapabilities)
	if _, err := io.WriteString(s.conn, "CAPA\r\n"); err != nil {
		return err
	}
	first, err := readLine(s.br)
	if err != nil {
		return fmt.Errorf("CAPA: %w", err)
	}
	if pop3OK(first) {
		// RFC 2449 §5: a multi-line response ending with ".".
		for n := 0; ; n++ {
			if n == maxLines {
				return fmt.Errorf("%w: more than %d CAPA lines", errProtocol, maxLines)
			}
			l, err := readLine(s.br)
			if err != nil {
				return fmt.Errorf("CAPA: %w", err)
			}
			if l == "." {
				break
			}
			kw, _, _ := strings.Cut(l, " ")
			s.ct.Offered = s.ct.Offered || strings.EqualFold(kw, "STLS")
		}
	}
	s.step(StepUpgrade)
	if !s.ct.Offered {
		// RFC 2595 §4: a server offering STLS lists it in CAPA.
		quit(s.conn, "QUIT\r\n")
		return fmt.Errorf("%w: STLS is not offered in the CAPA response", errNoSTARTTLS)
	}
	if _, err := io.WriteString(s.conn, "STLS\r\n"); err != nil {
		return err
	}
	l, err := readLine(s.br)
	if err != nil {
		return fmt.Errorf("STLS: %w", err)
	}
	if !pop3OK(l) {
		return fmt.Errorf("%w: STLS answered %s", errNoSTARTTLS, clip(l))
	}
	return nil
}

// quit says goodbye without waiting for the answer.
func quit(conn net.Conn, cmd string) { _, _ = io.WriteString(conn, cmd) }

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
