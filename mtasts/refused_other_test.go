//go:build !unix

package mtasts

import (
	"net"
	"testing"
)

// refusedPort returns a loopback TCP port that refuses connections: here
// the port of a listener closed at once, which another listener could be
// given in the meantime (unlikely; the unix version reserves the port).
func refusedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
