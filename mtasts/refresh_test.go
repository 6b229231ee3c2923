package mtasts

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// RefreshDue runs up to RefreshConcurrency discoveries at once, and no more
// (STS-FETCH-11 background refresh at scale).
func TestCache_RefreshDueConcurrency(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			t.Parallel()
			const domains = 8
			names := make([]string, domains)
			hosts := make([]string, domains)
			for i := range names {
				names[i] = fmt.Sprintf("d%d.example.com", i)
				hosts[i] = "mta-sts." + names[i]
			}
			var inflight, peak atomic.Int64
			var mu sync.Mutex
			refreshing := false
			// full is closed once conc refreshes are in flight together.
			// Refresh requests wait for it, so the first conc overlap
			// however the goroutines are scheduled (a fixed sleep left that
			// to chance on a loaded machine). If fewer ever run at once, the
			// client's timeout ends the wait and the test fails.
			full := make(chan struct{})
			var fullOnce sync.Once
			handler := func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				slow := refreshing
				mu.Unlock()
				if slow {
					n := inflight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					if n >= int64(conc) {
						fullOnce.Do(func() { close(full) })
					}
					select {
					case <-full:
					case <-r.Context().Done():
					}
					// Linger a little so that a refresh beyond the limit,
					// if RefreshDue started one, overlaps and raises the
					// peak. The pass/fail outcome of a correct limiter does
					// not depend on this duration.
					linger := time.NewTimer(20 * time.Millisecond)
					select {
					case <-linger.C:
					case <-r.Context().Done():
					}
					linger.Stop()
					inflight.Add(-1)
				}
				w.Header().Set("Content-Type", "text/plain")
				fmt.Fprint(w, policyBody(ModeEnforce, 604800))
			}
			ca := newTestCA(t)
			host := startHost(t, ca.issue(certOpts{dnsNames: hosts}), handler, nil)
			fake := &dnsresolve.Fake{}
			for i, n := range names {
				fake.SetIP(hosts[i], loopback)
				fake.SetTXT("_mta-sts."+n, "v=STSv1; id=1")
			}
			clock := &fakeClock{t: t0}
			c := &Cache{
				Client:             &Client{DNS: fake, RootCAs: ca.pool, HTTPSPort: host.port(), Timeout: 10 * time.Second},
				Now:                clock.Now,
				RefreshConcurrency: conc,
			}
			for _, n := range names {
				if r, err := c.Get(t.Context(), n); err != nil || r.Policy == nil {
					t.Fatalf("Get %s: %+v %v", n, r, err)
				}
			}
			mu.Lock()
			refreshing = true
			mu.Unlock()
			clock.Set(t0.Add(DefaultRefreshInterval))
			n, err := c.RefreshDue(t.Context(), clock.Now(), 100)
			if err != nil || n != domains {
				t.Fatalf("RefreshDue = %d, %v; want %d", n, err, domains)
			}
			if got := peak.Load(); got != int64(conc) {
				t.Errorf("peak concurrent refreshes %d, want %d", got, conc)
			}
		})
	}
}
