package mtasts

import (
	"context"
	"errors"
	"io"
	"net"
)

// Temporary reports whether a discovery error may go away by itself soon: a
// DNS lookup failure (ErrDNS), or a policy host that could not be resolved
// or reached, or did not answer within the time limit. Answers are not
// temporary: a status other than 200, a body over the cap, a policy host
// without an address, an invalid policy or certificate.
//
// Callers use it to decide OPEN-1: with nothing cached, defer delivery
// briefly on a temporary failure instead of treating the domain as having
// no policy. It also holds for failures the Cache brings back from its
// Store (see Remembered).
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrDNS) {
		return true
	}
	var t interface{ temporary() bool }
	return errors.As(err, &t) && t.temporary()
}

// Remembered reports whether err was brought back from a Store (a failure
// of an earlier attempt) rather than seen by this call.
func Remembered(err error) bool {
	var c *cachedError
	return errors.As(err, &c)
}

// temporaryError marks its cause as temporary without changing its text.
type temporaryError struct{ err error }

func (e *temporaryError) Error() string   { return e.err.Error() }
func (e *temporaryError) Unwrap() error   { return e.err }
func (e *temporaryError) temporary() bool { return true }

// markTemporary wraps err as temporary.
func markTemporary(err error) error { return &temporaryError{err: err} }

// transportTemporary reports whether an error of the HTTP exchange is a
// network accident (reset, refused, timeout, cut short) rather than a
// protocol answer such as a TLS alert.
func transportTemporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}
