package postfix

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// Issue #10 item 9, PFX-TCP-3, PFX-SOCKETMAP-6: ReplyFits tells a handler,
// byte for byte, whether its OK data fits the connection's reply limit
// (tcp_table: 4096 bytes with "200 ", %XX encoding and LF; socketmap:
// MaxReplySize with "OK "), so that it can shorten instead of getting a
// TEMP/400 from the server; outside a server it is always true.
func TestReplyFits(t *testing.T) {
	t.Parallel()
	if !ReplyFits(context.Background(), strings.Repeat("a", 1<<20)) {
		t.Error("no server in ctx: want true")
	}
	fits := make(chan []bool, 1)
	probe := func(cases []string) Handler {
		return HandlerFunc(func(ctx context.Context, _, _ string) Reply {
			var got []bool
			for _, c := range cases {
				got = append(got, ReplyFits(ctx, c))
			}
			fits <- got
			return Found("x")
		})
	}
	tcpCases := []string{
		strings.Repeat("a", 4091),          // 4 + 4091 + 1 = 4096
		strings.Repeat("a", 4092),          // one over
		strings.Repeat("a", 4088) + "%",    // '%' is sent as %25: 4091 encoded
		strings.Repeat("a", 4089) + "%",    // 4092 encoded
		strings.Repeat("a", 4088) + "\x01", // control characters too
	}
	tcpWant := []bool{true, false, true, false, true}
	smCases := []string{strings.Repeat("a", 297), strings.Repeat("a", 298), strings.Repeat("a", 296) + "%"}
	smWant := []bool{true, false, true} // 3 + 297 = 300 = MaxReplySize; no encoding

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	check := func(proto string, got, want []bool) {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s case %d: ReplyFits = %v, want %v", proto, i, got[i], want[i])
			}
		}
	}

	tt := &TCPTableServer{Handler: probe(tcpCases)}
	ln := listen()
	go tt.Serve(ln)
	defer tt.Close()
	tc, err := DialTCPTable(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Get(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	check("tcp_table", <-fits, tcpWant)

	sm := &SocketmapServer{Handler: probe(smCases), MaxReplySize: 300}
	ln = listen()
	go sm.Serve(ln)
	defer sm.Close()
	sc, err := DialSocketmap(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Lookup(ctx, "postfix", "example.com"); err != nil {
		t.Fatal(err)
	}
	check("socketmap", <-fits, smWant)

	// FitsListener gives the same answers without a server.
	for i, c := range tcpCases {
		if got := FitsListener(c, true, 0); got != tcpWant[i] {
			t.Errorf("FitsListener tcp_table case %d = %v, want %v", i, got, tcpWant[i])
		}
	}
	for i, c := range smCases {
		if got := FitsListener(c, false, 300); got != smWant[i] {
			t.Errorf("FitsListener socketmap case %d = %v, want %v", i, got, smWant[i])
		}
	}
	if !FitsListener(strings.Repeat("a", DefaultMaxReplySize-3), false, 0) || FitsListener(strings.Repeat("a", DefaultMaxReplySize-2), false, 0) {
		t.Error("FitsListener with max 0 does not take DefaultMaxReplySize")
	}
}
