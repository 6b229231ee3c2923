// Package tailbuf keeps the last bytes of a stream, for the output of child
// processes that tests and benchmarks show when something goes wrong.
package tailbuf

import "sync"

// Buffer keeps the last Max bytes written to it. It is safe for concurrent
// use (an exec.Cmd may write stdout and stderr from two goroutines).
type Buffer struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// New returns a Buffer keeping the last max bytes.
func New(max int) *Buffer { return &Buffer{Max: max} }

// Write implements io.Writer; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > b.Max {
		b.b = append(b.b[:0], b.b[len(b.b)-b.Max:]...)
	}
	return len(p), nil
}

// String returns the bytes kept.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}
