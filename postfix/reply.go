package postfix

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Status is the outcome of a table lookup. On the socketmap wire it is one of
// the exact, case-sensitive words OK, NOTFOUND, TEMP, TIMEOUT and PERM
// (PFX-SOCKETMAP-4); tcp_table maps it to a 200, 500 or 400 code (PFX-TCP-3).
//
// The zero value is not a valid status: a server that gets it from a
// handler answers TEMP (Postfix defers the mail) and logs an error, so a
// forgotten status fails closed rather than open.
type Status uint8

// The lookup statuses, with what Postfix does with each (PFX-SOCKETMAP-5).
const (
	// StatusOK: found; Reply.Data is the table value (must not be empty).
	StatusOK Status = iota + 1
	// StatusNotFound: not found; Postfix tries the next table, then its
	// default. Reply.Data is ignored on socketmap.
	StatusNotFound
	// StatusTemp: temporary failure; Postfix defers. Data is the reason.
	StatusTemp
	// StatusTimeout: like StatusTemp, for a timeout. Data is the reason.
	StatusTimeout
	// StatusPerm: permanent failure, a configuration error for Postfix; for
	// TLS policy lookups the mail is still deferred. Data is the reason.
	StatusPerm
)

var statusWords = [...]string{
	StatusOK:       "OK",
	StatusNotFound: "NOTFOUND",
	StatusTemp:     "TEMP",
	StatusTimeout:  "TIMEOUT",
	StatusPerm:     "PERM",
}

// String returns the socketmap wire word, or "Status(n)" for invalid values.
func (s Status) String() string {
	if s.Valid() {
		return statusWords[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Valid reports whether s is one of the five defined statuses.
func (s Status) Valid() bool { return s >= StatusOK && s <= StatusPerm }

// ParseStatus returns the status for a socketmap wire word. The comparison
// is exact and case-sensitive, as in Postfix's dict_sockmap.c: "ok" is not
// "OK" (PFX-SOCKETMAP-4).
func ParseStatus(word string) (Status, error) {
	for s := StatusOK; s <= StatusPerm; s++ {
		if statusWords[s] == word {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown status %q", ErrMalformedReply, word)
}

// Reply is the answer to one lookup.
type Reply struct {
	Status Status
	// Data is the value for StatusOK and the reason for the error statuses.
	Data string
}

// Convenience constructors, for handlers.

// Found returns an OK reply with the given value.
func Found(data string) Reply { return Reply{Status: StatusOK, Data: data} }

// NotFound returns a NOTFOUND reply.
func NotFound() Reply { return Reply{Status: StatusNotFound} }

// TempFail returns a TEMP reply with the given reason.
func TempFail(reason string) Reply { return Reply{Status: StatusTemp, Data: reason} }

// LogValue implements slog.LogValuer.
func (r Reply) LogValue() slog.Value {
	return slog.GroupValue(slog.String("status", r.Status.String()), slog.String("data", r.Data))
}

// replyLimitKey carries, in the context a server hands its Handler, the
// reply size limit of the connection the lookup came on.
type replyLimitKey struct{}

type replyLimit struct {
	max int  // socketmap: payload bytes
	tcp bool // tcp_table: MaxTCPReplySize for the whole line
}

func withReplyLimit(ctx context.Context, l replyLimit) context.Context {
	return context.WithValue(ctx, replyLimitKey{}, l)
}

// ReplyFits reports whether an OK reply with data fits the reply size
// limit of the connection the lookup in ctx came on: for tcp_table, 4096
// bytes with "200 ", the %XX encoding and the LF (PFX-TCP-3); for
// socketmap, the server's MaxReplySize with "OK " (PFX-SOCKETMAP-6). It is
// true when ctx is not a lookup's. The servers replace a reply that does not
// fit with TEMP (tcp_table: 400), which Postfix takes as a retry error on
// every lookup; a handler that can shorten its answer (leave out optional
// attributes) checks first.
func ReplyFits(ctx context.Context, data string) bool {
	l, ok := ctx.Value(replyLimitKey{}).(replyLimit)
	if !ok {
		return true
	}
	return l.fits(data)
}

// FitsListener reports whether an OK reply with data fits a listener's
// limit before any lookup: a tcp_table server's, or a socketmap server's
// with maxReplySize (0: DefaultMaxReplySize). Configurations check fixed
// answers with it, so that one too long is refused at start instead of
// answered with TEMP on every lookup.
func FitsListener(data string, tcpTable bool, maxReplySize int) bool {
	return replyLimit{max: positiveOr(maxReplySize, DefaultMaxReplySize), tcp: tcpTable}.fits(data)
}

func (l replyLimit) fits(data string) bool {
	if l.tcp {
		return len("200 ")+quotedDataLen(data)+1 <= MaxTCPReplySize
	}
	return len("OK ")+len(data) <= l.max
}

// ErrMalformedReply is returned by the clients when the server's answer is
// not valid protocol (an unknown status word, a bad tcp_table code, a bad
// %XX escape, a reply over the size limit). Postfix treats such an answer as
// a retry error and defers; a client connection that returned it is closed.
var ErrMalformedReply = errors.New("postfix: malformed reply")

// Handler answers table lookups for both [SocketmapServer] and
// [TCPTableServer]. For socketmap, name is the map name from the request
// (PFX-SOCKETMAP-1/3); for tcp_table it is the server's configured Name.
// The key is passed exactly as received (after %XX decoding for tcp_table):
// it is neither case-folded nor trimmed (PFX-SOCKETMAP-9); see
// [ParseNextHop] for TLS policy keys.
//
// Lookup is called from many goroutines at once, one per connection, and
// must be safe for concurrent use. ctx is canceled when the connection or
// the server is closed; a handler should answer well under Postfix's
// 100-second limit (PFX-SOCKETMAP-6). A panic is recovered: the client gets
// TEMP and the connection stays open.
type Handler interface {
	Lookup(ctx context.Context, name, key string) Reply
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, name, key string) Reply

// Lookup calls f.
func (f HandlerFunc) Lookup(ctx context.Context, name, key string) Reply { return f(ctx, name, key) }

// Observer receives server events, for metrics (STYLE 10: metrics stay out of
// library packages). Methods are called synchronously on the connection's
// goroutine, so they must be fast and safe for concurrent use.
type Observer interface {
	// ConnOpened and ConnClosed bracket each accepted connection.
	ConnOpened()
	ConnClosed()
	// Request is called after each answered request with the map name, the
	// status sent and the time the handler took.
	Request(name string, status Status, elapsed time.Duration)
	// ProtocolError is called for malformed client input; err wraps one of
	// ErrNetstringSyntax, ErrNetstringTooLong, ErrMalformedRequest or
	// ErrRequestTooLong.
	ProtocolError(err error)
}
