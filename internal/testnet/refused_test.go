package testnet

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A refused port refuses connections, and (on unix) no listener can take
// it while it is held.
func TestRefusedPort(t *testing.T) {
	t.Parallel()
	port, release, err := RefusedPort()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatal("connection to the refused port accepted")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial: %v, want connection refused", err)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Error("a listener was given the held port")
	}
}

// RefusedPortFor holds a refusing port for the test.
func TestRefusedPortFor(t *testing.T) {
	t.Parallel()
	port := RefusedPortFor(t)
	if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		l.Close()
		t.Error("a listener was given the held port")
	}
}
