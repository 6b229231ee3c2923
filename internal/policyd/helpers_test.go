package policyd

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// clock is an injected clock tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// f2 is the RFC 8461 §3.2 example policy (fixture F-2).
const f2 = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n"

// f2Domain serves F-2 for example.com on the testnet (loopback only: the
// name never leaves the fake DNS server).
func f2Domain() testnet.Domain {
	return testnet.Domain{
		Name:   "example.com",
		STSTXT: [][]string{{"v=STSv1; id=20160831085700Z;"}},
		Policy: &testnet.PolicyHost{Body: f2},
		MX: []testnet.MXHost{
			{Name: "mail.example.com", Pref: 10},
			{Name: "a.example.net", Pref: 20},
			{Name: "backupmx.example.com", Pref: 30},
		},
	}
}

func stsDomain(name, id, mode string, mx ...string) testnet.Domain {
	body := "version: STSv1\nmode: " + mode + "\n"
	for _, m := range mx {
		body += "mx: " + m + "\n"
	}
	body += "max_age: 86400\n"
	d := testnet.Domain{Name: name, STSTXT: [][]string{{"v=STSv1; id=" + id}}, Policy: &testnet.PolicyHost{Body: body}}
	for i, m := range mx {
		if m[0] == '*' {
			m = "mx" + m[1:]
		}
		d.MX = append(d.MX, testnet.MXHost{Name: m, Pref: uint16(10 * (i + 1))})
	}
	return d
}

// env is a Responder wired to a testnet.
type env struct {
	n     *testnet.Net
	clock *clock
	dns   *dnsresolve.Client
	cache *mtasts.Cache
	store mtasts.Store
	r     *Responder
}

func startNet(t testing.TB, domains ...testnet.Domain) *testnet.Net {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: domains}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func newEnv(t testing.TB, rules *Rules, domains ...testnet.Domain) *env {
	t.Helper()
	n := startNet(t, domains...)
	return newEnvOn(t, n, mtasts.NewMemoryStore(), rules)
}

func newEnvOn(t testing.TB, n *testnet.Net, store mtasts.Store, rules *Rules) *env {
	t.Helper()
	dc, err := dnsresolve.NewClient(n.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	dc.Timeout = 500 * time.Millisecond
	e := &env{n: n, clock: newClock(), dns: dc, store: store}
	e.cache = &mtasts.Cache{
		Client: &mtasts.Client{DNS: dc, RootCAs: n.RootCAs(), HTTPSPort: n.HTTPSPort(), Timeout: 5 * time.Second},
		Store:  store,
		Now:    e.clock.Now,
	}
	e.r = &Responder{Cache: e.cache, DNS: dc, Now: e.clock.Now}
	if err := e.r.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) answer(t testing.TB, zone, key string) (string, Decision) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, d := e.r.Answer(ctx, zone, key)
	return rep.Status.String() + " " + rep.Data, d
}

// openCacheKind opens a policy cache of kind (stscache.KindMemory, or
// stscache.KindSQLite in a temporary directory), closed when t ends.
func openCacheKind(t testing.TB, kind string) *stscache.Cache {
	t.Helper()
	c, err := stscache.Open(context.Background(), stscache.Config{Kind: kind,
		Path: filepath.Join(t.TempDir(), CacheFileName), NoFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
