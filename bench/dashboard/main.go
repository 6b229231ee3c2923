// Command dashboard benchmarks the web dashboard of `mailsts serve`
// (internal/dashboard): it stores N synthetic reports spread over D days
// and P policy domains, then times the server-side rendering of the
// overview and of a domain page (handler time, no network) and counts
// the bytes of each page. See README.md.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Config of one run.
type Config struct {
	N, Domains, Days, Orgs int
	// DB is the SQLite file (removed first unless Reuse).
	DB     string
	Batch  int
	Reuse  bool
	Repeat int
}

func main() {
	var c Config
	flag.IntVar(&c.N, "n", 1000000, "number of reports")
	flag.IntVar(&c.Domains, "domains", 500, "policy domains")
	flag.IntVar(&c.Days, "days", 365, "days the reports cover")
	flag.IntVar(&c.Orgs, "orgs", 40, "reporting organisations")
	flag.StringVar(&c.DB, "db", filepath.Join(os.TempDir(), "mailsts-bench-dashboard.db"), "SQLite file")
	flag.IntVar(&c.Batch, "batch", 2000, "reports per transaction")
	flag.BoolVar(&c.Reuse, "reuse", false, "skip the ingest and use the existing file")
	flag.IntVar(&c.Repeat, "repeat", 5, "renders of each page")
	flag.Parse()
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dashboard:", err)
		os.Exit(1)
	}
}

// first is the first day of the synthetic reports.
var first = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Synth builds report i: policy domain i mod P, day i*D/N (an even
// spread), organisation (i/P) mod O, so each domain gets a report from
// several organisations each day; one STS policy, a failure detail for
// one report in four (six result types, 50 sending IPs).
func Synth(c Config, i int) *tlsrpt.Report {
	results := []tlsrpt.ResultType{tlsrpt.ResultSTARTTLSNotSupported, tlsrpt.ResultCertificateExpired, tlsrpt.ResultCertificateHostMismatch,
		tlsrpt.ResultSTSWebPKIInvalid, tlsrpt.ResultValidationFailure, tlsrpt.ResultCertificateNotTrusted}
	dom := fmt.Sprintf("domain%03d.example", i%c.Domains)
	org := fmt.Sprintf("Sender %02d", (i/c.Domains)%c.Orgs)
	day := first.AddDate(0, 0, int(int64(i)*int64(c.Days)/int64(c.N)))
	mx := "mx." + dom
	var a tlsrpt.Aggregator
	sts := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: " + mx, "max_age: 604800"},
		Domain: dom, MXHost: []string{mx}}
	a.AddSuccess(sts, int64(100+i%500))
	if i%4 == 0 {
		a.AddFailure(sts, tlsrpt.FailureDetails{ResultType: results[(i/4)%len(results)], SendingMTAIP: fmt.Sprintf("192.0.2.%d", 1+i%50),
			ReceivingMXHostname: mx, FailedSessionCount: int64(1 + i%7)})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: org, ContactInfo: fmt.Sprintf("tlsrpt@sender%02d.example", (i/c.Domains)%c.Orgs),
		PolicyDomain: dom, Day: day})
	r.ReportID = fmt.Sprintf("%s.%d", r.ReportID, i)
	return r
}

func ingest(ctx context.Context, st reports.Store, c Config) error {
	start := time.Now()
	batch := make([]reports.Incoming, 0, c.Batch)
	now := time.Now().UTC()
	for i := 0; i < c.N; i++ {
		r := Synth(c, i)
		raw, err := tlsrpt.Marshal(r)
		if err != nil {
			return err
		}
		batch = append(batch, reports.Incoming{Report: r, Raw: raw, Source: reports.SourceHTTP, Origin: "bench", ReceivedAt: now})
		if len(batch) == c.Batch || i == c.N-1 {
			if _, err := st.PutReports(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if (i+1)%(max(c.N/10, 1)) == 0 {
			el := time.Since(start)
			fmt.Fprintf(os.Stderr, "stored %d reports in %s (%.0f/s)\n", i+1, el.Round(time.Second), float64(i+1)/el.Seconds())
		}
	}
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn returns the session cookie of a signed-in user, through the
// sign-in form.
func signIn(h http.Handler) (*http.Cookie, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/login", nil))
	m := csrfRE.FindStringSubmatch(rec.Body.String())
	if m == nil {
		return nil, fmt.Errorf("no sign-in form")
	}
	form := url.Values{"csrf": {m[1]}, "name": {"bench"}, "password": {"bench password"}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range rec.Result().Cookies() {
		req.AddCookie(ck)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "mailsts_session" && ck.Value != "" {
			return ck, nil
		}
	}
	return nil, fmt.Errorf("sign-in failed: %d", rec.Code)
}

type pageResult struct {
	name        string
	first, best time.Duration
	bytes, gz   int
}

func run(ctx context.Context, c Config) error {
	if !c.Reuse {
		for _, suf := range []string{"", "-wal", "-shm"} {
			os.Remove(c.DB + suf)
		}
	}
	st, err := sqlstore.OpenSQLite(ctx, c.DB, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if !c.Reuse {
		start := time.Now()
		if err := ingest(ctx, st, c); err != nil {
			return err
		}
		fmt.Printf("ingest: %d reports, %d domains, %d days in %s\n", c.N, c.Domains, c.Days, time.Since(start).Round(time.Second))
	}
	if fi, err := os.Stat(c.DB); err == nil {
		fmt.Printf("database: %.0f MB\n", float64(fi.Size())/1e6)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("bench password"), bcrypt.MinCost)
	if err != nil {
		return err
	}
	last := first.AddDate(0, 0, c.Days-1)
	clock := func() time.Time { return last.Add(36 * time.Hour) } // the day after the last report day, noon
	auth := &dashboard.Auth{Users: []dashboard.User{{Name: "bench", PasswordHash: string(hash)}}, Now: clock}
	srv := &dashboard.Server{Store: st, Auth: auth, Now: clock}
	h, err := srv.Handler(nil)
	if err != nil {
		return err
	}
	cookie, err := signIn(h)
	if err != nil {
		return err
	}
	year := "from=" + first.Format(time.DateOnly) + "&to=" + last.Format(time.DateOnly)
	pages := []struct{ name, path string }{
		{"overview, 30 days", "/"},
		{"overview, 365 days", "/?" + year},
		{"overview, page 10", "/?page=10"},
		{"domain, 30 days", "/domain/domain008.example"},
		{"domain, 365 days", "/domain/domain008.example?" + year},
		{"failures of a domain and IP, 30 days", "/failures?domain=domain008.example&ip=192.0.2.9"},
		{"reports of a domain, 30 days", "/reports?domain=domain008.example"},
	}
	var res []pageResult
	for _, p := range pages {
		r := pageResult{name: p.name}
		for k := range max(c.Repeat, 1) {
			req := httptest.NewRequest("GET", p.path, nil)
			req.AddCookie(cookie)
			rec := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(rec, req)
			el := time.Since(start)
			if rec.Code != http.StatusOK {
				return fmt.Errorf("%s: status %d: %.300s", p.path, rec.Code, rec.Body.String())
			}
			if k == 0 {
				r.first, r.best = el, el
				r.bytes = rec.Body.Len()
				var zb bytes.Buffer
				zw := gzip.NewWriter(&zb)
				zw.Write(rec.Body.Bytes())
				zw.Close()
				r.gz = zb.Len()
			}
			r.best = min(r.best, el)
		}
		res = append(res, r)
	}
	fmt.Printf("\n| page | first | best of %d | bytes | gzip |\n|---|---:|---:|---:|---:|\n", max(c.Repeat, 1))
	for _, r := range res {
		fmt.Printf("| %s | %s | %s | %d | %d |\n", r.name, ms(r.first), ms(r.best), r.bytes, r.gz)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
