package libtlsrpt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
)

// MaxDatagram is the largest datagram read whole. libtlsrpt sends one
// delivery request per datagram, a few hundred bytes to a few KiB; a
// larger one is cut by the kernel and counted as too large.
const MaxDatagram = 256 << 10

// Recorder takes the results (outgoing.Recorder).
type Recorder interface {
	Record(ctx context.Context, r outgoing.Result) error
}

// Stats count what a Collector heard.
type Stats struct {
	Datagrams        uint64 // read from the socket
	Sessions         uint64 // results handed to the Recorder and accepted
	Malformed        uint64 // not the protocol's JSON
	TooLarge         uint64 // over MaxDatagram, cut by the kernel
	OtherVersion     uint64 // a datagram protocol version other than "1"
	NoVersion        uint64 // no dpv (taken as version 1)
	UnknownCodes     uint64 // failure details with an unknown code, dropped
	DetailsOnSuccess uint64 // failure details of successful sessions, dropped
	CountMismatch    uint64 // policies whose t differs from their details
	Invalid          uint64 // results a report could not carry (Recorder refused)
	Dropped          uint64 // results the Recorder dropped (its buffer was full)
}

// Collector reads libtlsrpt datagrams from a Unix datagram socket and
// records their results. Bad input is counted and logged (at most one line
// a second per kind) and never stops it.
type Collector struct {
	Recorder Recorder
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock that dates results; nil is time.Now. libtlsrpt's
	// datagrams carry no time: a session counts on the UTC day it is
	// received, as with tlsrpt-collectd.
	Now func() time.Time
	// MaxDatagram is the largest datagram taken; 0 means MaxDatagram.
	MaxDatagram int

	datagrams, sessions, malformed, tooLarge, otherVersion, noVersion atomic.Uint64
	unknownCodes, detailsOnSuccess, countMismatch, invalid, dropped   atomic.Uint64
	lastLog                                                           [4]atomic.Int64
}

// Stats returns the counters.
func (c *Collector) Stats() Stats {
	return Stats{
		Datagrams: c.datagrams.Load(), Sessions: c.sessions.Load(), Malformed: c.malformed.Load(),
		TooLarge: c.tooLarge.Load(), OtherVersion: c.otherVersion.Load(), NoVersion: c.noVersion.Load(),
		UnknownCodes: c.unknownCodes.Load(), DetailsOnSuccess: c.detailsOnSuccess.Load(),
		CountMismatch: c.countMismatch.Load(), Invalid: c.invalid.Load(), Dropped: c.dropped.Load(),
	}
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Kinds of rate-limited log lines.
const (
	logMalformed = iota
	logVersion
	logInvalid
	logDropped
)

// warn logs at most once a second per kind.
func (c *Collector) warn(kind int, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := c.lastLog[kind].Load()
	if now-last < int64(time.Second) || !c.lastLog[kind].CompareAndSwap(last, now) {
		return
	}
	c.logger().Warn(msg, args...)
}

// Handle processes one datagram.
func (c *Collector) Handle(ctx context.Context, b []byte) {
	c.datagrams.Add(1)
	d, err := Parse(b)
	switch {
	case errors.Is(err, ErrVersion):
		n := c.otherVersion.Add(1)
		c.warn(logVersion, "tlsrpt collect: datagram of another protocol version ignored", "err", err, "total", n)
		return
	case err != nil:
		n := c.malformed.Add(1)
		c.warn(logMalformed, "tlsrpt collect: malformed datagram ignored", "err", err, "bytes", len(b), "total", n)
		return
	}
	if d.Version == "" {
		c.noVersion.Add(1)
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	rs, notes := d.Results(now)
	c.unknownCodes.Add(uint64(notes.UnknownCodes))
	c.detailsOnSuccess.Add(uint64(notes.DetailsOnSuccess))
	c.countMismatch.Add(uint64(notes.CountMismatch))
	for _, r := range rs {
		err := c.Recorder.Record(ctx, r)
		switch {
		case err == nil:
			c.sessions.Add(1)
		case errors.Is(err, outgoing.ErrInvalidResult):
			n := c.invalid.Add(1)
			c.warn(logInvalid, "tlsrpt collect: result not reportable, ignored", "domain", d.Domain, "err", err, "total", n)
		default:
			n := c.dropped.Add(1)
			c.warn(logDropped, "tlsrpt collect: result dropped", "domain", d.Domain, "err", err, "total", n)
		}
	}
}

// readQueue is how many datagrams may wait between the reading goroutine
// and the handling one.
const readQueue = 4096

// Serve reads datagrams from conn until ctx ends or conn is closed. When
// ctx ends it reads what the kernel still holds for conn (drainMax
// datagrams at most, until none has come for drainIdle), closes conn,
// handles every datagram read, and returns nil.
//
// One goroutine only reads, another parses and records: the socket is
// drained at the speed of a read, so the kernel's short queue of a Unix
// datagram socket (net.unix.max_dgram_qlen, 10 by default), which drops
// libtlsrpt's non-blocking sends when full, empties while the handler
// works; what was read waits in a queue of readQueue datagrams (when that
// is full the reader waits, and the kernel's queue holds the rest).
func (c *Collector) Serve(ctx context.Context, conn *net.UnixConn) error {
	// Wake the blocked read when ctx ends; read then drains what the
	// kernel still holds and Serve closes conn.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	defer conn.Close()
	queue := make(chan []byte, readQueue)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		// What was read is handled after ctx ends too: not lost.
		hctx := context.WithoutCancel(ctx)
		for b := range queue {
			c.Handle(hctx, b)
		}
	}()
	err := c.read(ctx, conn, queue)
	close(queue)
	<-handled
	return err
}

// What Serve reads after ctx has ended: sends that were accepted before
// (Postfix's smtp processes saw them succeed) are not lost at a stop.
const (
	drainMax  = 2 * readQueue
	drainIdle = 20 * time.Millisecond
)

// read reads datagrams into queue, each in a copy of its own; once ctx
// has ended, only what conn's queue still holds.
func (c *Collector) read(ctx context.Context, conn *net.UnixConn, queue chan<- []byte) error {
	limit := c.MaxDatagram
	if limit <= 0 {
		limit = MaxDatagram
	}
	buf := make([]byte, limit+1)
	oob := make([]byte, 0)
	drained := 0 // reads since ctx ended
	for {
		if ctx.Err() != nil {
			if drained == drainMax || conn.SetReadDeadline(time.Now().Add(drainIdle)) != nil {
				return nil
			}
			drained++
		}
		n, _, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			switch {
			case errors.Is(err, net.ErrClosed), drained > 0:
				return nil
			case ctx.Err() != nil:
				continue // woken at the stop: drain
			}
			// A passing error (ENOBUFS and the like): note it, go on
			// after a pause, so that a lasting one does not spin.
			c.logger().Warn("tlsrpt collect: read", "err", err)
			if errors.Is(err, syscall.EBADF) {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if flags&syscall.MSG_TRUNC != 0 || n > limit {
			c.datagrams.Add(1)
			t := c.tooLarge.Add(1)
			c.warn(logMalformed, "tlsrpt collect: datagram over the size cap ignored", "cap", limit, "total", t)
			continue
		}
		queue <- append([]byte(nil), buf[:n]...)
	}
}

// Listen creates the Unix datagram socket at path with the given file
// mode (Postfix's smtp processes must be able to write to it), removing a
// stale socket file left by an earlier run. Anything else at path is an
// error, not removed. The caller removes path after closing the socket.
func Listen(path string, mode os.FileMode) (*net.UnixConn, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("libtlsrpt: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("libtlsrpt: remove stale socket: %w", err)
		}
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("libtlsrpt: listen: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		conn.Close()
		return nil, fmt.Errorf("libtlsrpt: %w", err)
	}
	// Room for bursts while the reader is busy: the sender's sendto is
	// non-blocking and drops what does not fit.
	_ = conn.SetReadBuffer(4 << 20)
	return conn, nil
}
