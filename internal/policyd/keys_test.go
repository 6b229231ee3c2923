package policyd

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// callLog is a Resolver that records every call, whatever the name (the
// Fake does not record names it cannot normalize), and delegates.
type callLog struct {
	dnsresolve.Resolver
	mu    sync.Mutex
	calls []string
}

func (c *callLog) add(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
}

func (c *callLog) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *callLog) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	c.add("TXT " + name)
	return c.Resolver.LookupTXT(ctx, name)
}

func (c *callLog) LookupMX(ctx context.Context, name string) ([]dnsresolve.MX, dnsresolve.Answer, error) {
	c.add("MX " + name)
	return c.Resolver.LookupMX(ctx, name)
}

func (c *callLog) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	c.add("IP " + host)
	return c.Resolver.LookupIP(ctx, host)
}

func (c *callLog) LookupTLSA(ctx context.Context, port int, proto, host string) ([]dnsresolve.TLSA, dnsresolve.Answer, error) {
	c.add("TLSA " + host)
	return c.Resolver.LookupTLSA(ctx, port, proto, host)
}

// serveBoth serves h over socketmap and tcp_table (map name "postfix") on
// loopback and returns a lookup function per protocol.
func serveBoth(t *testing.T, h postfix.Handler) map[string]func(key string) postfix.Reply {
	t.Helper()
	sm := &postfix.SocketmapServer{Handler: h}
	tt := &postfix.TCPTableServer{Handler: h, Name: "postfix"}
	smLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ttLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sm.Serve(smLn)
	go tt.Serve(ttLn)
	t.Cleanup(func() { sm.Close(); tt.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	smc, err := postfix.DialSocketmap(ctx, "tcp", smLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ttc, err := postfix.DialTCPTable(ctx, "tcp", ttLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smc.Close(); ttc.Close() })
	return map[string]func(string) postfix.Reply{
		"socketmap": func(key string) postfix.Reply {
			t.Helper()
			r, err := smc.Lookup(ctx, "postfix", key)
			if err != nil {
				t.Fatalf("socketmap %q: %v", key, err)
			}
			return r
		},
		"tcp_table": func(key string) postfix.Reply {
			t.Helper()
			r, err := ttc.Get(ctx, key)
			if err != nil {
				t.Fatalf("tcp_table %q: %v", key, err)
			}
			return r
		},
	}
}

// Issue #10 item 9, STS-TXT-1, GO-10, GO-12, PFX-SOCKETMAP-4, PFX-TCP-3:
// keys that are not usable domain names (Punycode that IDNA rejects, as
// well as the forms ParseNextHop refuses) are NOTFOUND over both protocols
// with no DNS traffic, whatever the DANE setting: never "TEMP DANE lookup
// failed" because the DNS layer refused the name.
func TestInvalidKeysNotFoundBothProtocols(t *testing.T) {
	t.Parallel()
	keys := []string{
		"xn--zz.example",      // the key: "zz" is not valid Punycode
		"XN--ZZ.example.",     // same, other case and a trailing dot
		"mail.xn--zz",         // invalid A-label as the TLD
		"xn--a.example",       // decodes to a control character
		"xn---abc.example",    // decodes to a label starting with '-'
		"xn--ab--c.example",   // Punycode with a bad delta
		"xn--bücher.example",  // "xn--" followed by non-ASCII
		"[xn--zz.example]:25", // bracketed relay form
		"xn--zz.example:2525", // with a port
		"exa mple.com",        // ParseNextHop's invalid keys stay NOTFOUND
		"a..example",
		"-a.example",
	}
	for _, mode := range []DANEMode{DANEOn, DANEAuto} {
		fake := &dnsresolve.Fake{}
		dns := &callLog{Resolver: fake}
		r := &Responder{Cache: &mtasts.Cache{Client: &mtasts.Client{DNS: dns}}, DNS: dns}
		if err := r.SetRules(&Rules{Default: Zone{DANE: mode}}); err != nil {
			t.Fatal(err)
		}
		for proto, get := range serveBoth(t, r) {
			for _, key := range keys {
				if rep := get(key); rep.Status != postfix.StatusNotFound {
					t.Errorf("dane %s, %s %q: %v %q, want NOTFOUND", mode, proto, key, rep.Status, rep.Data)
				}
			}
		}
		for _, key := range keys {
			if _, d := r.Answer(context.Background(), "postfix", key); d.Answer != AnswerNotFound || d.Source != "key" {
				t.Errorf("dane %s, %q: decision %+v, want NOTFOUND decided by the key", mode, key, d)
			}
		}
		if c := dns.Calls(); len(c) != 0 {
			t.Errorf("dane %s: DNS lookups for invalid keys: %q", mode, c)
		}
	}
}
