package policyd

import (
	"math"
	"testing"
	"time"
	"unsafe"

	"github.com/mailsts/mailsts/mtasts"
)

// TestDomainStateSize keeps the per-domain state in the 64-byte size class:
// policyd holds one per recently looked-up domain, and the memory per
// cached domain (bench/policyd) adds it up 100,000 times.
func TestDomainStateSize(t *testing.T) {
	t.Parallel()
	if n := unsafe.Sizeof(domainState{}); n > 64 {
		t.Errorf("domainState is %d bytes, want at most 64", n)
	}
}

func TestDaneCodeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, d := range []string{DANEAll, DANESome, DANENone, DANEInsecure, DANETemp, DANENoMX} {
		c, ok := daneCodeOf(d)
		if !ok || c.String() != d {
			t.Errorf("daneCodeOf(%q) = %v, %v; String() = %q", d, c, ok, c.String())
		}
	}
	if _, ok := daneCodeOf("bogus"); ok {
		t.Error(`daneCodeOf("bogus") succeeded`)
	}
}

func TestMXSetsShared(t *testing.T) {
	t.Parallel()
	var s mxSets
	a := s.get([]string{"mx1.example.net", "mx2.example.net"})
	b := s.get([]string{"mx1.example.net", "mx2.example.net"})
	if a != b {
		t.Error("equal MX sets are not shared")
	}
	// The separator keeps ["a.b", "c"] and ["a", "b.c"]-like splits apart.
	c := s.get([]string{"mx1.example.net\x00mx2.example.net"})
	d := s.get([]string{"mx1.example.net"})
	if c == a || d == a || d == c {
		t.Error("different MX sets share one value")
	}
	if got := a.hostsOrNil(); len(got) != 2 || got[0] != "mx1.example.net" || got[1] != "mx2.example.net" {
		t.Errorf("hosts = %q", got)
	}
	if s.get(nil) != nil || (*mxSet)(nil).hostsOrNil() != nil {
		t.Error("an empty MX set is not nil")
	}
	// Full: it starts over and still answers with equal sets.
	for i := range maxMXSets + 10 {
		s.get([]string{string(rune('a'+i%26)) + ".example", string(rune('a' + i/26%26)), string(rune(i))})
	}
	if got := s.get([]string{"mx1.example.net", "mx2.example.net"}).hostsOrNil(); len(got) != 2 || got[1] != "mx2.example.net" {
		t.Errorf("after a reset: hosts = %q", got)
	}
}

// TestMXCheckRecordedForItsMXSet checks the MX check's record: reused for
// the same policy and MX set, never for another policy, a newer MX set, or
// after a check against a set that was replaced meanwhile.
func TestMXCheckRecordedForItsMXSet(t *testing.T) {
	t.Parallel()
	p1, p2 := &mtasts.Policy{}, &mtasts.Policy{}
	var st domainState
	st.mxAt = 100
	st.setMismatch(p1, 100, []string{"mx9.example.net"})
	if !st.checked(p1, 100) || len(st.mismatched()) != 1 {
		t.Fatalf("check of the current set not recorded: %v %q", st.checked(p1, 100), st.mismatched())
	}
	if st.checked(p2, 100) {
		t.Error("a check of one policy reused for another")
	}
	if st.checked(p1, 99) {
		t.Error("a check reused for an MX set read at another time")
	}
	st.setMismatch(p1, 100, nil)
	if !st.checked(p1, 100) || st.mismatched() != nil {
		t.Errorf("a match is not recorded as no mismatch: %q", st.mismatched())
	}
	// The MX set was looked up again while a check ran on the old one.
	st.mxAt = 200
	st.setMismatch(p1, 100, nil)
	if st.checked(p1, 100) || st.checked(p1, 200) {
		t.Error("a check against a replaced MX set was recorded")
	}
}

func TestUseSeconds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		t    time.Time
		want uint32
	}{
		{time.Unix(1_800_000_000, 999_999_999), 1_800_000_000},
		{time.Unix(-5, 0), 0},
		{time.Unix(math.MaxUint32+10, 0), math.MaxUint32},
	} {
		if got := useSeconds(c.t); got != c.want {
			t.Errorf("useSeconds(%v) = %d, want %d", c.t, got, c.want)
		}
	}
}

// The rare part of a domain state exists only while the domain has an MX
// mismatch or an OPEN-1 failure window, and the two do not clear each
// other.
func TestDomainStateRareLifecycle(t *testing.T) {
	t.Parallel()
	p := &mtasts.Policy{Mode: mtasts.ModeEnforce}
	st := &domainState{mxAt: 7}
	now := time.Unix(1_800_000_000, 5)
	since := st.failing(now)
	if st.rare == nil || !since.Equal(now) {
		t.Fatalf("failing: rare %v, since %v", st.rare, since)
	}
	st.mu.Lock()
	st.setMismatch(p, 7, []string{"mx.other.example"})
	st.mu.Unlock()
	st.clearFailure()
	st.mu.Lock()
	if !st.checked(p, 7) || len(st.mismatched()) != 1 || st.failingSince() != 0 {
		t.Errorf("clearFailure lost the mismatch or kept the window: %v %q %d", st.checked(p, 7), st.mismatched(), st.failingSince())
	}
	st.setMismatch(p, 7, nil)
	if !st.checked(p, 7) || st.mismatched() != nil || st.rare != nil {
		t.Errorf("a match after a mismatch: checked %v, mismatch %q, rare %v", st.checked(p, 7), st.mismatched(), st.rare)
	}
	st.setMismatch(nil, 7, nil)
	if st.checked(nil, 7) || st.checkedPolicy != nil {
		t.Errorf("a check without a policy is recorded")
	}
	st.mu.Unlock()
	if got := st.failing(now.Add(time.Second)); !got.Equal(now.Add(time.Second)) {
		t.Errorf("a new window starts at %v, want %v", got, now.Add(time.Second))
	}
}

// A DANE decision is kept to the second, rounded down: it is reused for at
// most DANETTL, never longer.
func TestDANEDecisionAge(t *testing.T) {
	t.Parallel()
	r := &Responder{DANETTL: 2 * time.Second}
	st := &domainState{}
	made := time.Unix(1_800_000_000, 900_000_000)
	st.dane, st.daneAt = 0, useSeconds(made)
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{made, true},
		{made.Add(time.Second), true},
		{made.Add(1100 * time.Millisecond), false}, // 2 s after the second it was made in
		{made.Add(2 * time.Second), false},
	} {
		if _, ok := r.daneDecided(st, c.at); ok != c.want {
			t.Errorf("decision made at %v reused at %v: %v, want %v", made, c.at, ok, c.want)
		}
	}
}
