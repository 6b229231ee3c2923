package postfix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server errors.
var (
	// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
	// or Close. It is the normal way for a server to end; callers should
	// treat it as success.
	ErrServerClosed = errors.New("postfix: server closed")
	// ErrMalformedRequest means a client sent a request that is well framed
	// but not valid protocol (no map name, bad %XX escape, key not UTF-8, an
	// unknown tcp_table command). The server answers with an error reply and
	// keeps the connection; nothing for the caller to do beyond logging.
	ErrMalformedRequest = errors.New("postfix: malformed request")
	// ErrRequestTooLong means a tcp_table request line exceeded the server's
	// MaxRequestSize. The server answers 400 and closes the connection.
	ErrRequestTooLong = errors.New("postfix: request too long")
)

// Defaults shared by both servers. The timeouts follow Postfix's own
// (PFX-SOCKETMAP-6, PFX-TCP-5): it gives up after 100 s, and closes idle
// connections itself after 10 s, so a longer server idle timeout only
// reclaims connections from clients that vanished.
const (
	DefaultMaxRequestSize = 10000 // socketmap_max_query_size (Postfix 3.12)
	DefaultMaxReplySize   = 100000
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultReadTimeout    = 100 * time.Second
	DefaultWriteTimeout   = 100 * time.Second
	// MaxTCPReplySize is the longest tcp_table reply Postfix reads,
	// including the LF (dict_tcp.c, PFX-TCP-3).
	MaxTCPReplySize = 4096
)

// Connection states; closeIfIdle races with the connection's own transition
// out of idle through a compare-and-swap.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// serverConn is one accepted connection as the shared core sees it.
type serverConn interface {
	serve()
	closeIfIdle() bool
	close()
}

// serverCore is the lifecycle shared by SocketmapServer and TCPTableServer:
// listener and connection tracking, Shutdown and Close. Its zero value is
// ready to use.
type serverCore struct {
	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[serverConn]struct{}
	ctx       context.Context // parent of every connection context
	cancel    context.CancelFunc
	done      chan struct{} // closed when shutting down
	closing   atomic.Bool
}

func (s *serverCore) initLocked() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.done = make(chan struct{})
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[serverConn]struct{})
	}
}

func (s *serverCore) shuttingDown() bool { return s.closing.Load() }

func (s *serverCore) baseContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	return s.ctx
}

func (s *serverCore) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if add {
		if s.shuttingDown() {
			return false
		}
		s.listeners[l] = struct{}{}
	} else {
		delete(s.listeners, l)
	}
	return true
}

func (s *serverCore) trackConn(c serverConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if add {
		if s.shuttingDown() {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

// serve accepts connections on l until it fails or the server shuts down.
func (s *serverCore) serve(l net.Listener, log *slog.Logger, newConn func(ctx context.Context, c net.Conn) serverConn) error {
	l = &onceCloseListener{Listener: l}
	defer l.Close()
	if !s.trackListener(&l, true) {
		return ErrServerClosed
	}
	defer s.trackListener(&l, false)
	warnIfExposed(log, l.Addr())
	ctx := s.baseContext()
	var delay time.Duration
	for {
		rw, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return ErrServerClosed
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("postfix: accept: %w", err)
			}
			// Out of descriptors or similar: back off (5 ms doubling to
			// 1 s) instead of spinning; Shutdown ends the wait.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		c := newConn(ctx, rw)
		if !s.trackConn(c, true) {
			rw.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.trackConn(c, false)
			c.serve()
		}()
	}
}

func temporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET)
}

// warnIfExposed logs a warning for a TCP listener that is not on loopback:
// the protocols have neither authentication nor encryption
// (PFX-SOCKETMAP-10, PFX-TCP-6).
func warnIfExposed(log *slog.Logger, a net.Addr) {
	if ta, ok := a.(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("listening on a non-loopback address; the Postfix table protocols have no authentication", "addr", a.String())
	}
}

// beginShutdown stops accepting; it reports whether this call started it.
func (s *serverCore) beginShutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if s.closing.Swap(true) {
		return
	}
	close(s.done)
	for l := range s.listeners {
		(*l).Close()
	}
}

// closeIdle closes idle connections and reports whether none are left.
func (s *serverCore) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.closeIfIdle()
	}
	return len(s.conns) == 0
}

func (s *serverCore) shutdown(ctx context.Context) error {
	s.beginShutdown()
	// Poll like net/http: quickly at first, then every 500 ms. Connections
	// that finish their request close themselves; idle ones are closed here.
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postfix: shutdown: %w", ctx.Err())
		case <-t.C:
			wait = min(2*wait, 500*time.Millisecond)
			t.Reset(wait)
		}
	}
}

func (s *serverCore) close() error {
	s.beginShutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel()
	for c := range s.conns {
		c.close()
	}
	return nil
}

// listen opens a listener for ListenAndServe.
func listen(network, addr string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("postfix: unsupported network %q (want tcp or unix)", network)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("postfix: listen: %w", err)
	}
	return l, nil
}

// onceCloseListener lets Serve's deferred Close and Shutdown both close it.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// connIO sits between a connection and its bufio reader and writer. It
// applies the timeouts, tracks the idle state for Shutdown, and flushes
// pending replies just before the reader would block: pipelined requests
// that are already buffered are answered with a single write.
type connIO struct {
	rwc  net.Conn
	core *serverCore
	br   *bufio.Reader
	bw   *bufio.Writer

	idleTimeout, readTimeout, writeTimeout time.Duration

	state atomic.Int32
	// waiting: the next read starts a new request (idle timeout, idle state).
	waiting bool
	// armRead: the next read inside a request sets a fresh read deadline.
	armRead bool
	// readDL and writeDL are the deadlines last set (unix nanoseconds).
	readDL, writeDL int64
}

// rearm decides whether a deadline must be set for a timeout t starting
// at now, given the one last set. Timeouts are enforced within [t, 1.25 t]:
// the deadline is only moved when the one set would end the timeout early
// or more than a quarter late, so a busy connection updates its timers
// about once per t/4 instead of twice per request.
func rearm(set *int64, now time.Time, t time.Duration) (time.Time, bool) {
	lo := now.UnixNano() + int64(t)
	hi := lo + int64(t/4)
	if *set >= lo && *set <= hi {
		return time.Time{}, false
	}
	*set = hi
	return time.Unix(0, hi), true
}

func (c *connIO) init(rwc net.Conn, core *serverCore, readBuf int, idle, read, write time.Duration) {
	c.rwc, c.core = rwc, core
	c.idleTimeout = orDefault(idle, DefaultIdleTimeout)
	c.readTimeout = orDefault(read, DefaultReadTimeout)
	c.writeTimeout = orDefault(write, DefaultWriteTimeout)
	c.br = bufio.NewReaderSize(c, readBuf)
	c.bw = bufio.NewWriterSize(writerFunc(c.write), 4096)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// beginRequest is called before reading each request.
func (c *connIO) beginRequest() {
	c.waiting = c.br.Buffered() == 0
	c.armRead = true
}

// Read implements io.Reader for the bufio.Reader.
func (c *connIO) Read(p []byte) (int, error) {
	if c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	var timeout time.Duration
	switch {
	case c.waiting:
		timeout = c.idleTimeout
		c.state.Store(stateIdle)
		if c.core.shuttingDown() {
			// Between requests during Shutdown: end like a clean EOF.
			c.closeIfIdle()
			return 0, io.EOF
		}
	case c.armRead:
		timeout = c.readTimeout
		c.armRead = false
	}
	if timeout > 0 {
		if dl, ok := rearm(&c.readDL, time.Now(), timeout); ok {
			c.rwc.SetReadDeadline(dl)
		}
	}
	n, err := c.rwc.Read(p)
	if c.waiting && n > 0 {
		c.waiting = false
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return 0, net.ErrClosed // closed by Shutdown while the bytes arrived
		}
	}
	return n, err
}

func (c *connIO) write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		if dl, ok := rearm(&c.writeDL, time.Now(), c.writeTimeout); ok {
			c.rwc.SetWriteDeadline(dl)
		}
	}
	return c.rwc.Write(p)
}

func (c *connIO) closeIfIdle() bool {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.rwc.Close()
		return true
	}
	return false
}

func (c *connIO) close() {
	c.state.Store(stateClosed)
	c.rwc.Close()
}

// finish flushes what is pending (best effort) and closes the connection.
func (c *connIO) finish() {
	if c.state.Load() != stateClosed && c.bw.Buffered() > 0 {
		c.bw.Flush()
	}
	c.close()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// discardLogger returns l, or a logger that drops everything when l is nil.
func discardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// callHandler runs the handler, turning a panic into a TEMP reply so one bad
// lookup cannot take the daemon down.
func callHandler(ctx context.Context, h Handler, log *slog.Logger, name, key string) (r Reply) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("handler panicked", "name", name, "key", key, "panic", v)
			r = Reply{Status: StatusTemp, Data: "internal error"}
		}
	}()
	return h.Lookup(ctx, name, key)
}
