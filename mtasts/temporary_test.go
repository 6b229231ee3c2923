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

// A remembered failure's class and temporariness come from the Entry's
// fields, not from its text; entries with only the text (written before
// the fields existed) still classify through the legacy reading.
func TestRememberedErrorFields(t *testing.T) {
	t.Parallel()
	for _, orig := range []error{
		fmt.Errorf("%w: x", ErrPolicyCertificate),
		markTemporary(fmt.Errorf("%w: refused", ErrPolicyFetch)),
		fmt.Errorf("%w: 404", ErrPolicyFetch),
		&SyntaxError{Line: 2, Msg: "bad"},
		fmt.Errorf("%w: SERVFAIL", ErrDNS),
		ErrNoRecord,
		fmt.Errorf("_mta-sts.x: %w: 2 records", ErrMultipleRecords),
	} {
		var e Entry
		setLastError(&e, orig)
		if e.LastErrorType != ResultType(orig) || e.LastErrorTemporary != Temporary(orig) || e.LastError != lastError(orig) {
			t.Errorf("%v: fields %q %v %q", orig, e.LastErrorType, e.LastErrorTemporary, e.LastError)
		}
		back := rememberedError(&e)
		if ResultType(back) != ResultType(orig) || Temporary(back) != Temporary(orig) || !Remembered(back) ||
			back.Error() != orig.Error()+" (remembered from an earlier attempt)" {
			t.Errorf("%v: back %q: ResultType %q, Temporary %v, Remembered %v", orig, back, ResultType(back), Temporary(back), Remembered(back))
		}
		for _, sentinel := range []error{ErrNoRecord, ErrMultipleRecords, ErrRecordSyntax, ErrDNS, ErrPolicyFetch, ErrPolicyCertificate, ErrPolicySyntax} {
			if errors.Is(orig, sentinel) != errors.Is(back, sentinel) {
				t.Errorf("%v: errors.Is(%v) differs after the round trip (%v)", orig, sentinel, back)
			}
		}

		// The text does not decide: a message that reads like another
		// class keeps the stored one.
		lie := e
		lie.LastError = "dns-error+temporary: mtasts: DNS lookup failed"
		if back := rememberedError(&lie); ResultType(back) != ResultType(orig) || Temporary(back) != Temporary(orig) || !Remembered(back) {
			t.Errorf("%v: with text %q: ResultType %q, Temporary %v", orig, lie.LastError, ResultType(back), Temporary(back))
		}

		// Legacy: an entry with the text only.
		legacy := Entry{LastError: e.LastError}
		if back := rememberedError(&legacy); ResultType(back) != ResultType(orig) || Temporary(back) != Temporary(orig) || !Remembered(back) {
			t.Errorf("%v: legacy %q: ResultType %q, Temporary %v", orig, legacy.LastError, ResultType(back), Temporary(back))
		}
	}
	var e Entry
	setLastError(&e, ErrDNS)
	setLastError(&e, nil)
	if e != (Entry{}) || rememberedError(&e) != nil {
		t.Errorf("cleared entry %+v", e)
	}
}
