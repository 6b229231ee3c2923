package postfix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
	"unicode/utf8"
)

// SocketmapServer serves Postfix socketmap lookups (socketmap_table(5)) over
// persistent connections. The zero value with a Handler is ready to use;
// zero fields take the defaults named below.
//
// Error handling, by layer:
//   - framing errors (bad length, missing ',', truncated frame, length over
//     MaxRequestSize) close the connection, because the stream cannot be
//     resynchronized (PFX-SOCKETMAP-8); replies to earlier requests are
//     flushed first;
//   - a valid frame with bad content (no space, empty map name, payload not
//     UTF-8) is answered "PERM <reason>" and the connection stays open;
//   - a handler reply that Postfix could not use (invalid status, OK with
//     empty data, data over MaxReplySize) is replaced by "TEMP <reason>" and
//     logged, so Postfix defers instead of misreading it.
type SocketmapServer struct {
	Handler Handler
	// MaxRequestSize caps the request payload in bytes (default 10000,
	// Postfix's socketmap_max_query_size).
	MaxRequestSize int
	// MaxReplySize caps the reply payload in bytes (default 100000,
	// Postfix's socketmap_max_reply_size).
	MaxReplySize int
	// IdleTimeout closes a connection that sends no request for this long
	// (default 5m). ReadTimeout bounds reading the rest of a request once
	// its first bytes arrived, WriteTimeout each write of buffered replies
	// (default 100s each, Postfix's own limit). A negative value disables
	// the timeout. Deadlines are only set before a read that would block,
	// so pipelined requests already buffered cost no timer updates, and a
	// deadline still set is kept while it ends the timeout at most a quarter
	// late: timeouts fire between 1 and 1.25 times their value.
	IdleTimeout, ReadTimeout, WriteTimeout time.Duration
	// Logger receives protocol errors (Debug) and handler problems (Error).
	// Nil discards.
	Logger *slog.Logger
	// Observer, if set, receives connection and request events.
	Observer Observer

	core serverCore
}

// ListenAndServe listens on network ("tcp" or "unix") and addr, then calls
// Serve. PFX-SOCKETMAP-10: listen on loopback or a unix socket only.
func (s *SocketmapServer) ListenAndServe(network, addr string) error {
	l, err := listen(network, addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l and serves each in its own goroutine. It
// always returns a non-nil error and closes l; after Shutdown or Close the
// error is ErrServerClosed.
func (s *SocketmapServer) Serve(l net.Listener) error {
	if s.Handler == nil {
		return errors.New("postfix: SocketmapServer.Handler is nil")
	}
	log := discardLogger(s.Logger)
	return s.core.serve(l, log, func(ctx context.Context, rwc net.Conn) serverConn {
		c := &smConn{srv: s, log: log}
		c.maxReply = positiveOr(s.MaxReplySize, DefaultMaxReplySize)
		c.ctx, c.cancel = context.WithCancel(withReplyLimit(ctx, replyLimit{max: c.maxReply}))
		c.init(rwc, &s.core, 4096, s.IdleTimeout, s.ReadTimeout, s.WriteTimeout)
		c.nr = NetstringReader{r: c.br, max: positiveOr(s.MaxRequestSize, DefaultMaxRequestSize)}
		return c
	})
}

// Shutdown stops accepting, closes idle connections, and waits until the
// in-flight requests are answered and their connections closed, or until
// ctx is done (then it returns ctx's error wrapped, and the remaining
// connections keep running; call Close to end them). Requests a client has
// already pipelined are answered before its connection closes; a request
// that is only partly received counts as in flight until it completes or
// ReadTimeout expires. Handlers' contexts are not canceled by Shutdown.
func (s *SocketmapServer) Shutdown(ctx context.Context) error { return s.core.shutdown(ctx) }

// Close stops accepting, closes every connection at once and cancels the
// handlers' contexts. It does not wait for handlers to return.
func (s *SocketmapServer) Close() error { return s.core.close() }

func positiveOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

type smConn struct {
	connIO
	srv      *SocketmapServer
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	nr       NetstringReader
	maxReply int
	// lastName caches the map name: Postfix sends the same one on every
	// request, so converting it to a string once saves an allocation.
	lastName string
}

func (c *smConn) serve() {
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
		payload, err := c.nr.Next()
		if err != nil {
			c.readError(err)
			return
		}
		var start time.Time
		if obs != nil {
			start = time.Now()
		}
		name, r := c.handle(payload)
		if obs != nil {
			obs.Request(name, r.Status, time.Since(start))
		}
		if err := writeNetstring(c.bw, statusWords[r.Status], " ", r.Data); err != nil {
			c.log.Debug("socketmap write failed", "remote", c.rwc.RemoteAddr().String(), "err", err)
			return
		}
	}
}

func (c *smConn) readError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, ErrNetstringSyntax), errors.Is(err, ErrNetstringTooLong), errors.Is(err, io.ErrUnexpectedEOF):
		c.protocolError(err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("socketmap connection timed out", "remote", c.rwc.RemoteAddr().String())
	default:
		c.log.Debug("socketmap read failed", "remote", c.rwc.RemoteAddr().String(), "err", err)
	}
}

func (c *smConn) protocolError(err error) {
	c.log.Debug("socketmap protocol error", "remote", c.rwc.RemoteAddr().String(), "err", err)
	if c.srv.Observer != nil {
		c.srv.Observer.ProtocolError(err)
	}
}

// handle answers one request payload "<name> SP <key>"; the returned reply
// has a valid status.
func (c *smConn) handle(payload []byte) (string, Reply) {
	// PFX-SOCKETMAP-3: split at the first space.
	sp := bytes.IndexByte(payload, ' ')
	if sp <= 0 {
		c.protocolError(fmt.Errorf("%w: no map name", ErrMalformedRequest))
		return "", Reply{Status: StatusPerm, Data: "malformed request: expected <name> <key>"}
	}
	// PFX-SOCKETMAP-9: keys must be valid UTF-8.
	if !utf8.Valid(payload) {
		c.protocolError(fmt.Errorf("%w: not UTF-8", ErrMalformedRequest))
		return "", Reply{Status: StatusPerm, Data: "malformed request: not valid UTF-8"}
	}
	if string(payload[:sp]) != c.lastName { // no allocation for the comparison
		c.lastName = string(payload[:sp])
	}
	name, key := c.lastName, string(payload[sp+1:])
	r := callHandler(c.ctx, c.srv.Handler, c.log, name, key)
	switch {
	case !r.Status.Valid():
		c.log.Error("handler returned an invalid status; answering TEMP", "name", name, "key", key, "status", r.Status.String())
		r = Reply{Status: StatusTemp, Data: "internal error: invalid reply"}
	case r.Status == StatusOK && r.Data == "":
		// PFX-SOCKETMAP-4: always send non-empty data with OK.
		c.log.Error("handler returned OK without data; answering TEMP", "name", name, "key", key)
		r = Reply{Status: StatusTemp, Data: "internal error: empty reply"}
	case r.Status == StatusNotFound:
		// PFX-SOCKETMAP-4: exactly "NOTFOUND " (9:NOTFOUND ,).
		r.Data = ""
	}
	if len(statusWords[r.Status])+1+len(r.Data) > c.maxReply {
		// Handlers can check ReplyFits first and shorten their answer.
		c.log.Error("handler reply over the size limit; answering TEMP", "name", name, "key", key, "size", len(r.Data), "limit", c.maxReply)
		r = Reply{Status: StatusTemp, Data: "internal error: reply too large"}
	}
	return name, r
}
