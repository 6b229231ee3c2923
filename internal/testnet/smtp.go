package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SMTP server limits. Input is hostile or buggy: every line, message and
// session is bounded.
const (
	// MaxMessageSize is the largest message an MX host accepts (SIZE).
	MaxMessageSize = 10 << 20
	// RFC 5321 §4.5.3.1.4 and §4.5.3.1.6: 512 octets per command line and
	// 1000 per text line; we allow more for text lines to be lenient with
	// clients, but never unbounded.
	maxCommandLine  = 2048
	maxTextLine     = 64 << 10
	maxRecipients   = 100
	maxCommands     = 10_000
	maxErrors       = 20
	commandTimeout  = 60 * time.Second
	dataTimeout     = 2 * time.Minute
	maxDataTime     = 10 * time.Minute
	maxHang         = 10 * time.Minute
	handshakeTimout = 30 * time.Second
)

var errLineTooLong = errors.New("line too long")

// reconcile makes the listener of an MX host match its definition: bound
// unless the host is Down or gone (then connections are refused).
func (n *Net) reconcile(mxName string) error {
	n.mu.RLock()
	addr, ok := n.addrs[mxName]
	m := n.mx[mxName]
	want := m != nil && !m.conf.Down
	n.mu.RUnlock()
	if !ok {
		return nil
	}
	n.life.Lock()
	ln, closed := n.smtpLns[addr], n.closed
	if closed {
		n.life.Unlock()
		return nil
	}
	if !want && ln != nil {
		ln.Close()
		delete(n.smtpLns, addr)
	}
	n.life.Unlock()
	if !want || ln != nil {
		return nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(n.ctx, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(n.smtpPort)))
	if err != nil {
		return fmt.Errorf("testnet: SMTP listener for %s on %s: %w: %w", mxName, addr, errBind, err)
	}
	n.serveSMTPListener(addr, l)
	return nil
}

// serveSMTPListener registers ln and starts its accept loop.
func (n *Net) serveSMTPListener(addr netip.Addr, ln net.Listener) {
	n.startListener(ln, func() { n.smtpLns[addr] = ln }, func(c net.Conn) { n.serveSMTP(c, addr) })
}

// startListener runs register (which records ln) and starts ln's accept
// loop, unless the Net is closed, in which case ln is closed. Each
// connection is tracked, so that Close ends it, and served by serve in its
// own goroutine. The loop ends when ln is closed (by Close, Set or a failed
// start) or the Net is.
func (n *Net) startListener(ln net.Listener, register func(), serve func(net.Conn)) {
	n.life.Lock()
	defer n.life.Unlock()
	if n.closed {
		ln.Close()
		return
	}
	register()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var backoff time.Duration
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return // closed by Close, Set (Down) or a failed start
			}
			if err != nil {
				// Out of file descriptors or similar: wait, as net/http
				// does, until the Net closes.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				if !sleep(n.ctx, backoff) {
					return
				}
				continue
			}
			backoff = 0
			if !n.track(c) {
				return
			}
			go func() {
				defer n.untrack(c)
				serve(c)
			}()
		}
	}()
}

// serveSMTP runs one SMTP session for whichever MX host owns addr now.
func (n *Net) serveSMTP(c net.Conn, addr netip.Addr) {
	n.mu.RLock()
	name := n.names[addr]
	m := n.mx[name]
	var conf MXHost
	if m != nil {
		conf = m.conf
	}
	n.mu.RUnlock()
	if m == nil {
		return // the port reservation address, or a removed host
	}
	log := n.log.With("mx", name, "remote", c.RemoteAddr().String())
	if conf.Hang {
		log.Debug("testnet: SMTP hang")
		// Never send a banner; swallow input until either side closes
		// (or maxHang passes).
		_ = c.SetReadDeadline(time.Now().Add(maxHang))
		_, _ = io.Copy(io.Discard, c)
		return
	}
	s := &smtpSession{n: n, raw: c, conn: c, name: name, conf: conf}
	s.r = bufio.NewReaderSize(c, 4096)
	s.w = bufio.NewWriter(c)
	err := s.run()
	log.Debug("testnet: SMTP session ended", "err", err)
}

type smtpSession struct {
	n    *Net
	raw  net.Conn
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	name string
	conf MXHost

	tls        bool
	tlsVersion uint16
	serverName string
	helo       bool
	from       *string
	to         []string
	errors     int
}

func (s *smtpSession) reply(code int, lines ...string) error {
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.w, "%d%s%s\r\n", code, sep, l)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	return s.w.Flush()
}

// readLine reads one line of at most limit bytes without its line ending.
// A longer line is consumed and reported as errLineTooLong.
func (s *smtpSession) readLine(limit int, deadline time.Time) ([]byte, error) {
	return readBoundedLine(s.conn, s.r, limit, deadline)
}

// readBoundedLine reads one line from r (which reads conn) by deadline, of
// at most limit bytes, and returns it without its line ending. A longer
// line is consumed and reported as errLineTooLong: hostile clients cannot
// make a session buffer without bound.
func readBoundedLine(conn net.Conn, r *bufio.Reader, limit int, deadline time.Time) ([]byte, error) {
	_ = conn.SetReadDeadline(deadline)
	var line []byte
	tooLong := false
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			tooLong = true
		} else {
			line = append(line, frag...)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	if tooLong {
		return nil, errLineTooLong
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func (s *smtpSession) reset() {
	s.from, s.to = nil, nil
}

func (s *smtpSession) run() error {
	if err := s.reply(220, s.name+" ESMTP testnet"); err != nil {
		return err
	}
	for range maxCommands {
		line, err := s.readLine(maxCommandLine, time.Now().Add(commandTimeout))
		if errors.Is(err, errLineTooLong) {
			if err := s.bad(500, "5.5.2 Line too long"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		verb, arg, _ := strings.Cut(string(line), " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToUpper(verb) {
		case "EHLO":
			if arg == "" {
				err = s.bad(501, "5.5.4 EHLO needs a domain")
				break
			}
			s.helo = true
			s.reset()
			ext := []string{s.name + " greets " + arg, "PIPELINING", "8BITMIME", "SIZE " + strconv.Itoa(MaxMessageSize)}
			if !s.tls && !s.conf.NoSTARTTLS {
				ext = append(ext, "STARTTLS")
			}
			err = s.reply(250, append(ext, "ENHANCEDSTATUSCODES")...)
		case "HELO":
			if arg == "" {
				err = s.bad(501, "5.5.4 HELO needs a domain")
				break
			}
			s.helo = true
			s.reset()
			err = s.reply(250, s.name)
		case "STARTTLS":
			err = s.startTLS(arg)
		case "MAIL":
			err = s.mail(arg)
		case "RCPT":
			err = s.rcpt(arg)
		case "DATA":
			err = s.data()
		case "RSET":
			s.reset()
			err = s.reply(250, "2.0.0 OK")
		case "NOOP":
			err = s.reply(250, "2.0.0 OK")
		case "VRFY":
			err = s.reply(252, "2.5.0 Cannot verify")
		case "QUIT":
			_ = s.reply(221, "2.0.0 "+s.name+" closing")
			return nil
		default:
			err = s.bad(500, "5.5.2 Unknown command")
		}
		if err != nil {
			return err
		}
	}
	_ = s.reply(421, "4.7.0 Too many commands")
	return errors.New("too many commands")
}

// bad replies with an error and ends the session after too many of them.
func (s *smtpSession) bad(code int, text string) error {
	s.errors++
	if s.errors > maxErrors {
		_ = s.reply(421, "4.7.0 Too many errors")
		return errors.New("too many errors")
	}
	return s.reply(code, text)
}

// startTLS runs the STARTTLS verb (RFC 3207).
func (s *smtpSession) startTLS(arg string) error {
	switch {
	case s.conf.NoSTARTTLS:
		return s.bad(502, "5.5.1 STARTTLS not supported")
	case s.tls:
		return s.bad(503, "5.5.1 TLS already active")
	case arg != "":
		return s.bad(501, "5.5.4 No parameters allowed")
	}
	if err := s.reply(220, "2.0.0 Ready to start TLS"); err != nil {
		return err
	}
	cert, err := s.n.ca.Leaf(s.name, s.conf.Cert, s.n.opts.CertValidity)
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		// RFC 8461 §7.1 (STS-CERT-6): SNI is not required; a missing or
		// unknown SNI still gets the host's certificate.
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if s.conf.HandshakeFail {
				return nil, errors.New("testnet: scripted handshake failure")
			}
			return tlsConfig(cert, s.conf.MaxTLS), nil
		},
		MinVersion: tls.VersionTLS10,
	}
	tc := tls.Server(s.raw, cfg)
	ctx, cancel := context.WithTimeout(s.n.ctx, handshakeTimout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	// RFC 3207 §4.2: forget everything learned before TLS, including any
	// plaintext pipelined after STARTTLS (it is dropped with the reader).
	s.conn, s.tls, s.tlsVersion, s.serverName = tc, true, st.Version, st.ServerName
	s.r = bufio.NewReaderSize(tc, 4096)
	s.w = bufio.NewWriter(tc)
	s.helo = false
	s.reset()
	return nil
}

// path extracts the address from "FROM:<a@b> params" style arguments.
func path(arg, prefix string) (addr, params string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", "", false
	}
	return rest[1:end], strings.TrimSpace(rest[end+1:]), true
}

func (s *smtpSession) mail(arg string) error {
	if !s.helo {
		return s.bad(503, "5.5.1 EHLO first")
	}
	if s.from != nil {
		return s.bad(503, "5.5.1 Nested MAIL")
	}
	from, params, ok := path(arg, "FROM:")
	if !ok {
		return s.bad(501, "5.5.4 Syntax: MAIL FROM:<address>")
	}
	for p := range strings.FieldsSeq(params) {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "SIZE") {
			if size, err := strconv.ParseInt(v, 10, 64); err == nil && size > MaxMessageSize {
				return s.bad(552, "5.3.4 Message too big")
			}
		}
	}
	s.from = &from
	return s.reply(250, "2.1.0 OK")
}

func (s *smtpSession) rcpt(arg string) error {
	if s.from == nil {
		return s.bad(503, "5.5.1 MAIL first")
	}
	to, _, ok := path(arg, "TO:")
	if !ok || to == "" {
		return s.bad(501, "5.5.4 Syntax: RCPT TO:<address>")
	}
	if len(s.to) >= maxRecipients {
		return s.bad(452, "4.5.3 Too many recipients")
	}
	s.to = append(s.to, to)
	return s.reply(250, "2.1.5 OK")
}

func (s *smtpSession) data() error {
	if len(s.to) == 0 {
		return s.bad(503, "5.5.1 RCPT first")
	}
	if err := s.reply(354, "Go ahead, end with <CRLF>.<CRLF>"); err != nil {
		return err
	}
	var buf bytes.Buffer
	tooBig := false
	// Bounded in time: each line within dataTimeout, the whole message
	// within maxDataTime; bytes beyond MaxMessageSize are discarded.
	end := time.Now().Add(maxDataTime)
	for {
		deadline := time.Now().Add(dataTimeout)
		if deadline.After(end) {
			deadline = end
		}
		line, err := s.readLine(maxTextLine, deadline)
		if errors.Is(err, errLineTooLong) {
			tooBig = true
			continue
		}
		if err != nil {
			return err
		}
		if string(line) == "." {
			break
		}
		// RFC 5321 §4.5.2: remove one leading dot (dot-stuffing).
		line = bytes.TrimPrefix(line, []byte("."))
		if buf.Len()+len(line)+2 > MaxMessageSize {
			tooBig = true
			continue
		}
		buf.Write(line)
		buf.WriteString("\r\n")
	}
	from, to := *s.from, s.to
	s.reset()
	if tooBig {
		return s.reply(552, "5.3.4 Message too big or line too long")
	}
	s.n.store(s.name, Message{
		From:       from,
		To:         to,
		Data:       buf.Bytes(),
		TLS:        s.tls,
		TLSVersion: s.tlsVersion,
		ServerName: s.serverName,
	})
	return s.reply(250, "2.0.0 OK queued")
}

func (n *Net) store(mxName string, m Message) {
	n.stats.Lock()
	defer n.stats.Unlock()
	msgs := append(n.received[mxName], m)
	if len(msgs) > maxMessagesKept {
		msgs = msgs[len(msgs)-maxMessagesKept:]
	}
	n.received[mxName] = msgs
}
