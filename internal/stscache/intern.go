package stscache

import (
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"weak"

	"github.com/mailsts/mailsts/mtasts"
)

// policyTable shares one *mtasts.Policy among the entries of a [Memory]
// whose policies are equal. Real senders see thousands of domains with
// byte-identical policies (hosted mail: one provider's mx patterns, mode
// and max_age), and a cached policy is immutable (the [mtasts.Store]
// contract), so one copy can serve them all.
//
// The table holds its policies weakly: a policy no entry (or caller) uses
// any more is freed by the garbage collector. Its slot (16 bytes) stays
// until the next sweep, which intern runs when the table has doubled since
// the last one, so the table stays within twice the peak number of
// distinct policies and sweeping costs O(1) per added policy on average.
// (A runtime cleanup per policy would free slots at once, but costs some
// 70 bytes per distinct policy, as much as the policy itself.)
//
// The zero value is ready to use.
type policyTable struct {
	seedOnce sync.Once
	seed     maphash.Seed

	mu      sync.Mutex
	m       map[uint64]weak.Pointer[mtasts.Policy]
	sweepAt int // len(m) at which intern sweeps
}

// minSweep is the smallest table size at which intern sweeps.
const minSweep = 1024

// intern returns the table's policy equal to p, adding a compact copy of p
// when there is none. Equal means equal field by field, with nil and empty
// slices told apart (a store round-trips them as they were). A nil p stays
// nil. When two different policies share a 64-bit hash, the second is
// returned as it is, unshared: sharing is an optimisation, never a reason
// to answer with a different policy.
func (pt *policyTable) intern(p *mtasts.Policy) *mtasts.Policy {
	if p == nil {
		return nil
	}
	pt.seedOnce.Do(func() { pt.seed = maphash.MakeSeed() })
	h := hashPolicy(pt.seed, p)
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if wp, ok := pt.m[h]; ok {
		if q := wp.Value(); q != nil {
			if equalPolicy(p, q) {
				return q
			}
			return p // hash collision: keep the first, do not share
		}
		// Collected: the slot is taken over below.
	} else if len(pt.m) >= pt.sweepAt {
		pt.sweep()
	}
	if pt.m == nil {
		pt.m = make(map[uint64]weak.Pointer[mtasts.Policy])
	}
	q := p.Compact()
	pt.m[h] = weak.Make(q)
	return q
}

// sweep drops the slots of collected policies and sets the next sweep
// for when the table has doubled. pt.mu must be held.
func (pt *policyTable) sweep() {
	for h, wp := range pt.m {
		if wp.Value() == nil {
			delete(pt.m, h)
		}
	}
	pt.sweepAt = max(2*len(pt.m), minSweep)
}

// len returns the number of slots, live or awaiting a sweep.
func (pt *policyTable) len() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return len(pt.m)
}

// hashPolicy hashes every field of p unambiguously: strings with their
// lengths, slices with their lengths and whether they are nil.
func hashPolicy(seed maphash.Seed, p *mtasts.Policy) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var buf [20]byte
	num := func(n int64) {
		h.Write(strconv.AppendInt(buf[:0], n, 10))
		h.WriteByte(0)
	}
	str := func(s string) {
		num(int64(len(s)))
		h.WriteString(s)
	}
	count := func(n int, isNil bool) {
		if isNil {
			num(-1)
		} else {
			num(int64(n))
		}
	}
	str(string(p.Mode))
	num(p.MaxAge)
	count(len(p.MX), p.MX == nil)
	for _, mx := range p.MX {
		str(mx)
	}
	count(len(p.Extensions), p.Extensions == nil)
	for _, x := range p.Extensions {
		str(x.Key)
		str(x.Value)
	}
	return h.Sum64()
}

// equalPolicy reports whether a and b are equal field by field, nil and
// empty slices apart (what reflect.DeepEqual says, without reflection).
func equalPolicy(a, b *mtasts.Policy) bool {
	return a.Mode == b.Mode && a.MaxAge == b.MaxAge &&
		(a.MX == nil) == (b.MX == nil) && slices.Equal(a.MX, b.MX) &&
		(a.Extensions == nil) == (b.Extensions == nil) && slices.Equal(a.Extensions, b.Extensions)
}
