//go:build unix

package testnet

import (
	"fmt"
	"syscall"
)

// RefusedPort returns a loopback TCP port that refuses connections until
// release is called. A socket is bound to it and never listens: the kernel
// answers a connection attempt with a reset, and no other listener (of a
// parallel test or another process) can be given the port meanwhile, as it
// could be after a listener on port 0 was closed at once.
func RefusedPort() (port int, release func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("testnet: refused port: %w", err)
	}
	// No SO_REUSEADDR: a listener that sets it still may not share the port.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return 0, nil, fmt.Errorf("testnet: refused port: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return 0, nil, fmt.Errorf("testnet: refused port: %w", err)
	}
	return sa.(*syscall.SockaddrInet4).Port, func() { syscall.Close(fd) }, nil
}
