package policyd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bigPolicyDomain is an enforce domain whose 40 long mx patterns make the
// secure answer about 5.6 KB: over tcp_table's 4096 bytes, within
// socketmap's 100000. Its two MX hosts match the 8th pattern (exactly) and
// the last one (a wildcard).
func bigPolicyDomain() (d testnet.Domain, patterns []string, short string) {
	l := strings.Repeat("x", 60)
	w := strings.Repeat("w", 60)
	for i := range 39 {
		patterns = append(patterns, fmt.Sprintf("mx%02d.%s.%s.big.example", i, l, l))
	}
	patterns = append(patterns, "*."+w+".big.example")
	body := "version: STSv1\nmode: enforce\n"
	for _, p := range patterns {
		body += "mx: " + p + "\n"
	}
	body += "max_age: 86400\n"
	d = testnet.Domain{
		Name:   "big.example",
		STSTXT: [][]string{{"v=STSv1; id=big1"}},
		Policy: &testnet.PolicyHost{Body: body},
		MX: []testnet.MXHost{
			{Name: patterns[7], Pref: 10},
			{Name: "mx." + w + ".big.example", Pref: 20},
		},
	}
	short = "secure match=" + patterns[7] + ":." + w + ".big.example servername=hostname"
	return d, patterns, short
}

// Issue #10 item 9, PFX-TCP-3, PFX-SOCKETMAP-6, PFX-POL-5, PFX-POL-7: an
// enforce answer over tcp_table's 4096 bytes is shortened to one that is
// valid and never weaker — level secure, servername kept, only the match
// patterns of the live MX hosts in preference order — instead of a 400 on
// every lookup; socketmap, whose limit it fits, gets the whole answer on
// the same map name, memo or not. One warning per domain.
func TestAnswerFitsTCPTableLimit(t *testing.T) {
	t.Parallel()
	dom, patterns, short := bigPolicyDomain()
	e := newEnv(t, nil, dom)
	logs := &syncBuffer{}
	e.r.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	get := serveBoth(t, e.r)
	full := "secure match=" + matchList(patterns) + " servername=hostname"
	if len(full) <= postfix.MaxTCPReplySize {
		t.Fatalf("the fixture's answer is only %d bytes", len(full))
	}
	for i, proto := range []string{"socketmap", "tcp_table", "socketmap", "tcp_table", "tcp_table"} {
		rep := get[proto]("big.example")
		want := full
		if proto == "tcp_table" {
			want = short
		}
		if rep.Status != postfix.StatusOK || rep.Data != want {
			t.Errorf("lookup %d over %s: %v %.120q…, want OK %.120q…", i, proto, rep.Status, rep.Data, want)
		}
	}
	if n := strings.Count(logs.String(), "over Postfix's reply size limit"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	// The decision (logs, --explain) says so.
	reason := socketmapCall(t, postfix.MaxTCPReplySize, func(ctx context.Context) string {
		_, d := e.r.Answer(ctx, "postfix", "big.example")
		return d.Reason
	})
	if !strings.Contains(reason, "shortened to fit Postfix's reply size limit, with only the match patterns of the live MX hosts") {
		t.Errorf("reason %q", reason)
	}
}

// Issue #10 item 9, PFX-SOCKETMAP-6, PFX-STS-3: socketmap's limit (Postfix's
// socketmap_max_reply_size, listen[].max_reply_size) is handled the same
// way: the TLSRPT attributes lose their policy_string lines first, then go
// altogether, then patterns go (in policy order when the MX set is
// unknown), never below one.
func TestAnswerFitsSocketmapLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, f2Domain())
	// Warm the cache with the F-2 policy, then answer without DNS (no
	// MX set known) from the cache only.
	if got, _ := e.answer(t, "postfix", "example.com"); got != f2Secure {
		t.Fatalf("warm-up: %q", got)
	}
	r := &Responder{Cache: e.cache}
	const noStrings = "OK secure match=mail.example.com:.example.net:backupmx.example.com servername=hostname policy_type=sts policy_domain=example.com mx_host_pattern=mail.example.com mx_host_pattern=*.example.net mx_host_pattern=backupmx.example.com"
	for _, c := range []struct {
		max       int
		name      string
		want      string
		shortened bool
	}{
		{100000, TLSRPTMapName, f2TLSRPT, false},
		{457, TLSRPTMapName, f2TLSRPT, false}, // exactly the limit
		{456, TLSRPTMapName, noStrings, true},
		{len(noStrings) - 1, TLSRPTMapName, f2Secure, true},
		{86, "postfix", f2Secure, false},
		{85, "postfix", "OK secure match=mail.example.com:.example.net servername=hostname", true},
		{60, "postfix", "OK secure match=mail.example.com servername=hostname", true},
		{10, "postfix", "OK secure match=mail.example.com servername=hostname", true}, // never no pattern
	} {
		srv := &postfix.SocketmapServer{Handler: r, MaxReplySize: c.max}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pc, err := postfix.DialSocketmap(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		rep, err := pc.Lookup(ctx, c.name, "example.com")
		pc.Close()
		srv.Close()
		cancel()
		got := rep.Status.String() + " " + rep.Data
		if c.max < len(c.want) {
			// Below one pattern the server's own check answers TEMP:
			// the answer cannot shrink further without dropping every
			// pattern, which would weaken it.
			if rep.Status != postfix.StatusTemp {
				t.Errorf("max %d: %q, want TEMP from the server", c.max, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("max %d, map %s: %q (%v), want %q", c.max, c.name, got, err, c.want)
		}
	}
}

// socketmapCall runs fn as the handler of one socketmap lookup on a server
// with the given reply limit and returns its answer's data.
func socketmapCall(t *testing.T, maxReply int, fn func(ctx context.Context) string) string {
	t.Helper()
	srv := &postfix.SocketmapServer{MaxReplySize: maxReply, Handler: postfix.HandlerFunc(func(ctx context.Context, _, _ string) postfix.Reply {
		return postfix.Found(fn(ctx))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc, err := postfix.DialSocketmap(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	rep, err := pc.Lookup(ctx, "postfix", "example.com")
	if err != nil || rep.Status != postfix.StatusOK {
		t.Fatalf("%v %v %q", err, rep.Status, rep.Data)
	}
	return rep.Data
}

// Issue #10 item 9, PFX-POL-5: when patterns must go, those of the live MX
// hosts are kept in MX preference order (the host Postfix tries first gets
// its pattern first), and patterns matching no live host go first.
func TestFitPatternOrder(t *testing.T) {
	t.Parallel()
	p, err := mtasts.ParsePolicy([]byte(f2))
	if err != nil {
		t.Fatal(err)
	}
	res := mtasts.Result{Domain: "example.com", Policy: p}
	r := &Responder{}
	for _, c := range []struct {
		max   int
		hosts []string
		want  string
	}{
		{60, []string{"backupmx.example.com", "a.example.net"}, "secure match=backupmx.example.com servername=hostname"},
		{80, []string{"backupmx.example.com", "a.example.net"}, "secure match=backupmx.example.com:.example.net servername=hostname"},
		// mail.example.com is not a live MX host: its pattern goes even
		// though it would fit.
		{85, []string{"b.example.net", "backupmx.example.com", "c.example.net"}, "secure match=.example.net:backupmx.example.com servername=hostname"},
	} {
		got := socketmapCall(t, c.max, func(ctx context.Context) string {
			return r.fit(ctx, &domainState{}, res, Zone{}, false, &Decision{MXHosts: c.hosts})
		})
		if got != c.want {
			t.Errorf("max %d, MX %v: %q, want %q", c.max, c.hosts, got, c.want)
		}
	}
}

// Issue #10 item 9, PFX-SOCKETMAP-6, PFX-TCP-3: the daemon passes a
// socketmap listener's max_reply_size (Postfix's socketmap_max_reply_size)
// to the server, and both kinds of listener shorten the same long answer
// alike; the option is refused where it means nothing.
func TestDaemonReplyLimits(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`listen: [{tcp_table: "127.0.0.1:0", max_reply_size: 4096}]`,
		`listen: [{socketmap: "127.0.0.1:0", max_reply_size: 100}]`,
	} {
		if _, _, err := Parse([]byte(bad)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", bad, err)
		}
	}
	dom, _, short := bigPolicyDomain()
	n := startNet(t, dom)
	cfg := testConfig(t, n, "memory", "")
	cfg.Listen = []Listener{{Socketmap: "127.0.0.1:0", MaxReplySize: 4096}, {TCPTable: "127.0.0.1:0", Zone: "postfix"}}
	ready := make(chan []net.Addr, 1)
	d := &Daemon{Config: cfg, Ready: func(a []net.Addr) { ready <- a }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop within 30s")
		}
	}()
	var addrs []net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	sc, err := postfix.DialSocketmap(ctx, "tcp", addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	tc, err := postfix.DialTCPTable(ctx, "tcp", addrs[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for i := range 2 {
		rep, err := sc.Lookup(ctx, "postfix", "big.example")
		if err != nil || rep.Status != postfix.StatusOK || rep.Data != short {
			t.Errorf("socketmap %d: %v %v %.100q…", i, err, rep.Status, rep.Data)
		}
		rep, err = tc.Get(ctx, "big.example")
		if err != nil || rep.Status != postfix.StatusOK || rep.Data != short {
			t.Errorf("tcp_table %d: %v %v %.100q…", i, err, rep.Status, rep.Data)
		}
	}
}
