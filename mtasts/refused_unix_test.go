//go:build unix

package mtasts

import (
	"syscall"
	"testing"
)

// refusedPort returns a loopback TCP port that refuses connections until
// the test ends. A socket is bound to it and never listens: the kernel
// answers a connection attempt with a reset, and no other listener (of a
// parallel test or another process) can be given the port meanwhile, as
// it could be after a listener on port 0 was closed at once.
func refusedPort(t testing.TB) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// No SO_REUSEADDR: a listener that sets it still may not share the port.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}
