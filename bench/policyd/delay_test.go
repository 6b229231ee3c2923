package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// The delay proxy carries TCP and UDP unchanged and never delivers early:
// a TCP exchange right after connecting takes at least four one-way delays
// (handshake, then request and reply), a UDP exchange at least two. Only
// lower bounds are checked: a slow machine may add time, never remove it.
func TestDelayProxy(t *testing.T) {
	t.Parallel()
	const delay = 15 * time.Millisecond

	// A TCP echo server that answers each read and closes after EOF.
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tln.Close()
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	p, err := startDelayProxy("127.0.0.1:0", tln.Addr().String(), delay, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// UDP echo on the same port number is not needed: the proxy's UDP
	// target is the same address, so run a UDP echo there.
	uc, err := net.ListenPacket("udp", tln.Addr().String())
	if err != nil {
		t.Skipf("cannot bind UDP on the TCP echo's port: %v", err)
	}
	defer uc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteTo(buf[:n], from)
		}
	}()

	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("policy "), 10000) // several chunks
	go func() {
		_, _ = c.Write(msg)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 4*delay {
		t.Errorf("TCP exchange took %v, want at least %v (handshake plus one round trip)", el, 4*delay)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("TCP: got %d bytes back, want the %d sent", len(got), len(msg))
	}

	u, err := net.Dial("udp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for i := range 3 {
		start = time.Now()
		q := []byte{byte(i), 'q'}
		if _, err := u.Write(q); err != nil {
			t.Fatal(err)
		}
		_ = u.SetReadDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 16)
		n, err := u.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 2*delay {
			t.Errorf("UDP exchange %d took %v, want at least %v", i, el, 2*delay)
		}
		if !bytes.Equal(buf[:n], q) {
			t.Errorf("UDP: got %q, want %q", buf[:n], q)
		}
	}
}
