package stscache

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Memory is an in-memory [mtasts.Store]: a map guarded by a read-write
// mutex. It is the front of a [Tiered] store and is fast enough to sit on
// the per-query path: Get is one read-locked map lookup and one copy, and
// [Memory.Touch] records use with an atomic store, never a write lock.
//
// Why a second in-memory store beside [mtasts.MemoryStore], the library's
// simple default: a policy daemon holds hundreds of thousands of domains
// for as long as it runs, and Memory is built for that. Items are compact
// (one 64-byte allocation per plain entry) with equal policies interned
// (one copy shared by every domain that publishes it), use times are
// recorded without a write lock, and it does what a daemon's cache needs
// beyond [mtasts.Store]: Touch, and Cap and Evict that never drop a valid
// enforce or testing policy (STS-CACHE-10). mtasts.MemoryStore stays a
// plain map any Go program can use (this package is internal); use it for
// tests, tools and short-lived processes, and Memory (through [Open]) for
// a daemon.
//
// LastUsed is kept to the millisecond. The zero value is an empty store
// ready to use; a Memory must not be copied after first use.
type Memory struct {
	// Now returns the current time, used by Cap and Evict to tell valid
	// policies from expired ones. Nil means time.Now.
	Now func() time.Time
	// Logger receives eviction reports. Nil discards them.
	Logger *slog.Logger

	mu       sync.RWMutex
	m        map[string]*item
	policies policyTable
	// drops counts the entries Cap and Evict removed: what a [Tiered]
	// front loses while its back store keeps it.
	drops atomic.Uint64
}

// item is one stored entry, kept compact: a daemon's front holds one per
// domain it answered for, hundreds of thousands of them. Everything but
// the use word is immutable once the item is in the map; a Put installs a
// new item.
//
// An entry without failure state is one 64-byte allocation plus its id
// (and last error) text; the domain is the map key only, and the policy is
// shared with every other item holding an equal one ([policyTable]).
// Failure state, and times that have no compact form, live in rare.
// TestItemCompact holds it to 64 bytes.
type item struct {
	policy *mtasts.Policy
	// text points to the entry's ID followed by its LastError (lengths in
	// loaded), bytes of their own: an ID cut from a TXT record would keep
	// the whole record text alive. A pointer rather than a string saves
	// the length word; nil for no text.
	text *byte
	// times are FetchedAt, CheckedAt and NoPolicyUntil as Unix
	// nanoseconds (noTime for the zero time), in UTC or, where the use
	// word has useLocal bit i, in time.Local. Unused when rare.times is
	// set.
	times [3]int64
	// loaded is, above loadedShift, when Tiered last synchronised the item
	// with Back, in milliseconds from Tiered's epoch (neverLoaded for a
	// plain Memory.Put), and below it the lengths of the ID and the
	// LastError in text (12 bits each).
	loaded int64
	// use is the last use in Unix milliseconds (zeroMS for the zero time)
	// above useShift, and below it: whether the use moved since Back last
	// saw it (useDirty, for Tiered), the location bits of times, and
	// LastErrorType with LastErrorTemporary (packFailure; unused when
	// rare). Only the use and the dirty bit change once the item is in the
	// map, atomically.
	use  atomic.Uint64
	rare *itemRare // nil for most entries
}

// The bits of item.use and item.loaded.
const (
	useShift   = 16
	useDirty   = 1 << 15
	useLocal   = 7 << 8 // bit 8+i: time i (tFetched, ...) is in time.Local
	useLastErr = 0xff   // packFailure's byte
	useMeta    = useLocal | useLastErr
	// maxUseMS and minUseMS bound a last use in milliseconds (48 bits,
	// about 4,400 years either side of 1970; the zero time is within).
	maxUseMS = 1<<(63-useShift) - 1
	minUseMS = -1 << (63 - useShift)

	loadedShift = 24
	textLenBits = 12
	maxTextLen  = 1<<textLenBits - 1 // of the ID and of the LastError
	// maxLoadedMS and minLoadedMS bound a load time (40 bits of
	// milliseconds: 17 years either side of Tiered's epoch).
	maxLoadedMS = 1<<(63-loadedShift) - 1
	minLoadedMS = -1 << (63 - loadedShift)
)

// itemRare holds the parts of an entry most entries do not have. When an
// item has one, its ID and LastError are here, not in item.text.
type itemRare struct {
	id            string
	lastError     string
	lastErrorType result.Type
	lastErrorTemp bool
	failedID      string
	failedAt      time.Time
	failures      int
	// times, when set, are FetchedAt, CheckedAt and NoPolicyUntil as given,
	// for entries with a time compactTime cannot hold exactly.
	times *[3]time.Time
}

// The indexes of item.times.
const (
	tFetched = iota
	tChecked
	tNoPolicyUntil
)

// noTime stands for the zero time.Time in item.times. As a Unix
// nanosecond value it is 1677-09-21, which compactTime refuses, so it
// cannot collide with a stored time.
const noTime = math.MinInt64

// neverLoaded is the load time (item.loadedMS) of an item Tiered did not
// load: before any other.
const neverLoaded = minLoadedMS

// compactTime returns t as Unix nanoseconds and whether it is in
// time.Local (else UTC). ok is false when that would not give t back:
// another location, or a time outside the years 1678 to 2262. The
// monotonic clock reading is dropped, as by every persistent store.
func compactTime(t time.Time) (ns int64, local, ok bool) {
	if t.IsZero() {
		return noTime, false, true
	}
	loc := t.Location()
	if loc != time.UTC && loc != time.Local {
		return 0, false, false
	}
	ns = t.UnixNano()
	if ns == noTime || !time.Unix(0, ns).Equal(t) {
		return 0, false, false
	}
	return ns, loc == time.Local, true
}

// expandTime is the inverse of compactTime.
func expandTime(ns int64, local bool) time.Time {
	if ns == noTime {
		return time.Time{}
	}
	t := time.Unix(0, ns)
	if !local {
		t = t.UTC()
	}
	return t
}

// useWord returns ms (clamped to the 48 bits it has) in the form of
// item.use, with no other bit set.
func useWord(ms int64) uint64 {
	return uint64(min(max(ms, minUseMS), maxUseMS)) << useShift
}

// newItem returns e in compact form, with its policy replaced by the
// shared equal one. loadedAt is the load time in milliseconds from
// Tiered's epoch (neverLoaded for none).
func (m *Memory) newItem(e *mtasts.Entry, loadedAt int64) *item {
	it := &item{policy: m.policies.intern(e.Policy)}
	use := useWord(toMS(e.LastUsed))
	exact := false
	for i, t := range [3]time.Time{e.FetchedAt, e.CheckedAt, e.NoPolicyUntil} {
		ns, local, ok := compactTime(t)
		if !ok {
			exact = true
			break
		}
		it.times[i] = ns
		if local {
			use |= 1 << (8 + i)
		}
	}
	lastErr, packed := packFailure(e.LastErrorType, e.LastErrorTemporary)
	var idLen, errLen int
	if exact || e.FailedID != "" || !e.FailedAt.IsZero() || e.Failures != 0 ||
		len(e.ID) > maxTextLen || len(e.LastError) > maxTextLen || !packed {
		it.rare = &itemRare{
			id: strings.Clone(e.ID), lastError: e.LastError,
			lastErrorType: e.LastErrorType, lastErrorTemp: e.LastErrorTemporary,
			failedID: e.FailedID, failedAt: e.FailedAt, failures: e.Failures,
		}
		if exact {
			it.rare.times = &[3]time.Time{e.FetchedAt, e.CheckedAt, e.NoPolicyUntil}
			use &^= useLocal
		}
	} else {
		idLen, errLen = len(e.ID), len(e.LastError)
		if n := idLen + errLen; n > 0 {
			b := make([]byte, 0, n)
			b = append(append(b, e.ID...), e.LastError...)
			it.text = unsafe.SliceData(b)
		}
		use |= uint64(lastErr)
	}
	it.loaded = min(max(loadedAt, minLoadedMS), maxLoadedMS)<<loadedShift | int64(idLen)<<textLenBits | int64(errLen)
	it.use.Store(use)
	return it
}

// failureClasses are the classes item.lastErr can hold: the result types
// and local classes mtasts.ResultType returns. Append only within a
// process; the numbers are never stored.
var failureClasses = append(result.Types(), result.Locals()...)

// tempBit marks a temporary failure in item.lastErr.
const tempBit = 0x80

// packFailure returns LastErrorType and LastErrorTemporary in one byte:
// the class's index in failureClasses plus one (0 for none), with tempBit
// for a temporary failure. ok is false for a class outside the table,
// which an item keeps in rare.
func packFailure(typ result.Type, temp bool) (b uint8, ok bool) {
	if temp {
		b = tempBit
	}
	if typ == "" {
		return b, true
	}
	i := slices.Index(failureClasses, typ)
	if i < 0 || i+1 >= tempBit {
		return 0, false
	}
	return b | uint8(i+1), true
}

// unpackFailure is the inverse of packFailure.
func unpackFailure(b uint8) (typ result.Type, temp bool) {
	if i := int(b &^ tempBit); i > 0 {
		typ = failureClasses[i-1]
	}
	return typ, b&tempBit != 0
}

// loadedMS returns when Tiered last loaded the item, in milliseconds from
// its epoch (neverLoaded for never).
func (it *item) loadedMS() int64 { return it.loaded >> loadedShift }

// textOf returns the item's text: the ID, then the LastError.
func (it *item) textOf() (text string, idLen int) {
	idLen = int(it.loaded >> textLenBits & maxTextLen)
	n := idLen + int(it.loaded&maxTextLen)
	if n == 0 {
		return "", 0
	}
	return unsafe.String(it.text, n), idLen
}

// id returns the entry's ID.
func (it *item) id() string {
	if it.rare != nil {
		return it.rare.id
	}
	text, n := it.textOf()
	return text[:n]
}

// lastError returns the entry's LastError.
func (it *item) lastError() string {
	if it.rare != nil {
		return it.rare.lastError
	}
	text, n := it.textOf()
	return text[n:]
}

// time returns FetchedAt, CheckedAt or NoPolicyUntil (tFetched, ...).
func (it *item) time(i int) time.Time {
	if it.rare != nil && it.rare.times != nil {
		return it.rare.times[i]
	}
	return expandTime(it.times[i], it.use.Load()&(1<<(8+i)) != 0)
}

// lastUsed returns the last use in Unix milliseconds (zeroMS for none).
func (it *item) lastUsed() int64 { return int64(it.use.Load()) >> useShift }

// dirty reports whether the last use moved since Back last saw it.
func (it *item) dirty() bool { return it.use.Load()&useDirty != 0 }

// takeDirty clears the dirty bit and reports whether it was set.
func (it *item) takeDirty() bool { return it.use.And(^uint64(useDirty))&useDirty != 0 }

// setDirty sets the dirty bit.
func (it *item) setDirty() { it.use.Or(useDirty) }

// inheritUse gives it, a replacement of old not yet in the map, old's
// last use and dirty bit when old's use is more recent (recorded here but
// not yet flushed).
func (it *item) inheritUse(old *item) {
	ow := old.use.Load()
	w := it.use.Load()
	if int64(ow)>>useShift > int64(w)>>useShift {
		it.use.Store(ow&^useMeta | w&useMeta)
	}
}

// inheritDirty gives it, a replacement of old with the same last use not
// yet in the map, old's dirty bit.
func (it *item) inheritDirty(old *item) {
	if old.dirty() {
		it.setDirty()
	} else {
		it.use.And(^uint64(useDirty))
	}
}

// entry returns a copy of domain's stored entry that the caller owns.
func (it *item) entry(domain string) *mtasts.Entry {
	e := &mtasts.Entry{
		Domain:        domain,
		Policy:        it.policy,
		ID:            it.id(),
		FetchedAt:     it.time(tFetched),
		CheckedAt:     it.time(tChecked),
		NoPolicyUntil: it.time(tNoPolicyUntil),
		LastError:     it.lastError(),
		LastUsed:      fromMS(it.lastUsed()),
	}
	if r := it.rare; r != nil {
		e.FailedID, e.FailedAt, e.Failures = r.failedID, r.failedAt, r.failures
		e.LastErrorType, e.LastErrorTemporary = r.lastErrorType, r.lastErrorTemp
	} else {
		e.LastErrorType, e.LastErrorTemporary = unpackFailure(uint8(it.use.Load() & useLastErr))
	}
	return e
}

// protected reports whether the item holds a policy that eviction must
// keep: a valid (unexpired) enforce or testing policy. STS-CACHE-10: a size
// bound must never quietly drop enforce policies; STS-CACHE-5: a valid
// policy is kept until it expires.
func (it *item) protected(now time.Time) bool {
	p := it.policy
	if p == nil || (p.Mode != mtasts.ModeEnforce && p.Mode != mtasts.ModeTesting) {
		return false
	}
	// As mtasts.Entry.Valid: now before FetchedAt + max_age.
	return now.Before(it.time(tFetched).Add(time.Duration(p.MaxAge) * time.Second))
}

// touch raises the last use to ms (never lowers it) and marks the item
// dirty when it moved.
func (it *item) touch(ms int64) {
	nw := useWord(ms)
	// Bounded CAS loop: each failed attempt means another toucher moved
	// the value (Flush's clearing of the dirty bit moves none and cannot
	// fail an attempt twice in a row without a toucher); after a few
	// rounds someone newer has won anyway.
	for range 64 {
		old := it.use.Load()
		if int64(nw)>>useShift <= int64(old)>>useShift {
			return
		}
		if it.use.CompareAndSwap(old, nw|old&useMeta|useDirty) {
			return
		}
	}
}

var _ mtasts.Store = (*Memory)(nil)

func (m *Memory) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Memory) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return discard
}

var discard = slog.New(slog.DiscardHandler)

func (m *Memory) item(domain string) *item {
	m.mu.RLock()
	it := m.m[domain]
	m.mu.RUnlock()
	return it
}

// putItem installs it under domain and returns the item it replaced.
func (m *Memory) putItem(domain string, it *item) *item {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]*item)
	}
	old := m.m[domain]
	m.m[domain] = it
	return old
}

// addItem installs it only when domain has no item yet.
func (m *Memory) addItem(domain string, it *item) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]*item)
	}
	if _, ok := m.m[domain]; ok {
		return false
	}
	m.m[domain] = it
	return true
}

// removeItem deletes domain's item if it is still it (not replaced by a
// concurrent Put).
func (m *Memory) removeItem(domain string, it *item) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m[domain] != it {
		return false
	}
	delete(m.m, domain)
	return true
}

// domainItem is an item with its domain, as snapshot returns them.
type domainItem struct {
	domain string
	*item
}

// snapshot returns the current items; callers work on it without the lock
// so that long scans never stall the query path.
func (m *Memory) snapshot() []domainItem {
	m.mu.RLock()
	defer m.mu.RUnlock()
	items := make([]domainItem, 0, len(m.m))
	for d, it := range m.m {
		items = append(items, domainItem{d, it})
	}
	return items
}

// Get implements [mtasts.Store]. It returns a copy the caller may modify.
func (m *Memory) Get(_ context.Context, domain string) (*mtasts.Entry, error) {
	it := m.item(domain)
	if it == nil {
		return nil, nil
	}
	return it.entry(domain), nil
}

// Put implements [mtasts.Store]. The entry is copied; its Policy must not
// be modified afterwards (the mtasts.Store contract). Entries with equal
// policies share one *mtasts.Policy: Put sets e.Policy to the shared
// policy, which is equal to the one given (nil stays nil).
func (m *Memory) Put(_ context.Context, e *mtasts.Entry) error {
	if err := checkDomain(e.Domain); err != nil {
		return err
	}
	it := m.newItem(e, neverLoaded)
	// The caller gets the shared policy too, so that an answer built from
	// e does not keep a second copy alive.
	e.Policy = it.policy
	m.putItem(e.Domain, it)
	return nil
}

// Delete implements [mtasts.Store].
func (m *Memory) Delete(_ context.Context, domain string) error {
	m.mu.Lock()
	delete(m.m, domain)
	m.mu.Unlock()
	return nil
}

// Range implements [mtasts.Store]. It works on a snapshot, so fn may call
// back into m.
func (m *Memory) Range(ctx context.Context, fn func(*mtasts.Entry) bool) error {
	for _, it := range m.snapshot() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !fn(it.entry(it.domain)) {
			return nil
		}
	}
	return nil
}

// Len returns the number of entries.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

// Touch records that domain answered a query at t: it raises the entry's
// LastUsed (never lowers it) without taking the write lock. It reports
// whether the domain has an entry. This is the call to make per query;
// Put is not.
func (m *Memory) Touch(domain string, t time.Time) bool {
	it := m.item(domain)
	if it == nil {
		return false
	}
	it.touch(toMS(t))
	return true
}

// ErrNegativeCap is returned by Cap for a negative size: a caller bug (a
// misread setting); pass 0 or more.
var ErrNegativeCap = errors.New("stscache: negative size cap")

// Cap evicts least recently used entries until at most max remain. It
// never evicts a valid enforce or testing policy (STS-CACHE-10: a size bound
// must never quietly drop enforce policies; STS-CACHE-5: a valid policy is
// applied until it expires): only negative entries, expired policies and
// mode none policies are candidates. When they are not enough, Cap keeps
// the protected entries, stays over max and logs a warning. Every eviction
// is logged at Warn level. It returns the number of entries evicted.
func (m *Memory) Cap(ctx context.Context, max int) (int, error) {
	return m.capAt(ctx, max, m.now())
}

func (m *Memory) capAt(ctx context.Context, max int, now time.Time) (int, error) {
	if max < 0 {
		return 0, ErrNegativeCap
	}
	if m.Len() <= max {
		return 0, nil
	}
	items := m.snapshot()
	over := len(items) - max
	cands := items[:0]
	for _, it := range items {
		if !it.protected(now) {
			cands = append(cands, it)
		}
	}
	slices.SortFunc(cands, func(a, b domainItem) int {
		return cmp.Or(cmp.Compare(a.lastUsed(), b.lastUsed()), cmp.Compare(a.domain, b.domain))
	})
	evicted := 0
	for _, it := range cands {
		if evicted >= over {
			break
		}
		if err := ctx.Err(); err != nil {
			return evicted, err
		}
		if m.removeItem(it.domain, it.item) {
			m.drops.Add(1)
			evicted++
		}
	}
	reportCap(ctx, m.logger(), "memory", evicted, over, max, m.Len())
	return evicted, nil
}

// reportCap logs the outcome of a Cap call.
func reportCap(ctx context.Context, log *slog.Logger, store string, evicted, over, max, remaining int) {
	if evicted > 0 {
		log.WarnContext(ctx, "stscache: size cap reached, evicted least recently used entries (never valid enforce/testing policies)",
			"store", store, "evicted", evicted, "cap", max, "remaining", remaining)
	}
	if evicted < over && remaining > max {
		log.WarnContext(ctx, "stscache: still over the size cap: the rest are valid enforce/testing policies, which are kept (STS-CACHE-10); raise the cap",
			"store", store, "cap", max, "remaining", remaining)
	}
}

// Evict removes entries unused since unusedSince that hold no valid policy
// worth keeping: negative (policy-less) entries, expired policies and mode
// none policies. Valid enforce and testing policies are never evicted,
// however long unused (STS-CACHE-10). It returns the number removed.
func (m *Memory) Evict(ctx context.Context, unusedSince time.Time) (int, error) {
	cut := toMS(unusedSince)
	now := m.now()
	n := 0
	for _, it := range m.snapshot() {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if it.lastUsed() < cut && !it.protected(now) && m.removeItem(it.domain, it.item) {
			m.drops.Add(1)
			n++
		}
	}
	return n, nil
}
