package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailsts/mailsts/internal/buildinfo"
	"github.com/mailsts/mailsts/mtasts"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg); err == nil {
		t.Error("registering twice succeeded")
	}
	m.Query("postfix", "ok_secure", 3*time.Microsecond)
	m.Query("postfix", "temp", time.Second)
	m.Answered("a.example", mtasts.SourceCache, nil)
	m.Answered("a.example", mtasts.SourceFetched, nil)
	m.Answered("a.example", mtasts.SourceStale, mtasts.ErrDNS)
	m.Fetched("a.example", time.Second, fmt.Errorf("%w: x", mtasts.ErrPolicyCertificate))
	m.Fetched("a.example", time.Second, nil)
	m.MXRecovery(true)
	m.DANEDecision("dane-only")
	m.ResolverValidates("yes")
	m.ResolverValidates("no")
	m.Refreshed(3, 1)
	m.ConnOpened()
	m.ProtocolError(errors.New("bad"))
	m.CacheOpened(false, true)
	m.CacheRepaired()
	m.CacheUnreadable()
	m.CacheUnreadable()
	m.CacheSize(func() int { return 42 })
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mailsts_policyd_queries_total{answer="ok_secure",zone="postfix"} 1`,
		`mailsts_policyd_queries_total{answer="temp",zone="postfix"} 1`,
		`mailsts_policyd_cache_lookups_total{result="hit"} 1`,
		`mailsts_policyd_cache_lookups_total{result="miss"} 1`,
		`mailsts_policyd_cache_lookups_total{result="stale"} 1`,
		`mailsts_policyd_fetches_total{result="sts-webpki-invalid"} 1`,
		`mailsts_policyd_fetches_total{result="ok"} 1`,
		`mailsts_policyd_mx_recoveries_total{result="ok"} 1`,
		`mailsts_policyd_dane_decisions_total{outcome="dane-only"} 1`,
		`mailsts_policyd_resolver_validates_dnssec 0`,
		`mailsts_policyd_refreshes_total{result="ok"} 3`,
		`mailsts_policyd_connections_open 1`,
		`mailsts_policyd_protocol_errors_total 1`,
		`mailsts_policyd_cache_durable 0`,
		`mailsts_policyd_cache_degraded 1`,
		`mailsts_policyd_cache_repairs_total 1`,
		`mailsts_policyd_cache_unreadable_entries_total 2`,
		`mailsts_policyd_cache_entries 42`,
		`mailsts_policyd_query_duration_seconds_count{zone="postfix"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("missing %s", want)
		}
	}
	bi := buildinfo.Get()
	build := fmt.Sprintf(`mailsts_build_info{commit=%q,go_version=%q,version=%q} 1`, bi.Commit, bi.GoVersion, bi.Version)
	if !strings.Contains(string(body), build) {
		t.Errorf("missing %s in\n%s", build, body)
	}
}

// BenchmarkQueryFunc is the metrics cost of one memoised answer (a counter
// and a latency histogram); run with -cpu 1,2 to see contention.
func BenchmarkQueryFunc(b *testing.B) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	record := m.QueryFunc("default", "ok_secure")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			record(150 * time.Microsecond)
		}
	})
}
