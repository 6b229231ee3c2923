package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// maxMinimalRequest caps a request, as Postfix's socketmap_max_query_size.
const maxMinimalRequest = 10000

// serveMinimal is the ceiling: a socketmap server that does nothing but
// parse a netstring, look the key up in a map and write the answer, one
// goroutine per connection, flushing after each reply unless more requests
// are already buffered. Any framing error closes the connection. It runs
// until SIGTERM.
func serveMinimal(addr string, answers map[string]string) error {
	// Replies are encoded once.
	encoded := make(map[string][]byte, len(answers))
	for k, v := range answers {
		encoded[k] = netstring("OK " + v)
	}
	notFound := netstring("NOTFOUND ")
	return serveSocketmap(addr, func(key []byte) []byte {
		reply, ok := encoded[string(key)] // no allocation for the lookup
		if !ok {
			reply = notFound
		}
		return reply
	})
}

// serveSocketmap serves the socketmap protocol on addr, answering each
// key with the netstring answer returns, one goroutine per connection,
// flushing after each reply unless more requests are already buffered. Any
// framing error closes the connection. It runs until SIGTERM.
func serveSocketmap(addr string, answer func(key []byte) []byte) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			bw := bufio.NewWriterSize(c, 16<<10)
			buf := make([]byte, maxMinimalRequest+1)
			for {
				req, err := readNetstring(br, buf)
				if err != nil {
					return
				}
				// "<map name> <key>": the key follows the first space.
				key := req
				for i, b := range req {
					if b == ' ' {
						key = req[i+1:]
						break
					}
				}
				if _, err := bw.Write(answer(key)); err != nil {
					return
				}
				if br.Buffered() == 0 {
					if err := bw.Flush(); err != nil {
						return
					}
				}
			}
		}()
	}
}

// readNetstring reads "<len>:<data>," into buf and returns the data.
func readNetstring(br *bufio.Reader, buf []byte) ([]byte, error) {
	n := 0
	for digits := 0; ; digits++ {
		c, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == ':' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || digits >= 5 {
			return nil, errors.New("bad netstring length")
		}
		n = n*10 + int(c-'0')
	}
	if n > len(buf)-1 {
		return nil, errors.New("netstring too long")
	}
	if _, err := io.ReadFull(br, buf[:n+1]); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, errors.New("netstring without ','")
	}
	return buf[:n], nil
}

func netstring(s string) []byte {
	return fmt.Appendf(nil, "%s:%s,", strconv.Itoa(len(s)), s)
}
