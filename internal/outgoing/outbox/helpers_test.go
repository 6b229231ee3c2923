package outbox

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/tlsrpt"
)

// day0 is the reported day of the tests; reports are due from t0 on.
var (
	day0 = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	t0   = day0.Add(24 * time.Hour)
)

// clock is an injected clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openSQLite(t testing.TB) *Store {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "tlsrpt-outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgres opens a store in a schema of its own (skips without the
// server); n > 1 opens several stores (nodes) on the same schema.
func openPostgres(t testing.TB, n int) []*Store {
	t.Helper()
	dsn := reportstest.PostgresDSN(t)
	var out []*Store
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := OpenPostgres(ctx, dsn)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

// backends runs f on a fresh SQLite and PostgreSQL store.
func backends(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, openSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, openPostgres(t, 1)[0])
	})
}

// testReport builds a valid report of day0 for domain, submitted by
// sender.example.
func testReport(t testing.TB, domain string) Report {
	t.Helper()
	var a tlsrpt.Aggregator
	p := tlsrpt.Policy{Type: "sts", String: []string{"version: STSv1", "mode: enforce", "mx: mx." + domain, "max_age: 86400"}, Domain: domain, MXHost: []string{"mx." + domain}}
	a.AddSuccess(p, 10)
	a.AddFailure(p, tlsrpt.FailureDetails{ResultType: "certificate-expired", SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx." + domain})
	rep := a.Report(tlsrpt.ReportParams{OrganizationName: "Sender Org", ContactInfo: "tlsrpt@sender.example", PolicyDomain: domain, Day: day0})
	body, err := tlsrpt.MarshalGzip(rep)
	if err != nil {
		t.Fatal(err)
	}
	fn := tlsrpt.Filename{Sender: "sender.example", PolicyDomain: domain, Begin: rep.DateRange.Start, End: rep.DateRange.End, Gzip: true}
	return Report{PolicyDomain: domain, Day: day0, ReportID: rep.ReportID, Filename: fn.String(), Body: body, Submitter: "sender.example"}
}

// postCounter is an HTTPS report receiver that counts POSTs per report
// body and answers with status (201 when 0).
type postCounter struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	posts  map[string]int // by policy domain in the file name… by body hash
	total  atomic.Int32
	types  []string
	got    chan struct{} // a token after each POST (buffer 1)
}

func newPostCounter(t testing.TB) *postCounter {
	pc := &postCounter{posts: map[string]int{}, got: make(chan struct{}, 1)}
	pc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(strings.Builder)
		js, _, err := tlsrpt.Decode(r.Body, r.Header.Get("Content-Type"), tlsrpt.Limits{})
		if err == nil {
			rep, _, perr := tlsrpt.Parse(js)
			if perr == nil {
				buf.WriteString(rep.ReportID)
			}
		}
		pc.total.Add(1)
		pc.mu.Lock()
		pc.posts[buf.String()]++
		pc.types = append(pc.types, r.Header.Get("Content-Type"))
		pc.mu.Unlock()
		select {
		case pc.got <- struct{}{}:
		default:
		}
		st := int(pc.status.Load())
		if st == 0 {
			st = http.StatusCreated
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(pc.srv.Close)
	return pc
}

func (pc *postCounter) URL() string { return pc.srv.URL + "/tlsrpt" }

func (pc *postCounter) count(reportID string) int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.posts[reportID]
}

// poster trusts the httptest server's certificate.
func (pc *postCounter) poster() *HTTPSPoster {
	return &HTTPSPoster{Client: pc.srv.Client(), Timeout: time.Hour}
}

// fakeDNS publishes one _smtp._tls record per domain.
func fakeDNS(records map[string]string) *dnsresolve.Fake {
	f := &dnsresolve.Fake{}
	for d, rec := range records {
		f.SetTXT("_smtp._tls."+d, rec)
	}
	return f
}

func rua(uris ...string) string { return "v=TLSRPTv1; rua=" + strings.Join(uris, ",") }

// entries lists the outbox, failing the test on error.
func entries(t testing.TB, s *Store) []Entry {
	t.Helper()
	es, err := s.List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// only returns the one delivery entry, failing otherwise.
func only(t testing.TB, s *Store) Entry {
	t.Helper()
	var ds []Entry
	for _, e := range entries(t, s) {
		if e.Kind == "delivery" {
			ds = append(ds, e)
		}
	}
	if len(ds) != 1 {
		t.Fatalf("want one delivery, have %d: %+v", len(ds), entries(t, s))
	}
	return ds[0]
}

func dump(es []Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %s %s %s attempts=%d err=%q\n", e.ID, e.Destination, e.State, e.NextAttempt.Format(time.RFC3339), e.Attempts, e.LastError)
	}
	return b.String()
}
