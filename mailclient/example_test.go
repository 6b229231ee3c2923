package mailclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mailclient"
)

// A mail client sets up an account from its address alone: SRV discovery,
// then IMAP over the first acceptable endpoint, handed to go-imap's
// client. The fake Internet stands in for the real one.
func ExampleDialer() {
	ctx := context.Background()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	resolver, _ := dnsresolve.NewClient(n.DNSAddr())
	dir, _ := os.MkdirTemp("", "mailclient")
	defer os.RemoveAll(dir)

	d := &mailclient.Dialer{
		Resolver: resolver,
		RootCAs:  n.RootCAs(), // the fake Internet's CA
		Store:    &mailclient.FileStore{Path: filepath.Join(dir, "latches.json")},
	}
	const account = "user@clients.example"
	disc, err := d.Discover(ctx, account)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range disc.For(mailclient.IMAP) {
		fmt.Println("candidate:", e.Service, e.Host, "from", e.Source)
	}
	s, err := d.DialProtocol(ctx, account, disc, mailclient.IMAP)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = s.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := imapclient.New(s.Conn, nil)
	defer c.Close()
	caps, err := c.Capability().Wait()
	fmt.Println("AUTH=PLAIN offered:", caps.Has("AUTH=PLAIN"), err)
	_ = c.Logout().Wait()

	level, _, _ := d.AccountLevel(ctx, account)
	fmt.Println("connected with", s.Observation.Endpoint.Service, tls.VersionName(s.Observation.TLSVersion), s.Observation.Validation)
	fmt.Println("account level:", level)
	// Output:
	// candidate: imaps mail.clients.example from srv
	// candidate: imap mail.clients.example from srv
	// AUTH=PLAIN offered: true <nil>
	// connected with imaps TLS 1.3 pkix
	// account level: validated
}

// Once TLS with a validated certificate was seen, a connection without
// it is refused even when the account's policy would allow cleartext:
// this is the latch. The user's explicit reset lifts it.
func ExampleDecide() {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	first := mailclient.Observation{TLS: true, TLSVersion: tls.VersionTLS13, Validation: mailclient.PKIX}
	latch := mailclient.Latch{}.Raise(first, now)

	stripped := mailclient.Observation{STARTTLSMissing: true}
	lax := mailclient.Policy{MinLevel: mailclient.LevelCleartext}
	v := mailclient.Decide(stripped, lax, latch, true)
	fmt.Println("accept:", v.Accept, "latched:", v.Latched)
	fmt.Println(v.Reasons[0])

	v = mailclient.Decide(stripped, lax, mailclient.Latch{}, false) // after a reset
	fmt.Println("after reset, accept:", v.Accept)
	// Output:
	// accept: false latched: true
	// TLS was used since 2026-12-01 and is missing now (STARTTLS was not offered: stripped by the server or by an attacker)
	// after reset, accept: true
}

// A refused connection carries what was observed and why, for the user.
func ExampleRefusedError() {
	err := error(&mailclient.RefusedError{
		Account:     "user@example.org",
		Observation: mailclient.Observation{Endpoint: mailclient.Endpoint{Service: mailclient.IMAPS, Host: "imap.example.org", Port: 993}, TLS: true, TLSVersion: tls.VersionTLS13, ValidationError: "certificate expired on 2026-11-30"},
		Verdict:     mailclient.Verdict{Latched: true, Reasons: []string{"the certificate was validated (pkix) since 2026-01-01 and is not now (certificate expired on 2026-11-30)"}},
	})
	var re *mailclient.RefusedError
	if errors.Is(err, mailclient.ErrRefused) && errors.As(err, &re) {
		fmt.Println(re.Observation.Level(), "refused; latched:", re.Verdict.Latched)
		fmt.Println("ask the user, then: d.Reset(ctx, account, mailclient.IMAP, reason)")
	}
	// Output:
	// tls-unvalidated refused; latched: true
	// ask the user, then: d.Reset(ctx, account, mailclient.IMAP, reason)
}
