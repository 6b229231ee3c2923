package dashboard

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/mtasts"
)

// fakePolicyd serves the metrics of a policy daemon (the real metrics
// package, so that a renamed metric fails here): a degraded durable
// cache of 7 policies, 3 cache hits and a miss, 2 secure answers and a
// temporary failure, a fetch.
func fakePolicyd(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Answered("a.example", mtasts.SourceCache, nil)
	}
	m.Answered("b.example", mtasts.SourceFetched, nil)
	m.Query("postfix", "ok_secure", time.Millisecond)
	m.Query("tlsrpt", "ok_secure", time.Millisecond)
	m.Query("postfix", "temp", time.Millisecond)
	m.Fetched("b.example", time.Second, nil)
	m.CacheOpened(true, false)
	m.CacheDegraded(true)
	m.CacheSize(func() int { return 7 })
	ts := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(ts.Close)
	return ts
}

func withPolicyd(u string) func(*Server) {
	return func(s *Server) { s.Sections = append(s.Sections, PolicydSection(s, u, nil)) }
}

func TestPolicydPage(t *testing.T) {
	t.Parallel()
	pd := fakePolicyd(t)
	fx := newFixture(t, withPolicyd(pd.URL+"/metrics"))
	body, resp := fx.get(t, fx.alice(t), "/policyd")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/policyd: %s\n%s", resp.Status, body)
	}
	for k, want := range map[string]string{"cache": "degraded", "durable": "yes", "entries": "7", "hit": "3", "miss": "1", "ok_secure": "2", "temp": "1", "ok": "1"} {
		if got := dataK(body, k); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v, want %s", k, got, want)
		}
	}
	if !strings.Contains(body, `id=policyd-degraded`) && !strings.Contains(body, `id="policyd-degraded"`) {
		t.Error("a degraded cache is not called out")
	}
	if !strings.Contains(body, "75.0%") {
		t.Error("the hit share (3 of 4) is not shown")
	}

	// bob (one domain) neither sees it listed nor reads it.
	bc := fx.client(t)
	fx.signIn(t, bc, url.Values{"token": {bobToken}})
	body, _ = fx.get(t, bc, "/")
	if strings.Contains(body, `href="/policyd"`) {
		t.Error("the policyd page is listed for a user of one domain")
	}
	if _, resp := fx.get(t, bc, "/policyd"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob on /policyd: %s, want 403", resp.Status)
	}
}

// The daemon is down, answers an error, or is not policyd: the page
// says so; a hostile endpoint's text is escaped.
func TestPolicydPageProblems(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	var mode atomic.Value
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "not policyd":
			w.Write([]byte("# TYPE other_total counter\nother_total 1\n"))
		case "failing":
			http.Error(w, "<b>no</b>", http.StatusInternalServerError)
		case "hostile":
			w.Write([]byte("# TYPE mailsts_policyd_queries_total counter\n" +
				`mailsts_policyd_queries_total{zone="postfix",answer="<script>alert(1)</script>"} 5` + "\n"))
		case "down":
			// Redirect to the closed server: not followed.
			http.Redirect(w, r, downURL, http.StatusFound)
		}
	}))
	defer fake.Close()
	fx := newFixture(t, withPolicyd(fake.URL+"/metrics"))
	c := fx.alice(t)
	for _, m := range []struct{ mode, want string }{
		{"down", "302 Found"},
		{"not policyd", "no mailsts_policyd_ metrics"},
		{"failing", "500 Internal Server Error"},
		{"hostile", "&lt;script&gt;alert(1)&lt;/script&gt;"},
	} {
		mode.Store(m.mode)
		body, resp := fx.get(t, c, "/policyd")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, m.want) {
			t.Errorf("%s: %s, want %q in\n%s", m.mode, resp.Status, m.want, body)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<b>no") {
			t.Errorf("%s: unescaped text", m.mode)
		}
	}
	// A closed port.
	if _, err := ScrapePolicyd(t.Context(), http.DefaultClient, downURL); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a closed port: %v", err)
	}
}

// A body past the limit is refused, not read whole.
func TestParsePolicydMetricsBounded(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("# a comment line of some length to fill the body up\n", policydMaxBody/50+10)
	if _, err := ParsePolicydMetrics(strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized body: %v", err)
	}
	if _, err := ParsePolicydMetrics(strings.NewReader("not { metrics")); err == nil {
		t.Error("garbage parsed")
	}
}
