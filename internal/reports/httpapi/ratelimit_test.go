package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	clk := &testClock{now: reportstest.FixedNow()}
	l := &RateLimiter{Rate: 1.0 / 60, Burst: 2, MaxClients: 3, Now: clk.Now}
	for i := range 2 {
		if ok, _ := l.Allow("192.0.2.1:1000"); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	if ok, wait := l.Allow("192.0.2.1:1001"); ok || wait != time.Minute {
		t.Errorf("third request: %v, retry after %s; want refused, 1m", ok, wait)
	}
	// Another address has its own bucket; addresses of one IPv6 /64 share.
	if ok, _ := l.Allow("192.0.2.2:1000"); !ok {
		t.Error("other client refused")
	}
	l.Allow("[2001:db8::1]:1")
	l.Allow("[2001:db8::2]:1")
	if ok, _ := l.Allow("[2001:db8::3]:1"); ok {
		t.Error("a third request from the same /64 allowed")
	}
	clk.Advance(time.Minute)
	if ok, _ := l.Allow("192.0.2.1:1000"); !ok {
		t.Error("refused after the refill")
	}
	if len(l.buckets) > 3 {
		t.Errorf("%d clients tracked, want at most MaxClients", len(l.buckets))
	}
}

// TestReceiverRateLimit: a client beyond its rate gets 429 with
// Retry-After before its body is read or anything is stored (#11.5).
func TestReceiverRateLimit(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	clk := &testClock{now: reportstest.FixedNow()}
	rc := &Receiver{Ingester: newIngester(st, ingest.DKIMOff, nil), Limiter: &RateLimiter{Rate: 1, Burst: 3, Now: clk.Now}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	for i := range 3 {
		if code, body := post(t, srv.URL, tlsrpt.MediaTypeJSON, bytes.NewReader([]byte("junk"))); code != http.StatusBadRequest {
			t.Fatalf("POST %d: %d %s", i, code, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte("junk")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("fourth POST: %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if rej, _ := st.ListRejected(context.Background(), reports.Filter{}); len(rej) != 3 {
		t.Errorf("%d rejected rows, want 3 (the refused POST is not kept)", len(rej))
	}
	clk.Advance(time.Second)
	if code, _ := post(t, srv.URL, tlsrpt.MediaTypeJSON, bytes.NewReader([]byte("junk"))); code != http.StatusBadRequest {
		t.Errorf("after a second: %d", code)
	}
}
