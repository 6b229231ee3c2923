package testnet

import (
	"bufio"
	"io"
	"net"
	"strings"
	"time"
)

// ScriptedServer serves a scripted cleartext mail exchange (SMTP, IMAP, POP3)
// on a loopback port until the test ends, and returns the port. Each
// connection (at most 20) gets greeting, then for each line it sends the
// reply chosen by the line's first word, else its second (an IMAP
// command after its tag), upper-cased; a line with no reply, a fifth
// line or 10 seconds end the connection. For STARTTLS stubs and hostile
// servers: a reply may be anything, including more than one response.
func ScriptedServer(t TB, greeting string, replies map[string]string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 20 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveScript(conn, greeting, replies)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func serveScript(conn net.Conn, greeting string, replies map[string]string) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, greeting); err != nil {
		return
	}
	br := bufio.NewReader(conn)
	for range 5 {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(strings.ToUpper(line))
		if len(f) == 0 {
			return
		}
		r, ok := replies[f[0]]
		if !ok && len(f) > 1 {
			r, ok = replies[f[1]]
		}
		if !ok {
			return
		}
		if _, err := io.WriteString(conn, r); err != nil {
			return
		}
	}
}
