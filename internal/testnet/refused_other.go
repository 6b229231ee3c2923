//go:build !unix

package testnet

import "net"

// RefusedPort returns a loopback TCP port that refuses connections: here
// the port of a listener closed at once, which another listener could be
// given in the meantime (unlikely; the unix version reserves the port).
func RefusedPort() (port int, release func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port, func() {}, nil
}
