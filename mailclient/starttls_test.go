package mailclient

import (
	"bufio"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

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
		port := testnet.ScriptedServer(t, c.greeting, c.replies)
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

// StartTLS reports the step each cleartext phase reached, whether the
// upgrade was offered, and the greeting; before is called as each step
// starts, in order (RFC 3207, RFC 9051 §6.2.1, RFC 2595).
func TestStartTLSSteps(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		p        Protocol
		script   string
		step     Step
		offered  bool
		ok       bool
		greeting string
	}{
		{"smtp ok", SMTP, "220 hi\r\n250-me\r\n250 STARTTLS\r\n220 go\r\n", StepUpgrade, true, true, "220 hi"},
		{"smtp no offer", SMTP, "220 hi\r\n250-me\r\n250 SIZE 10\r\n", StepUpgrade, false, false, "220 hi"},
		{"smtp bad ehlo", SMTP, "220 hi\r\n500 what\r\n", StepCapabilities, false, false, "220 hi"},
		{"imap ok", IMAP, "* OK hi\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK\r\na2 OK go\r\n", StepUpgrade, true, true, "* OK hi"},
		{"imap preauth", IMAP, "* PREAUTH x\r\n", StepUpgrade, false, false, "* PREAUTH x"},
		{"imap bye", IMAP, "* BYE x\r\n", StepGreeting, false, false, "* BYE x"},
		{"imap capability fails", IMAP, "* OK hi\r\na1 BAD no\r\n", StepCapabilities, false, false, "* OK hi"},
		{"imap refused", IMAP, "* OK hi\r\n* CAPABILITY STARTTLS\r\na1 OK\r\na2 NO\r\n", StepUpgrade, true, false, "* OK hi"},
		{"pop3 ok", POP3, "+OK hi\r\n+OK\r\nSTLS\r\n.\r\n+OK go\r\n", StepUpgrade, true, true, "+OK hi"},
		{"pop3 capa cut", POP3, "+OK hi\r\n+OK\r\nSTLS\r\n", StepCapabilities, true, false, "+OK hi"},
		{"pop3 silent", POP3, "", StepGreeting, false, false, ""},
	} {
		var steps []Step
		br := bufio.NewReaderSize(scriptConn{r: strings.NewReader(c.script)}, maxLine)
		ct, err := StartTLS(scriptConn{}, br, c.p, "localhost", func(s Step) { steps = append(steps, s) })
		if (err == nil) != c.ok || ct.Step != c.step || ct.Offered != c.offered || ct.Greeting != c.greeting {
			t.Errorf("%s: %+v, %v; want step %d, offered %v, ok %v, greeting %q", c.name, ct, err, c.step, c.offered, c.ok, c.greeting)
		}
		// Strictly increasing from StepGreeting to the step reached
		// (PREAUTH skips the capabilities).
		if len(steps) == 0 || steps[0] != StepGreeting || steps[len(steps)-1] != ct.Step ||
			!slices.IsSorted(steps) || len(slices.Compact(slices.Clone(steps))) != len(steps) {
			t.Errorf("%s: steps %v, want StepGreeting…%d increasing", c.name, steps, ct.Step)
		}
	}
}
