// Command reports benchmarks the TLS report store (internal/reports):
// ingest N synthetic reports (varied organisations, policy domains,
// policy types and failure details, built with the tlsrpt builders and
// gzipped as senders POST them) into SQLite or PostgreSQL, then time the
// summary query and a filtered failures query. With -mails it times the
// parse of whole report mails instead, side by side with mox's parser
// (-mox). See README.md.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Config of one run.
type Config struct {
	N     int
	DB    string // sqlite:PATH or postgres://…
	Batch int    // reports per transaction (1: one commit per report)
	// Writers, when above 0, replaces the batched ingest by that many
	// goroutines each storing one report per PutReport call, as
	// concurrent HTTP POSTs do; with Group through a GroupCommit.
	Writers int
	Group   bool
	// Schema is the PostgreSQL schema, dropped and recreated before the
	// run and dropped after it unless Keep.
	Schema string
	// Reuse skips the ingest and queries the existing database (SQLite
	// file or PostgreSQL schema from a run with Keep): repeat runs of the
	// queries without the 2-minute ingest.
	Reuse bool
	Keep  bool
	// Repeat runs each query this many times (at least 1).
	Repeat int
	// HTTP is the number of concurrent clients of the side-by-side
	// comparison (-http, Compare).
	HTTP int
	// StdClient makes those clients net/http's Client instead of the
	// lean HTTP/1.1 writer (rawPoster).
	StdClient bool

	// profile, when set, receives a CPU profile of the ingest.
	profile io.Writer
}

// Results of one run.
type Results struct {
	Reports int
	// Open is the time to open the store, including schema migrations
	// (with Reuse: migrating a database written by an older mailsts).
	Open          time.Duration
	Ingest        time.Duration
	ReportsPerSec float64
	// IngestCPU is the process's CPU time (user + system, every
	// goroutine: the store's background fold too) per report over the
	// timed ingest, which moves less than wall time on a shared machine.
	IngestCPU      time.Duration
	BytesOnDisk    int64
	BytesPerReport float64
	Queries        []QueryResult
}

// QueryResult is one timed query: the first run and the fastest of
// Config.Repeat runs.
type QueryResult struct {
	Name        string
	Rows        int
	First, Best time.Duration
}

func main() {
	var c Config
	flag.IntVar(&c.N, "n", 100000, "number of reports")
	flag.StringVar(&c.DB, "db", "sqlite:"+filepath.Join(os.TempDir(), "mailsts-bench-reports.db"), "sqlite:PATH (removed first) or postgres://…")
	flag.IntVar(&c.Batch, "batch", 100, "reports per transaction")
	flag.IntVar(&c.Writers, "writers", 0, "concurrent PutReport callers instead of batches (as HTTP POSTs)")
	flag.BoolVar(&c.Group, "group", false, "with -writers: through sqlstore.GroupCommit")
	flag.StringVar(&c.Schema, "schema", "bench_reports", "PostgreSQL schema (dropped and recreated; dropped after the run unless -keep)")
	flag.BoolVar(&c.Reuse, "reuse", false, "skip the ingest and query the existing database")
	flag.BoolVar(&c.Keep, "keep", false, "keep the PostgreSQL schema after the run")
	flag.IntVar(&c.Repeat, "repeat", 3, "runs of each query")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the ingest (its timed part; with -mails, mailsts's first pass) to this `file`")
	flag.IntVar(&c.HTTP, "http", 0, "compare instead: the batch path against this many concurrent HTTP POST clients, side by side")
	flag.BoolVar(&c.StdClient, "stdclient", false, "with -http: the clients are net/http's Client (the figures before 2026-12-07 02:40 UTC) instead of a lean HTTP/1.1 writer")
	rounds := flag.Int("rounds", 3, "with -http: rounds, each batch then HTTP into fresh databases; with -mails: rounds, each mailsts then each peer")
	mails := flag.Int("mails", 0, "parse instead: this many synthetic report mails, with mailsts's tlsrpt.ParseMessage")
	mox := flag.Bool("mox", false, "with -mails: also with mox's tlsrpt.ParseMessage (builds bench/reports/moxparse with go), rounds alternated")
	moxBin := flag.String("moxbin", "", "with -mails: the mox peer already built (`path` of a moxparse binary); implies -mox")
	parsedmarc := flag.Bool("parsedmarc", false, "with -mails: also with parsedmarc's parse_report_email (bench/reports/parsedmarcparse.py), rounds alternated")
	python := flag.String("python", "python3", "with -parsedmarc: the Python interpreter")
	pythonPath := flag.String("parsedmarc-path", "", "with -parsedmarc: PYTHONPATH of parsedmarc run from source (`dirs` of parsedmarc, mail-parser and publicsuffixlist, colon-separated)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.profile = f
	}
	if *mails > 0 {
		mc := MailConfig{N: *mails, Rounds: *rounds, profile: c.profile}
		if *parsedmarc || *pythonPath != "" {
			mc.Peers = append(mc.Peers, ParsedmarcPeer(*python, *pythonPath))
		}
		if err := runMails(mc, *mox || *moxBin != "", *moxBin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if c.HTTP > 0 {
		rs, err := Compare(context.Background(), c, *rounds, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("db=%s n=%d batch=%d http clients=%d\n", strings.SplitN(c.DB, ":", 2)[0], c.N, c.Batch, c.HTTP)
		printRange(os.Stdout, rs)
		return
	}
	r, err := Run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("db=%s n=%d batch=%d\n", strings.SplitN(c.DB, ":", 2)[0], r.Reports, c.Batch)
	fmt.Printf("open:     %v (with migrations)\n", r.Open.Round(time.Millisecond))
	if !c.Reuse {
		fmt.Printf("ingest:   %v, %.0f reports/s, CPU %v/report\n", r.Ingest.Round(time.Millisecond), r.ReportsPerSec, r.IngestCPU.Round(time.Microsecond))
	}
	fmt.Printf("disk:     %d bytes, %.0f bytes/report\n", r.BytesOnDisk, r.BytesPerReport)
	for _, q := range r.Queries {
		fmt.Printf("%-52s %6d rows  first %9v  best of %d %9v\n", q.Name, q.Rows, q.First.Round(time.Microsecond),
			max(c.Repeat, 1), q.Best.Round(time.Microsecond))
	}
}

// runMails is the -mails mode: the mox peer built first when asked for
// (and moxBin is not given), then CompareMails and its table.
func runMails(c MailConfig, mox bool, moxBin string) error {
	ctx := context.Background()
	if mox && moxBin == "" {
		dir, err := os.MkdirTemp("", "mailsts-bench-moxparse-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if moxBin, err = BuildMox(ctx, dir); err != nil {
			return err
		}
	}
	if mox {
		c.Peers = append([]MailPeer{MoxPeer(moxBin)}, c.Peers...)
	}
	rs, err := CompareMails(ctx, c, os.Stdout)
	if err != nil {
		return err
	}
	printMails(os.Stdout, rs, c.Peers)
	return nil
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

// store is an open benchmark database.
type store struct {
	reports.Store
	size    func() (int64, error) // bytes on disk, after Close
	cleanup func() error          // drops the PostgreSQL schema (unless Keep)
}

func open(ctx context.Context, c Config) (*store, error) {
	if strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://") {
		return openPostgres(ctx, c)
	}
	path := strings.TrimPrefix(c.DB, "sqlite:")
	if !c.Reuse {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("-reuse: %w", err)
	}
	st, err := sqlstore.OpenSQLite(ctx, path, nil)
	if err != nil {
		return nil, err
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
	return &store{Store: st, size: size, cleanup: func() error { return nil }}, nil
}

func openPostgres(ctx context.Context, c Config) (*store, error) {
	schema := c.Schema
	if schema == "" {
		schema = "bench_reports"
	}
	if !validSchema(schema) {
		return nil, fmt.Errorf("schema %q: want [a-z_][a-z0-9_]*", schema)
	}
	admin, err := sql.Open("pgx", c.DB)
	if err != nil {
		return nil, err
	}
	if !c.Reuse {
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE; CREATE SCHEMA `+schema); err != nil {
			admin.Close()
			return nil, err
		}
	}
	sep := "?"
	if strings.Contains(c.DB, "?") {
		sep = "&"
	}
	st, err := sqlstore.OpenPostgres(ctx, c.DB+sep+"search_path="+schema, nil)
	if err != nil {
		admin.Close()
		return nil, err
	}
	size := func() (int64, error) {
		var n int64
		err := admin.QueryRowContext(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&n)
		return n, err
	}
	cleanup := func() error {
		defer admin.Close()
		if c.Keep {
			return nil
		}
		_, err := admin.ExecContext(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
		return err
	}
	return &store{Store: st, size: size, cleanup: cleanup}, nil
}

func validSchema(s string) bool {
	for i, r := range s {
		if !(r == '_' || 'a' <= r && r <= 'z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}

// Run ingests c.N reports (unless c.Reuse) and times the queries.
func Run(ctx context.Context, c Config) (res Results, err error) {
	if c.Batch < 1 {
		c.Batch = 1
	}
	start := time.Now()
	st, err := open(ctx, c)
	if err != nil {
		return res, err
	}
	res.Open = time.Since(start)
	defer func() {
		st.Close()
		if cerr := st.cleanup(); cerr != nil && err == nil {
			err = fmt.Errorf("drop schema: %w", cerr)
		}
	}()
	res.Reports = c.N
	if !c.Reuse {
		ingestFn := ingest
		if c.Writers > 0 {
			ingestFn = ingestConcurrent
		}
		if c.profile != nil && c.Writers > 0 {
			if err := pprof.StartCPUProfile(c.profile); err != nil {
				return res, err
			}
		}
		err := ingestFn(ctx, st, c, &res)
		if c.profile != nil && c.Writers > 0 {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return res, err
		}
	}
	for _, q := range queries(c.N) {
		qr := QueryResult{Name: q.name}
		for i := range max(c.Repeat, 1) {
			start := time.Now()
			n, err := q.run(ctx, st)
			d := time.Since(start)
			if err != nil {
				return res, fmt.Errorf("%s: %w", q.name, err)
			}
			if i == 0 {
				qr.First, qr.Best, qr.Rows = d, d, n
			}
			qr.Best = min(qr.Best, d)
		}
		res.Queries = append(res.Queries, qr)
	}
	// Closing checkpoints SQLite's WAL into the file before measuring.
	if err := st.Close(); err != nil {
		return res, err
	}
	if res.BytesOnDisk, err = st.size(); err != nil {
		return res, err
	}
	res.BytesPerReport = float64(res.BytesOnDisk) / float64(c.N)
	return res, nil
}

// ingestConcurrent stores the reports one per PutReport call from
// c.Writers goroutines. The reports are built and gzipped first, so only
// the store is timed.
func ingestConcurrent(ctx context.Context, st *store, c Config, res *Results) error {
	now := time.Now().UTC()
	ins := make([]reports.Incoming, c.N)
	for i := range ins {
		r := Synth(i)
		raw, err := tlsrpt.MarshalGzip(r)
		if err != nil {
			return err
		}
		ins[i] = reports.Incoming{Report: r, Raw: raw, Source: reports.SourceHTTP, Origin: "bench", ReceivedAt: now, Problems: r.Problems(now)}
	}
	var put reports.Store = st.Store
	if c.Group {
		put = &sqlstore.GroupCommit{Store: st.Store}
	}
	next := make(chan reports.Incoming)
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range c.Writers {
		g.Go(func() error {
			for in := range next {
				if _, err := put.PutReport(ctx, in); err != nil {
					return err
				}
			}
			return nil
		})
	}
feed:
	for _, in := range ins {
		select {
		case next <- in:
		case <-gctx.Done(): // a writer failed
			break feed
		}
	}
	close(next)
	if err := g.Wait(); err != nil {
		return err
	}
	if err := fold(ctx, st.Store); err != nil {
		return err
	}
	res.Ingest = time.Since(start)
	res.ReportsPerSec = float64(c.N) / res.Ingest.Seconds()
	return nil
}

// ingest stores the reports through PutReports, c.Batch per
// transaction. The reports are built and gzipped first (the senders'
// work, not the store's), and the garbage of that is collected before
// the clock starts: built between the timed calls, as before, its
// allocation and collection (gzip's state, about 1 MB a writer before
// tlsrpt.MarshalGzip reused them) ran on the same two cores as the
// store, and were a quarter of the process's CPU.
func ingest(ctx context.Context, st *store, c Config, res *Results) error {
	now := time.Now().UTC()
	ins := make([]reports.Incoming, c.N)
	for i := range ins {
		r := Synth(i)
		raw, err := tlsrpt.MarshalGzip(r)
		if err != nil {
			return err
		}
		ins[i] = reports.Incoming{Report: r, Raw: raw, Source: reports.SourceHTTP, Origin: "bench",
			ReceivedAt: now, Problems: r.Problems(now)}
	}
	runtime.GC()
	if c.profile != nil {
		// The timed part only.
		if err := pprof.StartCPUProfile(c.profile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu := time.Now(), cpuTime()
	for len(ins) > 0 {
		n := min(len(ins), c.Batch)
		if _, err := st.PutReports(ctx, ins[:n]); err != nil {
			return err
		}
		ins = ins[n:]
	}
	// The rollup of every report stored, included in the time.
	if err := fold(ctx, st.Store); err != nil {
		return err
	}
	res.Ingest = time.Since(start)
	res.IngestCPU = (cpuTime() - cpu) / time.Duration(c.N)
	res.ReportsPerSec = float64(c.N) / res.Ingest.Seconds()
	return nil
}

// fold adds the reports that the store has not yet added to its
// summary rollup (sqlstore's deferred fold: PutReports stores a
// report's rows, and the rollup is written later, many reports at a
// time). The ingest timings stop after it, so that they include all the
// work of storing the reports, the rollup's included.
func fold(ctx context.Context, st reports.Store) error {
	if f, ok := st.(interface{ Fold(context.Context) error }); ok {
		return f.Fold(ctx)
	}
	return nil
}

type query struct {
	name string
	run  func(context.Context, reports.Store) (int, error)
}

func summary(name string, f reports.Filter) query {
	return query{"summary " + name, func(ctx context.Context, st reports.Store) (int, error) {
		rows, err := st.Summary(ctx, f)
		return len(rows), err
	}}
}

func failures(name string, f reports.Filter) query {
	return query{"failures " + name, func(ctx context.Context, st reports.Store) (int, error) {
		rows, err := st.Failures(ctx, f)
		return len(rows), err
	}}
}

// queries are the timed queries: Summary under every grouping the CLI
// offers alone, the default and some pairs, with each filter; Failures
// unfiltered and filtered.
func queries(n int) []query {
	g := func(keys ...string) reports.Filter { return reports.Filter{GroupBy: keys} }
	month := func(f reports.Filter) reports.Filter {
		f.Since = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		f.Until = time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)
		return f
	}
	// The failures of one organisation and result type at one policy
	// domain over a month: the question "why does X fail to reach us".
	one := reports.Filter{}
	for i := 1; i < n; i++ {
		if r := Synth(i); len(r.Policies[0].FailureDetails) > 0 {
			one.Organization, one.PolicyDomain = r.OrganizationName, r.Policies[0].Policy.Domain
			one.ResultType = string(r.Policies[0].FailureDetails[0].ResultType)
			one.MXHost = r.Policies[0].Policy.MXHost[0]
			break
		}
	}
	byDomain := reports.Filter{PolicyDomain: one.PolicyDomain}
	byOrg := month(reports.Filter{Organization: one.Organization})
	byResult := reports.Filter{ResultType: one.ResultType}
	byMX := reports.Filter{MXHost: one.MXHost}
	withGroup := func(f reports.Filter, keys ...string) reports.Filter { f.GroupBy = keys; return f }
	specific := month(one)
	specific.MXHost = ""
	return []query{
		summary("(day,domain,org) [default]", reports.Filter{}),
		summary("(day)", g(reports.GroupDay)),
		summary("(domain)", g(reports.GroupPolicyDomain)),
		summary("(org)", g(reports.GroupOrganization)),
		summary("(mx)", g(reports.GroupMXHost)),
		summary("(type)", g(reports.GroupPolicyType)),
		summary("(result)", g(reports.GroupResultType)),
		summary("(org,result)", g(reports.GroupOrganization, reports.GroupResultType)),
		summary("(day,domain,org,mx,type,result)", g(reports.GroupDay, reports.GroupPolicyDomain, reports.GroupOrganization,
			reports.GroupMXHost, reports.GroupPolicyType, reports.GroupResultType)),
		summary("(day) domain=D", withGroup(byDomain, reports.GroupDay)),
		summary("(day,result) domain=D", withGroup(byDomain, reports.GroupDay, reports.GroupResultType)),
		summary("(day,domain) org=O month", withGroup(byOrg, reports.GroupDay, reports.GroupPolicyDomain)),
		summary("(org) result=R", withGroup(byResult, reports.GroupOrganization)),
		summary("(day) mx=H [policy rows]", withGroup(byMX, reports.GroupDay)),
		failures("org=O domain=D result=R month", specific),
		failures("(no filter, limit 1000)", reports.Filter{}),
		failures("domain=D", byDomain),
		failures("org=O month", byOrg),
		failures("result=R", byResult),
		failures("mx=H", byMX),
	}
}
