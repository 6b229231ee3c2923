package outbox

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/testnet"
)

// runPass runs one pass at the clock's time and fails on storage errors.
func runPass(t testing.TB, o *Outbox) PassResult {
	t.Helper()
	res, err := o.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestHostileHTTPS: destinations that hang, refuse, redirect, fail or
// refuse the size each end in a clear state after one attempt, without a
// second POST and without following a redirect; every 2xx is success,
// every other status a failure to retry (RPT-HTTP-3, RPT-DELIV-5).
func TestHostileHTTPS(t *testing.T) {
	t.Parallel()
	target := newPostCounter(t) // where a redirect points
	stop := make(chan struct{})
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Take the connection and never answer: only the client's own
		// deadline can end the request.
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		<-stop
		conn.Close()
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(stop) })
	status := func(code int, hdr ...string) *httptest.Server {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(hdr) == 2 {
				w.Header().Set(hdr[0], hdr[1])
			}
			w.WriteHeader(code)
			w.Write([]byte(strings.Repeat("x", 1<<20))) // a large body is not read
		}))
		t.Cleanup(s.Close)
		return s
	}
	refused := "https://127.0.0.1:" + strconv.Itoa(testnet.RefusedPortFor(t)) + "/"
	cases := []struct {
		name  string
		srv   *httptest.Server
		url   string
		state State
		want  string
	}{
		{"hangs", hang, "", StateRetrying, "no answer within 300ms"},
		{"refuses", nil, refused, StateRetrying, "refused"},
		{"redirects", status(http.StatusFound, "Location", target.URL()), "", StateRetrying, "not followed"},
		{"permanent redirect", status(http.StatusPermanentRedirect, "Location", target.URL()), "", StateRetrying, "not followed"},
		{"500", status(http.StatusInternalServerError), "", StateRetrying, "500"},
		{"429", status(http.StatusTooManyRequests), "", StateRetrying, "429"},
		{"400", status(http.StatusBadRequest), "", StateRetrying, "400"},
		{"413", status(http.StatusRequestEntityTooLarge), "", StateRetrying, "too large"},
		{"415", status(http.StatusUnsupportedMediaType), "", StateRetrying, "415"},
		{"200", status(http.StatusOK), "", StateSent, ""},
		{"202", status(http.StatusAccepted), "", StateSent, ""},
		{"204", status(http.StatusNoContent), "", StateSent, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openSQLite(t)
			u := tc.url
			client := hang.Client()
			if tc.srv != nil {
				u, client = tc.srv.URL+"/r", tc.srv.Client()
			}
			tr := client.Transport.(*http.Transport).Clone() // one per subtest: no shared connections
			tr.DisableKeepAlives = true
			client = &http.Client{Transport: tr}
			clk := newClock(t0)
			// The hanging server meets a short timeout; every other case
			// an hour, so that a loaded machine cannot turn it into one.
			timeout := time.Hour
			if tc.srv == hang {
				timeout = 300 * time.Millisecond
			}
			o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(u)}), Now: clk.Now,
				HTTP: &HTTPSPoster{Client: client, Timeout: timeout}, Config: Config{DisableSpread: true}}
			if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
				t.Fatal(err)
			}
			runPass(t, o)
			e := only(t, s)
			if e.State != tc.state || e.Attempts != 1 || !strings.Contains(e.LastError, tc.want) {
				t.Fatalf("state %s after %d attempts, error %q; want %s with %q", e.State, e.Attempts, e.LastError, tc.state, tc.want)
			}
			if tc.state == StateRetrying && !e.NextAttempt.Equal(t0.Add(DefaultRetryBase)) {
				t.Errorf("next attempt %v, want %v", e.NextAttempt, t0.Add(DefaultRetryBase))
			}
			if tc.state == StateSent && (e.SentAt.IsZero() || !e.NextAttempt.IsZero()) {
				t.Errorf("sent at %v, next attempt %v", e.SentAt, e.NextAttempt)
			}
			// Nothing more is due at the same instant.
			if res := runPass(t, o); res != (PassResult{}) {
				t.Errorf("second pass at the same time did %+v", res)
			}
		})
	}
	if n := target.total.Load(); n != 0 {
		t.Errorf("redirect followed: %d POSTs at its target", n)
	}
}

// TestHTTPSPostForm: the POST carries application/tlsrpt+gzip and the
// report body (RPT-DELIV-4).
func TestHTTPSPostForm(t *testing.T) {
	t.Parallel()
	pc := newPostCounter(t)
	s := openSQLite(t)
	r := testReport(t, "policy.example")
	obs := &observer{}
	o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}), HTTP: pc.poster(),
		Now: newClock(t0).Now, Config: Config{DisableSpread: true}, Observer: obs}
	if err := o.Enqueue(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if res := runPass(t, o); res.Sent != 1 || res.Resolved != 1 {
		t.Fatalf("pass: %+v", res)
	}
	if len(obs.seen) != 1 || obs.seen[0] != "https sent" {
		t.Errorf("observer saw %v", obs.seen)
	}
	if pc.count(r.ReportID) != 1 || pc.types[0] != "application/tlsrpt+gzip" {
		t.Fatalf("posts %d, type %v", pc.count(r.ReportID), pc.types)
	}
	if e := only(t, s); e.State != StateSent || e.SentAt.IsZero() || e.LastError != "" {
		t.Fatalf("entry %+v", e)
	}
}

// TestBackoffAndGiveUp drives a failing destination with the injected
// clock: the waits double from RetryBase up to RetryMax, and the delivery
// is given up once the next attempt would fall beyond MaxAge; Retry then
// sends it once the destination works again.
func TestBackoffAndGiveUp(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, s *Store) {
		pc := newPostCounter(t)
		pc.status.Store(http.StatusServiceUnavailable)
		clk := newClock(t0)
		cfg := Config{DisableSpread: true, RetryBase: 5 * time.Minute, RetryMax: 4 * time.Hour, MaxAge: 48 * time.Hour, SuppressAfterDays: -1, Keep: -1}
		o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}), HTTP: pc.poster(), Now: clk.Now, Config: cfg}
		r := testReport(t, "policy.example")
		if err := o.Enqueue(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		wantWait := 5 * time.Minute
		attempts := 0
		for range 100 {
			runPass(t, o)
			attempts++
			e := only(t, s)
			if e.Attempts != attempts {
				t.Fatalf("attempts %d, want %d", e.Attempts, attempts)
			}
			if e.State == StateGivenUp {
				break
			}
			if e.State != StateRetrying {
				t.Fatalf("state %s", e.State)
			}
			if got := e.NextAttempt.Sub(clk.Now()); got != wantWait {
				t.Fatalf("attempt %d: wait %v, want %v", attempts, got, wantWait)
			}
			wantWait = min(wantWait*2, 4*time.Hour)
			clk.Set(e.NextAttempt)
		}
		e := only(t, s)
		age := clk.Now().Sub(t0)
		if e.State != StateGivenUp || age > 48*time.Hour || age+wantWait <= 48*time.Hour {
			t.Fatalf("given up at age %v (next wait %v) in state %s: %q", age, wantWait, e.State, e.LastError)
		}
		if !strings.Contains(e.LastError, "gave up after") || int(pc.total.Load()) != attempts {
			t.Fatalf("error %q, %d POSTs for %d attempts", e.LastError, pc.total.Load(), attempts)
		}
		// Nothing is due any more, however late.
		clk.Add(30 * 24 * time.Hour)
		if res := runPass(t, o); res != (PassResult{}) {
			t.Fatalf("given-up delivery still worked on: %+v", res)
		}
		pc.status.Store(0)
		if err := s.Retry(context.Background(), e.ID, clk.Now()); err != nil {
			t.Fatal(err)
		}
		if res := runPass(t, o); res.Sent != 1 {
			t.Fatalf("after retry: %+v", res)
		}
		if err := s.Retry(context.Background(), e.ID, clk.Now()); err == nil {
			t.Error("retry of a sent delivery accepted")
		}
	})
}

// TestRelayFaults: the relay down, refusing for now (4xx) and for good
// (5xx), announcing a SIZE below the message, or offering no STARTTLS
// when it is required.
func TestRelayFaults(t *testing.T) {
	t.Parallel()
	refused := "127.0.0.1:" + strconv.Itoa(testnet.RefusedPortFor(t))
	cases := []struct {
		name      string
		relay     func(t *testing.T) (addr string, f *fakeRelay)
		starttls  string
		state     State
		want      string
		dataCount int
	}{
		{"down", func(*testing.T) (string, *fakeRelay) { return refused, nil }, StartTLSOff, StateRetrying, "refused", 0},
		{"rcpt 451", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 451, 0, 0); return f.Addr(), f }, StartTLSOff, StateRetrying, "451", 0},
		{"rcpt 550", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 550, 0, 0); return f.Addr(), f }, StartTLSOff, StateGivenUp, "550", 0},
		{"data 452", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 0, 452, 0); return f.Addr(), f }, StartTLSOff, StateRetrying, "452", 1},
		{"data 554", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 0, 554, 0); return f.Addr(), f }, StartTLSOff, StateGivenUp, "554", 1},
		{"data 552", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 0, 552, 0); return f.Addr(), f }, StartTLSOff, StateGivenUp, "too large", 1},
		{"size", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 0, 0, 500); return f.Addr(), f }, StartTLSOff, StateGivenUp, "SIZE 500", 0},
		{"no starttls", func(t *testing.T) (string, *fakeRelay) { f := newFakeRelay(t, 0, 0, 0); return f.Addr(), f }, StartTLSRequired, StateRetrying, "no STARTTLS", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, f := tc.relay(t)
			s := openSQLite(t)
			o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua("mailto:tlsrpt@policy.example")}),
				Mail: &Mailer{Relay: addr, StartTLS: tc.starttls, HelloName: "sender.example", Timeout: time.Hour},
				Now:  newClock(t0).Now, Config: Config{DisableSpread: true}}
			if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
				t.Fatal(err)
			}
			runPass(t, o)
			e := only(t, s)
			if e.State != tc.state || e.Attempts != 1 || !strings.Contains(e.LastError, tc.want) {
				t.Fatalf("state %s after %d attempts, error %q; want %s with %q", e.State, e.Attempts, e.LastError, tc.state, tc.want)
			}
			if f != nil {
				if n := f.dataCount(); n != tc.dataCount {
					t.Errorf("DATA sent %d times, want %d", n, tc.dataCount)
				}
				if len(f.messages()) != 0 {
					t.Errorf("relay accepted a message")
				}
			}
		})
	}
}

// TestMaxSize: a report above delivery.max_size is given up without an
// attempt on the wire.
func TestMaxSize(t *testing.T) {
	t.Parallel()
	pc := newPostCounter(t)
	s := openSQLite(t)
	o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}), HTTP: pc.poster(),
		Now: newClock(t0).Now, Config: Config{DisableSpread: true, MaxSize: 100}}
	if err := o.Enqueue(context.Background(), testReport(t, "policy.example")); err != nil {
		t.Fatal(err)
	}
	runPass(t, o)
	if e := only(t, s); e.State != StateGivenUp || !strings.Contains(e.LastError, "size limit") || pc.total.Load() != 0 {
		t.Fatalf("%+v, %d posts", e, pc.total.Load())
	}
}

// TestRecordAtSendTime: the record is looked up when the report is due; a
// DNS failure is retried, a domain without a record (or without a usable
// rua) gets no report (RFC 8460 §3, RPT-TXT-4).
func TestRecordAtSendTime(t *testing.T) {
	t.Parallel()
	pc := newPostCounter(t)
	s := openSQLite(t)
	dns := &dnsresolve.Fake{}
	dns.SetError("_smtp._tls.policy.example", dnsresolve.ErrLookupFailed)
	dns.SetTXT("_smtp._tls.ftp.example", rua("ftp://x.example/"))
	clk := newClock(t0)
	o := &Outbox{Store: s, Resolver: dns, HTTP: pc.poster(), Now: clk.Now, Config: Config{DisableSpread: true}}
	for _, d := range []string{"policy.example", "none.example", "ftp.example"} {
		if err := o.Enqueue(context.Background(), testReport(t, d)); err != nil {
			t.Fatal(err)
		}
	}
	res := runPass(t, o)
	if res.Retrying != 1 || res.GivenUp != 2 || res.Resolved != 0 {
		t.Fatalf("pass: %+v\n%s", res, dump(entries(t, s)))
	}
	byDomain := map[string]Entry{}
	for _, e := range entries(t, s) {
		byDomain[e.PolicyDomain] = e
	}
	if e := byDomain["none.example"]; e.State != StateGivenUp || !strings.Contains(e.LastError, "no usable TLSRPT record") {
		t.Errorf("no record: %+v", e)
	}
	if e := byDomain["ftp.example"]; e.State != StateGivenUp || !strings.Contains(e.LastError, "no usable rua") {
		t.Errorf("no usable rua: %+v", e)
	}
	if e := byDomain["policy.example"]; e.State != StateRetrying || e.Kind != "report" {
		t.Errorf("DNS failure: %+v", e)
	}
	// The record is published (or DNS recovers) before the next attempt.
	dns.SetError("_smtp._tls.policy.example", nil)
	dns.SetTXT("_smtp._tls.policy.example", rua(pc.URL()))
	clk.Add(DefaultRetryBase)
	if res := runPass(t, o); res.Resolved != 1 || res.Sent != 1 {
		t.Fatalf("after recovery: %+v", res)
	}
}

// TestSuppression: a destination failing on three consecutive UTC days is
// suppressed (with its waiting deliveries and the next report's), listed
// with the reason, and sent to again once unsuppressed.
func TestSuppression(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		pc := newPostCounter(t)
		pc.status.Store(http.StatusBadGateway)
		clk := newClock(t0)
		o := &Outbox{Store: s, Resolver: fakeDNS(map[string]string{"policy.example": rua(pc.URL())}), HTTP: pc.poster(), Now: clk.Now,
			Config: Config{DisableSpread: true, RetryBase: time.Hour, RetryMax: 6 * time.Hour, MaxAge: 10 * 24 * time.Hour, SuppressAfterDays: 3}}
		if err := o.Enqueue(ctx, testReport(t, "policy.example")); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			runPass(t, o)
			e := only(t, s)
			if e.State != StateRetrying {
				break
			}
			clk.Set(e.NextAttempt)
		}
		e := only(t, s)
		if e.State != StateSuppressed {
			t.Fatalf("state %s: %q", e.State, e.LastError)
		}
		if days := clk.Now().Sub(t0); days < 48*time.Hour || days >= 72*time.Hour {
			t.Errorf("suppressed after %v, want on the third day", days)
		}
		sup, err := s.Destinations(ctx, true)
		if err != nil || len(sup) != 1 || sup[0].Destination != pc.URL() || sup[0].FailDays != 3 || !strings.Contains(sup[0].SuppressedReason, "502") {
			t.Fatalf("suppressed list %+v %v", sup, err)
		}
		posts := pc.total.Load()
		// The next day's report waits too, without a POST.
		next := testReport(t, "policy.example")
		next.Day = day0.AddDate(0, 0, 1)
		next.ReportID = "next-day"
		if err := o.Enqueue(ctx, next); err != nil {
			t.Fatal(err)
		}
		clk.Add(24 * time.Hour)
		runPass(t, o)
		for _, e := range entries(t, s) {
			if e.State != StateSuppressed {
				t.Errorf("%s %s: %s", e.ID, e.Day, e.State)
			}
		}
		if pc.total.Load() != posts {
			t.Errorf("posted to a suppressed destination")
		}
		pc.status.Store(0)
		if err := s.Unsuppress(ctx, pc.URL(), clk.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.Unsuppress(ctx, pc.URL(), clk.Now()); err == nil {
			t.Error("second unsuppress succeeded")
		}
		if res := runPass(t, o); res.Sent != 2 {
			t.Fatalf("after unsuppress: %+v\n%s", res, dump(entries(t, s)))
		}
		if err := s.Suppress(ctx, pc.URL(), "", clk.Now()); err != nil {
			t.Fatal(err)
		}
		if sup, _ := s.Destinations(ctx, true); len(sup) != 1 || sup[0].SuppressedReason != "suppressed by the administrator" {
			t.Errorf("manual suppression: %+v", sup)
		}
	})
}

type observer struct {
	mu   sync.Mutex
	seen []string
}

func (o *observer) DeliveryAttempt(scheme string, st State, _ time.Duration) {
	o.mu.Lock()
	o.seen = append(o.seen, scheme+" "+string(st))
	o.mu.Unlock()
}
