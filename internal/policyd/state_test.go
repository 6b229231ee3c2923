package policyd

import (
	"testing"
	"unsafe"
)

// TestDomainStateSize keeps the per-domain state in the 96-byte size class:
// policyd holds one per recently looked-up domain, and the memory per
// cached domain (bench/policyd) adds it up 100,000 times.
func TestDomainStateSize(t *testing.T) {
	t.Parallel()
	if n := unsafe.Sizeof(domainState{}); n > 96 {
		t.Errorf("domainState is %d bytes, want at most 96", n)
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
