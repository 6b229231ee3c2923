package dnsresolve

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rootHandler answers ". SOA" with NOERROR, setting AD when ad, and counts
// the queries; it checks each asks for DNSSEC (DO or AD bit).
func rootHandler(t *testing.T, ad bool, count *atomic.Int64) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		count.Add(1)
		q := r.Question[0]
		if q.Name != "." || q.Qtype != dns.TypeSOA {
			t.Errorf("probe asked %s %s, want . SOA", q.Name, dns.TypeToString[q.Qtype])
		}
		if opt := r.IsEdns0(); !r.AuthenticatedData || opt == nil || !opt.Do() {
			t.Errorf("probe without the AD and DO bits (RFC 6840 §5.7): AD %v, OPT %v", r.AuthenticatedData, opt)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		m.AuthenticatedData = ad
		m.Answer = append(m.Answer, mustRR(". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 2026120600 1800 900 604800 86400"))
		_ = w.WriteMsg(m)
	}
}

// DANE-1: DANE needs authenticated answers; a resolver answering the
// signed root without the AD bit never gives one. Only a received answer
// proves that; a silent or failing server leaves it unknown.
func TestClientValidatesDNSSEC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var nValid, nPlain, nFail atomic.Int64
	valid := startServer(t, rootHandler(t, true, &nValid))
	plain := startServer(t, rootHandler(t, false, &nPlain))
	failing := startServer(t, rcodeHandler(dns.RcodeServerFailure, &nFail))
	silent := startServer(t, dns.HandlerFunc(func(dns.ResponseWriter, *dns.Msg) {}))

	cases := []struct {
		name    string
		servers []string
		want    bool
		unknown bool
	}{
		{"validating", []string{valid}, true, false},
		{"not validating", []string{plain}, false, false},
		{"every server not validating", []string{plain, plain}, false, false},
		{"one of two validates", []string{plain, valid}, true, false},
		{"SERVFAIL is unknown", []string{failing}, false, true},
		{"a failing second server leaves it unknown", []string{plain, failing}, false, true},
		{"a validating server decides whatever the others do", []string{failing, valid}, true, false},
		{"no reply is unknown", []string{silent}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tc.servers...)
			if err != nil {
				t.Fatal(err)
			}
			c.Timeout, c.Attempts = 200*time.Millisecond, 1
			var p DNSSECProber = c
			got, err := p.ValidatesDNSSEC(ctx)
			if tc.unknown {
				if err == nil || !errors.Is(err, ErrLookupFailed) || errors.Is(err, ErrNotFound) {
					t.Fatalf("ValidatesDNSSEC = %v, %v; want an error matching ErrLookupFailed only", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ValidatesDNSSEC = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestFakeValidatesDNSSEC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var f Fake
	var p DNSSECProber = &f
	if got, err := p.ValidatesDNSSEC(ctx); got || err != nil {
		t.Fatalf("empty Fake: %v, %v; want false (not validating)", got, err)
	}
	f.SetAuthenticated(".", true)
	if got, err := p.ValidatesDNSSEC(ctx); !got || err != nil {
		t.Fatalf("root authenticated: %v, %v; want true", got, err)
	}
	f.SetError("SOA .", ErrNotFound)
	if _, err := p.ValidatesDNSSEC(ctx); !errors.Is(err, ErrLookupFailed) || errors.Is(err, ErrNotFound) {
		t.Fatalf("failing probe: %v; want ErrLookupFailed only", err)
	}
	if q := f.Queries(); len(q) != 3 || q[0] != "SOA ." {
		t.Fatalf("queries %q, want three \"SOA .\"", q)
	}
}
