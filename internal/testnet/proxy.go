package testnet

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy is a TCP proxy on loopback in front of a real server (a shared
// Redis, say) that a test can cut, hang and restore, to see what a client
// does when its server goes away or stops answering, without touching the
// server other tests use.
//
//   - [Proxy.Cut]: every connection is closed, and new ones are closed as
//     soon as they are accepted (a server that went away; the port stays
//     ours, so no other test can get it).
//   - [Proxy.Hang]: connections stay open, but nothing reaches the server
//     and nothing comes back; new connections are accepted and never
//     answered (a server that hangs, or a network dropping packets).
//   - [Proxy.Restore]: the connections of a cut or hang are closed (their
//     clients have lost track of replies) and new ones are forwarded.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
}

type proxyMode uint8

const (
	proxyUp proxyMode = iota
	proxyCut
	proxyHang
)

// StartProxy listens on 127.0.0.1 (an ephemeral port) and forwards to
// target. Close it when done.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// StartProxyFor starts a Proxy to target closed at the end of the test.
func StartProxyFor(t TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and refuses service until Restore.
func (p *Proxy) Cut() { p.set(proxyCut, true) }

// Hang stops forwarding until Restore: clients wait for replies that never
// come.
func (p *Proxy) Hang() { p.set(proxyHang, false) }

// Restore closes the connections of a cut or hang and forwards again.
func (p *Proxy) Restore() { p.set(proxyUp, true) }

func (p *Proxy) set(m proxyMode, closeAll bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if closeAll {
		for c := range p.conns {
			c.Close()
		}
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) current() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// track registers c; false when the proxy is closed (c is closed then).
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	switch p.current() {
	case proxyCut:
		return
	case proxyHang:
		// Accepted, never answered: read and drop until closed.
		io.Copy(io.Discard, c)
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(s) {
		return
	}
	defer p.untrack(s)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(s, c) }()
	go func() { defer wg.Done(); p.pipe(c, s) }()
	wg.Wait()
}

// pipe copies src to dst, dropping what is read while the proxy hangs,
// until either side closes; then it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.current() == proxyUp {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
