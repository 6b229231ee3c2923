package stscache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/mtasts"
)

// Two daemons, one cache: a Put through one Tiered is seen by the other
// after FrontTTL, and every key has a TTL.
func TestRedisTwoDaemons(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redisClient(t)
	prefix := redisPrefix(t, c)
	clk := newClock(time.Now())
	const ttl = 50 * time.Millisecond // tiny, and only ever moved by clk
	a := &Tiered{Front: &Memory{}, Back: NewRedis(c, prefix, nil), FrontTTL: ttl, Now: clk.Now}
	b := &Tiered{Front: &Memory{}, Back: NewRedis(c, prefix, nil), FrontTTL: ttl, Now: clk.Now}
	testSharedBack(t, ctx, clk, a, b, ttl)

	for _, d := range []string{"shared.example", "later.example"} {
		got, err := c.TTL(ctx, prefix+"policy:"+d).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got <= 0 {
			t.Errorf("%s: TTL %v, want a positive TTL (no key may live forever)", d, got)
		}
	}
	// Touches from both daemons reach Redis through Flush, newest wins.
	used := clk.Now().Add(time.Minute).Truncate(time.Millisecond)
	a.Touch("shared.example", used.Add(-time.Second))
	b.Touch("shared.example", used)
	for _, d := range []*Tiered{b, a} {
		if _, err := d.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e, err := NewRedis(c, prefix, nil).Get(ctx, "shared.example")
	if err != nil || !e.LastUsed.Equal(used) {
		t.Fatalf("LastUsed in Redis = %v, %v; want %v", e.LastUsed, err, used)
	}
}

func TestRedisTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, c := newTestRedis(t)
	now := time.Now()
	r.Now = func() time.Time { return now }
	cases := []struct {
		name string
		e    *mtasts.Entry
		want time.Duration
	}{
		{"policy", entryAt("p.example", mtasts.ModeEnforce, now.Add(-time.Hour), 86400, time.Time{}), 23*time.Hour + 24*time.Hour},
		{"negative", &mtasts.Entry{Domain: "n.example", NoPolicyUntil: now.Add(2 * time.Hour)}, 2*time.Hour + 24*time.Hour},
		{"old-failure", &mtasts.Entry{Domain: "f.example", FailedAt: now.Add(-48 * time.Hour), Failures: 2}, time.Hour},
		{"future", entryAt("future.example", mtasts.ModeEnforce, now.Add(10*365*24*time.Hour), mtasts.MaxMaxAge, time.Time{}), mtasts.MaxMaxAge*time.Second + 24*time.Hour},
	}
	for _, tc := range cases {
		if got := r.TTL(tc.e, now); got != tc.want {
			t.Errorf("%s: TTL = %v, want %v", tc.name, got, tc.want)
		}
		if err := r.Put(ctx, tc.e); err != nil {
			t.Fatal(err)
		}
		got, err := c.PTTL(ctx, r.Key(tc.e.Domain)).Result()
		if err != nil {
			t.Fatal(err)
		}
		// Generous bound: the key was written a moment ago.
		if got > tc.want || got < tc.want-time.Minute {
			t.Errorf("%s: Redis PTTL = %v, want about %v", tc.name, got, tc.want)
		}
	}
}

func TestRedisCorruptKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, c := newTestRedis(t)
	if err := r.Put(ctx, entryAt("good.example", "", time.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, r.Key("string.example"), "not a hash", time.Minute)
	c.HSet(ctx, r.Key("json.example"), "e", "{broken")
	c.HSet(ctx, r.Key("other.example"), "e", `{"domain":"good.example"}`)
	c.HSet(ctx, r.Key("huge.example"), "e", string(make([]byte, MaxEntrySize+1)))
	c.HSet(ctx, r.Key("onlyu.example"), "u", "123") // a touch without entry
	for _, k := range []string{"json", "other", "huge", "onlyu"} {
		c.Expire(ctx, r.Key(k+".example"), time.Minute)
	}
	for _, d := range []string{"string.example", "json.example", "other.example", "huge.example"} {
		if _, err := r.Get(ctx, d); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("Get(%s) = %v, want ErrCorruptEntry", d, err)
		}
	}
	if e, err := r.Get(ctx, "onlyu.example"); e != nil || err != nil {
		t.Errorf("Get(only u) = %v, %v; want nil, nil", e, err)
	}
	var seen []string
	if err := r.Range(ctx, func(e *mtasts.Entry) bool { seen = append(seen, e.Domain); return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "good.example" {
		t.Errorf("Range visited %v, want only good.example", seen)
	}
	if err := r.WriteLastUsed(ctx, map[string]time.Time{"string.example": time.Now(), "good.example": time.Now()}); err != nil {
		t.Errorf("WriteLastUsed with a foreign key type = %v, want it skipped", err)
	}
}

func TestRedisWriteLastUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, c := newTestRedis(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := r.Put(ctx, entryAt("a.example", "", t0, 0, t0)); err != nil {
		t.Fatal(err)
	}
	err := r.WriteLastUsed(ctx, map[string]time.Time{
		"a.example":       t0.Add(time.Hour),
		"missing.example": t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteLastUsed(ctx, map[string]time.Time{"a.example": t0}); err != nil { // older: ignored
		t.Fatal(err)
	}
	if u, _ := c.HGet(ctx, r.Key("a.example"), "u").Result(); u != strconv.FormatInt(t0.Add(time.Hour).UnixMilli(), 10) {
		t.Errorf("u field = %q", u)
	}
	if e, _ := r.Get(ctx, "a.example"); !e.LastUsed.Equal(t0.Add(time.Hour)) {
		t.Errorf("LastUsed = %v, want %v", e.LastUsed, t0.Add(time.Hour))
	}
	if n, _ := c.Exists(ctx, r.Key("missing.example")).Result(); n != 0 {
		t.Error("WriteLastUsed created a key (it would have no TTL)")
	}
	// A Put replaces the entry whole, use time included.
	if err := r.Put(ctx, entryAt("a.example", "", t0, 0, t0)); err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Get(ctx, "a.example"); !e.LastUsed.Equal(t0) {
		t.Errorf("after Put, LastUsed = %v, want %v", e.LastUsed, t0)
	}
}

func TestGlobEscape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"mailsts:":  "mailsts:",
		"a*b?c[d]e": `a\*b\?c\[d\]e`,
		`back\`:     `back\\`,
	} {
		if got := globEscape(in); got != want {
			t.Errorf("globEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// Keys under a prefix with glob characters are found, and a sibling
// prefix that the unescaped pattern would match is not.
func TestRedisRangeGlobPrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redisClient(t)
	base := redisPrefix(t, c)
	r := NewRedis(c, base+"[x]*:", nil)
	other := NewRedis(c, base+"x-other:", nil)
	if err := r.Put(ctx, entryAt("mine.example", "", time.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ctx, entryAt("theirs.example", "", time.Now(), 0, time.Time{})); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := r.Range(ctx, func(e *mtasts.Entry) bool { seen = append(seen, e.Domain); return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "mine.example" {
		t.Errorf("Range = %v, want [mine.example]", seen)
	}
}

// Delete announces the domain to the daemons sharing the prefix; a lost
// subscription, once back, tells them to forget everything (announcements
// may have been missed).
func TestRedisFollowPurges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := redisClient(t)
	prefix := redisPrefix(t, c)
	writer := NewRedis(c, prefix, nil) // `mailsts cache purge`
	// The follower's own client, named so that the test can kill its
	// connection and no other.
	name := "mailsts-test-follow-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fc := redis.NewClient(&redis.Options{Addr: redisAddr, ClientName: name, DialTimeout: time.Second})
	defer fc.Close()
	got := make(chan string, 16)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewRedis(fc, prefix, nil).FollowPurges(fctx, func(d string) { got <- d })
	}()
	next := func(want string) {
		t.Helper()
		select {
		case d := <-got:
			if d != want {
				t.Fatalf("drop(%q), want drop(%q)", d, want)
			}
		case <-ctx.Done():
			t.Fatalf("no drop(%q): %v", want, ctx.Err())
		}
	}
	next("") // subscribed

	if err := writer.Put(ctx, entryAt("a.example", mtasts.ModeEnforce, time.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	// Another prefix (another fleet) is not announced here.
	if err := NewRedis(c, prefix+"other:", nil).Delete(ctx, "x.example"); err != nil {
		t.Fatal(err)
	}
	if err := writer.Delete(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	next("a.example")
	if e, err := writer.Get(ctx, "a.example"); e != nil || err != nil {
		t.Errorf("after Delete: %+v, %v", e, err)
	}

	// Kill the follower's connection: it reconnects and says "".
	var id string
	clients, err := c.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(clients, "\n") {
		if strings.Contains(line, " name="+name+" ") && strings.Contains(line, "sub=1") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "id="); ok {
					id = v
				}
			}
		}
	}
	if id == "" {
		t.Fatalf("the follower's subscription is not in CLIENT LIST:\n%s", clients)
	}
	if err := c.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	next("")
	if err := writer.Delete(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
	next("b.example")

	stop()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("FollowPurges did not return when its context ended")
	}
}

// A daemon that missed a purge announcement (its subscription was down)
// learns of the purge from the tombstone when it next reads the domain,
// instead of restoring the purged policy; a policy Redis merely lost (no
// tombstone) is still restored (STS-CACHE-10). A later Put clears the
// tombstone.
func TestRedisTombstone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redisClient(t)
	prefix := redisPrefix(t, c)
	clk := newClock(time.Now())
	const ttl = 50 * time.Millisecond
	a := &Tiered{Front: &Memory{}, Back: NewRedis(c, prefix, nil), FrontTTL: ttl, Now: clk.Now}
	cli := NewRedis(c, prefix, nil) // what `mailsts cache purge` opens
	for _, d := range []string{"purged.example", "lost.example"} {
		if err := a.Put(ctx, entryAt(d, mtasts.ModeEnforce, clk.Now(), 86400, time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.Delete(ctx, "purged.example"); err != nil {
		t.Fatal(err)
	}
	c.Del(ctx, prefix+"policy:lost.example") // lost, not purged
	if p, err := cli.Purged(ctx, "purged.example"); !p || err != nil {
		t.Fatalf("Purged = %v, %v", p, err)
	}
	if got, err := c.TTL(ctx, prefix+"purged:purged.example").Result(); err != nil || got <= 0 || got > TombstoneTTL {
		t.Errorf("tombstone TTL %v, %v", got, err)
	}
	clk.Advance(2 * ttl)
	if e, err := a.Get(ctx, "purged.example"); e != nil || err != nil {
		t.Errorf("purged policy: Get = %v, %v; want nil (not restored)", e, err)
	}
	if n, _ := c.Exists(ctx, prefix+"policy:purged.example").Result(); n != 0 {
		t.Error("purged policy written back to Redis")
	}
	if e, err := a.Get(ctx, "lost.example"); e == nil || err != nil {
		t.Errorf("lost policy: Get = %v, %v; want it restored", e, err)
	}
	if err := a.Put(ctx, entryAt("purged.example", mtasts.ModeEnforce, clk.Now(), 86400, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if p, _ := cli.Purged(ctx, "purged.example"); p {
		t.Error("tombstone survived a Put")
	}
}

// proxiedRedis returns a client of the local Redis through a Proxy the test
// can cut and hang, with the short timeouts and no retries of a daemon's
// client, or skips.
func proxiedRedis(t *testing.T) (*redis.Client, *testnet.Proxy) {
	t.Helper()
	redisClient(t) // skips without Redis
	p := testnet.StartProxyFor(t, redisAddr)
	c := redis.NewClient(&redis.Options{
		Addr:                  p.Addr(),
		DialTimeout:           time.Second,
		DialerRetries:         1,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		PoolTimeout:           time.Second,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { c.Close() })
	return c, p
}

// Issue #10 item 1: Redis restarted without persistence (every key of the
// prefix gone) and, meanwhile, another process purged one domain. On
// Resync (the daemon calls it when its purge subscription comes back) the
// memory is kept, what Redis lost is written back, and the purged domain
// is dropped from memory, not restored (STS-CACHE-10).
func TestRedisResyncAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redisClient(t)
	prefix := redisPrefix(t, c)
	clk := newClock(time.Now())
	tr := &Tiered{Front: &Memory{}, Back: NewRedis(c, prefix, nil), Now: clk.Now}
	_, resyncs := watched(t, tr)
	for _, e := range []*mtasts.Entry{
		entryAt("a.example", mtasts.ModeEnforce, clk.Now(), 86400, time.Time{}),
		entryAt("b.example", mtasts.ModeTesting, clk.Now(), 86400, time.Time{}),
		entryAt("neg.example", "", clk.Now(), 0, time.Time{}),
		entryAt("purged.example", mtasts.ModeEnforce, clk.Now(), 86400, time.Time{}),
		entryAt("kept.example", mtasts.ModeEnforce, clk.Now(), 86400, time.Time{}),
	} {
		if err := tr.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// The restart: every key of the prefix but kept.example is gone...
	for _, d := range []string{"a.example", "b.example", "neg.example", "purged.example"} {
		c.Del(ctx, prefix+"policy:"+d)
	}
	// ... and another daemon refreshed kept.example meanwhile ...
	other := entryAt("kept.example", mtasts.ModeEnforce, clk.Now().Add(time.Minute), 86400, time.Time{})
	other.ID = "id2"
	if err := NewRedis(c, prefix, nil).Put(ctx, other); err != nil {
		t.Fatal(err)
	}
	// ... and `mailsts cache purge purged.example` ran while no one listened.
	if err := NewRedis(c, prefix, nil).Delete(ctx, "purged.example"); err != nil {
		t.Fatal(err)
	}
	tr.Resync()
	st := recv(t, resyncs, "resync")
	if st.Restored != 3 || st.Purged != 1 {
		t.Errorf("resync %+v, want 3 restored and 1 purged", st)
	}
	r := NewRedis(c, prefix, nil)
	for _, d := range []string{"a.example", "b.example", "neg.example"} {
		if e, err := r.Get(ctx, d); e == nil || err != nil {
			t.Errorf("%s not written back to Redis: %v, %v", d, e, err)
		}
		if ttl, _ := c.PTTL(ctx, r.Key(d)).Result(); ttl <= 0 {
			t.Errorf("%s written back without a TTL (%v)", d, ttl)
		}
	}
	if e, _ := r.Get(ctx, "kept.example"); e == nil || e.ID != "id2" {
		t.Errorf("kept.example in Redis = %+v, want the other daemon's id2 (present entries are not overwritten)", e)
	}
	if e, _ := r.Get(ctx, "purged.example"); e != nil {
		t.Error("purged domain written back to Redis")
	}
	if p, _ := r.Purged(ctx, "purged.example"); !p {
		t.Error("tombstone removed by the resync")
	}
	if it := tr.Front.item("purged.example"); it != nil {
		t.Error("purged domain still in memory")
	}
	if e, err := tr.Get(ctx, "a.example"); e == nil || err != nil || e.Policy.Mode != mtasts.ModeEnforce {
		t.Errorf("memory lost a.example: %v, %v", e, err)
	}
}

// Issue #10 item 4, with a real Redis behind a proxy: down at start, then
// hanging after a flap. No lookup fails or waits beyond the first bounded
// attempt; entries Put while Redis was away are written back when it
// answers again.
func TestRedisDownAndHang(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	direct := redisClient(t)
	prefix := redisPrefix(t, direct)
	c, proxy := proxiedRedis(t)
	proxy.Cut() // down at start
	clk := newClock(time.Now())
	tr := &Tiered{Front: &Memory{}, Back: NewRedis(c, prefix, nil), Now: clk.Now, ProbeEvery: time.Millisecond}
	states, _ := watched(t, tr)
	if e, err := tr.Get(ctx, "x.example"); e != nil || err != nil {
		t.Fatalf("Get with Redis down = %v, %v; want nil, nil", e, err)
	}
	if err := tr.Put(ctx, entryAt("x.example", mtasts.ModeEnforce, clk.Now(), 86400, time.Time{})); err != nil {
		t.Fatalf("Put with Redis down = %v, want nil (queued)", err)
	}
	if !recv(t, states, "degraded") {
		t.Fatal("not degraded")
	}
	proxy.Restore()
	if recv(t, states, "recovery") {
		t.Fatal("degraded twice")
	}
	r := NewRedis(direct, prefix, nil)
	if e, err := r.Get(ctx, "x.example"); e == nil || err != nil {
		t.Fatalf("x.example not written back after Redis came back: %v, %v", e, err)
	}

	// The flap: Redis hangs; memory is stale (past FrontTTL).
	proxy.Hang()
	clk.Advance(time.Minute)
	if e, err := tr.Get(ctx, "x.example"); e == nil || err != nil {
		t.Fatalf("Get(x) while Redis hangs = %v, %v; want the policy from memory", e, err)
	}
	if !recv(t, states, "degraded") {
		t.Fatal("not degraded")
	}
	for i := range 50 {
		d := "h" + strconv.Itoa(i) + ".example"
		if e, err := tr.Get(ctx, d); e != nil || err != nil {
			t.Fatalf("Get(%s) while Redis hangs = %v, %v", d, e, err)
		}
		if err := tr.Put(ctx, entryAt(d, mtasts.ModeEnforce, clk.Now(), 86400, time.Time{})); err != nil {
			t.Fatalf("Put(%s) while Redis hangs = %v", d, err)
		}
	}
	if s := tr.BackState(); !s.Degraded || s.Pending != 50 {
		t.Errorf("while hanging: %+v, want degraded with 50 pending; every lookup above completed while the proxy hung", s)
	}
	proxy.Restore()
	if recv(t, states, "recovery") {
		t.Fatal("degraded twice")
	}
	for i := range 50 {
		d := "h" + strconv.Itoa(i) + ".example"
		if e, err := r.Get(ctx, d); e == nil || err != nil {
			t.Fatalf("%s not written back: %v, %v", d, e, err)
		}
	}
}

// While Redis was unreachable, this daemon Put two domains that another
// daemon also refreshed in Redis meanwhile. On recovery the newer copy
// wins, whichever side holds it: this daemon's newer entry is written over
// Redis's older one, and Redis's newer entry replaces this daemon's older
// one in memory (STS-CACHE-5: no daemon's fresher discovery is lost).
// Runs Watch itself (not StartWatch) until its context ends.
func TestRedisSettleAfterOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	direct := redisClient(t)
	prefix := redisPrefix(t, direct)
	c, proxy := proxiedRedis(t)
	clk := newClock(time.Now())
	var mu sync.Mutex
	var buf bytes.Buffer
	debug := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	logged := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	tr := &Tiered{Front: &Memory{}, Back: NewRedis(c, prefix, nil), Now: clk.Now, ProbeEvery: time.Millisecond, Logger: debug}
	states := make(chan bool, 16)
	resyncs := make(chan ResyncStats, 16)
	tr.OnBackState = func(d bool) { states <- d }
	tr.OnResync = func(s ResyncStats) { resyncs <- s }
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); tr.Watch(wctx) }()
	t.Cleanup(func() { cancel(); <-done })

	t0 := clk.Now()
	other := NewRedis(direct, prefix, nil)
	// Redis holds both domains as the other daemon last saw them: mine.example
	// at t0, theirs.example a minute later than this daemon's copy.
	older := entryAt("mine.example", mtasts.ModeTesting, t0, 86400, time.Time{})
	older.ID = "theirs-old"
	newerTheirs := entryAt("theirs.example", mtasts.ModeEnforce, t0.Add(2*time.Minute), 86400, time.Time{})
	newerTheirs.ID = "theirs-new"
	for _, e := range []*mtasts.Entry{older, newerTheirs} {
		if err := other.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	proxy.Cut()
	mine := entryAt("mine.example", mtasts.ModeEnforce, t0.Add(time.Minute), 86400, time.Time{})
	mine.ID = "mine-new"
	stale := entryAt("theirs.example", mtasts.ModeTesting, t0.Add(time.Minute), 86400, time.Time{})
	stale.ID = "mine-old"
	for _, e := range []*mtasts.Entry{mine, stale} {
		if err := tr.Put(ctx, e); err != nil {
			t.Fatalf("Put(%s) with Redis down = %v, want nil (queued)", e.Domain, err)
		}
	}
	if !recv(t, states, "degraded") {
		t.Fatal("not degraded after a Put with Redis down")
	}
	if s := tr.BackState(); s.Pending != 2 {
		t.Fatalf("BackState = %+v, want 2 pending entries", s)
	}
	// Watch keeps probing while Redis stays away (and stays degraded).
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logged(), "back store still failing"); {
		if time.Now().After(deadline) {
			t.Fatalf("no failed probe logged within 30 s:\n%s", logged())
		}
		time.Sleep(time.Millisecond)
	}
	if !tr.BackState().Degraded {
		t.Fatal("not degraded while the probes fail")
	}

	proxy.Restore()
	tr.Resync()
	if recv(t, states, "recovery") {
		t.Fatal("degraded twice")
	}
	st := recv(t, resyncs, "resync")
	if st.WrittenBack != 1 || st.Adopted != 1 {
		t.Errorf("resync %+v, want 1 written back (mine.example) and 1 adopted (theirs.example)", st)
	}
	if e, err := other.Get(ctx, "mine.example"); err != nil || e == nil || e.ID != "mine-new" {
		t.Errorf("Redis mine.example = %+v, %v; want this daemon's newer mine-new", e, err)
	}
	if e, err := other.Get(ctx, "theirs.example"); err != nil || e == nil || e.ID != "theirs-new" {
		t.Errorf("Redis theirs.example = %+v, %v; want the other daemon's newer theirs-new kept", e, err)
	}
	if e, err := tr.Get(ctx, "theirs.example"); err != nil || e == nil || e.ID != "theirs-new" || e.Policy.Mode != mtasts.ModeEnforce {
		t.Errorf("memory theirs.example = %+v, %v; want Redis's newer enforce entry adopted", e, err)
	}
	if e, err := tr.Get(ctx, "mine.example"); err != nil || e == nil || e.ID != "mine-new" {
		t.Errorf("memory mine.example = %+v, %v; want mine-new", e, err)
	}
}

// stamp takes the latest of the three discovery times, so a failed
// refresh or a re-check counts as newer than an older fetch.
func TestNewerStamp(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fetched := &mtasts.Entry{FetchedAt: t0}
	checked := &mtasts.Entry{FetchedAt: t0.Add(-time.Hour), CheckedAt: t0.Add(time.Minute)}
	failed := &mtasts.Entry{FetchedAt: t0.Add(-time.Hour), FailedAt: t0.Add(2 * time.Minute)}
	for _, c := range []struct {
		a, b *mtasts.Entry
		want bool
	}{
		{checked, fetched, true},
		{fetched, checked, false},
		{failed, checked, true},
		{fetched, fetched, false}, // a tie is not newer: the back store's copy wins
	} {
		if got := newer(c.a, c.b); got != c.want {
			t.Errorf("newer(%v, %v) = %v, want %v", stamp(c.a), stamp(c.b), got, c.want)
		}
	}
}
