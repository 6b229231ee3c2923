package dnsresolve

import (
	"context"
	"net"
	"sync"
	"time"
)

// UDP socket reuse. A new socket per query costs a socket, connect and
// close system call and a poller registration each time: on a daemon doing
// thousands of cold lookups, a tenth of its CPU. So a Client keeps a few
// connected UDP sockets per server and gives each to one query at a time.
// What keeps this safe:
//   - a socket serves one query at a time: no reply is handed to the wrong
//     query by a demultiplexer, and the ID and question checks of
//     parseReply apply to every datagram as before (a stale or forged
//     datagram is ignored);
//   - a socket is connected, so the kernel drops datagrams from any address
//     but the server's;
//   - a socket goes back to the pool only after a clean exchange (a reply
//     that matched, within the deadline, the context not ended): after a
//     timeout, an error or a cancelation it is closed, so a late reply
//     cannot wait in it;
//   - source-port randomization is kept up to a point: a socket serves at
//     most udpMaxUses queries and lives at most udpMaxAge, then a new one
//     with a new random port replaces it; with the 16-bit random ID, an
//     off-path forger still has to guess a port that changes every few
//     seconds under load.
const (
	// udpMaxIdle is how many idle sockets a Client keeps per server.
	udpMaxIdle = 16
	// udpMaxUses is how many queries one socket serves.
	udpMaxUses = 100
	// udpMaxAge is how long after its creation a socket is last reused.
	udpMaxAge = 10 * time.Second
)

// udpSock is a connected UDP socket of the pool.
type udpSock struct {
	conn    net.Conn
	created time.Time
	uses    int
}

// udpPool holds idle sockets per server.
type udpPool struct {
	mu   sync.Mutex
	idle map[string][]*udpSock
}

// get returns an idle socket to server, or dials a new one.
func (p *udpPool) get(ctx context.Context, server string) (*udpSock, error) {
	now := time.Now()
	p.mu.Lock()
	for socks := p.idle[server]; len(socks) > 0; socks = p.idle[server] {
		s := socks[len(socks)-1]
		socks[len(socks)-1] = nil
		p.idle[server] = socks[:len(socks)-1]
		if now.Sub(s.created) < udpMaxAge {
			p.mu.Unlock()
			return s, nil
		}
		_ = s.conn.Close()
	}
	p.mu.Unlock()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	return &udpSock{conn: conn, created: now}, nil
}

// put returns s after a clean exchange; a worn-out socket, or one over the
// idle bound, is closed.
func (p *udpPool) put(server string, s *udpSock) {
	s.uses++
	if s.uses >= udpMaxUses || time.Since(s.created) >= udpMaxAge {
		_ = s.conn.Close()
		return
	}
	p.mu.Lock()
	if p.idle == nil {
		p.idle = make(map[string][]*udpSock)
	}
	if len(p.idle[server]) < udpMaxIdle {
		p.idle[server] = append(p.idle[server], s)
		s = nil
	}
	p.mu.Unlock()
	if s != nil {
		_ = s.conn.Close()
	}
}

// idleCount returns the number of idle sockets to server (for tests).
func (p *udpPool) idleCount(server string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[server])
}
