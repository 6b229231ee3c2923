// Command reports benchmarks the TLS report store (internal/reports):
// ingest N synthetic reports (varied organisations, policy domains,
// policy types and failure details, built with the tlsrpt builders and
// gzipped as senders POST them) into SQLite or PostgreSQL, then time the
// summary query and a filtered failures query. See README.md.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Config of one run.
type Config struct {
	N     int
	DB    string // sqlite:PATH or postgres://…
	Batch int    // reports per transaction (1: one commit per report)
}

// Results of one run.
type Results struct {
	Reports         int
	Ingest          time.Duration
	ReportsPerSec   float64
	BytesOnDisk     int64
	BytesPerReport  float64
	SummaryRows     int
	Summary         time.Duration
	SummaryByResult time.Duration
	FailuresRows    int
	Failures        time.Duration
}

func main() {
	var c Config
	flag.IntVar(&c.N, "n", 100000, "number of reports")
	flag.StringVar(&c.DB, "db", "sqlite:"+filepath.Join(os.TempDir(), "mailsts-bench-reports.db"), "sqlite:PATH (removed first) or postgres://… (schema bench_reports is dropped and recreated)")
	flag.IntVar(&c.Batch, "batch", 100, "reports per transaction")
	flag.Parse()
	r, err := Run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("db=%s n=%d batch=%d\n", strings.SplitN(c.DB, ":", 2)[0], r.Reports, c.Batch)
	fmt.Printf("ingest:   %v, %.0f reports/s\n", r.Ingest.Round(time.Millisecond), r.ReportsPerSec)
	fmt.Printf("disk:     %d bytes, %.0f bytes/report\n", r.BytesOnDisk, r.BytesPerReport)
	fmt.Printf("summary (day,domain,org): %d rows in %v\n", r.SummaryRows, r.Summary.Round(time.Microsecond))
	fmt.Printf("summary (org,result):     %v\n", r.SummaryByResult.Round(time.Microsecond))
	fmt.Printf("failures (domain, result, since; limit 1000): %d rows in %v\n", r.FailuresRows, r.Failures.Round(time.Microsecond))
}

// Synth builds report i of the synthetic set: 40 organisations, 500
// policy domains over 30 days; an STS policy with 0-3 failure details
// (of the 11 registry types, varied IPs and reason codes), a TLSA policy
// for every third report and a no-policy-found entry for every seventh.
func Synth(i int) *tlsrpt.Report {
	results := tlsrpt.ResultTypes()
	org := fmt.Sprintf("Sender %02d", i%40)
	dom := fmt.Sprintf("domain%03d.example", (i*7)%500)
	day := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (i/40)%30)
	var a tlsrpt.Aggregator
	mx := "mx" + fmt.Sprint(i%3) + "." + dom
	sts := tlsrpt.Policy{Type: tlsrpt.PolicyTypeSTS, String: []string{"version: STSv1", "mode: enforce", "mx: " + mx, "max_age: 604800"},
		Domain: dom, MXHost: []string{mx}}
	a.AddSuccess(sts, int64(50+i%500))
	for j := 0; j < (i*13)%4; j++ {
		a.AddFailure(sts, tlsrpt.FailureDetails{ResultType: results[(i+j*5)%len(results)],
			SendingMTAIP: fmt.Sprintf("192.0.2.%d", 1+(i+j)%250), ReceivingMXHostname: mx,
			ReceivingIP: fmt.Sprintf("198.51.100.%d", 1+i%250), FailedSessionCount: int64(1 + (i+j)%9),
			FailureReasonCode: fmt.Sprintf("X509_V_ERR_%d", j)})
	}
	if i%3 == 0 {
		tlsa := tlsrpt.Policy{Type: tlsrpt.PolicyTypeTLSA, String: []string{fmt.Sprintf("3 1 1 %064x", i)}, Domain: mx}
		a.AddSuccess(tlsa, 20)
		if i%9 == 0 {
			a.AddFailure(tlsa, tlsrpt.FailureDetails{ResultType: tlsrpt.ResultTLSAInvalid, ReceivingMXHostname: mx})
		}
	}
	if i%7 == 0 {
		a.AddFailure(tlsrpt.Policy{Type: tlsrpt.PolicyTypeNoPolicyFound, Domain: dom})
	}
	r := a.Report(tlsrpt.ReportParams{OrganizationName: org, ContactInfo: fmt.Sprintf("tlsrpt@sender%02d.example", i%40), PolicyDomain: dom, Day: day})
	r.ReportID = fmt.Sprintf("%s.%d", r.ReportID, i)
	return r
}

func open(ctx context.Context, db string) (reports.Store, func() (int64, error), error) {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		admin, err := sql.Open("pgx", db)
		if err != nil {
			return nil, nil, err
		}
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA IF EXISTS bench_reports CASCADE; CREATE SCHEMA bench_reports`); err != nil {
			admin.Close()
			return nil, nil, err
		}
		sep := "?"
		if strings.Contains(db, "?") {
			sep = "&"
		}
		st, err := reports.OpenPostgres(ctx, db+sep+"search_path=bench_reports", nil)
		if err != nil {
			admin.Close()
			return nil, nil, err
		}
		size := func() (int64, error) {
			var n int64
			err := admin.QueryRowContext(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'bench_reports' AND c.relkind = 'r'`).Scan(&n)
			return n, err
		}
		return st, size, nil
	}
	path := strings.TrimPrefix(db, "sqlite:")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	st, err := reports.OpenSQLite(ctx, path, nil)
	if err != nil {
		return nil, nil, err
	}
	size := func() (int64, error) {
		var n int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(path + suffix); err == nil {
				n += fi.Size()
			}
		}
		return n, nil
	}
	return st, size, nil
}

// Run ingests c.N reports and times the queries.
func Run(ctx context.Context, c Config) (Results, error) {
	var res Results
	if c.Batch < 1 {
		c.Batch = 1
	}
	st, size, err := open(ctx, c.DB)
	if err != nil {
		return res, err
	}
	defer st.Close()
	now := time.Now().UTC()
	var batch []reports.Incoming
	var elapsed time.Duration
	flush := func() error {
		start := time.Now()
		_, err := st.PutReports(ctx, batch)
		elapsed += time.Since(start)
		batch = batch[:0]
		return err
	}
	for i := 0; i < c.N; i++ {
		r := Synth(i)
		raw, err := tlsrpt.MarshalGzip(r)
		if err != nil {
			return res, err
		}
		// Building and gzipping is the sender's work: only the store's
		// time is measured.
		batch = append(batch, reports.Incoming{Report: r, Raw: raw, Source: reports.SourceHTTP, Origin: "bench",
			ReceivedAt: now, Problems: r.Problems(now)})
		if len(batch) == c.Batch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return res, err
		}
	}
	res.Reports = c.N
	res.Ingest = elapsed
	res.ReportsPerSec = float64(c.N) / elapsed.Seconds()

	start := time.Now()
	rows, err := st.Summary(ctx, reports.Filter{})
	res.Summary = time.Since(start)
	if err != nil {
		return res, err
	}
	res.SummaryRows = len(rows)
	start = time.Now()
	if _, err := st.Summary(ctx, reports.Filter{GroupBy: []string{reports.GroupOrganization, reports.GroupResultType}}); err != nil {
		return res, err
	}
	res.SummaryByResult = time.Since(start)
	// The failures of one organisation and result type at one policy
	// domain, over a date range: the question "why does X fail to reach
	// us" asks.
	f := reports.Filter{Since: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)}
	for i := 1; i < c.N; i++ {
		if r := Synth(i); len(r.Policies[0].FailureDetails) > 0 {
			f.Organization, f.PolicyDomain = r.OrganizationName, r.Policies[0].Policy.Domain
			f.ResultType = string(r.Policies[0].FailureDetails[0].ResultType)
			break
		}
	}
	start = time.Now()
	fails, err := st.Failures(ctx, f)
	res.Failures = time.Since(start)
	if err != nil {
		return res, err
	}
	res.FailuresRows = len(fails)
	// Closing checkpoints SQLite's WAL into the file before measuring.
	if err := st.Close(); err != nil {
		return res, err
	}
	if res.BytesOnDisk, err = size(); err != nil {
		return res, err
	}
	res.BytesPerReport = float64(res.BytesOnDisk) / float64(c.N)
	return res, nil
}
