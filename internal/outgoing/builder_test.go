package outgoing

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// countingSink counts every Enqueue per (domain, day) and keeps the last
// report; fail makes the next n calls fail.
type countingSink struct {
	mu    sync.Mutex
	calls map[string]int
	last  map[string]BuiltReport
	fail  int
}

func newSink() *countingSink {
	return &countingSink{calls: map[string]int{}, last: map[string]BuiltReport{}}
}

func sinkKey(domain string, day time.Time) string { return domain + "/" + dayString(day) }

func (s *countingSink) Enqueue(_ context.Context, r BuiltReport) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sinkKey(r.PolicyDomain, r.Day)
	s.last[k] = r
	if s.fail > 0 {
		s.fail--
		return errors.New("outbox unavailable")
	}
	s.calls[k]++
	return nil
}

func builder(st *Store, sink Sink, node string, now *time.Time) *Builder {
	return &Builder{Store: st, Sink: sink, OrganizationName: "Example Sender", ContactInfo: "tlsrpt@sender.example",
		Node: node, Now: func() time.Time { return *now }}
}

// Two builders on one database, running at once, build each (domain,
// day) report exactly once; today's results wait for the day to end.
func TestBuilderExactlyOnceAcrossNodes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st1, st2 := open(t, Options{}), open(t, Options{})
		ctx := ctxT(t)
		var rs []Result
		const domains = 30
		for i := range domains {
			d := fmt.Sprintf("d%02d.example", i)
			rs = append(rs, ok(d, day1), fail(d, day1.Add(24*time.Hour), Failure{ResultType: result.STARTTLSNotSupported}), ok(d, day1.Add(48*time.Hour)))
		}
		if err := st1.Add(ctx, rs...); err != nil {
			t.Fatal(err)
		}
		now := day1.Add(48 * time.Hour) // the third day is today
		sink := newSink()
		var wg sync.WaitGroup
		stats := make([]BuildStats, 2)
		errs := make([]error, 2)
		for i, st := range []*Store{st1, st2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stats[i], errs[i] = builder(st, sink, fmt.Sprintf("node%d", i), &now).RunOnce(ctx)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := stats[0].Built + stats[1].Built; got != 2*domains {
			t.Errorf("built %d+%d, want %d", stats[0].Built, stats[1].Built, 2*domains)
		}
		if len(sink.calls) != 2*domains {
			t.Errorf("%d reports enqueued, want %d", len(sink.calls), 2*domains)
		}
		for k, n := range sink.calls {
			if n != 1 {
				t.Errorf("%s enqueued %d times", k, n)
			}
		}
		// Nothing left; a later pass builds nothing again.
		for _, st := range []*Store{st1, st2} {
			s, err := builder(st, sink, "node3", &now).RunOnce(ctx)
			if err != nil || s.Built != 0 {
				t.Errorf("second pass: %+v %v", s, err)
			}
		}
		t.Logf("node0 %+v, node1 %+v", stats[0], stats[1])
	})
}

// A node that crashed holding a claim: its report waits for the lease,
// then another node builds it.
func TestBuilderTakesOverExpiredClaim(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{})
		ctx := ctxT(t)
		if err := st.Add(ctx, ok("example.com", day1)); err != nil {
			t.Fatal(err)
		}
		dd := DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start}
		t0 := day1.Add(25 * time.Hour)
		if won, err := st.Claim(ctx, dd, "crashed", t0, DefaultLease); err != nil || !won {
			t.Fatalf("claim: %v %v", won, err)
		}
		sink := newSink()
		now := t0.Add(DefaultLease / 2)
		b := builder(st, sink, "survivor", &now)
		if s, err := b.RunOnce(ctx); err != nil || s.Built != 0 || s.Claimed != 1 {
			t.Fatalf("within the lease: %+v %v", s, err)
		}
		now = t0.Add(DefaultLease)
		if s, err := b.RunOnce(ctx); err != nil || s.Built != 1 {
			t.Fatalf("after the lease: %+v %v", s, err)
		}
		c, found, err := st.ClaimOf(ctx, dd)
		if err != nil || !found || c.State != "done" || c.Owner != "survivor" || c.Attempts != 2 || c.ReportID != "20260314.example.com@sender.example" {
			t.Errorf("claim = %+v %v %v", c, found, err)
		}
		// The crashed node, back, cannot mark it done or claim it.
		if done, _ := st.Done(ctx, dd, "crashed", "x", now); done {
			t.Error("stale owner marked done")
		}
		if won, _ := st.Claim(ctx, dd, "crashed", now.Add(time.Hour), DefaultLease); won {
			t.Error("a done report was claimed again")
		}
	})
}

// A failed Sink leaves the report for RetryAfter; the rebuild is
// byte-identical (deterministic report-id and body).
func TestBuilderRetriesFailedSinkIdentically(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	ctx := ctxT(t)
	if err := st.Add(ctx, ok("example.com", day1), fail("example.com", day1, Failure{ResultType: result.CertificateNotTrusted, ReceivingIP: "2001:db8::25"})); err != nil {
		t.Fatal(err)
	}
	sink := newSink()
	sink.fail = 1
	now := day1.Add(25 * time.Hour)
	b := builder(st, sink, "n", &now)
	if s, err := b.RunOnce(ctx); err != nil || s.Failed != 1 {
		t.Fatalf("first pass: %+v %v", s, err)
	}
	k := sinkKey("example.com", tlsrpt.DayRange(day1).Start)
	first := sink.last[k]
	if s, _ := b.RunOnce(ctx); s.Built != 0 {
		t.Fatalf("retried before RetryAfter: %+v", s)
	}
	now = now.Add(DefaultRetryAfter)
	if s, err := b.RunOnce(ctx); err != nil || s.Built != 1 {
		t.Fatalf("retry: %+v %v", s, err)
	}
	second := sink.last[k]
	if !bytes.Equal(first.Body, second.Body) || first.ReportID != second.ReportID || first.Filename != second.Filename {
		t.Error("the rebuilt report differs from the first build")
	}
}

// The built report passes the strict parser, always names the
// policy-domain, and its file name matches (RPT-JSON-9, RPT-DELIV-3).
func TestBuilderReportContent(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	ctx := ctxT(t)
	if err := st.Add(ctx, ok("example.com", day1), ok("example.com", day1),
		Result{Time: day1, PolicyDomain: "example.com", Policy: Policy{Type: "tlsa", Strings: []string{"3 1 1 0123ABCD"}},
			Failures: []Failure{{ResultType: result.TLSAInvalid, ReceivingMXHostname: "mx.example.com"}}},
		Result{Time: day1, PolicyDomain: "example.com", Policy: Policy{Type: "no-policy-found"}}); err != nil {
		t.Fatal(err)
	}
	now := day1.Add(25 * time.Hour)
	b := builder(st, newSink(), "n", &now)
	br, err := b.Build(ctx, DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(br.Body))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	r, err := tlsrpt.ParseStrict(js)
	if err != nil {
		t.Fatalf("strict parse: %v\n%s", err, js)
	}
	if r.OrganizationName != "Example Sender" || r.ContactInfo != "tlsrpt@sender.example" || r.ReportID != br.ReportID ||
		!r.DateRange.Start.Equal(tlsrpt.DayRange(day1).Start) || len(r.Policies) != 3 {
		t.Errorf("report = %+v", r)
	}
	for _, p := range r.Policies {
		if p.Policy.Domain != "example.com" {
			t.Errorf("policy-domain %q", p.Policy.Domain)
		}
	}
	fn, err := tlsrpt.ParseFilename(br.Filename)
	if err != nil || fn.Sender != "sender.example" || fn.PolicyDomain != "example.com" || !fn.Gzip || !fn.Begin.Equal(r.DateRange.Start) {
		t.Errorf("filename %q: %+v %v", br.Filename, fn, err)
	}
	if br.Submitter != "sender.example" || !br.Day.Equal(tlsrpt.DayRange(day1).Start) {
		t.Errorf("built = %+v", br)
	}
}

func TestBuilderConfig(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	now := day1
	for name, b := range map[string]*Builder{
		"no org":      {Store: st, Sink: newSink(), ContactInfo: "a@b.example"},
		"bad contact": {Store: st, Sink: newSink(), OrganizationName: "o", ContactInfo: "Name <a@b.example>"},
		"no sink":     {Store: st, OrganizationName: "o", ContactInfo: "a@b.example"},
	} {
		b.Now = func() time.Time { return now }
		if _, err := b.RunOnce(ctxT(t)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNextRun(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 14, 23, 59, 0, 0, time.UTC)
	for range 20 {
		n := NextRun(now, 10*time.Minute, time.Hour)
		lo := time.Date(2026, 3, 15, 0, 10, 0, 0, time.UTC)
		if n.Before(lo) || !n.Before(lo.Add(time.Hour)) {
			t.Fatalf("NextRun = %v, want in [%v, +1h)", n, lo)
		}
	}
	if n := NextRun(now, 0, 0); !n.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("NextRun without spread = %v", n)
	}
}

func TestDirSink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := DirSink{Dir: dir}
	r := BuiltReport{Filename: "sender.example!example.com!1773446400!1773532799.json.gz", Body: []byte("one")}
	for _, body := range []string{"one", "two"} {
		r.Body = []byte(body)
		if err := s.Enqueue(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, r.Filename))
	if err != nil || string(got) != "one" {
		t.Errorf("file = %q %v; the first write must stay", got, err)
	}
	for _, bad := range []string{"", "../x.json.gz", "a/b.json.gz", ".hidden"} {
		if err := s.Enqueue(context.Background(), BuiltReport{Filename: bad}); err == nil {
			t.Errorf("file name %q accepted", bad)
		}
	}
}
