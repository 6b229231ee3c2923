package policyd

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// stateShards splits the per-domain state map, so that lookups of
// different domains rarely share a lock.
const stateShards = 64

type stateShard struct {
	mu sync.RWMutex
	m  map[string]*domainState
}

// domainState is what the Responder remembers per policy domain.
//
// A domainState exists for every domain looked up recently (up to
// MaxStates, 200,000 by default), so it is kept to one 64-byte allocation:
// the MX set's time is unix nanoseconds (0 for none), the last use and the
// DANE decision's time unix seconds, the DANE decision is a small number,
// the MX set is shared with every domain that has the same one (mxSets),
// and what few domains have (an MX mismatch, an OPEN-1 failure window) is
// behind one pointer of its own. TestDomainStateSize holds it to that size.
type domainState struct {
	// gen moves on every change below that can change an answer (MX set,
	// DANE decision, MX check, failure window): memoised answers derived
	// from the state check it. (It wraps after 2³² changes; a memoised
	// answer lives a second.)
	gen  atomic.Uint32
	used atomic.Uint32 // unix seconds of the last query (useSeconds)

	mu sync.Mutex
	// mxKind is mxOK, mxNotFound, mxFailed or mxDeferred.
	mxKind uint8
	mxAuth bool
	// fitWarned: an answer was shortened to fit a reply limit, and logged.
	fitWarned bool
	dane      daneCode // the DANE decision, valid while daneAt != 0
	// daneAt is when the DANE decision was made, in unix seconds rounded
	// down (useSeconds): a decision is reused for at most DANETTL.
	daneAt uint32
	// MX set: shared and never modified (nil for none)
	mx   *mxSet
	mxAt int64
	// checkedPolicy, when not nil, is the policy whose MX check against
	// the MX set of mxAt is recorded (its mismatch in rare). Cleared when
	// the MX set is looked up again.
	checkedPolicy *mtasts.Policy
	// rare is nil unless the domain has an MX mismatch or a failure window.
	rare *stateRare
	// the last rendered secure reply, nil until one is needed
	rendered *renderedReply
}

// stateRare is the part of a domainState few domains have. Guarded by the
// state's mu.
type stateRare struct {
	// MX check of checkedPolicy: the MX hosts it does not match, nil for
	// none
	mismatch []string
	// OPEN-1 window: when the failures began (unix nanoseconds), 0 for
	// none
	failingSince int64
}

// tidy drops rare when it holds nothing. st.mu must be held.
func (st *domainState) tidy() {
	if r := st.rare; r != nil && r.mismatch == nil && r.failingSince == 0 {
		st.rare = nil
	}
}

// getRare returns rare, creating it. st.mu must be held.
func (st *domainState) getRare() *stateRare {
	if st.rare == nil {
		st.rare = &stateRare{}
	}
	return st.rare
}

// failingSince returns when the OPEN-1 window began (unix nanoseconds), 0
// for none. st.mu must be held.
func (st *domainState) failingSince() int64 {
	if st.rare == nil {
		return 0
	}
	return st.rare.failingSince
}

// mxHosts returns the state's MX host names (shared, never modified).
// st.mu must be held.
func (st *domainState) mxHosts() []string { return st.mx.hostsOrNil() }

// mismatched returns the MX hosts of the last MX check that the policy
// does not match. st.mu must be held.
func (st *domainState) mismatched() []string {
	if st.rare == nil {
		return nil
	}
	return st.rare.mismatch
}

// checked reports whether the last MX check is of policy p against the MX
// set of mxAt. st.mu must be held.
func (st *domainState) checked(p *mtasts.Policy, mxAt int64) bool {
	return p != nil && st.checkedPolicy == p && st.mxAt == mxAt
}

// clearCheck forgets the last MX check. st.mu must be held.
func (st *domainState) clearCheck() {
	st.checkedPolicy = nil
	if st.rare != nil {
		st.rare.mismatch = nil
		st.tidy()
	}
}

// setMismatch records the result of an MX check of p against the MX set
// of mxAt: the hosts it does not match. A check against a set that has
// been replaced since is not recorded. st.mu must be held.
func (st *domainState) setMismatch(p *mtasts.Policy, mxAt int64, hosts []string) {
	st.clearCheck()
	if st.mxAt != mxAt || p == nil {
		return
	}
	st.checkedPolicy = p
	if len(hosts) > 0 {
		st.getRare().mismatch = hosts
	}
}

// useSeconds is t in the unit of domainState.used: unix seconds, within
// the range of a uint32 (until 2106).
func useSeconds(t time.Time) uint32 {
	return uint32(min(max(t.Unix(), 0), math.MaxUint32))
}

// daneCode is a DANE decision (the DANE* strings) in one byte.
type daneCode uint8

// daneDecisions are the decisions a daneCode stands for, by code.
var daneDecisions = [...]string{DANEAll, DANESome, DANENone, DANEInsecure, DANETemp, DANENoMX}

func daneCodeOf(s string) (daneCode, bool) {
	for i, d := range daneDecisions {
		if d == s {
			return daneCode(i), true
		}
	}
	return 0, false
}

func (c daneCode) String() string { return daneDecisions[c] }

// mxSet is one MX set (host names in the order of the answer), shared by
// every domain state holding an equal one: hosted mail gives thousands of
// domains the same MX hosts.
type mxSet struct{ hosts []string }

// mxSets shares equal MX sets. It is bounded: when full it starts over,
// which costs the sharing of the sets held until then, never a wrong
// answer (a set is immutable). The zero value is ready to use.
type mxSets struct {
	mu sync.Mutex
	m  map[string]*mxSet
}

const maxMXSets = 4096

// get returns the shared set equal to hosts, which it may keep.
func (s *mxSets) get(hosts []string) *mxSet {
	if len(hosts) == 0 {
		return nil
	}
	// Each name with its length in front: no two sets share a key,
	// whatever bytes the names hold.
	n := 0
	for _, h := range hosts {
		n += len(h) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	for _, h := range hosts {
		b = binary.AppendUvarint(b, uint64(len(h)))
		b = append(b, h...)
	}
	k := string(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.m[k]; set != nil {
		return set
	}
	if s.m == nil || len(s.m) >= maxMXSets {
		s.m = make(map[string]*mxSet)
	}
	set := &mxSet{hosts: hosts}
	s.m[k] = set
	return set
}

const (
	mxOK = iota
	mxNotFound
	mxFailed
	// mxDeferred: no MX set; the policy fetched at mxAt counts as
	// MX-checked until MXCheckInterval after it (DeferFetchedMXCheck).
	mxDeferred
)

// state returns the per-domain state, creating it.
func (r *Responder) state(domain string, now time.Time) *domainState {
	sh := &r.states[maphash.String(r.seed, domain)%stateShards]
	sh.mu.RLock()
	st := sh.m[domain]
	sh.mu.RUnlock()
	if st == nil {
		sh.mu.Lock()
		if st = sh.m[domain]; st == nil {
			if sh.m == nil {
				sh.m = make(map[string]*domainState)
			}
			st = &domainState{}
			sh.m[domain] = st
			r.nstates.Add(1)
		}
		sh.mu.Unlock()
	}
	if n := useSeconds(now); st.used.Load() < n {
		st.used.Store(n)
	}
	return st
}

func (st *domainState) failing(now time.Time) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failingSince() == 0 {
		st.getRare().failingSince = now.UnixNano()
		st.gen.Add(1)
	}
	return time.Unix(0, st.failingSince())
}

func (st *domainState) clearFailure() {
	st.mu.Lock()
	if st.failingSince() != 0 {
		st.rare.failingSince = 0
		st.tidy()
		st.gen.Add(1)
	}
	st.mu.Unlock()
}

// Prune drops per-domain state unused for longer than both the DANE TTL and
// the MX check interval, and the least recently used beyond MaxStates. The
// daemon calls it periodically. It returns how many were dropped.
func (r *Responder) Prune(now time.Time) int {
	ttl := max(r.daneTTL(), r.mxCheckInterval())
	cut := useSeconds(now.Add(-ttl))
	n := 0
	type aged struct {
		sh   *stateShard
		k    string
		used uint32
	}
	var rest []aged
	for i := range r.states {
		sh := &r.states[i]
		sh.mu.Lock()
		for k, st := range sh.m {
			u := st.used.Load()
			st.mu.Lock()
			busy := st.failingSince() != 0
			st.mu.Unlock()
			if u < cut && !busy {
				delete(sh.m, k)
				r.nstates.Add(-1)
				n++
			} else {
				rest = append(rest, aged{sh, k, u})
			}
		}
		sh.mu.Unlock()
	}
	limit := r.MaxStates
	if limit <= 0 {
		limit = DefaultMaxStates
	}
	if over := len(rest) - limit; over > 0 {
		// Oldest first; a partial selection would do, but this runs rarely.
		sortAged := func(a, b aged) int {
			switch {
			case a.used < b.used:
				return -1
			case a.used > b.used:
				return 1
			}
			return 0
		}
		slices.SortFunc(rest, sortAged)
		for _, a := range rest[:over] {
			a.sh.mu.Lock()
			if _, ok := a.sh.m[a.k]; ok {
				delete(a.sh.m, a.k)
				r.nstates.Add(-1)
				n++
			}
			a.sh.mu.Unlock()
		}
	}
	return n
}

// States returns the number of domains with per-domain state.
func (r *Responder) States() int { return int(r.nstates.Load()) }

// hostsOrNil returns the set's hosts, nil for a nil set.
func (s *mxSet) hostsOrNil() []string {
	if s == nil {
		return nil
	}
	return s.hosts
}
