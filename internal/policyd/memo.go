package policyd

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// The answer memo: the Responder remembers, per (map name, key), the reply
// it last computed from cached state, so that the same lookup repeated
// within a short time costs one map read instead of key parsing, the state
// and store lookups and the MX check. Postfix asks again for every
// delivery to a destination, so nearly all lookups of a busy MTA are
// repeats.
//
// A memo entry is used only while everything it was derived from is
// unchanged:
//   - the rules (zones, overrides) are the same compiled value;
//   - the mtasts.Cache has not written the domain's entry
//     (Cache.Generation), and the cached answer is still one the Cache would
//     give without network (Result.Until);
//   - the domain's MX/DANE/failure state has not changed (domainState.gen);
//   - an override has not expired;
//   - and at most memoTTL has passed, which bounds what none of the above
//     sees: DANE and MX-check decisions reaching their age limit, writes to
//     a shared store by another daemon, the resolver's AD bit.
//
// TEMP answers, answers from a failed discovery and answers while debug
// logging is on are never memoised.
const (
	memoTTL = time.Second
	// memoShards × memoShardMax bounds the memo's entries.
	memoShards   = 64
	memoShardMax = 4096
)

type memoKey struct{ name, key string }

// memoEntry is immutable once published.
type memoEntry struct {
	reply    postfix.Reply
	record   func(time.Duration) // counts the query in the metrics; nil without an Observer
	rules    *compiled
	st       *domainState // nil when no domain state was involved
	stGen    uint32
	domain   string // for the Cache generation, "" when the Cache was not asked
	cacheGen uint64
	src      mtasts.Source // what Cache.Get said, replayed to its Observer
	err      error
	until    int64
	report   *PolicyAnswer // replayed to the ReportObserver; nil without one
}

type memoShard struct {
	mu        sync.RWMutex
	m         map[memoKey]*memoEntry
	nextSweep int64 // unix nanoseconds: when put next drops expired entries
}

// memoSweep is how often a shard drops expired entries, so that the memo
// holds about the keys of the last memoSweep, not every key ever asked.
// An entry lives at most memoTTL, so a short sweep interval loses no
// answer; it keeps a daemon looking up many new domains (a cache filling
// up) from holding a memo entry for each of the last seconds' domains on
// top of the cache (some 200 bytes each).
const memoSweep = 2 * time.Second

type answerMemo struct {
	seed   maphash.Seed
	shards [memoShards]memoShard
}

func newAnswerMemo() *answerMemo {
	return &answerMemo{seed: maphash.MakeSeed()}
}

func (m *answerMemo) shard(key string) *memoShard {
	return &m.shards[maphash.String(m.seed, key)%memoShards]
}

func (m *answerMemo) get(k memoKey) *memoEntry {
	sh := m.shard(k.key)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	return e
}

func (m *answerMemo) put(k memoKey, e *memoEntry, now int64) {
	sh := m.shard(k.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = make(map[memoKey]*memoEntry)
	}
	_, exists := sh.m[k]
	if now >= sh.nextSweep || (!exists && len(sh.m) >= memoShardMax) {
		sh.nextSweep = now + int64(memoSweep)
		for k2, e2 := range sh.m {
			if e2.until <= now {
				delete(sh.m, k2)
			}
		}
		if len(sh.m) >= memoShardMax {
			clear(sh.m)
		}
	}
	sh.m[k] = e
}

// clear drops every entry.
func (m *answerMemo) clear() {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// ForgetAnswers drops every memoised answer, so that the next lookup of
// every key consults the cache again: for changes made behind the Cache's
// back, such as a purge by another process.
func (r *Responder) ForgetAnswers() {
	r.init()
	r.memo.clear()
}

// len returns the number of entries, expired or not.
func (m *answerMemo) len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// valid reports whether e may answer at now.
func (r *Responder) memoValid(e *memoEntry, now int64) bool {
	if now >= e.until || e.rules != r.rules.Load() {
		return false
	}
	if e.st != nil && e.st.gen.Load() != e.stGen {
		return false
	}
	return e.domain == "" || r.Cache.Generation(e.domain) == e.cacheGen
}

// memoFill collects, while an answer is computed, what it depends on.
type memoFill struct {
	rules    *compiled
	st       *domainState
	stGen    uint32
	domain   string // set when the Cache was asked
	cacheGen uint64
	src      mtasts.Source
	err      error
	cacheTil time.Time      // Result.Until
	ovTil    time.Time      // the deciding override's expiry
	no       bool           // not memoable
	policy   *mtasts.Policy // the MTA-STS policy looked at, for the ReportObserver
}

// memoable reports whether the kind of answer just computed may be reused
// at all: not TEMP, not decided by a failure window, and when the Cache was
// asked, an answer it would repeat from the store (Result.Until).
func (f *memoFill) memoable(d *Decision) bool {
	return !f.no && d.Answer != AnswerTemp && (f.domain == "" || !f.cacheTil.IsZero())
}

// until is when a memo of the answer expires.
func (f *memoFill) until(now time.Time) time.Time {
	t := now.Add(memoTTL)
	if !f.cacheTil.IsZero() && f.cacheTil.Before(t) {
		t = f.cacheTil
	}
	if !f.ovTil.IsZero() && f.ovTil.Before(t) {
		t = f.ovTil
	}
	return t
}
