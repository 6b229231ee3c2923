package stscache

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/mailsts/mailsts/mtasts"
)

func mustParse(t testing.TB, body string) *mtasts.Policy {
	t.Helper()
	p, err := mtasts.ParsePolicy([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Domains whose policies are equal share one *mtasts.Policy, however the
// bodies were written; Put hands the shared one back in e.Policy, and Get
// returns it with the content that was put (STS-CACHE-1).
func TestMemorySharesEqualPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bodies := []string{
		"version: STSv1\nmode: enforce\nmx: mx1.hosted.example\nmx: *.mx.hosted.example\nmax_age: 604800\n",
		"version: STSv1\r\nmode: enforce\r\nmx: mx1.hosted.example\r\nmx: *.mx.hosted.example\r\nmax_age: 604800",
		"max_age: 604800\nmx: mx1.hosted.example\nversion: STSv1\nmx: *.mx.hosted.example\nmode: enforce\n",
		"version: STSv1\nmode:   enforce\nmx: mx1.hosted.example.\nmx:\t*.mx.hosted.example\nmax_age: 604800\n\n",
	}
	m := &Memory{}
	var shared *mtasts.Policy
	for i, b := range bodies {
		p := mustParse(t, b)
		e := &mtasts.Entry{Domain: fmt.Sprintf("d%d.example", i), Policy: p, ID: "1"}
		if err := m.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e.Policy, p) {
			t.Fatalf("Put changed the policy's content: %#v, put %#v", e.Policy, p)
		}
		if i == 0 {
			shared = e.Policy
		} else if e.Policy != shared {
			t.Errorf("body %d: Put left e.Policy %p, want the shared %p", i, e.Policy, shared)
		}
		got, err := m.Get(ctx, e.Domain)
		if err != nil || got == nil {
			t.Fatalf("Get(%s) = %v, %v", e.Domain, got, err)
		}
		if got.Policy != shared {
			t.Errorf("Get(%s).Policy = %p, want the shared %p", e.Domain, got.Policy, shared)
		}
		if !reflect.DeepEqual(got.Policy, p) {
			t.Errorf("Get(%s).Policy = %#v, want %#v", e.Domain, got.Policy, p)
		}
	}
	if n := m.policies.len(); n != 1 {
		t.Errorf("policy table has %d slots, want 1", n)
	}

	// Through a Tiered store: Front shares, and Back is given the shared
	// policy too.
	back := &Memory{}
	tr := &Tiered{Front: &Memory{}, Back: back, FrontTTL: -1}
	var first *mtasts.Policy
	for i, b := range bodies {
		e := &mtasts.Entry{Domain: fmt.Sprintf("t%d.example", i), Policy: mustParse(t, b)}
		if err := tr.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = e.Policy
		}
		got, _ := tr.Get(ctx, e.Domain)
		if got == nil || got.Policy != first || e.Policy != first {
			t.Errorf("Tiered, body %d: Put/Get gave %p/%v, want the shared %p", i, e.Policy, got, first)
		}
	}
}

// differentPolicies returns policies that are pairwise different in one
// field or another; interning must never make one stand for another.
func differentPolicies() []*mtasts.Policy {
	enf := mtasts.ModeEnforce
	return []*mtasts.Policy{
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400},
		{Mode: mtasts.ModeTesting, MX: []string{"mx1.example"}, MaxAge: 86400},                    // mode
		{Mode: mtasts.ModeNone, MX: []string{"mx1.example"}, MaxAge: 86400},                       // mode
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86401},                                   // max_age
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 0},                                       // max_age
		{Mode: enf, MX: []string{"MX1.example"}, MaxAge: 86400},                                   // mx case
		{Mode: enf, MX: []string{"mx1.example", "mx2.example"}, MaxAge: 86400},                    // one more mx
		{Mode: enf, MX: []string{"mx2.example", "mx1.example"}, MaxAge: 86400},                    // mx order
		{Mode: enf, MX: []string{"mx1.examplemx2.example"}, MaxAge: 86400},                        // same bytes, other split
		{Mode: enf, MX: []string{"mx1.example", "mx1.example"}, MaxAge: 86400},                    // repeated mx
		{Mode: enf, MX: []string{"mx1.example", ""}, MaxAge: 86400},                               // empty string
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{}}, // empty, not nil
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{{Key: "x", Value: "1"}}},
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{{Key: "x", Value: "2"}}},
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{{Key: "y", Value: "1"}}},
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{{Key: "x1", Value: ""}}},
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{{Key: "x", Value: "1"}, {Key: "y", Value: "2"}}},
		{Mode: enf, MX: []string{"mx1.example"}, MaxAge: 86400, Extensions: []mtasts.Extension{{Key: "y", Value: "2"}, {Key: "x", Value: "1"}}},
		{Mode: mtasts.ModeNone, MaxAge: 86400},                        // nil mx
		{Mode: mtasts.ModeNone, MX: []string{}, MaxAge: 86400},        // empty mx
		{Mode: "Enforce", MX: []string{"mx1.example"}, MaxAge: 86400}, // mode case (decoded oddity)
	}
}

// STS-CACHE-1: interning never mixes up policies that differ in mode,
// max_age, mx order or case, extensions, or nil and empty slices; each
// domain gets back exactly the policy it was given.
func TestMemoryNeverMixesPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := &Memory{}
	ps := differentPolicies()
	seen := map[*mtasts.Policy]int{}
	for round := range 2 { // the second round finds every policy interned
		for i, p := range ps {
			want := cloneForTest(p)
			e := &mtasts.Entry{Domain: fmt.Sprintf("d%d-%d.example", round, i), Policy: p}
			if err := m.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
			got, _ := m.Get(ctx, e.Domain)
			if got == nil || !reflect.DeepEqual(got.Policy, want) {
				t.Fatalf("policy %d: Get = %#v, want %#v", i, got, want)
			}
			if j, ok := seen[got.Policy]; ok && j != i {
				t.Fatalf("policies %d and %d share %p", j, i, got.Policy)
			}
			seen[got.Policy] = i
		}
	}
	if len(seen) != len(ps) {
		t.Errorf("%d shared policies for %d different ones", len(seen), len(ps))
	}
}

func cloneForTest(p *mtasts.Policy) *mtasts.Policy {
	if p == nil {
		return nil
	}
	q := *p
	if p.MX != nil {
		q.MX = append([]string{}, p.MX...)
	}
	if p.Extensions != nil {
		q.Extensions = append([]mtasts.Extension{}, p.Extensions...)
	}
	return &q
}

// The shared copy owns its memory: nothing of the caller's policy (whose
// strings may be cut from a fetched body or a decoded row) is kept.
func TestInternCopiesCompactly(t *testing.T) {
	t.Parallel()
	var pt policyTable
	buf := strings.Repeat("x", 1000) + "mx1.example" + "key" + "value"
	p := &mtasts.Policy{
		Mode:       mtasts.Mode(strings.Clone("enforce")),
		MX:         make([]string, 1, 8),
		MaxAge:     60,
		Extensions: []mtasts.Extension{{Key: buf[1011:1014], Value: buf[1014:]}},
	}
	p.MX[0] = buf[1000:1011]
	q := pt.intern(p)
	if q == p || !reflect.DeepEqual(q, p) {
		t.Fatalf("intern = %p %#v, want an equal copy of %p", q, q, p)
	}
	if cap(q.MX) != len(q.MX) {
		t.Errorf("cap(MX) = %d, want %d", cap(q.MX), len(q.MX))
	}
	if string(q.Mode) != string(mtasts.ModeEnforce) || !sameData(string(q.Mode), string(mtasts.ModeEnforce)) {
		t.Errorf("Mode is not the package constant")
	}
	for _, s := range []string{q.MX[0], q.Extensions[0].Key, q.Extensions[0].Value} {
		if within(s, buf) {
			t.Errorf("%q points into the caller's buffer", s)
		}
	}
}

// The table forgets policies no entry uses any more, and a collision of
// the 64-bit hash never hands out the other policy.
func TestPolicyTableSweepAndCollision(t *testing.T) {
	t.Parallel()
	var pt policyTable
	keep := pt.intern(&mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"keep.example"}})
	live := make([]*mtasts.Policy, minSweep-1)
	dead := make([]weak.Pointer[mtasts.Policy], len(live))
	for i := range live {
		live[i] = pt.intern(&mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{fmt.Sprintf("mx%d.example", i)}})
		dead[i] = weak.Make(live[i])
	}
	if n := pt.len(); n != minSweep {
		t.Fatalf("len = %d, want %d", n, minSweep)
	}
	live = nil
	collected := false
	for range 10 { // one GC is enough; bounded in case the runtime lags
		runtime.GC()
		collected = true
		for _, wp := range dead {
			if wp.Value() != nil {
				collected = false
				break
			}
		}
		if collected {
			break
		}
	}
	if !collected {
		t.Fatal("unreferenced policies not collected after 10 GCs")
	}
	// The table is full: the next new policy sweeps the collected ones.
	pt.intern(&mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"trigger.example"}})
	if n := pt.len(); n != 2 {
		t.Errorf("after GC and a new policy: len = %d, want 2 (keep and the new one)", n)
	}
	if got := pt.intern(&mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"keep.example"}}); got != keep {
		t.Errorf("a policy still in use lost its slot")
	}

	// Collision: occupy p's slot with a different live policy.
	p := &mtasts.Policy{Mode: mtasts.ModeTesting, MX: []string{"p.example"}}
	other := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"other.example"}}
	h := hashPolicy(pt.seed, p)
	pt.mu.Lock()
	pt.m[h] = weak.Make(other)
	pt.mu.Unlock()
	if got := pt.intern(p); got != p {
		t.Errorf("intern on a colliding slot = %#v, want p itself", got)
	}
	if got := pt.intern(other); got == other {
		// other is not in the table under its own hash: interning it
		// makes a copy, never returns p.
		t.Errorf("intern(other) returned the caller's pointer")
	} else if !reflect.DeepEqual(got, other) {
		t.Errorf("intern(other) = %#v", got)
	}
	runtime.KeepAlive(other)
	runtime.KeepAlive(keep)
}

// FuzzPolicyTable: two policies built from the fuzz input share a pointer
// exactly when they are equal field by field, and interning keeps content.
func FuzzPolicyTable(f *testing.F) {
	ps := differentPolicies()
	for i := range ps {
		f.Add(encodeFuzzPolicy(ps[i]), encodeFuzzPolicy(ps[(i+1)%len(ps)]))
		f.Add(encodeFuzzPolicy(ps[i]), encodeFuzzPolicy(ps[i]))
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		pa, pb := decodeFuzzPolicy(a), decodeFuzzPolicy(b)
		var pt policyTable
		wa, wb := cloneForTest(pa), cloneForTest(pb)
		ia, ib := pt.intern(pa), pt.intern(pb)
		if !reflect.DeepEqual(ia, wa) || !reflect.DeepEqual(ib, wb) {
			t.Fatalf("interning changed content: %#v → %#v, %#v → %#v", wa, ia, wb, ib)
		}
		if equal := reflect.DeepEqual(wa, wb); equal != (ia == ib) {
			t.Fatalf("equal = %v but shared = %v for %#v and %#v", equal, ia == ib, wa, wb)
		}
	})
}

// encodeFuzzPolicy and decodeFuzzPolicy map a policy to and from a string:
// mode, max_age, then "|"-separated mx (or "-" for nil), then ext pairs.
func encodeFuzzPolicy(p *mtasts.Policy) string {
	list := func(isNil bool, items []string) string {
		if isNil {
			return "-"
		}
		return "[" + strings.Join(items, "|")
	}
	var ext []string
	for _, x := range p.Extensions {
		ext = append(ext, x.Key+"="+x.Value)
	}
	return fmt.Sprintf("%s\n%d\n%s\n%s", p.Mode, p.MaxAge, list(p.MX == nil, p.MX), list(p.Extensions == nil, ext))
}

func decodeFuzzPolicy(s string) *mtasts.Policy {
	f := strings.SplitN(s, "\n", 4)
	for len(f) < 4 {
		f = append(f, "-")
	}
	p := &mtasts.Policy{Mode: mtasts.Mode(f[0])}
	fmt.Sscan(f[1], &p.MaxAge)
	if rest, ok := strings.CutPrefix(f[2], "["); ok {
		p.MX = []string{}
		if rest != "" {
			p.MX = strings.Split(rest, "|")
		}
	}
	if rest, ok := strings.CutPrefix(f[3], "["); ok {
		p.Extensions = []mtasts.Extension{}
		if rest != "" {
			for _, kv := range strings.Split(rest, "|") {
				k, v, _ := strings.Cut(kv, "=")
				p.Extensions = append(p.Extensions, mtasts.Extension{Key: k, Value: v})
			}
		}
	}
	return p
}

// Entries keep every field exactly as a time.Time compares (Equal and
// Location), whatever form they are stored in: compact nanoseconds for
// UTC and Local times of the years 1678 to 2262, the times themselves
// otherwise.
func TestMemoryKeepsTimesExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now() // Local, with a monotonic reading
	times := map[string]time.Time{
		"zero":     {},
		"now":      now,
		"utc":      now.UTC(),
		"1969":     time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC),
		"epoch":    time.Unix(0, 0).UTC(),
		"fixed":    now.In(time.FixedZone("X", 3600)),
		"1600":     time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		"3000":     time.Date(3000, 1, 1, 0, 0, 0, 5, time.Local),
		"sentinel": time.Unix(0, noTime).UTC(), // the instant noTime would mean
	}
	m := &Memory{}
	i := 0
	for name, tm := range times {
		for _, failing := range []bool{false, true} {
			i++
			e := &mtasts.Entry{
				Domain: fmt.Sprintf("d%d.example", i), ID: "id-" + name,
				FetchedAt: tm, CheckedAt: now, NoPolicyUntil: tm,
				LastError: "x: " + name,
			}
			if failing {
				e.FailedID, e.FailedAt, e.Failures = "f", tm, 2
			}
			if err := m.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
			got, _ := m.Get(ctx, e.Domain)
			for _, c := range []struct {
				field     string
				got, want time.Time
			}{
				{"FetchedAt", got.FetchedAt, e.FetchedAt},
				{"CheckedAt", got.CheckedAt, e.CheckedAt},
				{"NoPolicyUntil", got.NoPolicyUntil, e.NoPolicyUntil},
				{"FailedAt", got.FailedAt, e.FailedAt},
			} {
				if !c.got.Equal(c.want) || c.got.IsZero() != c.want.IsZero() || c.got.Location() != c.want.Location() {
					t.Errorf("%s (failing %v): %s = %v (%v), want %v (%v)", name, failing, c.field, c.got, c.got.Location(), c.want, c.want.Location())
				}
			}
			if got.ID != e.ID || got.LastError != e.LastError || got.FailedID != e.FailedID || got.Failures != e.Failures {
				t.Errorf("%s (failing %v): got %+v, want %+v", name, failing, got, e)
			}
		}
	}
}

// The common entry is one small allocation (plus its text), and the
// record id does not pin the TXT record it was cut from.
func TestItemCompact(t *testing.T) {
	t.Parallel()
	if n := reflect.TypeFor[item]().Size(); n > 64 {
		t.Errorf("item is %d bytes, want at most 64 (one 64-byte size class)", n)
	}
	txt := "v=STSv1; id=20250101T000000" + strings.Repeat(";", 200)
	id := txt[12:27]
	m := &Memory{}
	// As mtasts.Cache stores a fetched policy: all three times set.
	now := time.Now()
	e := &mtasts.Entry{Domain: "a.example", ID: id, FetchedAt: now, CheckedAt: now, NoPolicyUntil: now.Add(time.Hour)}
	if err := m.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	it := m.item("a.example")
	if it.rare != nil {
		t.Errorf("an entry without failures has rare parts")
	}
	if it.id() != id || within(it.id(), txt) {
		t.Errorf("stored id %q is (in) the TXT text", it.id())
	}
}

// sameData reports whether a and b share their bytes.
func sameData(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// within reports whether s's bytes lie inside buf's.
func within(s, buf string) bool {
	if s == "" || buf == "" {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	lo := uintptr(unsafe.Pointer(unsafe.StringData(buf)))
	return p >= lo && p < lo+uintptr(len(buf))
}
