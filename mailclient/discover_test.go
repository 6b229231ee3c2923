package mailclient

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

// SRV discovery on the fake Internet (TLS8314-4: clients SHOULD use RFC
// 6186): clients.example publishes SRV records for five services and "."
// for _pop3._tcp; implicit TLS comes first.
func TestDiscoverSRV(t *testing.T) {
	t.Parallel()
	n := shared.Net(t)
	d := newDialer(t, n)
	disc, err := d.Discover(context.Background(), "User@Clients.Example")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range disc.Endpoints {
		if e.Host != "mail.clients.example" || e.Port != n.ClientPort(testnet.ClientService(e.Service)) || e.Source != FromSRV || e.Confirm {
			t.Errorf("endpoint %+v", e)
		}
		got = append(got, string(e.Service))
	}
	if want := "submissions submission imaps imap pop3s"; strings.Join(got, " ") != want {
		t.Errorf("services %q, want %q", got, want)
	}
	if disc.Domain != "clients.example" || !slices.Equal(disc.NotOffered, []Service{POP3Plain}) || len(disc.Notes) != 0 {
		t.Errorf("discovery %+v", disc)
	}
	if eps := disc.For(IMAP); len(eps) != 2 || eps[0].Service != IMAPS {
		t.Errorf("For(IMAP) = %v", eps)
	}
}

// Without SRV records the well-known names are tried: badclients.example
// has mail.badclients.example only; a domain with nothing has no endpoint.
func TestDiscoverWithoutSRV(t *testing.T) {
	t.Parallel()
	n := shared.Net(t)
	d := newDialer(t, n)
	disc, err := d.Discover(context.Background(), "user@badclients.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(disc.Endpoints) != 6 {
		t.Fatalf("endpoints %v", disc.Endpoints)
	}
	for i, s := range Services() {
		e := disc.Endpoints[i]
		if e.Service != s || e.Host != "mail.badclients.example" || e.Source != FromWellKnown || e.Port != d.Ports[s] {
			t.Errorf("endpoint %d: %+v", i, e)
		}
	}
	if len(disc.Notes) != 3 || !strings.Contains(disc.Notes[0], "well-known name mail.badclients.example") {
		t.Errorf("notes %q", disc.Notes)
	}
	disc, err = d.Discover(context.Background(), "nobody@enforce.example")
	if err != nil || len(disc.Endpoints) != 0 {
		t.Errorf("enforce.example: %+v, %v", disc, err)
	}
	if disc, _ := (&Discoverer{NoFallback: true, Resolver: d.Resolver}).Discover(context.Background(), "x@badclients.example"); len(disc.Endpoints) != 0 {
		t.Errorf("NoFallback: %v", disc.Endpoints)
	}
	for _, bad := range []string{"", "user@", "localhost", "user@bad..name"} {
		if _, err := d.Discover(context.Background(), bad); err == nil {
			t.Errorf("account %q accepted", bad)
		}
	}
}

// RFC 6186 §6, RFC 7817 §3: an SRV target outside the account's domain
// needs confirmation unless the answer was DNSSEC-signed; a failed lookup
// is noted and the protocol falls back; priorities order within a service.
func TestDiscoverTrust(t *testing.T) {
	t.Parallel()
	f := &dnsresolve.Fake{}
	f.SetSRV("_imaps._tcp.a.example", dnsresolve.SRV{Priority: 5, Port: 993, Target: "imap.provider.example"}, dnsresolve.SRV{Priority: 1, Port: 993, Target: "imap.a.example"})
	f.SetSRV("_submissions._tcp.b.example", dnsresolve.SRV{Port: 465, Target: "smtp.provider.example"})
	f.SetAuthenticated("_submissions._tcp.b.example", true)
	f.SetError("SRV _pop3s._tcp.a.example", dnsresolve.ErrLookupFailed)
	f.SetIP("mail.a.example", netipAddr("192.0.2.1"))
	d := &Discoverer{Resolver: f}
	disc, err := d.Discover(context.Background(), "a.example")
	if err != nil {
		t.Fatal(err)
	}
	imap := disc.For(IMAP)
	if len(imap) != 2 || imap[0].Host != "imap.a.example" || imap[0].Confirm || imap[1].Host != "imap.provider.example" || !imap[1].Confirm {
		t.Errorf("imap %+v", imap)
	}
	pop := disc.For(POP3)
	if len(pop) != 2 || pop[0].Host != "mail.a.example" || pop[0].Port != 995 || !strings.Contains(strings.Join(disc.Notes, "\n"), "_pop3s._tcp.a.example") {
		t.Errorf("pop3 %+v, notes %q", pop, disc.Notes)
	}
	disc, _ = d.Discover(context.Background(), "b.example")
	if smtp := disc.For(SMTP); len(smtp) != 1 || smtp[0].Confirm || !smtp[0].DNSSEC {
		t.Errorf("signed SRV: %+v", smtp)
	}
	// A Dialer refuses an endpoint that needs confirmation unless asked.
	dl := &Dialer{Resolver: f}
	if _, err := dl.Dial(context.Background(), "a.example", imap[1]); !errorsIs(err, ErrUnconfirmed) {
		t.Errorf("unconfirmed: %v", err)
	}
}
