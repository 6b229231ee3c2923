package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

// OPEN-1: callers defer only on temporary failures; Temporary tells them
// apart from answers, also for failures remembered in the store.
func TestTemporary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// 404: an answer, not temporary.
	e := newNetEnv(t, func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
	_, err := e.client.Fetch(ctx, testDomain)
	if !errors.Is(err, ErrPolicyFetch) || Temporary(err) {
		t.Errorf("404: Temporary(%v) = %v, want false", err, Temporary(err))
	}

	// Connection refused: temporary.
	port := testnet.RefusedPortFor(t)
	c := &Client{DNS: e.client.DNS, RootCAs: e.client.RootCAs, Timeout: e.client.Timeout, HTTPSPort: port}
	_, err = c.Fetch(ctx, testDomain)
	if !errors.Is(err, ErrPolicyFetch) || !Temporary(err) {
		t.Errorf("refused: Temporary(%v) = false, want true", err)
	}

	// A server that never answers, cut by the timeout: temporary.
	slow := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	slow.client.Timeout = 200 * time.Millisecond
	_, err = slow.client.Fetch(ctx, testDomain)
	if !Temporary(err) {
		t.Errorf("timeout: Temporary(%v) = false, want true", err)
	}

	// DNS failure for the policy host: temporary; no address: an answer.
	e.dns.SetError("mta-sts."+testDomain, fmt.Errorf("servfail: %w", dnsresolve.ErrLookupFailed))
	if _, err = e.client.Fetch(ctx, testDomain); !Temporary(err) {
		t.Errorf("policy host SERVFAIL: Temporary(%v) = false", err)
	}
	noaddr := newNetEnv(t, policyHandler("x"))
	noaddr.dns.IP = nil
	noaddr.dns.SetIP("mta-sts." + testDomain)
	if _, err = noaddr.client.Fetch(ctx, testDomain); err == nil || Temporary(err) {
		t.Errorf("no address: Temporary(%v) = true", err)
	}

	// TXT lookup failure (ErrDNS) is temporary; certificate and syntax
	// errors are not.
	if !Temporary(fmt.Errorf("x: %w", ErrDNS)) || Temporary(ErrPolicyCertificate) || Temporary(ErrPolicySyntax) || Temporary(nil) {
		t.Error("sentinel classification wrong")
	}

	// Remembered failures keep their class (the cache's stored form).
	for _, orig := range []error{err, markTemporary(fmt.Errorf("%w: refused", ErrPolicyFetch)), fmt.Errorf("%w: 404", ErrPolicyFetch)} {
		back := storedError(lastError(orig))
		if Temporary(back) != Temporary(orig) || ResultType(back) != ResultType(orig) || !Remembered(back) {
			t.Errorf("stored %q: Temporary %v → %v, ResultType %q → %q, Remembered %v",
				lastError(orig), Temporary(orig), Temporary(back), ResultType(orig), ResultType(back), Remembered(back))
		}
	}
	if Remembered(ErrDNS) {
		t.Error("Remembered(fresh error) = true")
	}
}
