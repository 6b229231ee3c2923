package stscache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Every field of an entry survives the packing of an item, whichever of
// its three times are set, in which location,
// with every failure class, temporary or not, and every last use, and the
// use word's flags never disturb the packed fields (STS-CACHE-1).
func TestItemPackingRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	forms := []func(time.Time) time.Time{
		func(time.Time) time.Time { return time.Time{} },
		func(t time.Time) time.Time { return t.UTC() },
		func(t time.Time) time.Time { return t.Local() },
	}
	classes := append([]result.Type{""}, failureClasses...)
	m := &Memory{}
	n := 0
	for fi, f := range forms {
		for ci, c := range forms {
			for ui, u := range forms {
				for k, class := range classes {
					n++
					e := &mtasts.Entry{
						Domain:             fmt.Sprintf("d%d.example", n),
						Policy:             &mtasts.Policy{Mode: mtasts.ModeEnforce, MaxAge: 86400, MX: []string{"mx.example"}},
						ID:                 fmt.Sprintf("id%d", n),
						FetchedAt:          f(now.Add(-time.Hour)),
						CheckedAt:          c(now.Add(-time.Minute)),
						NoPolicyUntil:      u(now.Add(time.Hour + time.Duration(n)*time.Nanosecond)),
						LastErrorType:      class,
						LastErrorTemporary: k%2 == 1,
						LastUsed:           now.Add(time.Duration(n) * time.Millisecond),
					}
					if class != "" {
						e.LastError = "failed: " + string(class)
					}
					want := *e
					if err := m.Put(ctx, e); err != nil {
						t.Fatal(err)
					}
					it := m.item(e.Domain)
					if it.rare != nil {
						t.Errorf("%s: rare parts without failures (times %d %d %d)", e.Domain, fi, ci, ui)
					}
					check := func(when string) {
						t.Helper()
						got, err := m.Get(ctx, e.Domain)
						if err != nil {
							t.Fatal(err)
						}
						if d := mtaststest.EntryDiff(got, &want); d != "" {
							t.Errorf("%s %s: %s", e.Domain, when, d)
						}
						for i, tm := range [3]time.Time{want.FetchedAt, want.CheckedAt, want.NoPolicyUntil} {
							if g := it.time(i); g.Location() != tm.Location() && !tm.IsZero() {
								t.Errorf("%s %s: time %d in %v, want %v", e.Domain, when, i, g.Location(), tm.Location())
							}
						}
					}
					check("after Put")
					// The use word's flags move; the packed fields stay.
					if it.dirty() {
						t.Errorf("%s: dirty after Put", e.Domain)
					}
					want.LastUsed = want.LastUsed.Add(time.Second)
					if !m.Touch(e.Domain, want.LastUsed) || !it.dirty() {
						t.Errorf("%s: Touch did not mark the item dirty", e.Domain)
					}
					check("after Touch")
					m.Touch(e.Domain, want.LastUsed.Add(-time.Minute)) // never lowers
					check("after an older Touch")
					if !it.takeDirty() || it.takeDirty() || it.dirty() {
						t.Errorf("%s: takeDirty does not clear the dirty bit once", e.Domain)
					}
					check("after takeDirty")
				}
			}
		}
	}
}

// The last use and the load time keep their range: the zero time, times
// far from now, and the clamping at the ends of the 48 bits.
func TestItemUseAndLoadBounds(t *testing.T) {
	t.Parallel()
	m := &Memory{}
	for _, c := range []struct {
		name   string
		used   time.Time
		want   int64
		loaded int64
	}{
		{"zero", time.Time{}, zeroMS, neverLoaded},
		{"epoch", time.Unix(0, 0), 0, 0},
		{"before 1970", time.UnixMilli(-5), -5, -1},
		{"now", time.UnixMilli(1_800_000_000_123), 1_800_000_000_123, 86_400_000},
		{"year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), maxUseMS, maxLoadedMS},
		{"never loaded", time.Time{}, zeroMS, minLoadedMS - 1},
	} {
		e := &mtasts.Entry{Domain: "a.example", ID: "an-id", LastUsed: c.used}
		it := m.newItem(e, c.loaded)
		if got := it.lastUsed(); got != c.want {
			t.Errorf("%s: lastUsed %d, want %d", c.name, got, c.want)
		}
		if got := it.loadedMS(); got != min(max(c.loaded, minLoadedMS), maxLoadedMS) {
			t.Errorf("%s: loadedMS %d, want %d", c.name, got, c.loaded)
		}
		if it.id() != "an-id" || it.lastError() != "" {
			t.Errorf("%s: id %q, last error %q", c.name, it.id(), it.lastError())
		}
	}
	if got := (&item{}).loadedMS(); got == neverLoaded {
		t.Errorf("the zero load time is neverLoaded")
	}
}

// A replacement item takes over the use recorded in the old one when it is
// newer, with its dirty bit, and keeps its own packed fields.
func TestItemInheritUse(t *testing.T) {
	t.Parallel()
	m := &Memory{}
	base := time.UnixMilli(1_800_000_000_000)
	old := m.newItem(&mtasts.Entry{Domain: "a.example", ID: "old", LastUsed: base}, 0)
	old.touch(base.Add(time.Minute).UnixMilli())
	nit := m.newItem(&mtasts.Entry{Domain: "a.example", ID: "new", LastError: "e", LastErrorType: result.STSPolicyInvalid,
		LastErrorTemporary: true, CheckedAt: base, LastUsed: base}, 5)
	nit.inheritUse(old)
	if nit.lastUsed() != base.Add(time.Minute).UnixMilli() || !nit.dirty() {
		t.Errorf("inheritUse: use %d dirty %v, want the old item's newer use, dirty", nit.lastUsed(), nit.dirty())
	}
	e := nit.entry("a.example")
	if e.ID != "new" || e.LastError != "e" || e.LastErrorType != result.STSPolicyInvalid || !e.LastErrorTemporary ||
		!e.CheckedAt.Equal(base) || !e.FetchedAt.IsZero() || nit.loadedMS() != 5 {
		t.Errorf("inheritUse changed the packed fields: %+v", e)
	}
	// An older use is not taken.
	newer := m.newItem(&mtasts.Entry{Domain: "a.example", LastUsed: base.Add(time.Hour)}, 0)
	newer.inheritUse(old)
	if newer.lastUsed() != base.Add(time.Hour).UnixMilli() || newer.dirty() {
		t.Errorf("inheritUse took an older use")
	}
	newer.inheritDirty(old)
	if !newer.dirty() {
		t.Errorf("inheritDirty did not take the dirty bit")
	}
	old.takeDirty()
	newer.inheritDirty(old)
	if newer.dirty() {
		t.Errorf("inheritDirty did not take the clean bit")
	}
}

// The ID and the LastError share one allocation of their own when each
// fits the 12 bits of its length; longer ones are kept whole in rare.
func TestItemText(t *testing.T) {
	t.Parallel()
	m := &Memory{}
	long := strings.Repeat("x", maxTextLen)
	for _, c := range []struct {
		id, lastError string
		rare          bool
	}{
		{"", "", false},
		{"id1", "", false},
		{"", "no-policy: none", false},
		{"id1", "no-policy: none", false},
		{long, long, false},
		{long + "y", "", true},
		{"id1", long + "y", true},
	} {
		e := &mtasts.Entry{Domain: "a.example", ID: c.id, LastError: c.lastError}
		if c.lastError != "" {
			e.LastErrorType = result.STSPolicyInvalid
		}
		it := m.newItem(e, 0)
		if (it.rare != nil) != c.rare {
			t.Errorf("id %d bytes, last error %d: rare %v, want %v", len(c.id), len(c.lastError), it.rare != nil, c.rare)
		}
		if it.id() != c.id || it.lastError() != c.lastError {
			t.Errorf("id %d bytes, last error %d: got %d and %d bytes back, or other bytes", len(c.id), len(c.lastError), len(it.id()), len(it.lastError()))
		}
		if c.id == "" && c.lastError == "" && it.text != nil {
			t.Errorf("an empty text has an allocation")
		}
	}
}
