package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// A hosted domain's policy host gets its certificate up front, over
// HTTP-01, and the TLS listener serves it (STS-PUB-3).
func TestManageHTTP01(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{disableALPN: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.m.Manage(ctx, []string{"MTA-STS.Hosted.test."}); err != nil {
		t.Fatal(err)
	}
	leaf, err := e.handshake("mta-sts.hosted.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(leaf.DNSNames, "mta-sts.hosted.test") {
		t.Errorf("served certificate names %v", leaf.DNSNames)
	}
	st, err := e.m.Status(ctx, "mta-sts.hosted.test")
	if err != nil {
		t.Fatal(err)
	}
	if !st.NotAfter.Equal(leaf.NotAfter) || st.NotAfter.Before(time.Now().Add(24*time.Hour)) {
		t.Errorf("status not_after %v, served %v", st.NotAfter, leaf.NotAfter)
	}
	if st.Issuer != leaf.Issuer.CommonName || st.Issuer == "" {
		t.Errorf("status issuer %q, served %q", st.Issuer, leaf.Issuer.CommonName)
	}
	if !e.ca.Ordered("mta-sts.hosted.test") {
		t.Errorf("pebble saw no order for the hosted name: %v", e.ca.Orders())
	}
	// Requests that are no challenge reach the wrapped handler.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/mta-sts.txt", e.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "next handler" {
		t.Errorf("plain request answered %q", body)
	}
	if _, err := e.m.Status(ctx, "mta-sts.other.test"); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("status of an unknown name: %v, want ErrNoCertificate", err)
	}
	// Without delegation configured, nothing else is issued on demand.
	if _, err := e.handshake("mta-sts.good.test"); err == nil {
		t.Error("on-demand certificate issued with delegation off")
	}
	if e.ca.Ordered("mta-sts.good.test") {
		t.Error("pebble saw an order for a name that is not hosted")
	}
}

// RFC 8461 §8.2 (fixture F-4): delegated domains get a certificate on
// demand, over TLS-ALPN-01, once DNS shows both CNAMEs (or our address);
// the certificate names mta-sts.<their domain>, not our host (STS-FETCH-15,
// STS-PUB-3). Names whose delegation is missing, half done or pointing
// elsewhere get none, and the CA never sees an order for them.
func TestOnDemandDelegation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{disableHTTP: true, delegation: providerDelegation()})
	for _, name := range []string{"mta-sts.good.test", "mta-sts.byaddr.test"} {
		leaf, err := e.handshake(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("%s: certificate for %v", name, leaf.DNSNames)
		}
		if !e.ca.Ordered(name) {
			t.Errorf("%s: no order seen by pebble", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := e.m.Status(ctx, name)
		cancel()
		if err != nil || !st.NotAfter.Equal(leaf.NotAfter) {
			t.Errorf("%s: status %+v, %v", name, st, err)
		}
	}
	// Hosted names are managed next to the delegated ones, with no
	// delegation in DNS (hosted4.test's _mta-sts is ours to publish).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.m.Manage(ctx, []string{"mta-sts.hosted4.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.handshake("mta-sts.hosted4.test"); err != nil {
		t.Fatalf("hosted name with delegation on: %v", err)
	}
	refused := map[string]error{
		"mta-sts.half.test":      ErrNotDelegated, // _mta-sts CNAME missing
		"mta-sts.otherhalf.test": ErrNotDelegated, // mta-sts CNAME missing
		"mta-sts.foreign.test":   ErrNotDelegated, // someone else's address
		"mta-sts.owntxt.test":    ErrNotDelegated, // own TXT, no CNAME to ours
		"mta-sts.nowhere.test":   ErrNotDelegated, // no records at all
		"www.good.test":          ErrNotPolicyHost,
	}
	for name, want := range refused {
		if _, err := e.handshake(name); err == nil {
			t.Errorf("%s: handshake succeeded", name)
		}
		if err := e.m.Decide(context.Background(), name); !errors.Is(err, want) {
			t.Errorf("%s: Decide = %v, want %v", name, err, want)
		}
	}
	// Each refused name has now used 2 of its 3 checks (the handshake's and
	// ours): the next two decisions are one check and one refusal by the
	// rate limiter.
	if err := e.m.Decide(context.Background(), "mta-sts.half.test"); !errors.Is(err, ErrNotDelegated) {
		t.Errorf("third check: %v, want ErrNotDelegated", err)
	}
	if _, err := e.handshake("mta-sts.half.test"); err == nil {
		t.Error("rate-limited name served")
	}
	if err := e.m.Decide(context.Background(), "mta-sts.half.test"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("past the limit: %v, want ErrRateLimited", err)
	}
	for _, o := range e.ca.Orders() {
		for _, n := range o {
			if _, bad := refused[n]; bad {
				t.Errorf("pebble saw an order for %s", n)
			}
		}
	}
	if got := len(e.ca.Orders()); got != 3 {
		t.Errorf("pebble saw %d orders, want 3: %v", got, e.ca.Orders())
	}
}

// Instances sharing a PostgreSQL or Redis storage share certificates: two
// managers asking for the same name at once take turns through the
// storage's lock, and the CA sees exactly one order; both then serve that
// certificate.
func TestSharedStorageACME(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, open sharedStorage) {
		// certmagic keeps pending challenges in a process-wide map keyed
		// by name: the parallel subtests use names of their own.
		name := "mta-sts.hosted2.test"
		if strings.HasSuffix(t.Name(), "redis") {
			name = "mta-sts.hosted3.test"
		}
		e := newEnv(t, envOptions{disableALPN: true, storage: open(t, 0)})
		m2, err := New(Config{CA: e.ca.URL, TrustedRoots: e.ca.APIRoots, Storage: open(t, 0),
			HTTPPort: e.httpPort, TLSPort: e.tlsPort, ListenHost: "127.0.0.1", DisableTLSALPN01: true, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer m2.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		errs := make(chan error, 2)
		for _, m := range []*Manager{e.m, m2} {
			go func() { errs <- m.Manage(ctx, []string{name}) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n := e.ca.OrderCount(name); n != 1 {
			t.Errorf("the CA saw %d orders for %s, want 1", n, name)
		}
		first, err := e.m.Status(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		second, err := m2.Status(ctx, name)
		if err != nil || !second.NotAfter.Equal(first.NotAfter) {
			t.Errorf("second instance: %+v, %v; first %+v", second, err, first)
		}
		c, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || c.Leaf == nil || !c.Leaf.NotAfter.Equal(first.NotAfter) {
			t.Errorf("second instance serves %v, %v", c, err)
		}
	})
}
