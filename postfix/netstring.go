package postfix

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxLengthDigits bounds the decimal length prefix of a netstring. Ten
// digits hold any length Postfix can send (its limits are far below 1e10),
// and bound how much we read before deciding the input is garbage (GO-11).
const maxLengthDigits = 10

// Netstring framing errors. Both mean the byte stream cannot be resynchronized:
// the caller should close the connection.
var (
	// ErrNetstringSyntax means the input is not a netstring: a non-digit or
	// a leading zero in the length, no ':' after at most 10 digits, or a
	// missing ',' after the payload (PFX-SOCKETMAP-2).
	ErrNetstringSyntax = errors.New("postfix: malformed netstring")
	// ErrNetstringTooLong means the announced length exceeds the reader's
	// cap. Close the connection; raise the cap only if the peer is trusted
	// to send larger frames.
	ErrNetstringTooLong = errors.New("postfix: netstring longer than the limit")
)

// NetstringReader reads netstrings (PFX-SOCKETMAP-2, GO-11) from a buffered
// stream. The zero value is not usable; call [NewNetstringReader].
type NetstringReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewNetstringReader returns a reader that rejects payloads longer than max
// bytes (max <= 0 means [DefaultMaxRequestSize]). If r is a *bufio.Reader it
// is used directly.
func NewNetstringReader(r io.Reader, max int) *NetstringReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	if max <= 0 {
		max = DefaultMaxRequestSize
	}
	return &NetstringReader{r: br, max: max}
}

// Next reads one netstring and returns its payload. The returned slice is
// only valid until the next call. The payload buffer is sized from the
// announced length (after the cap check), so keep the cap modest.
//
// Errors: io.EOF when the stream ends cleanly before a frame starts;
// io.ErrUnexpectedEOF (wrapped) when it ends inside a frame;
// [ErrNetstringSyntax] or [ErrNetstringTooLong] (wrapped) for bad frames;
// otherwise the underlying read error, wrapped.
func (nr *NetstringReader) Next() ([]byte, error) {
	n, err := nr.readLength()
	if err != nil {
		return nil, err
	}
	if cap(nr.buf) < n+1 {
		nr.buf = make([]byte, n+1, max(n+1, 64))
	}
	// Read the payload and the terminating comma in one call.
	b := nr.buf[:n+1]
	if _, err := io.ReadFull(nr.r, b); err != nil {
		return nil, fmt.Errorf("postfix: reading %d-byte netstring payload: %w", n, unexpected(err))
	}
	if b[n] != ',' {
		// RFC-less but Postfix netstring.c: the trailing comma is required.
		return nil, fmt.Errorf("%w: payload not followed by ','", ErrNetstringSyntax)
	}
	return b[:n], nil
}

// readLength reads "<digits>:" and returns the length, enforcing the cap
// while reading so a huge announced length is refused at once.
func (nr *NetstringReader) readLength() (int, error) {
	n := 0
	for i := 0; ; i++ {
		c, err := nr.r.ReadByte()
		if err != nil {
			if i == 0 && err == io.EOF {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("postfix: reading netstring length: %w", unexpected(err))
		}
		switch {
		case c == ':' && i > 0:
			return n, nil
		case c < '0' || c > '9':
			// PFX-SOCKETMAP-2: no sign, no spaces, no '+'.
			return 0, fmt.Errorf("%w: unexpected byte %q in length", ErrNetstringSyntax, c)
		case i == 1 && n == 0:
			return 0, fmt.Errorf("%w: leading zero in length", ErrNetstringSyntax)
		case i == maxLengthDigits:
			return 0, fmt.Errorf("%w: length has more than %d digits", ErrNetstringSyntax, maxLengthDigits)
		}
		n = n*10 + int(c-'0')
		if n > nr.max {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrNetstringTooLong, nr.max)
		}
	}
}

// unexpected turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendNetstring appends payload framed as a netstring to dst.
func AppendNetstring(dst []byte, payload string) []byte {
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, ':')
	dst = append(dst, payload...)
	return append(dst, ',')
}

// NetstringWriter writes netstrings to a buffered stream. Frames are only
// sent when Flush is called or the buffer fills.
type NetstringWriter struct {
	w *bufio.Writer
}

// NewNetstringWriter returns a writer on w. If w is a *bufio.Writer it is
// used directly.
func NewNetstringWriter(w io.Writer) *NetstringWriter {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriter(w)
	}
	return &NetstringWriter{w: bw}
}

// WriteString buffers one netstring holding the concatenation of parts,
// without allocating.
func (nw *NetstringWriter) WriteString(parts ...string) error {
	return writeNetstring(nw.w, parts...)
}

// Flush sends buffered frames.
func (nw *NetstringWriter) Flush() error { return nw.w.Flush() }

func writeNetstring(w *bufio.Writer, parts ...string) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	// AvailableBuffer keeps the length digits off the heap.
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(n), 10))
	w.WriteByte(':')
	for _, p := range parts {
		w.WriteString(p)
	}
	// bufio.Writer keeps the first error; returning it from the last call
	// covers all of the above.
	return w.WriteByte(',')
}
