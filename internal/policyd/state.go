package policyd

import (
	"hash/maphash"
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
type domainState struct {
	used atomic.Int64 // unix nanoseconds of the last query
	// gen moves on every change below that can change an answer (MX set,
	// DANE decision, MX check, failure window): memoised answers derived
	// from the state check it.
	gen atomic.Uint64

	// Times are unix nanoseconds, 0 for none: a domainState exists for
	// every domain looked up recently, so it is kept small.
	mu     sync.Mutex
	mxKind uint8 // mxOK, mxNotFound, mxFailed
	mxAuth bool
	// fitWarned: an answer was shortened to fit a reply limit, and logged.
	fitWarned bool
	// MX set
	mxHosts []string
	mxAt    int64
	// DANE decision
	dane   string
	daneAt int64
	// MX check of the policy
	checkedPolicy *mtasts.Policy
	checkedMXAt   int64
	mismatch      []string
	// OPEN-1 window
	failingSince int64
	// the last rendered secure reply, nil until one is needed
	rendered *renderedReply
}

const (
	mxOK = iota
	mxNotFound
	mxFailed
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
	if n := now.UnixNano(); st.used.Load() < n-int64(time.Second) {
		st.used.Store(n)
	}
	return st
}

func (st *domainState) failing(now time.Time) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failingSince == 0 {
		st.failingSince = now.UnixNano()
		st.gen.Add(1)
	}
	return time.Unix(0, st.failingSince)
}

func (st *domainState) clearFailure() {
	st.mu.Lock()
	if st.failingSince != 0 {
		st.failingSince = 0
		st.gen.Add(1)
	}
	st.mu.Unlock()
}

// Prune drops per-domain state unused for longer than both the DANE TTL and
// the MX check interval, and the least recently used beyond MaxStates. The
// daemon calls it periodically. It returns how many were dropped.
func (r *Responder) Prune(now time.Time) int {
	ttl := max(r.daneTTL(), r.mxCheckInterval())
	cut := now.Add(-ttl).UnixNano()
	n := 0
	type aged struct {
		sh   *stateShard
		k    string
		used int64
	}
	var rest []aged
	for i := range r.states {
		sh := &r.states[i]
		sh.mu.Lock()
		for k, st := range sh.m {
			u := st.used.Load()
			st.mu.Lock()
			busy := st.failingSince != 0
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
