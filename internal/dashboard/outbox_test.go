package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
)

// outboxDay is the reported day of the outbox fixture.
var outboxDay = time.Date(2025, 1, 23, 0, 0, 0, 0, time.UTC)

// hostileReportID tries markup in a report id (the builder makes them,
// but the page must not trust the database).
const hostileReportID = `x"><script>alert(7)</script>`

// newOutbox fills a real SQLite outbox by delivering through it: a
// report sent (ok.example, with a hostile report id), two failing
// (fail.example and d1.example, to the same receiver answering 500), one
// to a suppressed destination (sup.example, a hostile reason), and one
// waiting for its day to end (later.example).
func newOutbox(t *testing.T) *outbox.Store {
	t.Helper()
	ctx := context.Background()
	st, err := outbox.OpenSQLite(ctx, filepath.Join(t.TempDir(), outbox.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ok := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }))
	t.Cleanup(ok.Close)
	bad := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<script>alert(8)</script>", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)
	dns := &dnsresolve.Fake{}
	rua := func(d, u string) { dns.SetTXT("_smtp._tls."+d, "v=TLSRPTv1; rua="+u) }
	rua("ok.example", ok.URL+"/ok")
	rua("fail.example", bad.URL+"/bad")
	rua("d1.example", bad.URL+"/bad")
	rua("sup.example", ok.URL+"/sup")
	rua("later.example", ok.URL+"/later")
	now := outboxDay.Add(36 * time.Hour)
	// The receivers' certificates are httptest's: a client per receiver
	// is not possible, so trust both through one pool.
	client := ok.Client()
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(bad.Certificate())
	o := &outbox.Outbox{Store: st, Resolver: dns, HTTP: &outbox.HTTPSPoster{Client: client, Timeout: time.Minute},
		Config: outbox.Config{DisableSpread: true}, Now: func() time.Time { return now }}
	for _, d := range []string{"ok.example", "fail.example", "d1.example", "sup.example"} {
		id := "id-" + d
		if d == "ok.example" {
			id = hostileReportID
		}
		if err := o.Enqueue(ctx, outbox.Report{PolicyDomain: d, Day: outboxDay, ReportID: id, Filename: d + ".json.gz", Body: []byte("gzip body")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Enqueue(ctx, outbox.Report{PolicyDomain: "later.example", Day: outboxDay.AddDate(0, 0, 5), ReportID: "id-later", Filename: "l.json.gz", Body: []byte("gzip body")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Suppress(ctx, ok.URL+"/sup", "<b>mailbox gone</b>", now); err != nil {
		t.Fatal(err)
	}
	if _, err := o.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func withOutbox(st OutboxSource) func(*Server) {
	return func(s *Server) { s.Sections = append(s.Sections, OutboxSection(s, st)) }
}

// outboxRows maps the policy domain of each row of the outbox table to
// its state.
func outboxRows(body string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, `<tr data-id="`) {
			continue
		}
		_, rest, _ := strings.Cut(line, `data-state="`)
		state, _, _ := strings.Cut(rest, `"`)
		_, rest, _ = strings.Cut(line, "</td><td>")
		dom, _, _ := strings.Cut(rest, "<")
		out[dom] = state
	}
	return out
}

func TestOutboxPage(t *testing.T) {
	t.Parallel()
	st := newOutbox(t)
	fx := newFixture(t, withOutbox(st))
	c := fx.alice(t)
	body, resp := fx.get(t, c, "/outbox")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/outbox: %s\n%s", resp.Status, body)
	}
	rows := outboxRows(body)
	want := map[string]string{"ok.example": "sent", "fail.example": "failed-retrying", "d1.example": "failed-retrying",
		"sup.example": "suppressed", "later.example": "pending"}
	for d, s := range want {
		if rows[d] != s {
			t.Errorf("%s: state %q, want %q (rows %v)", d, rows[d], s, rows)
		}
	}
	// The failure reason is shown; the suppressed destination with its
	// reason; every text escaped.
	for _, s := range []string{"500", "&lt;b&gt;mailbox gone&lt;/b&gt;", "x&#34;&gt;&lt;script&gt;alert(7)&lt;/script&gt;", `id=destinations`} {
		if !strings.Contains(body, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	for _, s := range []string{"<script>", "<b>mailbox"} {
		if strings.Contains(body, s) {
			t.Errorf("the page carries %q unescaped", s)
		}
	}
	for _, s := range []string{`data-state="failed-retrying">failed-retrying (2)`, `data-state="sent">sent (1)`, `data-state="pending">pending (1)`} {
		if !strings.Contains(body, s) {
			t.Errorf("the state counts lack %s", s)
		}
	}
	if !strings.Contains(body, `href="/outbox"`) {
		t.Error("the navigation does not list the outbox")
	}

	// A state filter; an unknown state is refused.
	body, _ = fx.get(t, c, "/outbox?state=suppressed")
	if rows := outboxRows(body); len(rows) != 1 || rows["sup.example"] != "suppressed" {
		t.Errorf("state=suppressed lists %v", rows)
	}
	if _, resp := fx.get(t, c, "/outbox?state=%3Cx%3E"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown state: %s, want 400", resp.Status)
	}

	// bob (d1.example only) sees his domain's row and the destination
	// it fails at, nothing of the others.
	bc := fx.client(t)
	if resp := fx.signIn(t, bc, url.Values{"token": {bobToken}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob sign-in: %s", resp.Status)
	}
	body, _ = fx.get(t, bc, "/outbox")
	if rows := outboxRows(body); len(rows) != 1 || rows["d1.example"] != "failed-retrying" {
		t.Errorf("bob sees %v, want d1.example only", rows)
	}
	if !strings.Contains(body, `failed-retrying (1)`) || strings.Contains(body, `sent (1)`) {
		t.Errorf("bob's counts are not his own")
	}
	if !strings.Contains(body, "/bad") || strings.Contains(body, "/sup") || strings.Contains(body, "mailbox gone") {
		t.Errorf("bob's destinations are not his own:\n%s", body)
	}

	// Not signed in: no page.
	if _, resp := fx.get(t, fx.client(t), "/outbox"); resp.StatusCode == http.StatusOK {
		t.Errorf("/outbox without sign-in: %s", resp.Status)
	}
}

// failingOutbox is an outbox whose database is down.
type failingOutbox struct{}

func (failingOutbox) List(context.Context, outbox.ListOptions) ([]outbox.Entry, error) {
	return nil, outbox.ErrStorage
}

func (failingOutbox) CountStates(context.Context, []string) (map[outbox.State]int, error) {
	return nil, outbox.ErrStorage
}

func (failingOutbox) Destinations(context.Context, bool) ([]outbox.Destination, error) {
	return nil, errors.New("down")
}

func TestOutboxPageStoreDown(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, withOutbox(failingOutbox{}))
	body, resp := fx.get(t, fx.alice(t), "/outbox")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "outbox database failed") {
		t.Errorf("outbox down: %s\n%s", resp.Status, body)
	}
}
