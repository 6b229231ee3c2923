package mailclient

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads come from a script and whose
// writes are discarded.
type scriptConn struct {
	net.Conn
	r io.Reader
}

func (c scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c scriptConn) SetDeadline(time.Time) error      { return nil }
func (c scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (c scriptConn) Close() error                     { return nil }

// The cleartext phases never panic on hostile server bytes and read a
// bounded amount.
func FuzzSTARTTLSPhases(f *testing.F) {
	for _, s := range []string{
		"220 hi\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n",
		"* OK hi\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK\r\na2 OK go\r\n",
		"+OK hi\r\n+OK\r\nSTLS\r\n.\r\n+OK go\r\n",
		"* PREAUTH x\r\n", "220-a\r\n", "", "\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for p := range 3 {
			cr := &countReader{r: bytes.NewReader(data)}
			c := scriptConn{r: cr}
			br := bufio.NewReaderSize(c, maxLine)
			_, _ = StartTLS(c, br, Protocols()[p], "localhost", nil)
			if cr.n > 4*maxLine*maxLines {
				t.Fatalf("read %d bytes", cr.n)
			}
		}
	})
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
