package postfix

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultMaxLineSize caps a tcp_table request line, LF included. Postfix's
// own lines are "get " plus a %XX-encoded key, far shorter.
const DefaultMaxLineSize = 4096

// TCPTableServer serves Postfix tcp_table lookups (tcp_table(5)): one
// request line "get SP <%XX-encoded key> LF" per lookup, on persistent
// connections (PFX-TCP-1, PFX-TCP-5). The zero value with a Handler is
// ready to use. PFX-TCP-6: Postfix warns against tcp tables for anything
// security-critical; prefer [SocketmapServer] on a unix socket for TLS
// policy.
//
// Replies (PFX-TCP-3), always three digits, a space and text:
//   - StatusOK → "200 <data>", data encoded per PFX-TCP-4 ('%' and control
//     characters as %XX; spaces and braces stay raw);
//   - StatusNotFound → "500 not found" (or "500 <data>" if Data is set);
//   - StatusTemp, StatusTimeout, StatusPerm → "400 <data>" (a default text
//     when Data is empty): Postfix only knows retry errors here.
//
// Decisions where tcp_table(5) is silent:
//   - a request Postfix would never send (bad %XX escape, no key, extra
//     fields, key not UTF-8) → "400 malformed request …": the client is
//     told to retry, never "not found", so a broken client fails closed;
//   - a well-formed but unknown command (e.g. "put") → "500 unsupported
//     command", as tcp_table(5) uses 500 for a rejected request;
//   - a line over MaxRequestSize → "400 request too long", then the
//     connection is closed (the rest of the line cannot be trusted);
//   - an encoded 200 reply longer than 4096 bytes → "400 reply too long"
//     (handlers can check [ReplyFits] first and shorten their answer).
//
// The command word is matched case-insensitively and a CR before the LF is
// ignored, so a person can test the server with nc or telnet.
type TCPTableServer struct {
	Handler Handler
	// Name is passed to the handler as the map name (tcp_table has none on
	// the wire).
	Name string
	// MaxRequestSize caps a request line, LF included (default 4096).
	MaxRequestSize int
	// Timeouts as for [SocketmapServer].
	IdleTimeout, ReadTimeout, WriteTimeout time.Duration
	// Logger receives protocol errors (Debug) and handler problems (Error).
	// Nil discards.
	Logger *slog.Logger
	// Observer, if set, receives connection and request events.
	Observer Observer

	core serverCore
}

// ListenAndServe listens on network ("tcp" or "unix") and addr, then calls
// Serve.
func (s *TCPTableServer) ListenAndServe(network, addr string) error {
	l, err := listen(network, addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l and serves each in its own goroutine. It
// always returns a non-nil error and closes l; after Shutdown or Close the
// error is ErrServerClosed.
func (s *TCPTableServer) Serve(l net.Listener) error {
	if s.Handler == nil {
		return errors.New("postfix: TCPTableServer.Handler is nil")
	}
	log := discardLogger(s.Logger)
	maxLine := positiveOr(s.MaxRequestSize, DefaultMaxLineSize)
	return s.core.serve(l, log, func(ctx context.Context, rwc net.Conn) serverConn {
		c := &tcpConn{srv: s, log: log}
		c.ctx, c.cancel = context.WithCancel(withReplyLimit(ctx, replyLimit{tcp: true}))
		// The read buffer holds a whole line, so ReadSlice never copies.
		c.init(rwc, &s.core, max(maxLine, 16), s.IdleTimeout, s.ReadTimeout, s.WriteTimeout)
		c.max = maxLine
		return c
	})
}

// Shutdown works as [SocketmapServer.Shutdown].
func (s *TCPTableServer) Shutdown(ctx context.Context) error { return s.core.shutdown(ctx) }

// Close works as [SocketmapServer.Close].
func (s *TCPTableServer) Close() error { return s.core.close() }

type tcpConn struct {
	connIO
	srv    *TCPTableServer
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	max    int
	keyBuf []byte
}

func (c *tcpConn) serve() {
	defer c.cancel()
	defer c.finish()
	obs := c.srv.Observer
	if obs != nil {
		obs.ConnOpened()
		defer obs.ConnClosed()
	}
	for {
		if c.core.shuttingDown() && c.br.Buffered() == 0 {
			return
		}
		c.beginRequest()
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			c.readError(line, err)
			return
		}
		var start time.Time
		if obs != nil {
			start = time.Now()
		}
		r := c.handle(line)
		if obs != nil {
			obs.Request(c.srv.Name, r.Status, time.Since(start))
		}
		if err := writeTCPReply(c.bw, r); err != nil {
			c.log.Debug("tcp_table write failed", "remote", c.rwc.RemoteAddr().String(), "err", err)
			return
		}
	}
}

func (c *tcpConn) readError(partial []byte, err error) {
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		c.protocolError(fmt.Errorf("%w: more than %d bytes", ErrRequestTooLong, c.max))
		writeTCPReply(c.bw, Reply{Status: StatusTemp, Data: "request too long"})
	case errors.Is(err, io.EOF):
		if len(partial) > 0 {
			c.protocolError(fmt.Errorf("%w: unterminated line", ErrMalformedRequest))
		}
	case errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("tcp_table connection timed out", "remote", c.rwc.RemoteAddr().String())
	default:
		c.log.Debug("tcp_table read failed", "remote", c.rwc.RemoteAddr().String(), "err", err)
	}
}

func (c *tcpConn) protocolError(err error) {
	c.log.Debug("tcp_table protocol error", "remote", c.rwc.RemoteAddr().String(), "err", err)
	if c.srv.Observer != nil {
		c.srv.Observer.ProtocolError(err)
	}
}

func (c *tcpConn) malformed(why string) Reply {
	c.protocolError(fmt.Errorf("%w: %s", ErrMalformedRequest, why))
	return Reply{Status: StatusTemp, Data: "malformed request: " + why}
}

// handle answers one request line (LF included).
func (c *tcpConn) handle(line []byte) Reply {
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	// PFX-TCP-1: fields are separated by whitespace.
	cmd, rest := line, []byte(nil)
	if i := bytes.IndexAny(line, " \t"); i >= 0 {
		cmd, rest = line[:i], line[i+1:]
	}
	if !bytes.EqualFold(cmd, []byte("get")) {
		if len(bytes.TrimSpace(line)) == 0 {
			return c.malformed("empty line")
		}
		c.protocolError(fmt.Errorf("%w: unsupported command %.20q", ErrMalformedRequest, cmd))
		return Reply{Status: StatusNotFound, Data: "unsupported command"}
	}
	rest = bytes.Trim(rest, " \t")
	if len(rest) == 0 {
		return c.malformed("no key")
	}
	if bytes.ContainsAny(rest, " \t") {
		return c.malformed("more than one key")
	}
	// PFX-TCP-2: the server decodes the key.
	// The scratch buffer is reused, so only the key string allocates.
	var err error
	c.keyBuf, err = appendUnquote(c.keyBuf[:0], rest)
	if err != nil {
		return c.malformed("bad hex escape")
	}
	if !utf8.Valid(c.keyBuf) {
		return c.malformed("key is not valid UTF-8")
	}
	key := string(c.keyBuf)
	r := callHandler(c.ctx, c.srv.Handler, c.log, c.srv.Name, key)
	switch {
	case !r.Status.Valid():
		c.log.Error("handler returned an invalid status; answering 400", "key", key, "status", r.Status.String())
		return Reply{Status: StatusTemp, Data: "internal error: invalid reply"}
	case r.Status == StatusOK && r.Data == "":
		c.log.Error("handler returned OK without data; answering 400", "key", key)
		return Reply{Status: StatusTemp, Data: "internal error: empty reply"}
	case r.Status == StatusOK && 4+quotedDataLen(r.Data)+1 > MaxTCPReplySize:
		c.log.Error("handler reply over the tcp_table limit; answering 400", "key", key, "size", len(r.Data))
		return Reply{Status: StatusTemp, Data: "internal error: reply too long"}
	}
	return r
}

// writeTCPReply writes one reply line. Error texts are truncated to fit the
// 4096-byte reply limit; OK data was checked by the caller.
func writeTCPReply(w *bufio.Writer, r Reply) error {
	code, text := tcpCode(r)
	w.WriteString(code)
	if r.Status != StatusOK {
		text = truncateQuoted(text, MaxTCPReplySize-len(code)-1)
	}
	appendQuotedData(w, text)
	return w.WriteByte('\n')
}

func tcpCode(r Reply) (code, text string) {
	switch r.Status {
	case StatusOK:
		return "200 ", r.Data
	case StatusNotFound:
		return "500 ", cmpOr(r.Data, "not found")
	case StatusTimeout:
		return "400 ", cmpOr(r.Data, "timeout")
	case StatusPerm:
		return "400 ", cmpOr(r.Data, "permanent error")
	default:
		return "400 ", cmpOr(r.Data, "temporary error")
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// truncateQuoted shortens s so that its quoted form fits in n bytes.
func truncateQuoted(s string, n int) string {
	if quotedDataLen(s) <= n {
		return s
	}
	size := 0
	for i := 0; i < len(s); i++ {
		w := 1
		if needsDataQuote(s[i]) {
			w = 3
		}
		if size+w > n {
			for i > 0 && !utf8.RuneStart(s[i]) {
				i-- // do not split a UTF-8 sequence
			}
			return s[:i]
		}
		size += w
	}
	return s
}

// --- %XX encoding (Postfix hex_quote.c) ---

const hexDigits = "0123456789ABCDEF"

// needsKeyQuote mirrors Postfix's hex_quote: '%', whitespace and anything
// not printable ASCII become %XX (PFX-TCP-2).
func needsKeyQuote(c byte) bool { return c == '%' || c <= ' ' || c >= 0x7f }

// needsDataQuote is the lighter rule for reply data (PFX-TCP-4): '%' and
// control characters; spaces, braces and UTF-8 stay raw.
func needsDataQuote(c byte) bool { return c == '%' || c < ' ' || c == 0x7f }

// QuoteTCP encodes s as Postfix's tcp_table client encodes a key: '%',
// whitespace and every byte that is not printable ASCII become %XX with
// uppercase hex (PFX-TCP-2).
func QuoteTCP(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsKeyQuote(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnquoteTCP decodes %XX escapes, accepting either hex case (PFX-TCP-2).
// A '%' not followed by two hex digits is an error wrapping
// ErrMalformedRequest; other bytes are copied as they are.
func UnquoteTCP(s string) (string, error) {
	b, err := appendUnquote(nil, []byte(s))
	return string(b), err
}

func appendUnquote(dst, s []byte) ([]byte, error) {
	if bytes.IndexByte(s, '%') < 0 {
		return append(dst, s...), nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(s) {
			return dst, fmt.Errorf("%w: truncated %%XX escape", ErrMalformedRequest)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return dst, fmt.Errorf("%w: bad %%XX escape %q", ErrMalformedRequest, s[i:i+3])
		}
		dst = append(dst, hi<<4|lo)
		i += 2
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func quotedDataLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if needsDataQuote(s[i]) {
			n += 2
		}
	}
	return n
}

// appendQuotedData writes s with the reply-data encoding, in runs, without
// allocating.
func appendQuotedData(w *bufio.Writer, s string) {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !needsDataQuote(c) {
			continue
		}
		w.WriteString(s[start:i])
		w.WriteByte('%')
		w.WriteByte(hexDigits[c>>4])
		w.WriteByte(hexDigits[c&15])
		start = i + 1
	}
	w.WriteString(s[start:])
}
