package outbox

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRelay is a scripted SMTP relay on loopback (no TLS): it answers
// RCPT and the end of DATA with the given codes and records accepted
// messages.
type fakeRelay struct {
	ln       net.Listener
	rcptCode int // 0: 250
	dataCode int // 0: 250
	size     int // SIZE announced (0: none)
	mu       sync.Mutex
	msgs     [][]byte
	datas    int // DATA commands seen
}

func newFakeRelay(t testing.TB, rcptCode, dataCode, size int) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{ln: ln, rcptCode: rcptCode, dataCode: dataCode, size: size}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeRelay) Addr() string { return f.ln.Addr().String() }

func (f *fakeRelay) messages() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.msgs...)
}

func (f *fakeRelay) dataCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.datas
}

func (f *fakeRelay) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	code := func(n int, text string) string {
		if n == 0 {
			n = 250
		}
		return strconv.Itoa(n) + " " + text
	}
	say("220 relay.test ESMTP")
	for range 50 {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			if f.size > 0 {
				say("250-relay.test")
				say("250 SIZE " + strconv.Itoa(f.size))
			} else {
				say("250 relay.test")
			}
		case "MAIL":
			say("250 ok")
		case "RCPT":
			say(code(f.rcptCode, "rcpt"))
		case "DATA":
			f.mu.Lock()
			f.datas++
			f.mu.Unlock()
			say("354 go")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			if f.dataCode == 0 || f.dataCode == 250 {
				f.mu.Lock()
				f.msgs = append(f.msgs, []byte(msg.String()))
				f.mu.Unlock()
			}
			say(code(f.dataCode, "data"))
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}
