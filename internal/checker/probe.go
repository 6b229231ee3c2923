package checker

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limits of the SMTP probe. Servers are hostile or broken: every reply is
// bounded in line length and line count, and every step has a deadline.
const (
	// maxReplyLine caps one reply line (RFC 5321 §4.5.3.1.5 allows 512
	// octets; we tolerate more, but not unbounded).
	maxReplyLine = 2048
	// maxReplyLines caps the lines of one multi-line reply.
	maxReplyLines = 64
)

// Probe stages, in the order a probe passes them.
const (
	stageDNS       = "dns"
	stageConnect   = "connect"
	stageBanner    = "banner"
	stageEHLO      = "ehlo"
	stageSTARTTLS  = "starttls"
	stageHandshake = "handshake"
	stageDone      = "done"
)

// errReply is wrapped by errors about malformed SMTP replies.
var errReply = errors.New("malformed SMTP reply")

// parseReplyLine parses one SMTP reply line without its line terminator
// (RFC 5321 §4.2): a three-digit code, then "-" for a line that continues
// the reply, or " " (or nothing) for the last line, then text.
func parseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", fmt.Errorf("%w: %q is too short", errReply, clip(line))
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", fmt.Errorf("%w: %q has no three-digit code", errReply, clip(line))
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, "", fmt.Errorf("%w: code %d is outside 2xx-5xx", errReply, code)
	}
	switch {
	case len(line) == 3:
		return code, false, "", nil
	case line[3] == '-':
		return code, true, line[4:], nil
	case line[3] == ' ':
		return code, false, line[4:], nil
	}
	return 0, false, "", fmt.Errorf("%w: %q: expected ' ' or '-' after the code", errReply, clip(line))
}

// formatReplyLine is the inverse of parseReplyLine (used by tests and
// the fuzzer's round trip).
func formatReplyLine(code int, more bool, text string) string {
	sep := " "
	if more {
		sep = "-"
	}
	return strconv.Itoa(code) + sep + text
}

// readReply reads one possibly multi-line reply. All lines must carry the
// same code (RFC 5321 §4.2.1).
func readReply(r *bufio.Reader) (code int, lines []string, err error) {
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return 0, nil, fmt.Errorf("%w: more than %d lines", errReply, maxReplyLines)
		}
		raw, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, nil, fmt.Errorf("%w: line longer than %d bytes", errReply, maxReplyLine)
		}
		if err != nil {
			return 0, nil, err
		}
		line := strings.TrimRight(string(raw), "\r\n")
		c, more, text, err := parseReplyLine(line)
		if err != nil {
			return 0, nil, err
		}
		if n > 0 && c != code {
			return 0, nil, fmt.Errorf("%w: code %d inside a %d reply", errReply, c, code)
		}
		code = c
		lines = append(lines, text)
		if !more {
			return code, lines, nil
		}
	}
}

// clip shortens server-supplied text for messages.
func clip(s string) string {
	const n = 80
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// probeOutcome is what probe learned, including the presented chain that
// DANE needs.
type probeOutcome struct {
	res   ProbeResult
	chain []*x509.Certificate
}

// probe connects to addr:port, reads the banner, sends EHLO and
// STARTTLS (or starts TLS at once when implicit), completes a TLS
// handshake with SNI set to host, then verifies the presented chain for
// host separately (so expired, wrong-name and untrusted certificates are
// told apart) and says QUIT.
//
// Every step has a deadline of c.probeTimeout(), and ctx ends the probe
// early; a host that accepts the connection and never speaks costs at most
// one step timeout.
func (c *Checker) probe(ctx context.Context, host string, addr netip.Addr, port int, implicit bool) probeOutcome {
	if implicit {
		return c.probeWith(ctx, host, addr, port, nil)
	}
	return c.probeWith(ctx, host, addr, port, smtpSTARTTLS)
}

// starttlsPhase runs the cleartext part of a STARTTLS probe on conn,
// reading through br, calling deadline before each step. It returns the
// command that ends the session once TLS is up ("" for none), or ok false
// with out.res.Error set.
type starttlsPhase func(c *Checker, conn net.Conn, br *bufio.Reader, out *probeOutcome, deadline func()) (bye string, ok bool)

// probeWith is probe for any protocol: phase nil means implicit TLS.
func (c *Checker) probeWith(ctx context.Context, host string, addr netip.Addr, port int, phase starttlsPhase) (out probeOutcome) {
	start := time.Now()
	defer func() { out.res.ElapsedMS = time.Since(start).Milliseconds() }()
	step := c.probeTimeout()
	out.res.Stage = stageConnect
	d := net.Dialer{Timeout: step}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		out.res.Error = describeNetErr("connecting", err)
		return out
	}
	defer conn.Close()
	// ctx ending interrupts any blocked read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	deadline := func() {
		dl := time.Now().Add(step)
		if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
			dl = cd
		}
		if ctx.Err() == nil {
			_ = conn.SetDeadline(dl)
		}
	}

	if phase == nil {
		out.res.Stage = stageHandshake
		deadline()
		c.handshake(ctx, conn, host, &out, "")
		return out
	}

	// The plaintext phase reads through its own buffer, dropped before
	// TLS starts: RFC 3207 §4.2, nothing received before the handshake
	// may be used after it.
	br := bufio.NewReaderSize(conn, maxReplyLine)
	bye, ok := phase(c, conn, br, &out, deadline)
	if !ok {
		return out
	}
	if br.Buffered() > 0 {
		// RFC 3207 §4.2 (RFC 2595 §3.1 for IMAP and POP3): data after
		// the go-ahead in the same read would be plaintext injected into
		// the TLS session. Refuse it.
		out.res.Error = "the server sent data after its STARTTLS go-ahead (STARTTLS injection)"
		return out
	}
	out.res.Stage = stageHandshake
	deadline()
	c.handshake(ctx, conn, host, &out, bye)
	return out
}

// smtpSTARTTLS is the cleartext phase of SMTP: banner, EHLO, STARTTLS
// (RFC 3207).
func smtpSTARTTLS(c *Checker, conn net.Conn, br *bufio.Reader, out *probeOutcome, deadline func()) (string, bool) {
	out.res.Stage = stageBanner
	deadline()
	code, lines, err := readReply(br)
	if err != nil {
		out.res.Error = describeNetErr("waiting for the greeting", err)
		return "", false
	}
	out.res.Banner = clip(lines[0])
	if code != 220 {
		out.res.Error = fmt.Sprintf("greeting %d %s; expected 220", code, clip(lines[0]))
		return "", false
	}

	out.res.Stage = stageEHLO
	deadline()
	if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", c.ehloName()); err != nil {
		out.res.Error = describeNetErr("sending EHLO", err)
		return "", false
	}
	code, lines, err = readReply(br)
	if err != nil {
		out.res.Error = describeNetErr("reading the EHLO reply", err)
		return "", false
	}
	if code != 250 {
		out.res.Error = fmt.Sprintf("EHLO answered %d %s", code, clip(lines[0]))
		return "", false
	}
	for _, l := range lines[1:] {
		// RFC 5321 §4.1.1.1: keywords are case-insensitive.
		if kw, _, _ := strings.Cut(l, " "); strings.EqualFold(kw, "STARTTLS") {
			out.res.STARTTLS = true
		}
	}
	out.res.Stage = stageSTARTTLS
	if !out.res.STARTTLS {
		out.res.Error = "STARTTLS is not offered in the EHLO reply"
		quit(conn, "QUIT\r\n")
		return "", false
	}
	deadline()
	if _, err := conn.Write([]byte("STARTTLS\r\n")); err != nil {
		out.res.Error = describeNetErr("sending STARTTLS", err)
		return "", false
	}
	code, lines, err = readReply(br)
	if err != nil {
		out.res.Error = describeNetErr("reading the STARTTLS reply", err)
		return "", false
	}
	if code != 220 {
		out.res.Error = fmt.Sprintf("STARTTLS answered %d %s", code, clip(lines[0]))
		return "", false
	}
	return "QUIT\r\n", true
}

// handshake runs the TLS handshake on conn and fills out.
// bye, when not empty, is sent to end the session (an SMTP QUIT).
func (c *Checker) handshake(ctx context.Context, conn net.Conn, host string, out *probeOutcome, bye string) {
	tc := tls.Client(conn, &tls.Config{
		// RFC 8461 §7.1 (STS-CERT-5, GO-5): SNI is the MX host name.
		ServerName: host,
		// RFC 8461 §7.2 (STS-CERT-7): TLS 1.2 or later.
		MinVersion: tls.VersionTLS12,
		// The chain is verified right after the handshake, by
		// verifyCert, against the same roots and name: doing it
		// separately tells expired, wrong-name and untrusted apart
		// instead of stopping at the first problem.
		InsecureSkipVerify: true,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		out.res.Error = describeNetErr("TLS handshake", err)
		return
	}
	st := tc.ConnectionState()
	out.res.TLSVersion = tls.VersionName(st.Version)
	out.res.CipherSuite = tls.CipherSuiteName(st.CipherSuite)
	out.chain = st.PeerCertificates
	out.res.Cert = verifyCert(st.PeerCertificates, host, c.RootCAs, c.now())
	out.res.Stage = stageDone
	if bye != "" {
		quit(tc, bye)
	}
}

// quit says goodbye without waiting for the answer: the probe has what it
// needs, and a slow server must not hold it.
func quit(w net.Conn, bye string) {
	_ = w.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = w.Write([]byte(bye))
}

// describeNetErr turns a probe error into a one-line explanation.
func describeNetErr(doing string, err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return doing + ": timed out"
	case errors.Is(err, context.Canceled):
		return doing + ": canceled"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "dial ") {
		msg = msg[i+2:] // "dial tcp 127.0.0.1:25: connect: connection refused" → "connection refused"
	}
	return doing + ": " + msg
}

// Certificate problems, in the order verifyCert reports them.
const (
	certUntrusted    = "untrusted"
	certExpired      = "expired"
	certNotYetValid  = "not-yet-valid"
	certNameMismatch = "name-mismatch"
)

// verifyCert checks a presented chain (leaf first) for name against roots
// (nil: the system pool) at now, the way RFC 8461 §4.2 asks (STS-CERT-2,
// STS-CERT-3): a chain to a trusted root, within its validity, with a SAN
// dNSName matching name (never the CN: TLS-NAME-4, GO-4). It reports the
// first problem of: expired/not-yet-valid, untrusted, name-mismatch.
func verifyCert(chain []*x509.Certificate, name string, roots *x509.CertPool, now time.Time) *CertInfo {
	if len(chain) == 0 {
		return &CertInfo{Problem: certUntrusted}
	}
	leaf := chain[0]
	info := &CertInfo{
		Subject:  leaf.Subject.String(),
		Issuer:   leaf.Issuer.String(),
		DNSNames: append([]string{}, leaf.DNSNames...),
		NotAfter: leaf.NotAfter.UTC(),
		DaysLeft: int(leaf.NotAfter.Sub(now).Hours() / 24),
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// An expired (or not yet valid) leaf is reported as such: x509
	// checks the leaf's dates before it builds a chain, and the issuer
	// may not have been valid at any moment the leaf was, so trust is
	// only judged for leaves within their validity.
	switch {
	case now.After(leaf.NotAfter):
		info.Problem = certExpired
	case now.Before(leaf.NotBefore):
		info.Problem = certNotYetValid
	default:
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now}
		if _, err := leaf.Verify(opts); err != nil {
			info.Problem = certUntrusted
		} else if leaf.VerifyHostname(name) != nil {
			info.Problem = certNameMismatch
		}
	}
	return info
}
