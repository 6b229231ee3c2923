package policyd

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestDaemonHostileInput is the malformed-netstring and oversized-request
// suite against the running daemon (issue #3, PFX-SOCKETMAP-2/8, GO-11):
// each bad request closes its connection or gets a protocol error answer,
// never a crash, and the daemon keeps serving other connections.
func TestDaemonHostileInput(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	r := startDaemon(t, &Daemon{Config: testConfig(t, n, "memory", t.TempDir())}, nil)

	big := strings.Repeat("a", 10001)
	cases := []struct {
		name string
		send string
		// want is the reply read before the server closes ("" when it
		// just closes).
		want string
	}{
		{"bad terminator", "19:postfix example.com;", ""},
		{"non-digit length", "1x:postfix example.com,", ""},
		{"sign in length", "+19:postfix example.com,", ""},
		{"leading space", " 19:postfix example.com,", ""},
		{"length over the cap", "99999999999:", ""},
		{"request over 10000 bytes", "10009:postfix " + big[:9995] + ",", ""},
		{"truncated frame then EOF", "30:postfix exam", ""},
		{"binary garbage", "\x00\xff\xfe\x01garbage", ""},
		{"no space (frame valid)", "7:postfix,", "PERM"},
		{"invalid UTF-8 key (frame valid)", "12:postfix \xff\xfe\xfd\xfc,", "PERM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			if c.name == "truncated frame then EOF" {
				conn.(*net.TCPConn).CloseWrite()
			}
			if c.want != "" {
				// A valid frame with bad content: a protocol error answer,
				// and the connection stays usable.
				reply, err := bufio.NewReader(conn).ReadString(',')
				if err != nil {
					t.Fatalf("reading the reply: %v", err)
				}
				if !strings.Contains(reply, ":"+c.want+" ") {
					t.Errorf("got %q, want a %s reply", reply, c.want)
				}
				return
			}
			got, err := io.ReadAll(conn)
			if err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("reading: %v (the server must close, not hang)", err)
			}
			if len(got) != 0 {
				t.Errorf("got reply %q, want the connection closed", got)
			}
		})
	}
	// 1 MB of garbage on one connection.
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { io.WriteString(conn, strings.Repeat("9", 1<<20)) }()
	io.Copy(io.Discard, conn)
	conn.Close()

	// The daemon still answers a well-formed lookup on a new connection.
	if got := lookup(t, r.addr, "postfix", "example.com"); !strings.HasPrefix(got, "OK secure match=mail.example.com") {
		t.Errorf("after the hostile input: %q", got)
	}
}
