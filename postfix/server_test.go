package postfix

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every blocking step of the network tests. It is
// generous: it only fires when something is broken.
const testTimeout = 10 * time.Second

// fixtureHandler answers as the mailsts policy daemon would for the
// checklist fixtures F-13 and F-14.
func fixtureHandler() Handler {
	return HandlerFunc(func(ctx context.Context, name, key string) Reply {
		d, ok := ParseNextHop(key).PolicyDomain()
		if !ok {
			return NotFound() // STS-SEL-3, STS-SEL-4
		}
		switch d {
		case "example.com":
			return Found(f2Policy(name == "QUERYwithTLSRPT").String())
		case "relay.example.net": // OPEN-5: the smart host's own policy
			return Found("secure match=relay.example.net servername=hostname")
		case "example.org":
			return TempFail("temporary DNS failure")
		}
		return NotFound()
	})
}

// countingObserver records server events.
type countingObserver struct {
	opened, closed, requests, protocolErrors atomic.Int64
}

func (o *countingObserver) ConnOpened()                           { o.opened.Add(1) }
func (o *countingObserver) ConnClosed()                           { o.closed.Add(1) }
func (o *countingObserver) Request(string, Status, time.Duration) { o.requests.Add(1) }
func (o *countingObserver) ProtocolError(error)                   { o.protocolErrors.Add(1) }

// server is what the tests need from both server types.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// start serves srv on a loopback listener and returns its address. Cleanup
// closes the server and checks that Serve ended with ErrServerClosed.
func start(t *testing.T, srv server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, srv, l)
}

func startOn(t *testing.T, srv server, l net.Listener) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(testTimeout):
			t.Error("Serve did not return after Close")
		}
	})
	return l.Addr().String()
}

func dialRaw(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange writes send and expects exactly want back.
func exchange(t *testing.T, c net.Conn, send, want string) {
	t.Helper()
	if _, err := io.WriteString(c, send); err != nil {
		t.Fatalf("write %q: %v", send, err)
	}
	expect(t, c, want)
}

func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := io.ReadFull(c, got)
	if err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got[:n], err, want)
	}
}

// expectClosed checks that the server closed the connection (EOF or reset,
// not a timeout) after sending nothing more than prefix.
func expectClosed(t *testing.T, c net.Conn, prefix string) {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "reset")) {
		t.Fatalf("connection not closed by the server: read %q, %v", b, err)
	}
	if !strings.HasPrefix(prefix, string(b)) {
		t.Fatalf("read %q before close, want at most %q", b, prefix)
	}
}

func TestSocketmapF13(t *testing.T) { // F-13, PFX-SOCKETMAP-2..4, PFX-SOCKETMAP-7, PFX-SOCKETMAP-9, PFX-STS-5, OPEN-5
	t.Parallel()
	addr := start(t, &SocketmapServer{Handler: fixtureHandler()})
	c := dialRaw(t, "tcp", addr)
	// One connection, many requests (PFX-SOCKETMAP-7).
	for _, step := range []struct{ send, want string }{
		{"19:postfix example.com,", "86:OK " + pfxSTS5Plain + ","},
		{"20:postfix .example.com,", "9:NOTFOUND ,"},
		{"31:postfix [relay.example.net]:587,", "53:OK secure match=relay.example.net servername=hostname,"},
		{"27:QUERYwithTLSRPT example.com,", "457:OK " + pfxSTS5TLSRPT + ","},
		{"20:postfix EXAMPLE.COM.,", "86:OK " + pfxSTS5Plain + ","},
		{"19:postfix [192.0.2.1],", "9:NOTFOUND ,"},
		{"26:postfix [IPv6:2001:db8::1],", "9:NOTFOUND ,"},
		{"19:postfix example.org,", "26:TEMP temporary DNS failure,"},
		{"8:postfix ,", "9:NOTFOUND ,"},
	} {
		exchange(t, c, step.send, step.want)
	}
}

func TestSocketmapPipelined(t *testing.T) { // PFX-SOCKETMAP-7
	t.Parallel()
	var writes atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := startOn(t, &SocketmapServer{Handler: fixtureHandler()}, &countingListener{Listener: l, writes: &writes})
	c := dialRaw(t, "tcp", addr)
	// Three requests in one write: three replies, in order, in one write.
	exchange(t, c, "19:postfix example.com,20:postfix .example.com,19:postfix example.org,",
		"86:OK "+pfxSTS5Plain+",9:NOTFOUND ,26:TEMP temporary DNS failure,")
	if n := writes.Load(); n != 1 {
		t.Errorf("server used %d writes for 3 pipelined replies, want 1", n)
	}
	// The connection stays open for more.
	exchange(t, c, "20:postfix .example.com,", "9:NOTFOUND ,")
}

// countingListener counts Write calls on accepted connections.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func TestSocketmapMalformedClosesConnection(t *testing.T) { // PFX-SOCKETMAP-2, PFX-SOCKETMAP-8, GO-11
	t.Parallel()
	obs := &countingObserver{}
	addr := start(t, &SocketmapServer{Handler: fixtureHandler(), MaxRequestSize: 1000, Observer: obs})
	garbage := make([]byte, 1<<20)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>8)
	}
	garbage[0] = 'G'
	cases := map[string]string{
		"bad terminator":  "19:postfix example.com;",
		"non-digit":       "1x:postfix example.com,",
		"sign":            "+19:postfix example.com,",
		"leading zero":    "019:postfix example.com,",
		"length over cap": "1001:" + strings.Repeat("x", 1001) + ",",
		"huge length":     "99999999999:",
		"1 MB garbage":    string(garbage),
		"truncated":       "19:postfix exam",
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, "tcp", addr)
			// A good request first: its reply must still arrive.
			exchange(t, c, "20:postfix .example.com,", "9:NOTFOUND ,")
			go func() {
				io.WriteString(c, bad) // may fail once the server closes
				if name == "truncated" {
					c.(*net.TCPConn).CloseWrite()
				}
			}()
			expectClosed(t, c, "")
			// The server still serves other connections.
			exchange(t, dialRaw(t, "tcp", addr), "19:postfix example.com,", "86:OK "+pfxSTS5Plain+",")
		})
	}
	t.Cleanup(func() {
		if n := obs.protocolErrors.Load(); n < int64(len(cases)) {
			t.Errorf("observer saw %d protocol errors, want >= %d", n, len(cases))
		}
	})
}

func TestSocketmapBadContentAnswersPERM(t *testing.T) { // PFX-SOCKETMAP-3, PFX-SOCKETMAP-9
	t.Parallel()
	addr := start(t, &SocketmapServer{Handler: fixtureHandler()})
	c := dialRaw(t, "tcp", addr)
	for _, send := range []string{
		"7:postfix,",                  // no space
		"12: example.com,",            // empty map name
		"20:postfix \xffexample.com,", // not UTF-8
		"0:,",
	} {
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		r, err := NewSocketmapClient(c).receive()
		if err != nil || r.Status != StatusPerm || !strings.HasPrefix(r.Data, "malformed request") {
			t.Fatalf("%q → %+v, %v; want PERM malformed request", send, r, err)
		}
	}
	// Framing was intact, so the connection is still in step.
	exchange(t, c, "19:postfix example.com,", "86:OK "+pfxSTS5Plain+",")
}

func TestSocketmapRequestSizeLimit(t *testing.T) { // PFX-SOCKETMAP-6, PFX-SOCKETMAP-8
	t.Parallel()
	addr := start(t, &SocketmapServer{Handler: fixtureHandler()})
	// Exactly 10000 bytes is allowed (socketmap_max_query_size).
	c := dialRaw(t, "tcp", addr)
	key := strings.Repeat("a", DefaultMaxRequestSize-len("postfix "))
	exchange(t, c, string(AppendNetstring(nil, "postfix "+key)), "9:NOTFOUND ,")
	// One more byte closes the connection.
	go c.Write(AppendNetstring(nil, "postfix "+key+"a"))
	expectClosed(t, c, "")
}

func TestSocketmapHandlerReplies(t *testing.T) { // PFX-SOCKETMAP-4, PFX-SOCKETMAP-6
	t.Parallel()
	addr := start(t, &SocketmapServer{
		MaxReplySize: 100,
		Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
			switch key {
			case "invalid":
				return Reply{Data: "secure"}
			case "empty-ok":
				return Reply{Status: StatusOK}
			case "notfound-data":
				return Reply{Status: StatusNotFound, Data: "ignored"}
			case "big":
				return Found(strings.Repeat("x", 100))
			case "fits":
				return Found(strings.Repeat("x", 97))
			case "panic":
				panic("boom")
			case "timeout":
				return Reply{Status: StatusTimeout, Data: "dns"}
			case "perm":
				return Reply{Status: StatusPerm, Data: "bad config"}
			}
			return Found("dane-only")
		}),
	})
	cl, err := DialSocketmap(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for key, want := range map[string]Reply{
		"invalid":       {StatusTemp, "internal error: invalid reply"},
		"empty-ok":      {StatusTemp, "internal error: empty reply"},
		"notfound-data": {StatusNotFound, ""},
		"big":           {StatusTemp, "internal error: reply too large"},
		"fits":          {StatusOK, strings.Repeat("x", 97)},
		"panic":         {StatusTemp, "internal error"},
		"timeout":       {StatusTimeout, "dns"},
		"perm":          {StatusPerm, "bad config"},
		"x":             {StatusOK, "dane-only"},
	} {
		got, err := cl.Lookup(t.Context(), "postfix", key)
		if err != nil || got != want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", key, got, err, want)
		}
	}
}

func TestSocketmapIdleTimeout(t *testing.T) { // PFX-SOCKETMAP-6
	t.Parallel()
	addr := start(t, &SocketmapServer{Handler: fixtureHandler(), IdleTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond})
	c := dialRaw(t, "tcp", addr)
	exchange(t, c, "20:postfix .example.com,", "9:NOTFOUND ,")
	expectClosed(t, c, "") // idle: closed well before testTimeout
	// A request that starts but never finishes hits the read timeout.
	c2 := dialRaw(t, "tcp", addr)
	io.WriteString(c2, "19:postfix exa")
	expectClosed(t, c2, "")
}

func TestSocketmapShutdownDrains(t *testing.T) { // STYLE 11/12: Shutdown lets in-flight requests finish
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &SocketmapServer{Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
		if key == "slow.example" {
			close(entered)
			<-release
		}
		return Found("secure")
	})}
	addr := start(t, srv)
	idle := dialRaw(t, "tcp", addr)
	exchange(t, idle, "14:postfix a.test,", "9:OK secure,")
	busy := dialRaw(t, "tcp", addr)
	io.WriteString(busy, "20:postfix slow.example,")
	<-entered

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	expectClosed(t, idle, "") // Shutdown closes idle connections at once
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	default:
	}
	close(release)
	expect(t, busy, "9:OK secure,") // the in-flight request is answered
	expectClosed(t, busy, "")       // then the connection is closed
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, testTimeout); err == nil {
		c.Close()
		t.Error("listener still accepting after Shutdown")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve after Shutdown left its listener open: %v", err)
	}
}

func TestSocketmapShutdownDeadlineThenClose(t *testing.T) {
	t.Parallel()
	entered, canceled := make(chan struct{}), make(chan struct{})
	srv := &SocketmapServer{Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
		close(entered)
		<-ctx.Done() // only Close ends this handler
		close(canceled)
		return TempFail("canceled")
	})}
	addr := start(t, srv)
	busy := dialRaw(t, "tcp", addr)
	io.WriteString(busy, "14:postfix a.test,")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a done ctx = %v, want context.Canceled", err)
	}
	srv.Close()
	select {
	case <-canceled:
	case <-time.After(testTimeout):
		t.Fatal("Close did not cancel the handler's context")
	}
	expectClosed(t, busy, "")
}

func TestSocketmapUnixSocket(t *testing.T) { // PFX-SOCKETMAP-1, PFX-SOCKETMAP-10
	t.Parallel()
	path := t.TempDir() + "/policy.sock"
	srv := &SocketmapServer{Handler: fixtureHandler()}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe("unix", path) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ListenAndServe = %v", err)
		}
	})
	// Wait for the socket with a bounded poll.
	var cl *SocketmapClient
	deadline := time.Now().Add(testTimeout)
	for cl == nil {
		c, err := DialSocketmap(t.Context(), "unix", path)
		switch {
		case err == nil:
			cl = c
		case time.Now().After(deadline):
			t.Fatalf("server never listened: %v", err)
		default:
			time.Sleep(5 * time.Millisecond) // polling for the socket file, bounded by deadline
		}
	}
	defer cl.Close()
	r, err := cl.Lookup(t.Context(), "postfix", "example.com")
	if err != nil || r != Found(pfxSTS5Plain) {
		t.Fatalf("Lookup = %+v, %v", r, err)
	}
	if err := (&SocketmapServer{Handler: fixtureHandler()}).ListenAndServe("udp", "127.0.0.1:0"); err == nil {
		t.Error("ListenAndServe(udp) succeeded")
	}
}

func TestSocketmapConcurrent(t *testing.T) { // PFX-SOCKETMAP-7 under -race
	t.Parallel()
	obs := &countingObserver{}
	var calls atomic.Int64
	srv := &SocketmapServer{Observer: obs, Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
		calls.Add(1)
		return Found(name + "=" + key)
	})}
	addr := start(t, srv)
	const conns, perConn = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			cl, err := DialSocketmap(t.Context(), "tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			keys := make([]string, perConn/2)
			for j := range keys {
				keys[j] = strings.Repeat("k", j%7) + string(rune('a'+i)) + string(rune('a'+j%26))
			}
			rs, err := cl.LookupMany(t.Context(), "m", keys)
			if err != nil {
				errs <- err
				return
			}
			for j, r := range rs {
				if r != Found("m="+keys[j]) {
					errs <- errors.New("pipelined reply out of order: " + r.Data)
					return
				}
			}
			for _, k := range keys {
				r, err := cl.Lookup(t.Context(), "n", k)
				if err != nil || r != Found("n="+k) {
					errs <- errors.New("sequential reply wrong: " + r.Data)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := calls.Load(); n != conns*perConn {
		t.Errorf("handler called %d times, want %d", n, conns*perConn)
	}
	if n := obs.requests.Load(); n != conns*perConn {
		t.Errorf("observer saw %d requests, want %d", n, conns*perConn)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if o, c := obs.opened.Load(), obs.closed.Load(); o != conns || c != conns {
		t.Errorf("observer: %d opened, %d closed; want %d", o, c, conns)
	}
}

func TestParseSocketmapReply(t *testing.T) { // PFX-SOCKETMAP-4
	t.Parallel()
	for in, want := range map[string]Reply{
		"OK secure match=a": {StatusOK, "secure match=a"},
		"OK dane-only":      {StatusOK, "dane-only"},
		"NOTFOUND ":         {StatusNotFound, ""},
		"NOTFOUND":          {StatusNotFound, ""},
		"TEMP ":             {StatusTemp, ""},
		"TIMEOUT dns":       {StatusTimeout, "dns"},
		"PERM bad  config ": {StatusPerm, "bad  config "},
	} {
		if got, err := ParseSocketmapReply(in); err != nil || got != want {
			t.Errorf("ParseSocketmapReply(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"ok secure", "Ok secure", "NOTFOUND\t", "", " OK x", "FOUND x"} {
		if got, err := ParseSocketmapReply(in); !errors.Is(err, ErrMalformedReply) {
			t.Errorf("ParseSocketmapReply(%q) = %+v, %v; want ErrMalformedReply", in, got, err)
		}
	}
}

func TestSocketmapClientContext(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	addr := start(t, &SocketmapServer{Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
		close(entered)
		<-ctx.Done()
		return NotFound()
	})})
	cl, err := DialSocketmap(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-entered; cancel() }()
	if _, err := cl.Lookup(ctx, "postfix", "example.com"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lookup with canceled ctx = %v, want context.Canceled", err)
	}
	if _, err := cl.Lookup(t.Context(), "postfix", "example.com"); !errors.Is(err, ErrClientBroken) {
		t.Fatalf("Lookup after a failure = %v, want ErrClientBroken", err)
	}
}

// scriptedListener returns the scripted Accept results, then blocks until
// closed.
type scriptedListener struct {
	results chan acceptResult
	closed  chan struct{}
	once    sync.Once
}

type acceptResult struct {
	c   net.Conn
	err error
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	select {
	case r := <-l.results:
		return r.c, r.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *scriptedListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *scriptedListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestServeAcceptErrors(t *testing.T) {
	t.Parallel()
	// Temporary errors (out of descriptors) are retried with a backoff; the
	// next connection is still served.
	l := &scriptedListener{results: make(chan acceptResult, 4), closed: make(chan struct{})}
	client, serverSide := net.Pipe()
	l.results <- acceptResult{err: &net.OpError{Op: "accept", Err: os.NewSyscallError("accept", syscall.EMFILE)}}
	l.results <- acceptResult{err: &net.OpError{Op: "accept", Err: os.NewSyscallError("accept", syscall.ECONNABORTED)}}
	l.results <- acceptResult{c: serverSide}
	srv := &SocketmapServer{Handler: fixtureHandler()}
	startOn(t, srv, l)
	client.SetDeadline(time.Now().Add(testTimeout))
	exchange(t, client, "20:postfix .example.com,", "9:NOTFOUND ,")
	client.Close()

	// Any other accept error ends Serve with that error.
	l2 := &scriptedListener{results: make(chan acceptResult, 1), closed: make(chan struct{})}
	l2.results <- acceptResult{err: errors.New("listener broken")}
	if err := (&TCPTableServer{Handler: fixtureHandler()}).Serve(l2); err == nil || errors.Is(err, ErrServerClosed) || !strings.Contains(err.Error(), "listener broken") {
		t.Errorf("Serve = %v, want the accept error", err)
	}
	// A nil Handler is refused.
	if err := (&SocketmapServer{}).Serve(l2); err == nil {
		t.Error("Serve with nil Handler succeeded")
	}
	if err := (&TCPTableServer{}).Serve(l2); err == nil {
		t.Error("Serve with nil Handler succeeded")
	}
}

// Deadlines are re-armed lazily: the deadline in force always ends the
// timeout no earlier than t and no later than 1.25 t after the last
// activity, and a connection busy every millisecond re-arms about once per
// t/4, not once per request.
func TestRearmWindow(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	var set int64
	now := time.Unix(1_700_000_000, 0)
	arms := 0
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		if _, ok := rearm(&set, now, timeout); ok {
			arms++
		}
		lo, hi := now.Add(timeout).UnixNano(), now.Add(timeout+timeout/4).UnixNano()
		if set < lo || set > hi {
			t.Fatalf("step %d: deadline %d outside [%d, %d]", i, set, lo, hi)
		}
	}
	// 1000 ms of activity, re-armed every 25 ms.
	if arms < 30 || arms > 50 {
		t.Errorf("%d re-arms in 1000 requests, want about 40", arms)
	}
	// A shorter timeout than the deadline in force pulls it in at once.
	if dl, ok := rearm(&set, now, timeout/10); !ok || !dl.Equal(now.Add(timeout/10+timeout/40)) {
		t.Errorf("shorter timeout: %v %v", dl, ok)
	}
}
