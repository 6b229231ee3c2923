package policyd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

func (c *countingStore) Get(ctx context.Context, d string) (*mtasts.Entry, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, d)
}

func (e *env) lookup(t *testing.T, zone, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep := e.r.Lookup(ctx, zone, key)
	return rep.Status.String() + " " + rep.Data
}

// Repeated lookups are answered from the memo: no store read, no DNS.
func TestMemoRepeats(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: mtasts.NewMemoryStore()}
	e := newEnvOn(t, startNet(t, f2Domain()), st, nil)
	if got := e.lookup(t, "postfix", "example.com"); got != f2Secure {
		t.Fatal(got)
	}
	if n := e.r.memo.len(); n != 0 {
		t.Errorf("the lookup that fetched the policy was memoised (%d entries): its state changed under it", n)
	}
	e.lookup(t, "postfix", "example.com") // from the cache: memoised
	gets := st.gets.Load()
	for i := range 100 {
		if got := e.lookup(t, "postfix", "example.com"); got != f2Secure {
			t.Fatalf("lookup %d: %s", i, got)
		}
	}
	if d := st.gets.Load() - gets; d != 0 {
		t.Errorf("%d store reads for 100 repeated lookups, want 0", d)
	}
	// Another map name is another memo key, with its own answer.
	if got := e.lookup(t, TLSRPTMapName, "example.com"); !strings.Contains(got, "policy_type=sts") {
		t.Errorf("TLSRPT map: %s", got)
	}
	if got := e.lookup(t, "postfix", "example.com"); got != f2Secure {
		t.Errorf("after the TLSRPT lookup: %s", got)
	}
}

// Everything an answer depends on ends its memo at once.
func TestMemoInvalidation(t *testing.T) {
	t.Parallel()
	n := startNet(t, f2Domain())
	st := &countingStore{Store: mtasts.NewMemoryStore()}
	e := newEnvOn(t, n, st, nil)
	warm := func() {
		t.Helper()
		e.lookup(t, "postfix", "example.com")
		if got := e.lookup(t, "postfix", "example.com"); got != f2Secure {
			t.Fatalf("warm: %s", got)
		}
	}
	warm()

	// New rules: an override applies to the very next lookup.
	if err := e.r.SetRules(&Rules{Overrides: []Override{{Domain: "example.com", Action: ActionNone, Reason: "test", Expires: e.clock.Now().Add(300 * time.Millisecond)}}}); err != nil {
		t.Fatal(err)
	}
	if got := e.lookup(t, "postfix", "example.com"); got != "OK may" {
		t.Errorf("after SetRules: %s", got)
	}
	e.lookup(t, "postfix", "example.com")
	// The override expires before the memo's TTL would: the memo ends with it.
	e.clock.Advance(300 * time.Millisecond)
	if got := e.lookup(t, "postfix", "example.com"); got != f2Secure {
		t.Errorf("after the override expired: %s", got)
	}

	// A write of the domain's cache entry (a new policy) ends the memo
	// without any clock movement.
	warm()
	d := f2Domain()
	d.STSTXT = [][]string{{"v=STSv1; id=2"}}
	d.Policy = &testnet.PolicyHost{Body: "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmx: new.example.com\nmax_age: 604800\n"}
	if err := n.Set(d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cache.Refresh(context.Background(), "example.com", false); err != nil {
		t.Fatal(err)
	}
	if got := e.lookup(t, "postfix", "example.com"); !strings.Contains(got, "new.example.com") {
		t.Errorf("after a refresh fetched a new policy: %s", got)
	}

	// A change the Cache does not see (another daemon writing a shared
	// store) is picked up after memoTTL at the latest.
	warm2 := e.lookup(t, "postfix", "example.com")
	en, err := st.Get(context.Background(), "example.com")
	if err != nil || en == nil {
		t.Fatal(en, err)
	}
	en.Policy = &mtasts.Policy{Mode: mtasts.ModeTesting, MX: en.Policy.MX, MaxAge: en.Policy.MaxAge}
	if err := st.Put(context.Background(), en); err != nil {
		t.Fatal(err)
	}
	if got := e.lookup(t, "postfix", "example.com"); got != warm2 {
		t.Logf("(an outside write was seen at once: %s)", got)
	}
	e.clock.Advance(memoTTL)
	if got := e.lookup(t, "postfix", "example.com"); got != "NOTFOUND " {
		t.Errorf("memoTTL after an outside write (testing policy): %s", got)
	}
}

// The memo never outlives the cached answer (Result.Until): at the next
// TXT check the Cache is asked again.
func TestMemoUntil(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: mtasts.NewMemoryStore()}
	e := newEnvOn(t, startNet(t, f2Domain()), st, nil)
	e.lookup(t, "postfix", "example.com")
	e.clock.Advance(mtasts.DefaultCheckInterval - memoTTL/2)
	// The DANE decision and MX set have aged out by now: the first lookup
	// renews them (state changed, not memoised), the second is memoised
	// until the TXT check, memoTTL/2 away.
	e.lookup(t, "postfix", "example.com")
	e.lookup(t, "postfix", "example.com")
	gets := st.gets.Load()
	e.lookup(t, "postfix", "example.com")
	if st.gets.Load() != gets {
		t.Fatal("no memo before Result.Until")
	}
	fetched := e.n.Requests("example.com")
	e.clock.Advance(memoTTL / 2)
	e.lookup(t, "postfix", "example.com")
	// At the check the Cache reads the entry, finds it due, and discovers
	// (TXT lookup; same id, so no fetch).
	if d := st.gets.Load() - gets; d < 2 {
		t.Errorf("%d store reads at Result.Until: the memo hid the TXT check", d)
	}
	if e.n.Requests("example.com") != fetched {
		t.Errorf("policy fetched again for an unchanged id")
	}
}

// TEMP answers are never memoised (OPEN-1 windows, failed DANE lookups).
func TestMemoNotTemp(t *testing.T) {
	t.Parallel()
	d := f2Domain()
	d.STSFault = testnet.FaultServFail
	e := newEnv(t, nil, d)
	for i := range 3 {
		if got := e.lookup(t, "postfix", "example.com"); !strings.HasPrefix(got, "TEMP") {
			t.Fatalf("lookup %d: %s", i, got)
		}
	}
	if n := e.r.memo.len(); n != 0 {
		t.Errorf("%d memo entries after TEMP answers", n)
	}
}

// Metrics count every query, memoised or not.
func TestMemoMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, f2Domain())
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e.r.Observer = m
	e.cache.Observer = m
	for range 10 {
		e.lookup(t, "postfix", "example.com")
	}
	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`mailsts_policyd_queries_total{answer="ok_secure",zone="default"} 10`,
		`mailsts_policyd_cache_lookups_total{result="hit"} 9`,
		`mailsts_policyd_cache_lookups_total{result="miss"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A random walk over lookups, clock moves, policy changes, refreshes, MX
// changes and rule changes: every answer that came from the memo equals the
// answer computed afresh at that moment.
func TestMemoModel(t *testing.T) {
	t.Parallel()
	domains := []testnet.Domain{
		f2Domain(),
		stsDomain("b.example", "1", "enforce", "mx.b.example"),
		stsDomain("c.example", "1", "testing", "mx.c.example"),
		{Name: "none.example"},
	}
	n := startNet(t, domains...)
	e := newEnvOn(t, n, mtasts.NewMemoryStore(), nil)
	e.r.MXCheckInterval = 3 * time.Second
	e.r.DANETTL = 2 * time.Second
	rng := rand.New(rand.NewPCG(8461, 8460))
	keys := []string{"example.com", "b.example", "c.example", "none.example", "[b.example]:25", ".example.com", "EXAMPLE.COM."}
	zones := []string{"postfix", TLSRPTMapName}
	compared := 0
	for step := range 600 {
		switch op := rng.IntN(20); {
		case op < 14:
			zone, key := zones[rng.IntN(len(zones))], keys[rng.IntN(len(keys))]
			hits := e.r.memoHits.Load()
			got := e.lookup(t, zone, key)
			if e.r.memoHits.Load() == hits {
				continue
			}
			fresh, d := e.answer(t, zone, key)
			if got != fresh {
				t.Fatalf("step %d: memo answered %q for %s %s, fresh answer %q (%s)", step, got, zone, key, fresh, d.Reason)
			}
			compared++
		case op < 17:
			e.clock.Advance(time.Duration(rng.IntN(1500)) * time.Millisecond)
		case op == 17:
			d := stsDomain("b.example", fmt.Sprint(step), []string{"enforce", "testing", "none"}[rng.IntN(3)], fmt.Sprintf("mx%d.b.example", rng.IntN(3)))
			if err := n.Set(d); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2) == 0 {
				e.cache.Refresh(context.Background(), "b.example", rng.IntN(2) == 0)
			}
		case op == 18:
			d := f2Domain()
			d.MX = []testnet.MXHost{{Name: fmt.Sprintf("mx%d.example.org", rng.IntN(2)), Pref: 10}}
			if rng.IntN(2) == 0 {
				d = f2Domain()
			}
			if err := n.Set(d); err != nil {
				t.Fatal(err)
			}
		default:
			var rules Rules
			if rng.IntN(2) == 0 {
				rules.Overrides = []Override{{Domain: "c.example", Action: ActionEnforce, MX: []string{"mx.c.example"}, Expires: e.clock.Now().Add(time.Duration(rng.IntN(2000)) * time.Millisecond)}}
			}
			if err := e.r.SetRules(&rules); err != nil {
				t.Fatal(err)
			}
		}
	}
	if compared < 50 {
		t.Errorf("only %d memo answers compared: the walk does not exercise the memo", compared)
	}
	t.Logf("%d memoised answers compared with fresh ones", compared)
}

// BenchmarkLookupMemo is the hot path of a busy MTA: the same destination
// asked again and again.
func BenchmarkLookupMemo(b *testing.B) {
	e := newEnv(b, nil, f2Domain())
	ctx := context.Background()
	e.r.Lookup(ctx, "postfix", "example.com")
	e.r.Lookup(ctx, "postfix", "example.com")
	b.ReportAllocs()
	for b.Loop() {
		if rep := e.r.Lookup(ctx, "postfix", "example.com"); rep.Status != postfix.StatusOK {
			b.Fatal(rep)
		}
	}
}

// Domains with equal policies (one pointer in the store) share one rendered
// reply; the TLSRPT form names the domain and stays per domain.
func TestSharedReplies(t *testing.T) {
	t.Parallel()
	a := stsDomain("a.example", "1", "enforce", "mx.host.example")
	b := stsDomain("b.example", "7", "enforce", "mx.host.example")
	b.MX = a.MX
	e := newEnvOn(t, startNet(t, a, b), openCacheKind(t, stscache.KindMemory), nil)
	for _, d := range []string{"a.example", "b.example"} {
		if got := e.lookup(t, "postfix", d); got != "OK secure match=mx.host.example servername=hostname" {
			t.Fatalf("%s: %s", d, got)
		}
	}
	now := e.clock.Now()
	ra, rb := e.r.state("a.example", now).rendered, e.r.state("b.example", now).rendered
	if ra == nil || ra != rb {
		t.Errorf("equal policies rendered twice: %p %p", ra, rb)
	}
	for _, d := range []string{"a.example", "b.example"} {
		if got := e.lookup(t, TLSRPTMapName, d); !strings.Contains(got, "policy_domain="+d) {
			t.Errorf("TLSRPT reply for %s: %s", d, got)
		}
	}
	if ra, rb := e.r.state("a.example", now).rendered, e.r.state("b.example", now).rendered; ra == rb {
		t.Error("TLSRPT replies (which name the domain) shared")
	}
}

// txtSignal closes seen when a TXT lookup starts.
type txtSignal struct {
	dnsresolve.Resolver
	once sync.Once
	seen chan struct{}
}

func (s *txtSignal) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	s.once.Do(func() { close(s.seen) })
	return s.Resolver.LookupTXT(ctx, name)
}

// mxAfterTXT holds MX lookups until a TXT lookup has started, or fails them
// after 10 s: with sequential lookups (DANE first, then MTA-STS) it fails.
type mxAfterTXT struct {
	dnsresolve.Resolver
	seen chan struct{}
}

func (g *mxAfterTXT) LookupMX(ctx context.Context, name string) ([]dnsresolve.MX, dnsresolve.Answer, error) {
	select {
	case <-g.seen:
		return g.Resolver.LookupMX(ctx, name)
	case <-time.After(10 * time.Second):
		return nil, dnsresolve.Answer{}, fmt.Errorf("%w: MX lookup before any TXT lookup: DANE and MTA-STS discovery ran one after the other", dnsresolve.ErrLookupFailed)
	}
}

// A cold answer runs the DANE lookups and MTA-STS discovery at the same
// time: the MX lookup for DANE is held until the _mta-sts TXT lookup has
// started, which only an overlapping discovery can do.
func TestColdLookupsOverlap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, f2Domain())
	sig := &txtSignal{Resolver: e.dns, seen: make(chan struct{})}
	e.cache.Client.DNS = sig
	e.r.DNS = &mxAfterTXT{Resolver: e.dns, seen: sig.seen}
	got, d := e.answer(t, "postfix", "example.com")
	if got != f2Secure || d.MXCheck != "match" {
		t.Errorf("cold answer %q (MX check %q, DANE %q): %s", got, d.MXCheck, d.DANE, d.Reason)
	}
}

// TestMemoSweepDropsExpired checks that a shard drops its expired entries
// once memoSweep has passed, so that the memo holds the keys of the last
// seconds only, and keeps the entries still valid.
func TestMemoSweepDropsExpired(t *testing.T) {
	t.Parallel()
	m := newAnswerMemo()
	t0 := time.Unix(1_800_000_000, 0).UnixNano()
	const n = 500
	for i := range n {
		m.put(memoKey{"postfix", "d" + strconv.Itoa(i) + ".example"}, &memoEntry{until: t0 + int64(memoTTL)}, t0)
	}
	if got := m.len(); got != n {
		t.Fatalf("len = %d, want %d", got, n)
	}
	// Past the sweep interval every entry above has expired; new puts to
	// every shard sweep it. The puts go on until each shard has had one
	// (with a fixed count, a shard the random hash seed gave none of the
	// new keys kept its expired entries: 2% of runs with 500 keys).
	t1 := t0 + int64(memoSweep)
	touched := map[*memoShard]bool{}
	added := 0
	for i := 0; len(touched) < memoShards; i++ {
		if i == 1_000_000 {
			t.Fatalf("%d of %d shards reached with a million keys", len(touched), memoShards)
		}
		k := "e" + strconv.Itoa(i) + ".example"
		m.put(memoKey{"postfix", k}, &memoEntry{until: t1 + int64(memoTTL)}, t1)
		touched[m.shard(k)] = true
		added++
	}
	if got := m.len(); got != added {
		t.Errorf("after the sweep: len = %d, want %d (the expired entries dropped, the new ones kept)", got, added)
	}
	if m.get(memoKey{"postfix", "e7.example"}) == nil {
		t.Error("a valid entry was dropped")
	}
	if memoSweep > 5*memoTTL {
		t.Errorf("memoSweep %v: the memo keeps expired answers for too long", memoSweep)
	}
}
