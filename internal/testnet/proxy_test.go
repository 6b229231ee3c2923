package testnet

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// The proxy forwards, cuts, hangs and restores.
func TestProxy(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	p := StartProxyFor(t, echo.Addr().String())
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	roundTrip := func(c net.Conn, r *bufio.Reader) error {
		t.Helper()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err := r.ReadString('\n')
		return err
	}
	c, r := dial()
	if err := roundTrip(c, r); err != nil {
		t.Fatalf("forwarding: %v", err)
	}

	p.Hang()
	// A read deadline is the only way to see "no answer"; its length
	// decides nothing but how long the test waits.
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var ne net.Error
	if err := roundTrip(c, r); err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("hung connection: %v, want a timeout", err)
	}
	c2, r2 := dial() // accepted while hanging
	c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if err := roundTrip(c2, r2); err == nil {
		t.Fatal("new connection answered while hanging")
	}

	p.Restore()
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("hung connection survived Restore")
	}
	c3, r3 := dial()
	if err := roundTrip(c3, r3); err != nil {
		t.Fatalf("after Restore: %v", err)
	}

	p.Cut()
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := roundTrip(c3, r3); err == nil {
		t.Fatal("connection survived Cut")
	}
	c4, r4 := dial()
	c4.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := roundTrip(c4, r4); err == nil {
		t.Fatal("new connection served while cut")
	}
}
