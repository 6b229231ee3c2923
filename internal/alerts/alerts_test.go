package alerts

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/tlsrpt"
)

func jan(d int) time.Time { return time.Date(2025, 1, d, 0, 0, 0, 0, time.UTC) }

// put stores one report of org for domain on day: succ successful
// sessions and fail failed ones of result type rt.
func put(t *testing.T, st reports.Store, org, domain string, day time.Time, succ, fail int64, rt tlsrpt.ResultType) {
	t.Helper()
	var a tlsrpt.Aggregator
	pol := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: mx." + domain, "max_age: 86400"},
		Domain: domain, MXHost: []string{"mx." + domain}}
	a.AddSuccess(pol, succ)
	for range fail {
		a.AddFailure(pol, tlsrpt.FailureDetails{ResultType: rt, ReceivingMXHostname: "mx." + domain})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: org, ContactInfo: "tlsrpt@" + strings.ReplaceAll(strings.ToLower(org), " ", "") + ".example",
		PolicyDomain: domain, Day: day})
	reportstest.Put(t, st, r, nil)
}

// clock is an injected clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hook is a webhook receiver that fails the first failFirst requests.
type hook struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	got       []Event
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.calls <= h.failFirst {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var ev Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	h.got = append(h.got, ev)
}

func (h *hook) events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.got...)
}

func (h *hook) callCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

type countObserver struct {
	mu                sync.Mutex
	open              map[string]int
	fired, resolved   int
	delivered, failed int
}

func (o *countObserver) Open(rule string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.open == nil {
		o.open = map[string]int{}
	}
	o.open[rule] = n
}
func (o *countObserver) Fired(string)    { o.mu.Lock(); o.fired++; o.mu.Unlock() }
func (o *countObserver) Resolved(string) { o.mu.Lock(); o.resolved++; o.mu.Unlock() }
func (o *countObserver) Delivered(_ string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ok {
		o.delivered++
	} else {
		o.failed++
	}
}

func tick(t *testing.T, e *Engine) {
	t.Helper()
	if err := e.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A reporter that sent reports every day goes silent: the alert fires
// once after Days silent days, survives a restart without firing again,
// and resolves when the reporter is back.
func TestReporterSilent(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	for d := 1; d <= 20; d++ {
		put(t, st, "Big Sender", "example.org", jan(d), 100, 0, "")
		if d%5 == 0 {
			put(t, st, "Rare Sender", "example.org", jan(d), 10, 0, "") // 4 days of 20: not expected
		}
	}
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	clk := &clock{t: jan(22).Add(10 * time.Hour)} // last complete day: the 21st, one silent day
	obs := &countObserver{}
	state := filepath.Join(t.TempDir(), "alerts.json")
	newEngine := func() *Engine {
		return &Engine{Store: st, Rules: []Rule{ReporterSilent{Days: 2}}, Notifiers: []Notifier{&Webhook{URL: srv.URL}},
			Observer: obs, StatePath: state, Now: clk.now}
	}
	e := newEngine()
	tick(t, e)
	if open, _ := e.OpenAlerts(context.Background(), nil); len(open) != 0 {
		t.Fatalf("alert after one silent day: %+v", open)
	}
	clk.set(jan(23).Add(10 * time.Hour)) // the 21st and 22nd silent
	tick(t, e)
	open, _ := e.OpenAlerts(context.Background(), nil)
	if len(open) != 1 || open[0].Rule != RuleReporterSilent || open[0].Key != "Big Sender" || open[0].Domain != "example.org" {
		t.Fatalf("open alerts: %+v", open)
	}
	if evs := h.events(); len(evs) != 1 || evs[0].Type != EventFiring || evs[0].Alert.Key != "Big Sender" {
		t.Fatalf("webhook got %+v", evs)
	}
	// Later evaluations, and a restart, do not fire it again.
	clk.add(2 * time.Hour)
	tick(t, e)
	e2 := newEngine()
	clk.add(2 * time.Hour)
	tick(t, e2)
	if evs := h.events(); len(evs) != 1 {
		t.Errorf("fired again: %d events", len(evs))
	}
	if open, _ := e2.OpenAlerts(context.Background(), []string{"Example.org."}); len(open) != 1 {
		t.Errorf("restarted engine lost the open alert")
	}
	if open, _ := e2.OpenAlerts(context.Background(), []string{"other.example"}); len(open) != 0 {
		t.Errorf("alert shown for another domain")
	}
	// The reporter is back: resolved, once.
	put(t, st, "Big Sender", "example.org", jan(23), 100, 0, "")
	clk.set(jan(24).Add(10 * time.Hour))
	tick(t, e2)
	evs := h.events()
	if len(evs) != 2 || evs[1].Type != EventResolved || evs[1].Alert.ResolvedAt == nil {
		t.Fatalf("resolve: %+v", evs)
	}
	if obs.fired != 1 || obs.resolved != 1 || obs.open[RuleReporterSilent] != 0 {
		t.Errorf("observer: %+v", obs)
	}
}

// A failure spike above the baseline fires failure-rate, and a result
// type never seen before for the domain fires new-failure-type.
func TestFailureSpikeAndNewType(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	for d := 1; d <= 20; d++ {
		put(t, st, "Big Sender", "example.org", jan(d), 995, 5, tlsrpt.ResultSTARTTLSNotSupported)
		put(t, st, "Big Sender", "steady.example", jan(d), 995, 5, tlsrpt.ResultSTARTTLSNotSupported)
	}
	// The 21st: a certificate renewal went wrong on example.org.
	put(t, st, "Big Sender", "example.org", jan(21), 800, 200, tlsrpt.ResultCertificateExpired)
	put(t, st, "Big Sender", "steady.example", jan(21), 994, 6, tlsrpt.ResultSTARTTLSNotSupported)
	clk := &clock{t: jan(22).Add(time.Hour)}
	e := &Engine{Store: st, Rules: []Rule{FailureRate{}, NewFailureType{}}, Now: clk.now}
	tick(t, e)
	open, _ := e.OpenAlerts(context.Background(), nil)
	got := map[string]string{}
	for _, a := range open {
		got[a.Rule+" "+a.Domain] = a.Key
	}
	if len(open) != 2 || got[RuleFailureRate+" example.org"] != "" || got[RuleNewFailureType+" example.org"] != string(tlsrpt.ResultCertificateExpired) {
		t.Fatalf("open alerts: %+v", open)
	}
	if _, ok := got[RuleFailureRate+" example.org"]; !ok {
		t.Fatal("no failure-rate alert")
	}
	for _, a := range open {
		if a.Rule == RuleFailureRate && !strings.Contains(a.Subject, "20.0% of 1000 sessions") {
			t.Errorf("subject %q", a.Subject)
		}
	}
	// A quiet day after: both resolve (the type is not new any more
	// after RecentDays; here the rate is back).
	put(t, st, "Big Sender", "example.org", jan(22), 995, 5, tlsrpt.ResultSTARTTLSNotSupported)
	clk.set(jan(23).Add(time.Hour))
	tick(t, e)
	open, _ = e.OpenAlerts(context.Background(), nil)
	if len(open) != 1 || open[0].Rule != RuleNewFailureType {
		t.Errorf("after a quiet day: %+v", open)
	}
	clk.set(jan(26).Add(time.Hour))
	put(t, st, "Big Sender", "example.org", jan(23), 995, 5, tlsrpt.ResultSTARTTLSNotSupported)
	put(t, st, "Big Sender", "example.org", jan(24), 995, 5, tlsrpt.ResultSTARTTLSNotSupported)
	put(t, st, "Big Sender", "example.org", jan(25), 995, 5, tlsrpt.ResultSTARTTLSNotSupported)
	tick(t, e)
	if open, _ = e.OpenAlerts(context.Background(), nil); len(open) != 0 {
		t.Errorf("after RecentDays: %+v", open)
	}
}

// A webhook that fails first is retried with back-off, in order, until
// it takes the event; nothing is sent twice.
func TestWebhookRetry(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	for d := 1; d <= 20; d++ {
		put(t, st, "Big Sender", "example.org", jan(d), 100, 0, "")
	}
	h := &hook{failFirst: 2}
	srv := httptest.NewServer(h)
	defer srv.Close()
	clk := &clock{t: jan(23).Add(time.Hour)}
	obs := &countObserver{}
	e := &Engine{Store: st, Rules: []Rule{ReporterSilent{}}, Notifiers: []Notifier{&Webhook{URL: srv.URL}}, Observer: obs,
		StatePath: filepath.Join(t.TempDir(), "alerts.json"), Now: clk.now}
	tick(t, e) // fires; attempt 1 fails
	if h.callCount() != 1 || e.Pending() != 1 {
		t.Fatalf("after first attempt: %d calls, %d pending", h.callCount(), e.Pending())
	}
	clk.add(30 * time.Second)
	tick(t, e) // not due yet
	if h.callCount() != 1 {
		t.Fatalf("retried before the back-off: %d calls", h.callCount())
	}
	clk.add(31 * time.Second) // 1 min after: attempt 2 fails
	tick(t, e)
	if h.callCount() != 2 {
		t.Fatalf("second attempt: %d calls", h.callCount())
	}
	clk.add(time.Minute) // the next is 2 min after
	tick(t, e)
	if h.callCount() != 2 {
		t.Fatalf("retried before the doubled back-off: %d calls", h.callCount())
	}
	clk.add(61 * time.Second)
	tick(t, e) // attempt 3 succeeds
	if evs := h.events(); len(evs) != 1 || evs[0].Type != EventFiring || e.Pending() != 0 {
		t.Fatalf("after success: %+v, %d pending", evs, e.Pending())
	}
	clk.add(time.Hour)
	tick(t, e)
	if h.callCount() != 3 {
		t.Errorf("sent again after success: %d calls", h.callCount())
	}
	if obs.failed != 2 || obs.delivered != 1 {
		t.Errorf("observer: %d failed, %d delivered", obs.failed, obs.delivered)
	}
	if backoff(1) != time.Minute || backoff(2) != 2*time.Minute || backoff(30) != time.Hour {
		t.Errorf("backoff: %v %v %v", backoff(1), backoff(2), backoff(30))
	}
}

// smtpSink is a minimal SMTP server on loopback that keeps the messages.
func smtpSink(t *testing.T) (addr string, msgs chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	msgs = make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 sink ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						fmt.Fprint(c, "250-sink\r\n250 8BITMIME\r\n")
					case cmd == "DATA":
						fmt.Fprint(c, "354 go on\r\n")
						var b strings.Builder
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
							b.WriteString(l)
						}
						msgs <- b.String()
						fmt.Fprint(c, "250 ok\r\n")
					case cmd == "QUIT":
						fmt.Fprint(c, "221 bye\r\n")
						return
					default:
						fmt.Fprint(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), msgs
}

// Mail notices go through the relay, one line headers even when report
// text tries to add some; the daily digest goes out once a day.
func TestMailAndDigest(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	for d := 1; d <= 20; d++ {
		put(t, st, "Evil\r\nBcc: victim@example.net", "example.org", jan(d), 100, 0, "")
	}
	addr, msgs := smtpSink(t)
	clk := &clock{t: jan(23).Add(6 * time.Hour)}
	e := &Engine{Store: st, Rules: []Rule{ReporterSilent{}}, Notifiers: []Notifier{&Mail{Relay: addr, From: "mailsts@example.org", To: []string{"postmaster@example.org"}, Now: clk.now}},
		Digest: true, DigestHour: 7, Now: clk.now}
	tick(t, e)
	var m string
	select {
	case m = <-msgs:
	case <-time.After(20 * time.Second):
		t.Fatal("no mail")
	}
	if !strings.Contains(m, "Subject: mailsts firing: example.org reporter-silent\r\n") || strings.Contains(m, "\r\nBcc:") {
		t.Errorf("firing mail:\n%s", m)
	}
	clk.add(time.Hour) // 07:00: the digest
	tick(t, e)
	select {
	case m = <-msgs:
	case <-time.After(20 * time.Second):
		t.Fatal("no digest")
	}
	if !strings.Contains(m, "Subject: mailsts: 1 open alerts") {
		t.Errorf("digest:\n%s", m)
	}
	clk.add(3 * time.Hour)
	tick(t, e)
	select {
	case m = <-msgs:
		t.Errorf("second digest the same day:\n%s", m)
	default:
	}
}

// A damaged state file is set aside, not fatal.
func TestDamagedState(t *testing.T) {
	t.Parallel()
	st := sqlstoretest.OpenSQLite(t)
	p := filepath.Join(t.TempDir(), "alerts.json")
	if err := writeFile(p, "{not json"); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: st, Rules: []Rule{ReporterSilent{}}, StatePath: p, Now: func() time.Time { return jan(10) }}
	tick(t, e)
	if b, err := readFile(p + ".bad"); err != nil || b != "{not json" {
		t.Errorf("damaged file not set aside: %q %v", b, err)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }
func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
