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
var errNoSTARTTLS = errors.New("STARTTLS not offered")

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

// startSMTP runs the cleartext phase of submission (RFC 3207, RFC 6409):
// greeting, EHLO, STARTTLS. It returns the greeting.
func startSMTP(conn net.Conn, br *bufio.Reader, ehlo string) (string, error) {
	code, lines, err := smtpReply(br)
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	greeting := code + " " + strings.Join(lines, " ")
	if code != "220" {
		return greeting, fmt.Errorf("%w: greeting %q", errProtocol, clip(greeting))
	}
	if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", ehlo); err != nil {
		return greeting, err
	}
	code, lines, err = smtpReply(br)
	if err != nil {
		return greeting, fmt.Errorf("EHLO: %w", err)
	}
	if code != "250" {
		return greeting, fmt.Errorf("%w: EHLO answered %s", errProtocol, code)
	}
	offered := false
	for _, l := range lines[1:] {
		kw, _, _ := strings.Cut(l, " ")
		offered = offered || strings.EqualFold(kw, "STARTTLS")
	}
	if !offered {
		quit(conn, "QUIT\r\n")
		return greeting, fmt.Errorf("%w in the EHLO reply", errNoSTARTTLS)
	}
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return greeting, err
	}
	code, lines, err = smtpReply(br)
	if err != nil {
		return greeting, fmt.Errorf("STARTTLS: %w", err)
	}
	if code != "220" {
		return greeting, fmt.Errorf("%w: STARTTLS answered %s %s", errNoSTARTTLS, code, clip(strings.Join(lines, " ")))
	}
	return greeting, nil
}

// imapTagged sends a tagged command and reads to its tagged reply.
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
	return nil, "", fmt.Errorf("%w: no tagged reply in %d lines", errProtocol, maxLines)
}

// startIMAP runs the cleartext phase of IMAP (RFC 9051 §6.2.1, RFC 2595
// §3.1): greeting, CAPABILITY, STARTTLS.
func startIMAP(conn net.Conn, br *bufio.Reader) (string, error) {
	greeting, err := readLine(br)
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	if hasPrefixFold(greeting, "* PREAUTH") {
		// RFC 9051 §6.2.1: STARTTLS only before authentication.
		return greeting, fmt.Errorf("%w: the greeting is PREAUTH (authenticated in cleartext)", errNoSTARTTLS)
	}
	if !hasPrefixFold(greeting, "* OK") {
		return greeting, fmt.Errorf("%w: greeting %q", errProtocol, clip(greeting))
	}
	untagged, status, err := imapTagged(conn, br, "a1", "CAPABILITY")
	if err != nil {
		return greeting, fmt.Errorf("CAPABILITY: %w", err)
	}
	if !hasPrefixFold(status, "OK") {
		return greeting, fmt.Errorf("%w: CAPABILITY answered %q", errProtocol, clip(status))
	}
	offered := false
	for _, l := range untagged {
		if hasPrefixFold(l, "* CAPABILITY ") {
			for _, c := range strings.Fields(l[len("* CAPABILITY "):]) {
				offered = offered || strings.EqualFold(c, "STARTTLS")
			}
		}
	}
	if !offered {
		quit(conn, "a2 LOGOUT\r\n")
		return greeting, fmt.Errorf("%w in the CAPABILITY reply", errNoSTARTTLS)
	}
	_, status, err = imapTagged(conn, br, "a2", "STARTTLS")
	if err != nil {
		return greeting, fmt.Errorf("STARTTLS: %w", err)
	}
	if !hasPrefixFold(status, "OK") {
		return greeting, fmt.Errorf("%w: STARTTLS answered %q", errNoSTARTTLS, clip(status))
	}
	return greeting, nil
}

// startPOP3 runs the cleartext phase of POP3 (RFC 2595 §4, RFC 2449):
// greeting, CAPA, STLS.
func startPOP3(conn net.Conn, br *bufio.Reader) (string, error) {
	greeting, err := readLine(br)
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	if !hasPrefixFold(greeting, "+OK") {
		return greeting, fmt.Errorf("%w: greeting %q", errProtocol, clip(greeting))
	}
	if _, err := io.WriteString(conn, "CAPA\r\n"); err != nil {
		return greeting, err
	}
	first, err := readLine(br)
	if err != nil {
		return greeting, fmt.Errorf("CAPA: %w", err)
	}
	offered := false
	if hasPrefixFold(first, "+OK") {
		// RFC 2449 §5: a multi-line reply ending with ".".
		for n := 0; ; n++ {
			if n == maxLines {
				return greeting, fmt.Errorf("%w: more than %d CAPA lines", errProtocol, maxLines)
			}
			l, err := readLine(br)
			if err != nil {
				return greeting, fmt.Errorf("CAPA: %w", err)
			}
			if l == "." {
				break
			}
			kw, _, _ := strings.Cut(l, " ")
			offered = offered || strings.EqualFold(kw, "STLS")
		}
	}
	if !offered {
		quit(conn, "QUIT\r\n")
		return greeting, fmt.Errorf("%w in the CAPA reply", errNoSTARTTLS)
	}
	if _, err := io.WriteString(conn, "STLS\r\n"); err != nil {
		return greeting, err
	}
	l, err := readLine(br)
	if err != nil {
		return greeting, fmt.Errorf("STLS: %w", err)
	}
	if !hasPrefixFold(l, "+OK") {
		return greeting, fmt.Errorf("%w: STLS answered %q", errNoSTARTTLS, clip(l))
	}
	return greeting, nil
}

// quit says goodbye without waiting for the answer.
func quit(conn net.Conn, cmd string) { _, _ = io.WriteString(conn, cmd) }

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
