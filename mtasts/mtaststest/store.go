package mtaststest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// TestStore is the conformance suite for an [mtasts.Store]. newStore must
// return an empty store for each call (each subtest gets its own, and the
// subtests run in parallel) and arrange its cleanup with t.Cleanup.
//
// It checks (STS-CACHE-1): a missing domain is (nil, nil); every Entry field
// round-trips, times to the millisecond, for a full entry, a negative
// (nil-policy) entry and a policy with extensions; the store keeps no
// reference to the caller's entry and hands out copies; Put replaces;
// Delete removes and tolerates a missing domain; Range visits every entry
// once and stops when fn returns false; concurrent Put and Get are safe
// (run it with -race).
func TestStore(t *testing.T, newStore func(t *testing.T) mtasts.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)

	t.Run("absent", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		e, err := s.Get(ctx, "absent.example")
		if e != nil || err != nil {
			t.Fatalf("Get(absent) = %+v, %v; want nil, nil", e, err)
		}
	})

	t.Run("round-trip", func(t *testing.T) { // STS-CACHE-1
		t.Parallel()
		s := newStore(t)
		for _, want := range SampleEntries(now) {
			if err := s.Put(ctx, want); err != nil {
				t.Fatalf("Put(%s): %v", want.Domain, err)
			}
		}
		for _, want := range SampleEntries(now) {
			got, err := s.Get(ctx, want.Domain)
			if err != nil {
				t.Fatalf("Get(%s): %v", want.Domain, err)
			}
			if diff := EntryDiff(got, want); diff != "" {
				t.Errorf("Get(%s) after Put: %s", want.Domain, diff)
			}
		}
	})

	t.Run("copies", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		e := SampleEntries(now)[0]
		want := *e
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		// The caller may reuse its entry after Put.
		e.ID, e.Failures, e.LastUsed, e.Policy = "changed", 99, now.Add(time.Hour), nil
		got, err := s.Get(ctx, want.Domain)
		if err != nil {
			t.Fatal(err)
		}
		if diff := EntryDiff(got, &want); diff != "" {
			t.Fatalf("store kept a reference to the Put entry: %s", diff)
		}
		// And may modify what Get returned.
		got.ID, got.Failures = "mine", 7
		again, err := s.Get(ctx, want.Domain)
		if err != nil {
			t.Fatal(err)
		}
		if diff := EntryDiff(again, &want); diff != "" {
			t.Fatalf("store handed out its own entry: %s", diff)
		}
	})

	t.Run("replace", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		entries := SampleEntries(now)
		first, second := entries[0], entries[1]
		second.Domain = first.Domain
		for _, e := range []*mtasts.Entry{first, second} {
			if err := s.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Get(ctx, first.Domain)
		if err != nil {
			t.Fatal(err)
		}
		if diff := EntryDiff(got, second); diff != "" {
			t.Fatalf("after replacing: %s", diff)
		}
	})

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		e := SampleEntries(now)[0]
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, e.Domain); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, e.Domain); got != nil || err != nil {
			t.Fatalf("Get after Delete = %+v, %v; want nil, nil", got, err)
		}
		if err := s.Delete(ctx, "never-there.example"); err != nil {
			t.Fatalf("Delete(missing) = %v, want nil", err)
		}
		// A deleted domain can be stored again.
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, e.Domain); got == nil || err != nil {
			t.Fatalf("Get after re-Put = %+v, %v", got, err)
		}
	})

	t.Run("range", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		const n = 60
		want := make(map[string]bool)
		for i := range n {
			e := SampleEntries(now)[i%3]
			e.Domain = fmt.Sprintf("d%02d.range.example", i)
			want[e.Domain] = true
			if err := s.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		seen := make(map[string]int)
		err := s.Range(ctx, func(e *mtasts.Entry) bool {
			seen[e.Domain]++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Errorf("Range visited %d domains, want %d", len(seen), n)
		}
		for d, c := range seen {
			if !want[d] || c != 1 {
				t.Errorf("Range visited %s %d times (expected: %v)", d, c, want[d])
			}
		}
		calls := 0
		err = s.Range(ctx, func(*mtasts.Entry) bool {
			calls++
			return calls < 3
		})
		if err != nil || calls != 3 {
			t.Errorf("Range stopping after 3: %d calls, err %v", calls, err)
		}
	})

	t.Run("invalid-domain", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, d := range []string{"", strings.Repeat("a", 254), "with space.example", "star*.example"} {
			e := SampleEntries(now)[1]
			e.Domain = d
			if err := s.Put(ctx, e); err == nil {
				t.Errorf("Put(%q) = nil, want an error", d)
			}
		}
		long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
		e := SampleEntries(now)[1]
		e.Domain = long
		if err := s.Put(ctx, e); err != nil {
			t.Errorf("Put(253-octet domain) = %v", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		const workers, ops = 8, 40
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ops {
					e := SampleEntries(now)[i%3]
					e.Domain = fmt.Sprintf("d%d.concurrent.example", i%5)
					e.Failures = w
					if err := s.Put(ctx, e); err != nil {
						errs <- err
						return
					}
					got, err := s.Get(ctx, e.Domain)
					if err != nil {
						errs <- err
						return
					}
					// Some worker's whole entry, never a mix or nothing.
					if got == nil || got.Failures < 0 || got.Failures >= workers {
						errs <- fmt.Errorf("Get(%s) = %+v during concurrent Puts", e.Domain, got)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// SampleEntries returns fresh entries covering every field, for tests of a
// store's encoding: a full entry with a policy carrying extensions, a
// negative entry with failure state, and a mode none policy with empty
// (non-nil) slices and zero times; then last failures of every shape: a
// class without failure state, a class mailsts does not know (temporary),
// and a legacy failure with only its text. Times are relative to now and
// carry sub-millisecond parts that stores may drop (compare with
// [EntryDiff]).
func SampleEntries(now time.Time) []*mtasts.Entry {
	sub := 456789 * time.Nanosecond
	return []*mtasts.Entry{
		{
			Domain: "full.example",
			Policy: &mtasts.Policy{
				Mode:       mtasts.ModeEnforce,
				MX:         []string{"mx1.full.example", "*.mx.full.example"},
				MaxAge:     86400,
				Extensions: []mtasts.Extension{{Key: "x-a", Value: "1"}, {Key: "x-b", Value: "two words"}},
			},
			ID:            "20240101T000000",
			FetchedAt:     now.Add(-time.Hour + sub),
			CheckedAt:     now.Add(-time.Minute + sub),
			NoPolicyUntil: now.Add(time.Hour + sub),
			FailedID:      "20240202",
			FailedAt:      now.Add(-30*time.Second + sub),
			Failures:      3,
			LastError:     "sts-policy-fetch-error: HTTP 500",
			LastErrorType: result.STSPolicyFetchError,
			LastUsed:      now.Add(-time.Second + sub),
		},
		{
			Domain:        "negative.example",
			CheckedAt:     now.Add(-2 * time.Minute),
			NoPolicyUntil: now.Add(30 * time.Minute),
			FailedID:      "abc",
			FailedAt:      now.Add(-2 * time.Minute),
			Failures:      1,
			LastError:     "dns-error+temporary: SERVFAIL",
			LastErrorType: result.DNSError,

			LastErrorTemporary: true,
		},
		{
			Domain: "none.example",
			Policy: &mtasts.Policy{Mode: mtasts.ModeNone, MX: []string{}, MaxAge: 0, Extensions: []mtasts.Extension{}},
			ID:     "n1",
			// FetchedAt long before the Unix epoch, to catch sign bugs.
			FetchedAt: time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC),
		},
		{
			Domain:        "nopolicy.example",
			NoPolicyUntil: now.Add(5 * time.Minute),
			LastError:     "no-policy: mtasts: no MTA-STS TXT record",
			LastErrorType: result.NoPolicy,
		},
		{
			Domain:        "future.example",
			NoPolicyUntil: now.Add(5 * time.Minute),
			LastError:     "some-future-class+temporary: x",
			LastErrorType: "some-future-class",

			LastErrorTemporary: true,
		},
		{
			Domain:        "legacy.example",
			NoPolicyUntil: now.Add(5 * time.Minute),
			LastError:     "sts-policy-invalid: mtasts: invalid policy",
		},
	}
}

// EntryDiff describes how got differs from want, or returns "" when they
// are equal with times compared to the millisecond (zero times must stay
// zero) and policies compared field by field, nil and empty slices apart.
func EntryDiff(got, want *mtasts.Entry) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %q, want %q", name, g, w))
		}
	}
	tm := func(name string, g, w time.Time) {
		if g.IsZero() != w.IsZero() || g.UnixMilli() != w.UnixMilli() {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	str("Domain", got.Domain, want.Domain)
	str("ID", got.ID, want.ID)
	str("FailedID", got.FailedID, want.FailedID)
	str("LastError", got.LastError, want.LastError)
	str("LastErrorType", string(got.LastErrorType), string(want.LastErrorType))
	if got.LastErrorTemporary != want.LastErrorTemporary {
		d = append(d, fmt.Sprintf("LastErrorTemporary = %v, want %v", got.LastErrorTemporary, want.LastErrorTemporary))
	}
	if got.Failures != want.Failures {
		d = append(d, fmt.Sprintf("Failures = %d, want %d", got.Failures, want.Failures))
	}
	tm("FetchedAt", got.FetchedAt, want.FetchedAt)
	tm("CheckedAt", got.CheckedAt, want.CheckedAt)
	tm("NoPolicyUntil", got.NoPolicyUntil, want.NoPolicyUntil)
	tm("FailedAt", got.FailedAt, want.FailedAt)
	tm("LastUsed", got.LastUsed, want.LastUsed)
	if !reflect.DeepEqual(got.Policy, want.Policy) {
		d = append(d, fmt.Sprintf("Policy = %#v, want %#v", got.Policy, want.Policy))
	}
	return strings.Join(d, "; ")
}
