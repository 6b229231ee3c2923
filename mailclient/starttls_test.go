package mailclient

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// stub serves one scripted IMAP exchange per connection: the greeting,
// then for each command line the reply chosen by its second word.
func stub(t *testing.T, greeting string, replies map[string]string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 10 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				c.Write([]byte(greeting))
				br := bufio.NewReader(c)
				for range 10 {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(l)
					if len(f) < 2 {
						return
					}
					c.Write([]byte(replies[strings.ToUpper(f[1])]))
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// Hostile cleartext phases: bytes injected after the STARTTLS go-ahead
// (RFC 3207 §4.2, RFC 2595 §3.1), an endless line, a PREAUTH greeting
// (RFC 9051 §6.2.1) and a refused STARTTLS.
func TestSTARTTLSHostile(t *testing.T) {
	t.Parallel()
	f := &dnsresolve.Fake{}
	f.SetIP("stub.test", netip.MustParseAddr("127.0.0.1"))
	d := &Dialer{Resolver: f, Timeout: time.Hour, Policy: Policy{MinLevel: LevelCleartext}}
	caps := "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"
	for _, c := range []struct {
		name     string
		greeting string
		replies  map[string]string
		connect  string // ErrConnect containing this, or "" for accepted cleartext
	}{
		{"injection", "* OK hi\r\n", map[string]string{"CAPABILITY": caps, "STARTTLS": "a2 OK go\r\n* OK injected\r\n"}, "after the STARTTLS go-ahead"},
		{"long line", "* OK " + strings.Repeat("x", 3*maxLine) + "\r\n", nil, "longer than"},
		{"garbage", "HTTP/1.0 400 what\r\n", nil, "greeting"},
		{"preauth", "* PREAUTH welcome\r\n", nil, ""},
		{"refused", "* OK hi\r\n", map[string]string{"CAPABILITY": caps, "STARTTLS": "a2 NO not today\r\n"}, ""},
	} {
		port := stub(t, c.greeting, c.replies)
		s, err := d.Dial(context.Background(), "u@stub.test", Endpoint{Service: IMAPPlain, Host: "stub.test", Port: port})
		switch {
		case c.connect != "":
			if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), c.connect) {
				t.Errorf("%s: %v, want ErrConnect with %q", c.name, err, c.connect)
			}
		case err != nil || s.Observation.TLS || !s.Observation.STARTTLSMissing:
			t.Errorf("%s: %+v, %v", c.name, s, err)
		default:
			s.Conn.Close()
		}
	}
}
