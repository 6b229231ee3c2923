package outgoing

import (
	"encoding/binary"
	"sync"
	"time"
)

// Bounds of a normCache: results whose key is longer are checked every
// time; when the entries or their keys' bytes reach the cap, the cache
// starts again empty, so hostile input that never repeats costs the
// check it would cost anyway and no memory beyond the cap.
const (
	normCacheEntries = 16384
	normCacheBytes   = 4 << 20
	normCacheKeyMax  = 4096
)

// normCache memoises normalize for results that repeat: a collector
// hears the same policy (type, strings, MX patterns) for the same domain,
// and often the same failure details, session after session. The key is
// everything normalize looks at but the time of day: the UTC day, the
// policy domain, the policy and the failure details, as given. An entry
// holds the normalized members (shared, read-only, by every result made
// from it) and the store's policy key. Only results that pass are kept:
// a refused one is checked again, and the error comes from normalize.
// Safe for concurrent use.
type normCache struct {
	mu      sync.Mutex
	entries map[string]*normEntry
	bytes   int
	pool    sync.Pool // *[]byte key buffers
}

type normEntry struct {
	domain   string
	policy   Policy
	failures []Failure
	key      string // policyKey(policy)
}

// normalized is a checked result with its store policy key.
type normalized struct {
	Result
	key string
}

func newNormalized(r Result) normalized { return normalized{r, policyKey(r.Policy)} }

// normalize is normalize(r, now) with the memo.
func (c *normCache) normalize(r Result, now time.Time) (normalized, error) {
	if r.Time.IsZero() {
		r.Time = now
	}
	r.Time = r.Time.UTC()
	bp, _ := c.pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer c.pool.Put(bp)
	k, ok := appendNormKey((*bp)[:0], r)
	*bp = k
	if !ok {
		n, err := normalize(r, now)
		if err != nil {
			return normalized{}, err
		}
		return newNormalized(n), nil
	}
	c.mu.Lock()
	e := c.entries[string(k)]
	c.mu.Unlock()
	if e == nil {
		n, err := normalize(r, now)
		if err != nil {
			return normalized{}, err
		}
		e = &normEntry{domain: n.PolicyDomain, policy: n.Policy, failures: n.Failures, key: policyKey(n.Policy)}
		c.mu.Lock()
		if c.entries == nil || len(c.entries) >= normCacheEntries || c.bytes+len(k) > normCacheBytes {
			c.entries, c.bytes = make(map[string]*normEntry), 0
		}
		c.entries[string(k)] = e
		c.bytes += len(k)
		c.mu.Unlock()
	}
	return normalized{Result{Time: r.Time, PolicyDomain: e.domain, Policy: e.policy, Failed: r.Failed, Failures: e.failures}, e.key}, nil
}

// appendNormKey appends r's memo key to b: the UTC day, then every
// string normalize looks at, each with its length, and the counts of the
// lists; ok is false when the key would be longer than normCacheKeyMax.
func appendNormKey(b []byte, r Result) ([]byte, bool) {
	y, m, d := r.Time.Date()
	b = binary.AppendUvarint(b, uint64(y)*512+uint64(m)*32+uint64(d))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	list := func(ss []string) {
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			if len(b) > normCacheKeyMax {
				return
			}
			str(s)
		}
	}
	str(r.PolicyDomain)
	str(r.Policy.Type)
	list(r.Policy.Strings)
	list(r.Policy.MXHosts)
	b = binary.AppendUvarint(b, uint64(len(r.Failures)))
	for _, f := range r.Failures {
		if len(b) > normCacheKeyMax {
			break
		}
		str(string(f.ResultType))
		str(f.SendingMTAIP)
		str(f.ReceivingMXHostname)
		str(f.ReceivingMXHelo)
		str(f.ReceivingIP)
		str(f.AdditionalInfo)
		str(f.FailureReasonCode)
	}
	return b, len(b) <= normCacheKeyMax
}
