package main

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// delayProxy stands for a network with a round-trip time of 2×delay in
// front of a server on loopback (this kernel may have no netem): every UDP
// datagram and every TCP chunk is held for delay in each direction.
//
// TCP: the kernel completes the client's connect at once, so the proxy
// models the handshake instead: bytes the client sends are delivered no
// earlier than 3×delay after the connection was accepted (SYN, SYN-ACK, then
// the first data segment), then each chunk delay after it was read. A
// client that writes right after connecting (a TLS ClientHello) thus sees
// its first answer 4×delay after connecting, as on a real path. The FIN
// travels through the same queue as the data.
//
// UDP: each client address gets its own upstream socket; replies go back
// from the listening socket, delay after they arrived.
type delayProxy struct {
	delay  time.Duration
	target string
	udp    *net.UDPConn
	tcp    net.Listener

	mu       sync.Mutex
	sessions map[string]*udpSession
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// udpIdle ends a UDP session (its upstream socket) after this long without
// traffic either way.
const udpIdle = 10 * time.Second

type udpSession struct {
	client *net.UDPAddr
	up     *net.UDPConn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
}

// startDelayProxy listens on addr (TCP, and UDP as well when udp is set) and
// forwards to target with delay each way.
func startDelayProxy(addr, target string, delay time.Duration, udp bool) (*delayProxy, error) {
	p := &delayProxy{delay: delay, target: target, sessions: map[string]*udpSession{}, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p.tcp = ln
	if udp {
		ua, err := net.ResolveUDPAddr("udp", ln.Addr().String())
		if err == nil {
			p.udp, err = net.ListenUDP("udp", ua)
		}
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		p.wg.Add(1)
		go p.serveUDP()
	}
	p.wg.Add(1)
	go p.acceptTCP()
	return p, nil
}

// Addr is the proxy's address (the same port for TCP and UDP).
func (p *delayProxy) Addr() string { return p.tcp.Addr().String() }

// Close stops the proxy and closes every connection and session.
func (p *delayProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	for _, s := range p.sessions {
		_ = s.up.Close()
	}
	p.mu.Unlock()
	_ = p.tcp.Close()
	if p.udp != nil {
		_ = p.udp.Close()
	}
	p.wg.Wait()
}

func (p *delayProxy) serveUDP() {
	defer p.wg.Done()
	target, err := net.ResolveUDPAddr("udp", p.target)
	if err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		s, err := p.session(from, target)
		if err != nil {
			continue // dropped, as a lossy network would
		}
		s.last.Store(time.Now().UnixNano())
		pkt := append([]byte(nil), buf[:n]...)
		time.AfterFunc(p.delay, func() { _, _ = s.up.Write(pkt) })
	}
}

// session returns the UDP session of client, starting it if needed.
func (p *delayProxy) session(client, target *net.UDPAddr) (*udpSession, error) {
	key := client.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if s := p.sessions[key]; s != nil {
		return s, nil
	}
	up, err := net.DialUDP("udp", nil, target)
	if err != nil {
		return nil, err
	}
	s := &udpSession{client: client, up: up}
	s.last.Store(time.Now().UnixNano())
	p.sessions[key] = s
	p.wg.Add(1)
	go p.udpBack(key, s)
	return s, nil
}

// udpBack relays the replies of one session back to its client.
func (p *delayProxy) udpBack(key string, s *udpSession) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		_ = s.up.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := s.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, s.last.Load())) < udpIdle {
				continue
			}
			p.mu.Lock()
			if p.sessions[key] == s {
				delete(p.sessions, key)
			}
			p.mu.Unlock()
			_ = s.up.Close()
			return
		}
		s.last.Store(time.Now().UnixNano())
		pkt := append([]byte(nil), buf[:n]...)
		time.AfterFunc(p.delay, func() { _, _ = p.udp.WriteToUDP(pkt, s.client) })
	}
}

func (p *delayProxy) acceptTCP() {
	defer p.wg.Done()
	for {
		c, err := p.tcp.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go p.serveTCP(c, time.Now())
	}
}

func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *delayProxy) serveTCP(c net.Conn, accepted time.Time) {
	defer p.wg.Done()
	defer p.untrack(c)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	// The client's first bytes wait for the modelled handshake.
	go func() { defer wg.Done(); p.pipe(up, c, accepted.Add(2*p.delay)) }()
	go func() { defer wg.Done(); p.pipe(c, up, time.Time{}) }()
	wg.Wait()
}

// pipe copies src to dst, each chunk delivered delay after it was read (and
// not before notBefore+delay); src's EOF becomes dst's write shutdown,
// delayed the same way. A failed write closes both ends.
func (p *delayProxy) pipe(dst, src net.Conn, notBefore time.Time) {
	type chunk struct {
		at  time.Time
		b   []byte
		eof bool
	}
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if d := time.Until(ch.at); d > 0 {
				time.Sleep(d)
			}
			if ch.eof {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				continue
			}
			if _, err := dst.Write(ch.b); err != nil {
				_ = dst.Close()
				_ = src.Close()
				for range q {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		now := time.Now()
		if now.Before(notBefore) {
			now = notBefore
		}
		if n > 0 {
			q <- chunk{at: now.Add(p.delay), b: append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			q <- chunk{at: now.Add(p.delay), eof: true}
			break
		}
	}
	close(q)
	<-done
}
