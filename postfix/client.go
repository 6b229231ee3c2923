package postfix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrClientBroken is returned by a client after an earlier call failed in a
// way that leaves the stream out of step (an I/O error, a canceled context,
// a malformed reply). Close the client and dial a new one.
var ErrClientBroken = errors.New("postfix: client connection unusable after an earlier error")

// clientConn holds what both clients share: the connection, buffers, and
// the sticky error.
type clientConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	err  error
}

func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("postfix: dial: %w", err)
	}
	return c, nil
}

// begin applies ctx to the connection for one call and returns the function
// that ends the call. A canceled ctx interrupts blocked I/O through an
// expired deadline.
func (c *clientConn) begin(ctx context.Context) (end func(err error) error, err error) {
	if c.err != nil {
		return nil, c.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, _ := ctx.Deadline()
	c.conn.SetDeadline(d)
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	}
	return func(err error) error {
		stop()
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = fmt.Errorf("%w (%w)", ctxErr, err)
			}
			c.err = fmt.Errorf("%w: %w", ErrClientBroken, err)
		}
		return err
	}, nil
}

// Close closes the connection.
func (c *clientConn) Close() error { return c.conn.Close() }

// SocketmapClient is a socketmap client, for tests, benchmarks, load
// generation and health checks; Postfix is the production client. It is safe
// for sequential use only: one call at a time.
type SocketmapClient struct {
	clientConn
	nr NetstringReader
	nw NetstringWriter
}

// DialSocketmap connects to a socketmap server; network is "tcp" or "unix".
func DialSocketmap(ctx context.Context, network, addr string) (*SocketmapClient, error) {
	conn, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return NewSocketmapClient(conn), nil
}

// NewSocketmapClient returns a client on an established connection.
// Replies are capped at DefaultMaxReplySize bytes, as in Postfix.
func NewSocketmapClient(conn net.Conn) *SocketmapClient {
	c := &SocketmapClient{}
	c.conn = conn
	c.br = bufio.NewReader(conn)
	c.bw = bufio.NewWriter(conn)
	c.nr = NetstringReader{r: c.br, max: DefaultMaxReplySize}
	c.nw = NetstringWriter{w: c.bw}
	return c
}

// Lookup sends "<name> <key>" and returns the reply. The error is non-nil
// for I/O failures and malformed replies (wrapping ErrMalformedReply); any
// error makes the client unusable.
func (c *SocketmapClient) Lookup(ctx context.Context, name, key string) (Reply, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return Reply{}, err
	}
	c.nw.WriteString(name, " ", key)
	if err := c.bw.Flush(); err != nil {
		return Reply{}, end(fmt.Errorf("postfix: socketmap send: %w", err))
	}
	r, err := c.receive()
	return r, end(err)
}

// LookupMany pipelines one request per key on the connection and returns
// the replies in order (PFX-SOCKETMAP-7). Requests are written by a second
// goroutine while replies are read, so large batches cannot deadlock on full
// socket buffers.
func (c *SocketmapClient) LookupMany(ctx context.Context, name string, keys []string) ([]Reply, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	werr := make(chan error, 1)
	go func() {
		for _, k := range keys {
			c.nw.WriteString(name, " ", k)
		}
		werr <- c.bw.Flush()
	}()
	replies := make([]Reply, 0, len(keys))
	var rerr error
	for range keys {
		r, err := c.receive()
		if err != nil {
			rerr = err
			c.conn.SetDeadline(time.Unix(1, 0)) // unblock the writer
			break
		}
		replies = append(replies, r)
	}
	if err := <-werr; err != nil && rerr == nil {
		rerr = fmt.Errorf("postfix: socketmap send: %w", err)
	}
	return replies, end(rerr)
}

func (c *SocketmapClient) receive() (Reply, error) {
	p, err := c.nr.Next()
	if err != nil {
		return Reply{}, fmt.Errorf("postfix: socketmap receive: %w", err)
	}
	return ParseSocketmapReply(string(p))
}

// ParseSocketmapReply parses a reply payload as Postfix does: the status is
// the text before the first space, compared exactly; a status with no
// space and no data ("NOTFOUND") is accepted (PFX-SOCKETMAP-4). Errors wrap
// ErrMalformedReply.
func ParseSocketmapReply(payload string) (Reply, error) {
	word, data, _ := strings.Cut(payload, " ")
	st, err := ParseStatus(word)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Status: st, Data: data}, nil
}

// TCPTableClient is a tcp_table client, for tests and health checks. It is
// safe for sequential use only.
type TCPTableClient struct {
	clientConn
}

// DialTCPTable connects to a tcp_table server; network is "tcp" or "unix".
func DialTCPTable(ctx context.Context, network, addr string) (*TCPTableClient, error) {
	conn, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return NewTCPTableClient(conn), nil
}

// NewTCPTableClient returns a client on an established connection.
func NewTCPTableClient(conn net.Conn) *TCPTableClient {
	c := &TCPTableClient{}
	c.conn = conn
	c.br = bufio.NewReaderSize(conn, MaxTCPReplySize)
	c.bw = bufio.NewWriter(conn)
	return c
}

// Get sends "get <QuoteTCP(key)>" and returns the reply: 2xx → StatusOK with
// the decoded data, 5xx → StatusNotFound, 4xx → StatusTemp, each with the
// decoded text. A reply Postfix would call malformed (PFX-TCP-3: not three
// digits and whitespace, another first digit, over 4096 bytes, bad %XX)
// is an error wrapping ErrMalformedReply.
func (c *TCPTableClient) Get(ctx context.Context, key string) (Reply, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return Reply{}, err
	}
	c.bw.WriteString("get ")
	c.bw.WriteString(QuoteTCP(key))
	c.bw.WriteByte('\n')
	if err := c.bw.Flush(); err != nil {
		return Reply{}, end(fmt.Errorf("postfix: tcp_table send: %w", err))
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = fmt.Errorf("%w: longer than %d bytes", ErrMalformedReply, MaxTCPReplySize)
		}
		return Reply{}, end(fmt.Errorf("postfix: tcp_table receive: %w", err))
	}
	r, err := ParseTCPReply(string(line[:len(line)-1]))
	return r, end(err)
}

// ParseTCPReply parses one reply line without its LF, as Postfix's
// dict_tcp.c does (PFX-TCP-3). Errors wrap ErrMalformedReply.
func ParseTCPReply(line string) (Reply, error) {
	if len(line) < 4 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) || !isSpace(line[3]) {
		return Reply{}, fmt.Errorf("%w: %.30q", ErrMalformedReply, line)
	}
	var st Status
	switch line[0] {
	case '2':
		st = StatusOK
	case '4':
		st = StatusTemp
	case '5':
		st = StatusNotFound
	default:
		return Reply{}, fmt.Errorf("%w: unexpected code %.3s", ErrMalformedReply, line)
	}
	data, err := appendUnquote(nil, []byte(line[4:]))
	if err != nil {
		return Reply{}, fmt.Errorf("%w: %w", ErrMalformedReply, err)
	}
	return Reply{Status: st, Data: string(data)}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}
