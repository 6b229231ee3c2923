package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/mailbox"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/tlsrpt"
)

var tlsrptCommand = command{
	name:    "tlsrpt",
	summary: "receive, store and query SMTP TLS reports (RFC 8460)",
	run:     runTLSRPT,
}

// Exit codes of `mailsts tlsrpt ingest`, from sysexits(3) so that an MTA
// pipe (Postfix pipe(8), .forward) does the right thing.
const (
	// ExitRejected: the input is not an acceptable report; it was kept as
	// rejected input (`mailsts tlsrpt rejected`). The MTA bounces it
	// unless --reject-exit 0 is given. EX_DATAERR.
	ExitRejected = 65
	// ExitTempFail: storage, configuration or a DKIM key lookup failed;
	// nothing was stored and the MTA should retry (Postfix pipe(8) retries
	// on 75 and 71 only; every other code bounces the report). EX_TEMPFAIL.
	ExitTempFail = 75
)

const tlsrptHelp = `
Subcommands:
  ingest     store reports: one mail on stdin (MTA pipe), files, a Maildir or IMAP
  summary    session counts and success rate per day, domain, organisation, MX, result
  failures   failure details, filterable
  show       one report by report-id, with its repairs, problems and raw input
  rejected   input that was not stored as a report, and why
  prune      delete reports, their rollup and rejected input before a day
  collect    collect libtlsrpt results of this MTA and build the daily reports to send
  outbox     the reports this site sends: pending, sent, failed, suppressed; send, retry

The database is --db sqlite:PATH or --db postgres://USER@HOST/DB (add
?search_path=SCHEMA for another schema). The default is SQLite at
reports.db in the state directory: $STATE_DIRECTORY, else /var/lib/mailsts
as root, else $XDG_STATE_HOME/mailsts or ~/.local/state/mailsts.
--config FILE reads the same settings from YAML (see docs/tlsrpt.md);
flags override it.

Run 'mailsts tlsrpt <subcommand> --help' for its flags and examples.
`

func runTLSRPT(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 {
		return usageError(env.Stderr, "tlsrpt", "missing subcommand: ingest, summary, failures, show, rejected, prune, collect or outbox")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(env.Stdout, "Usage: mailsts tlsrpt <subcommand> [flags]\n%s", tlsrptHelp)
		return ExitOK
	}
	switch args[0] {
	case "ingest":
		return runTLSRPTIngest(ctx, env, args[1:])
	case "summary", "failures", "show", "rejected":
		return runTLSRPTQuery(ctx, env, args[0], args[1:])
	case "prune":
		return runTLSRPTPrune(ctx, env, args[1:])
	case "collect":
		return runTLSRPTCollect(ctx, env, args[1:])
	case "outbox":
		return runTLSRPTOutbox(ctx, env, args[1:])
	}
	return usageError(env.Stderr, "tlsrpt", "unknown subcommand %q", args[0])
}

// dbFlags select the database and the configuration file.
type dbFlags struct {
	config string
	db     string
}

func (d *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.config, "config", "", "YAML configuration `file` (optional)")
	fs.StringVar(&d.db, "db", "", "database: sqlite:`PATH` or postgres://… (default sqlite in the state directory)")
}

func (d *dbFlags) open(ctx context.Context, env Env, log *slog.Logger) (*reports.Config, reports.Store, error) {
	cfg, err := reports.LoadConfig(d.config)
	if err != nil {
		return nil, nil, err
	}
	if d.db != "" {
		cfg.DB = d.db
	}
	st, err := sqlstore.Open(ctx, cfg.DB, policyd.DefaultStateDir(env.getenv), log)
	if errors.Is(err, sqlstore.ErrBadSpec) {
		err = fmt.Errorf("--db %w", err)
	}
	return cfg, st, err
}

const ingestHelp = `
Without arguments, reads one mail message from stdin (for an MTA pipe or
.forward); a JSON or gzip report on stdin is taken as a report body. FILE
arguments are report files (.json, .json.gz, .zip) or mail messages (.eml).
--maildir processes DIR/new and DIR/cur, moving each message to the
Processed or Rejected Maildir++ subfolder. --imap polls a mailbox over TLS
(imaps://, or imap:// with STARTTLS), moving messages to folders; the
password comes from --imap-password-file or $MAILSTS_IMAP_PASSWORD.

RFC 8460 §3: mail without a valid DKIM signature of the reporting
organisation (the submitter's domain, a parent or a child of it: Mail.ru
signs mail.ru reports as corp.mail.ru) is ignored; it is kept as
rejected input. Use --dkim off only when the MTA
verifies DKIM already. Duplicates (same organisation, report-id and
content) are acknowledged and stored once; a report with the organisation
and report-id of a stored one but other content is stored too and both are
flagged as a conflict (see docs/tlsrpt.md). Mail reports signed by their
organisation are recorded as authenticated; files and --dkim off input
are not.

Postfix master.cf:
  tlsrpt unix - n n - - pipe flags=Rq user=mailsts argv=/usr/bin/mailsts tlsrpt ingest
.forward:
  "|/usr/bin/mailsts tlsrpt ingest"

Examples:
  mailsts tlsrpt ingest < report.eml
  mailsts tlsrpt ingest --dkim off google.com!example.org!1700000000!1700086399.json.gz
  mailsts tlsrpt ingest --maildir ~/Maildir/.TLSRPT
  mailsts tlsrpt ingest --imap imaps://imap.example.org/TLSRPT --imap-user tlsrpt --poll 10m
  mailsts tlsrpt ingest --config /etc/mailsts/reports.yml --check-config

Logging: log.level and log.format (text or json) in --config, to stderr;
--log-level overrides the level (default warn). --check-config checks the
configuration and the flags (database spec, DKIM, IMAP URL, password and
CA files, Maildir) without opening the database or connecting, prints one
line and exits 0, or with the code a run would have.

Exit codes (sysexits; Postfix pipe(8) retries on 75 and bounces on the
others, so every fault that an administrator can fix is 75):
  0  stored (or a duplicate of a stored report); --check-config: valid
  64 usage error: bad flags, a --db that is not sqlite: or postgres://,
     a FILE or --maildir directory that does not exist
  65 rejected (kept for inspection; see 'mailsts tlsrpt rejected'); --reject-exit changes it
  75 temporary failure, nothing stored, retry: the database or the state
     directory cannot be opened or written, the --config file cannot be
     read or parsed, DNS for DKIM cannot be set up, a DKIM key lookup
     failed, the input could not be read, a Maildir could not be updated
`

func runTLSRPTIngest(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("tlsrpt ingest", "mailsts tlsrpt ingest [flags] [FILE...]", ingestHelp, env.Stderr)
	var df dbFlags
	df.register(fs)
	dkimMode := fs.String("dkim", "", "require or off: DKIM check of mail input (default require)")
	dnsServers := fs.String("dns", "", "DNS `servers` for DKIM keys, comma-separated (default /etc/resolv.conf)")
	maildir := fs.String("maildir", "", "process the Maildir `DIR`")
	processed := fs.String("processed-folder", "", "folder for processed messages (Maildir default .Processed, IMAP Processed)")
	rejected := fs.String("rejected-folder", "", "folder for rejected messages (Maildir default .Rejected, IMAP Rejected)")
	imapURL := fs.String("imap", "", "poll the IMAP mailbox `URL` (imaps://host[:port]/MAILBOX)")
	imapUser := fs.String("imap-user", "", "IMAP login `name` (default: the URL's user)")
	imapPassFile := fs.String("imap-password-file", "", "`file` holding the IMAP password (else $MAILSTS_IMAP_PASSWORD)")
	imapCA := fs.String("imap-ca-file", "", "PEM `file` of CAs to trust for the IMAP server")
	poll := fs.Duration("poll", 0, "with --imap or --maildir: repeat every `interval` until stopped (0: once)")
	rejectExit := fs.Int("reject-exit", ExitRejected, "exit `code` for rejected input (0 keeps the MTA from bouncing it)")
	var lf logFlags
	lf.register(fs, "warn")
	check := checkConfigFlag(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *dkimMode != "" && *dkimMode != "require" && *dkimMode != "off" {
		// Refused before the database is opened (or created).
		return usageError(env.Stderr, "tlsrpt ingest", "--dkim %q: want require or off", *dkimMode)
	}
	if err := lf.check(); err != nil {
		return usageError(env.Stderr, "tlsrpt ingest", "%v", err)
	}
	// Configuration faults: the MTA keeps the report and retries while
	// the administrator fixes them.
	tempFail := func(format string, args ...any) int {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: "+format+"\n", args...)
		return ExitTempFail
	}
	cfg, err := reports.LoadConfig(df.config)
	if err != nil {
		return tempFail("%v", err)
	}
	if df.db != "" {
		cfg.DB = df.db
	}
	if err := sqlstore.CheckSpec(cfg.DB); err != nil {
		return usageError(env.Stderr, "tlsrpt ingest", "db: %v", err)
	}
	cfg.Log = lf.apply(cfg.Log)
	if err := cfg.Log.Validate(); err != nil {
		return tempFail("%v", err)
	}
	log, _ := newLog(env.Stderr, cfg.Log)
	if *dkimMode != "" {
		cfg.DKIM = *dkimMode
	}
	if cfg.DKIM != "" && cfg.DKIM != "require" && cfg.DKIM != "off" {
		return usageError(env.Stderr, "tlsrpt ingest", "dkim %q: want require or off", cfg.DKIM)
	}
	if *maildir != "" {
		cfg.Maildir.Dir = *maildir
	}
	if *imapURL != "" {
		cfg.IMAP.URL = *imapURL
	}
	for _, s := range []struct {
		flag string
		dst  *string
	}{{*processed, &cfg.Maildir.Processed}, {*rejected, &cfg.Maildir.Rejected}, {*processed, &cfg.IMAP.Processed},
		{*rejected, &cfg.IMAP.Rejected}, {*imapUser, &cfg.IMAP.Username}, {*imapPassFile, &cfg.IMAP.PasswordFile}, {*imapCA, &cfg.IMAP.CAFile}} {
		if s.flag != "" {
			*s.dst = s.flag
		}
	}
	if *poll > 0 {
		cfg.IMAP.Poll = *poll
	}
	var dkimResolver *dnsresolve.Client
	if cfg.DKIM != "off" {
		servers := cfg.DNS
		if *dnsServers != "" {
			servers = reports.SplitList(*dnsServers)
		}
		if dkimResolver, err = dnsresolve.NewClient(servers...); err != nil {
			return tempFail("DNS for DKIM: %v", err)
		}
	}
	var imapClient *mailbox.IMAP
	if cfg.IMAP.URL != "" {
		var code int
		if imapClient, code = newIMAPClient(env, cfg, log); imapClient == nil {
			return code
		}
	}
	if *check {
		var from string
		switch {
		case cfg.IMAP.URL != "":
			every := "once"
			if cfg.IMAP.Poll > 0 {
				every = "every " + cfg.IMAP.Poll.String()
			}
			from = "IMAP " + termSafe(cfg.IMAP.URL) + " " + every
		case cfg.Maildir.Dir != "":
			if fi, err := os.Stat(cfg.Maildir.Dir); err != nil || !fi.IsDir() {
				return usageError(env.Stderr, "tlsrpt ingest", "maildir %s: not a directory", cfg.Maildir.Dir)
			}
			every := "once"
			if *poll > 0 {
				every = "every " + poll.String()
			}
			from = "Maildir " + termSafe(cfg.Maildir.Dir) + " " + every
		case fs.NArg() > 0:
			from = plural(fs.NArg(), "file", "files")
		default:
			from = "stdin"
		}
		db := cmpOr(cfg.DB, "sqlite:"+filepath.Join(policyd.DefaultStateDir(env.getenv), sqlstore.DefaultFile))
		return configOK(env.Stdout, "tlsrpt ingest", "from %s, DKIM %s, database %s, log %s/%s",
			from, cmpOr(cfg.DKIM, "require"), redactDB(db), cfg.Log.Level, cfg.Log.Format)
	}
	st, err := sqlstore.Open(ctx, cfg.DB, policyd.DefaultStateDir(env.getenv), log)
	if err != nil {
		return tempFail("%v", err)
	}
	defer st.Close()
	in := &ingest.Ingester{Store: st, Logger: log, RejectedBudget: cfg.RejectedBudget,
		Limits: tlsrpt.Limits{MaxInput: cfg.MaxInput, MaxOutput: cfg.MaxOutput}}
	if cfg.DKIM == "off" {
		in.DKIM = ingest.DKIMOff
	} else {
		in.Resolver = dkimResolver
	}
	exit := func(res ingest.Result, err error) int {
		switch {
		case errors.Is(err, os.ErrNotExist):
			// A named input that does not exist never will: retrying
			// forever helps nobody.
			return usageError(env.Stderr, "tlsrpt ingest", "%v", err)
		case err != nil:
			fmt.Fprintf(env.Stderr, "mailsts tlsrpt ingest: %v\n", err)
			return ExitTempFail
		case res.Outcome == ingest.OutcomeRejected:
			return *rejectExit
		}
		return ExitOK
	}
	switch {
	case imapClient != nil:
		imapClient.Ingester = in
		return runIMAPIngest(ctx, env, cfg, imapClient, log)
	case cfg.Maildir.Dir != "":
		md := &mailbox.Maildir{Dir: cfg.Maildir.Dir, Processed: cfg.Maildir.Processed, Rejected: cfg.Maildir.Rejected, Ingester: in, Logger: log}
		for {
			stats, err := md.Run(ctx)
			fmt.Fprintf(env.Stdout, "%s: %s\n", cfg.Maildir.Dir, stats)
			if err != nil {
				return exit(ingest.Result{}, err)
			}
			if *poll <= 0 || !sleepCtx(ctx, *poll) {
				return ExitOK
			}
		}
	case fs.NArg() > 0:
		worst := ExitOK
		for _, name := range fs.Args() {
			res, err := ingestFile(ctx, in, name)
			code := exit(res, err)
			printResult(env.Stdout, name, res)
			// A temporary failure wins (retry), then usage, then rejected.
			if code == ExitTempFail || worst == ExitOK || code == ExitUsage && worst != ExitTempFail {
				worst = code
			}
		}
		return worst
	default:
		br := bufio.NewReader(env.Stdin)
		head, _ := br.Peek(512)
		var res ingest.Result
		var err error
		if looksLikeBody(head) {
			res, err = in.Body(ctx, br, "", -1, reports.SourceFile, "stdin")
		} else {
			res, err = in.Message(ctx, br, reports.SourceMail, "")
		}
		printResult(env.Stdout, "stdin", res)
		return exit(res, err)
	}
}

// looksLikeBody: gzip or zip magic, or JSON, rather than a mail message.
func looksLikeBody(b []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	return bytes.HasPrefix(b, []byte{0x1f, 0x8b}) || bytes.HasPrefix(b, []byte("PK\x03\x04")) || bytes.HasPrefix(t, []byte("{"))
}

func ingestFile(ctx context.Context, in *ingest.Ingester, name string) (ingest.Result, error) {
	f, err := os.Open(name)
	if err != nil {
		return ingest.Result{}, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	src := io.MultiReader(bytes.NewReader(head), f)
	fi, _ := f.Stat()
	size := int64(-1)
	if fi != nil {
		size = fi.Size()
	}
	if looksLikeBody(head) {
		return in.Body(ctx, src, "", size, reports.SourceFile, name)
	}
	return in.Message(ctx, src, reports.SourceFile, name)
}

func printResult(w io.Writer, name string, res ingest.Result) {
	for _, r := range res.Reports {
		word := "stored"
		if r.Duplicate {
			word = "duplicate"
		}
		extra := ""
		if r.Conflict {
			extra += " conflict=another report with this organisation and report-id differs"
		}
		if len(r.Problems) > 0 {
			extra += " problems=" + strings.Join(r.Problems, ",")
		}
		fmt.Fprintf(w, "%s: %s %q from %q (%s)%s\n", termSafe(name), word, r.ReportID, r.Organization, plural(r.Repairs, "repair", "repairs"), extra)
	}
	for _, r := range res.Rejections {
		// The error may quote the input (a header line, a JSON token):
		// escaped, never echoed raw.
		fmt.Fprintf(w, "%s: rejected (%s, kept as #%d): %s\n", termSafe(name), r.Reason, r.ID, termSafe(fmt.Sprint(r.Err)))
	}
}

// sleepCtx waits d or until ctx ends; it reports whether to go on.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

const queryHelp = `
Filters: --since/--until YYYY-MM-DD (UTC day of the report, inclusive),
--domain (policy domain), --org (organization-name), --mx (an MX host of
the policy, or the receiving MX in failures), --result (result type).
summary --group-by takes a comma list of day, domain, org, mx, type,
result (default day,domain,org). --authenticated-only keeps the reports
known to come from their organisation (mail signed by its DKIM domain;
HTTPS reports never are, RFC 8460 §5.3). Summary counts one report per
organisation and report-id even when conflicting copies are stored. Grouped by result, successful sessions
are the row "(success)" and failures without details "(no-details)".
Output is a table, or --json, or --csv.

Examples:
  mailsts tlsrpt summary --since 2025-01-01 --domain example.org
  mailsts tlsrpt summary --group-by org,result --json
  mailsts tlsrpt failures --result certificate-expired --mx mx1.example.org --csv
  mailsts tlsrpt summary --authenticated-only --group-by org
  mailsts tlsrpt show 2025-01-10T00:00:00Z_example.org
  mailsts tlsrpt rejected
  mailsts tlsrpt rejected --raw 12 > input.bin
  mailsts tlsrpt show --raw 2025-01-10T00:00:00Z_example.org | gunzip

--raw writes the input as received (often gzip); on a terminal it is
refused unless --force is given.

Exit codes:
  0  results printed (possibly none)
  1  show: no such report
  2  database error
  64 usage error
`

func runTLSRPTQuery(ctx context.Context, env Env, sub string, args []string) int {
	synopsis := map[string]string{
		"summary":  "mailsts tlsrpt summary [--since D] [--until D] [--domain D] [--org O] [--mx H] [--result R] [--group-by K,…] [--authenticated-only] [--json|--csv]",
		"failures": "mailsts tlsrpt failures [--since D] [--until D] [--domain D] [--org O] [--mx H] [--result R] [--limit N] [--authenticated-only] [--json|--csv]",
		"show":     "mailsts tlsrpt show [--json | --raw [--force]] [--authenticated-only] REPORT-ID",
		"rejected": "mailsts tlsrpt rejected [--since D] [--until D] [--limit N] [--json|--csv] [--raw ID [--force]]",
	}[sub]
	fs := newFlagSet("tlsrpt "+sub, synopsis, queryHelp, env.Stderr)
	var df dbFlags
	df.register(fs)
	// Each subcommand registers only the flags it honours, so that any
	// other is refused as unknown (show --csv and --org used to be
	// accepted and ignored).
	takes := map[string]string{
		"summary":  "since until domain org mx result group-by json csv authenticated-only",
		"failures": "since until domain org mx result limit json csv authenticated-only",
		"show":     "json raw force authenticated-only",
		"rejected": "since until limit json csv raw force",
	}[sub]
	str := func(name, usage string) *string {
		v := new(string)
		if slices.Contains(strings.Fields(takes), name) {
			fs.StringVar(v, name, "", usage)
		}
		return v
	}
	boolean := func(name, usage string) *bool {
		v := new(bool)
		if slices.Contains(strings.Fields(takes), name) {
			fs.BoolVar(v, name, false, usage)
		}
		return v
	}
	since := str("since", "first `day` (YYYY-MM-DD)")
	until := str("until", "last `day` (YYYY-MM-DD)")
	domain := str("domain", "policy `domain`")
	org := str("org", "sending `organization`")
	mx := str("mx", "MX `host`")
	result := str("result", "result `type`")
	groupBy := str("group-by", "summary `keys`: day, domain, org, mx, type, result")
	limit := new(int)
	if slices.Contains(strings.Fields(takes), "limit") {
		fs.IntVar(limit, "limit", 0, "at most `N` rows (default 1000)")
	}
	asJSON := boolean("json", "print JSON")
	asCSV := boolean("csv", "print CSV")
	force := boolean("force", "with --raw: write the raw bytes even to a terminal")
	authOnly := boolean("authenticated-only", "only reports authenticated as their organisation's (DKIM-signed mail)")
	rawShow, rawID := new(bool), new(int64)
	switch sub {
	case "show":
		fs.BoolVar(rawShow, "raw", false, "print the raw input as received instead")
	case "rejected":
		fs.Int64Var(rawID, "raw", 0, "print the raw input of rejected input `ID`")
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *asJSON && *asCSV || *rawShow && *asJSON || *rawID != 0 && (*asJSON || *asCSV) {
		return usageError(env.Stderr, "tlsrpt "+sub, "--json, --csv and --raw exclude each other")
	}
	if *force && !*rawShow && *rawID == 0 {
		return usageError(env.Stderr, "tlsrpt "+sub, "--force applies to --raw only")
	}
	if (*rawShow || *rawID != 0) && !*force && env.isTerminal(env.Stdout) {
		// Raw input is gzip, zip or a hostile mail: bytes that can drive
		// the terminal. Redirect it, or insist.
		return usageError(env.Stderr, "tlsrpt "+sub, "refusing to write raw input (often gzip) to a terminal; redirect it to a file or pipe, or add --force")
	}
	if *limit < 0 || *rawID < 0 {
		return usageError(env.Stderr, "tlsrpt "+sub, "--limit and --raw must not be negative")
	}
	fail := func(err error) int {
		if errors.Is(err, reports.ErrBadFilter) {
			return usageError(env.Stderr, "tlsrpt "+sub, "%v", err)
		}
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt %s: %v\n", sub, err)
		return ExitError
	}
	q := map[string][]string{"since": {*since}, "until": {*until}, "domain": {*domain}, "org": {*org}, "mx": {*mx},
		"result": {*result}, "group-by": {*groupBy}, "limit": {strconv.Itoa(*limit)}, "authenticated": {strconv.FormatBool(*authOnly)}}
	f, err := reports.ParseFilter(q)
	if err != nil {
		return fail(err)
	}
	switch {
	case sub == "show" && fs.NArg() == 0:
		return usageError(env.Stderr, "tlsrpt show", "missing REPORT-ID")
	case sub == "show" && fs.NArg() > 1:
		return usageError(env.Stderr, "tlsrpt show", "one REPORT-ID expected, got %d arguments", fs.NArg())
	case sub != "show" && fs.NArg() != 0:
		return usageError(env.Stderr, "tlsrpt "+sub, "no arguments expected")
	}
	log := newLogger(env.Stderr, "text", new(slog.LevelVar))
	_, st, err := df.open(ctx, env, log)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	format := "table"
	if *asJSON {
		format = "json"
	} else if *asCSV {
		format = "csv"
	}
	switch sub {
	case "summary":
		rows, err := st.Summary(ctx, f)
		if err != nil {
			return fail(err)
		}
		return writeRows(env.Stdout, format, rows, summaryColumns(f))
	case "failures":
		rows, err := st.Failures(ctx, f)
		if err != nil {
			return fail(err)
		}
		return writeRows(env.Stdout, format, rows, failuresColumns())
	case "rejected":
		if *rawID != 0 {
			rj, err := st.RejectedRaw(ctx, *rawID)
			if err != nil {
				return fail(err)
			}
			env.Stdout.Write(rj.Raw)
			return ExitOK
		}
		rows, err := st.ListRejected(ctx, f)
		if err != nil {
			return fail(err)
		}
		return writeRows(env.Stdout, format, rows, rejectedColumns())
	default: // show
		rs, err := reports.ShowFiltered(ctx, st, fs.Arg(0), f)
		if errors.Is(err, reports.ErrNotFound) {
			fmt.Fprintf(env.Stderr, "mailsts tlsrpt show: %v\n", err)
			return ExitFailure
		}
		if err != nil {
			return fail(err)
		}
		if *rawShow {
			for _, r := range rs {
				env.Stdout.Write(r.Raw)
			}
			return ExitOK
		}
		if format == "json" {
			return writeRows(env.Stdout, format, rs, nil)
		}
		for _, r := range rs {
			writeShow(env.Stdout, r)
		}
		return ExitOK
	}
}

// writeRows prints v as JSON, or as a table or CSV of cols. Table headers
// are titles for people; CSV headers are the JSON keys and CSV numbers
// are plain numbers, as in JSON (see column).
func writeRows[T any](w io.Writer, format string, v []T, cols []column[T]) int {
	switch format {
	case "json":
		if v == nil {
			v = []T{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return ExitError
		}
	case "csv":
		if err := writeCSV(w, v, cols); err != nil {
			return ExitError
		}
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		header := make([]string, len(cols))
		for i, c := range cols {
			header[i] = c.title
		}
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range v {
			line := make([]string, len(cols))
			for i, c := range cols {
				line[i] = c.text(r)
			}
			fmt.Fprintln(tw, strings.Join(sanitize(line), "\t"))
		}
		tw.Flush()
	}
	return ExitOK
}

// sanitize keeps report content from driving the terminal (RFC 8460 §7:
// report content is untrusted): see termSafe.
func sanitize(row []string) []string {
	out := make([]string, len(row))
	for i, s := range row {
		out[i] = termSafe(s)
	}
	return out
}

func colStr[T any](f func(T) string) func(T) string { return f }

func colNum[T any](f func(T) int64) func(T) string {
	return func(r T) string { return strconv.FormatInt(f(r), 10) }
}

func colBool[T any](f func(T) bool) func(T) string {
	return func(r T) string { return strconv.FormatBool(f(r)) }
}

func summaryColumns(f reports.Filter) []column[reports.SummaryRow] {
	groups := f.GroupBy
	if len(groups) == 0 {
		groups = reports.DefaultGroupBy()
	}
	has := map[string]bool{}
	for _, g := range groups {
		has[g] = true
	}
	type R = reports.SummaryRow
	groupCols := []struct {
		group string
		col   column[R]
	}{
		{reports.GroupDay, column[R]{key: "day", title: "DAY", text: func(r R) string { return r.Day }}},
		{reports.GroupPolicyDomain, column[R]{key: "policy_domain", title: "POLICY DOMAIN", text: func(r R) string { return r.PolicyDomain }}},
		{reports.GroupOrganization, column[R]{key: "organization", title: "ORGANIZATION", text: func(r R) string { return r.Organization }}},
		{reports.GroupMXHost, column[R]{key: "mx_host", title: "MX HOST", text: func(r R) string { return r.MXHost }}},
		{reports.GroupPolicyType, column[R]{key: "policy_type", title: "POLICY TYPE", text: func(r R) string { return r.PolicyType }}},
		{reports.GroupResultType, column[R]{key: "result_type", title: "RESULT TYPE", text: func(r R) string { return r.ResultType }}},
	}
	var cols []column[R]
	for _, g := range groupCols {
		if has[g.group] {
			cols = append(cols, g.col)
		}
	}
	return append(cols,
		column[R]{key: "reports", title: "REPORTS", text: colNum(func(r R) int64 { return r.Reports })},
		column[R]{key: "successful_sessions", title: "SUCCESSFUL", text: colNum(func(r R) int64 { return r.Successful })},
		column[R]{key: "failed_sessions", title: "FAILED", text: colNum(func(r R) int64 { return r.Failed })},
		column[R]{key: "success_rate", title: "SUCCESS RATE",
			// People read a percentage; CSV has the fraction, as JSON.
			text: func(r R) string {
				if r.SuccessRate == nil {
					return "-"
				}
				return strconv.FormatFloat(*r.SuccessRate*100, 'f', 2, 64) + "%"
			},
			csv: func(r R) string {
				if r.SuccessRate == nil {
					return ""
				}
				return strconv.FormatFloat(*r.SuccessRate, 'g', -1, 64)
			}},
	)
}

func failuresColumns() []column[reports.FailureRow] {
	type R = reports.FailureRow
	return []column[R]{
		{key: "day", title: "DAY", text: colStr(func(r R) string { return r.Day })},
		{key: "organization", title: "ORGANIZATION", text: colStr(func(r R) string { return r.Organization })},
		{key: "report_id", title: "REPORT-ID", text: colStr(func(r R) string { return r.ReportID })},
		{key: "policy_type", title: "POLICY TYPE", text: colStr(func(r R) string { return r.PolicyType })},
		{key: "policy_domain", title: "POLICY DOMAIN", text: colStr(func(r R) string { return r.PolicyDomain })},
		{key: "mx_host", title: "MX HOST", text: colStr(func(r R) string { return r.MXHost })},
		{key: "result_type", title: "RESULT TYPE", text: colStr(func(r R) string { return r.ResultType })},
		{key: "sending_mta_ip", title: "SENDING MTA IP", text: colStr(func(r R) string { return r.SendingMTAIP })},
		{key: "receiving_mx_hostname", title: "RECEIVING MX", text: colStr(func(r R) string { return r.ReceivingMXHostname })},
		{key: "receiving_mx_helo", title: "RECEIVING MX HELO", text: colStr(func(r R) string { return r.ReceivingMXHelo })},
		{key: "receiving_ip", title: "RECEIVING IP", text: colStr(func(r R) string { return r.ReceivingIP })},
		{key: "failed_session_count", title: "SESSIONS", text: colNum(func(r R) int64 { return r.FailedSessionCount })},
		{key: "failure_reason_code", title: "REASON CODE", text: colStr(func(r R) string { return r.FailureReasonCode })},
		{key: "additional_information", title: "ADDITIONAL INFORMATION", text: colStr(func(r R) string { return r.AdditionalInformation })},
		{key: "authenticated", title: "AUTHENTICATED", text: colBool(func(r R) bool { return r.Authenticated })},
		{key: "conflict", title: "CONFLICT", text: colBool(func(r R) bool { return r.Conflict })},
	}
}

func rejectedColumns() []column[reports.Rejected] {
	type R = reports.Rejected
	return []column[R]{
		{key: "id", title: "ID", text: colNum(func(r R) int64 { return r.ID })},
		{key: "received_at", title: "RECEIVED", text: colStr(func(r R) string { return r.ReceivedAt.Format(time.RFC3339) })},
		{key: "source", title: "SOURCE", text: colStr(func(r R) string { return r.Source })},
		{key: "origin", title: "ORIGIN", text: colStr(func(r R) string { return r.Origin })},
		{key: "reason", title: "REASON", text: colStr(func(r R) string { return r.Reason })},
		{key: "size", title: "SIZE", text: colNum(func(r R) int64 { return r.Size })},
		{key: "truncated", title: "TRUNCATED", text: colBool(func(r R) bool { return r.Truncated })},
		{key: "detail", title: "DETAIL", text: colStr(func(r R) string { return r.Detail })},
	}
}

func writeShow(w io.Writer, r reports.StoredReport) {
	rep := r.Report
	p := func(format string, args ...any) {
		fmt.Fprintln(w, sanitize([]string{fmt.Sprintf(format, args...)})[0])
	}
	p("Report-ID:     %s", rep.ReportID)
	p("Organization:  %s", rep.OrganizationName)
	p("Contact:       %s", rep.ContactInfo)
	p("Date range:    %s to %s", tlsrpt.FormatTime(rep.DateRange.Start), tlsrpt.FormatTime(rep.DateRange.End))
	p("Received:      %s via %s %s", r.ReceivedAt.Format(time.RFC3339), r.Source, r.Origin)
	if r.DKIMDomain != "" {
		p("DKIM:          valid signature by %s", r.DKIMDomain)
	}
	if r.Authenticated {
		p("Authenticated: yes (signed by a domain of the reporting organisation)")
	} else {
		p("Authenticated: no (HTTPS, files and unsigned input cannot prove who sent them)")
	}
	if r.Conflict {
		counted := "not counted in summaries"
		if r.Counted {
			counted = "counted in summaries"
		}
		p("Conflict:      another report with this organisation and report-id has other content; this one is %s", counted)
	}
	p("Raw input:     %s (mailsts tlsrpt show --raw %s)", plural(r.RawSize, "byte", "bytes"), rep.ReportID)
	for _, x := range r.Repairs {
		p("Repair:        %s", x)
	}
	for _, x := range r.Problems {
		p("Problem:       %s: %s", x.Code, x.Detail)
	}
	for i, pr := range rep.Policies {
		p("Policy %d:      %s %s mx-host=%s", i+1, pr.Policy.Type, pr.Policy.Domain, strings.Join(pr.Policy.MXHost, ","))
		for _, s := range pr.Policy.String {
			p("                 %s", s)
		}
		p("  sessions:    %d successful, %d failed", pr.Summary.TotalSuccessfulSessionCount, pr.Summary.TotalFailureSessionCount)
		for _, d := range pr.FailureDetails {
			p("  failure:     %s x%d sending=%s mx=%s ip=%s reason=%s %s", d.ResultType, d.FailedSessionCount, d.SendingMTAIP,
				d.ReceivingMXHostname, d.ReceivingIP, d.FailureReasonCode, d.AdditionalInformation)
		}
	}
	fmt.Fprintln(w)
}

const pruneHelp = `
Deletes the reports whose day (the UTC date of start-datetime) is before
--before, with their policies, failure details and summary rollup rows,
and the rejected input received before that day. Summaries afterwards are
those of the reports kept. --older-than AGE (for example 400d) computes
the day from today; without either flag the configuration's retention is
used. --dry-run only counts. 'mailsts serve --retention AGE' prunes daily.

Examples:
  mailsts tlsrpt prune --before 2025-01-01 --dry-run
  mailsts tlsrpt prune --older-than 400d

Exit codes:
  0  pruned (or counted, with --dry-run)
  2  database error
  64 usage error
`

func runTLSRPTPrune(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("tlsrpt prune", "mailsts tlsrpt prune (--before YYYY-MM-DD | --older-than AGE) [--dry-run] [--json]", pruneHelp, env.Stderr)
	var df dbFlags
	df.register(fs)
	before := fs.String("before", "", "first `day` kept (YYYY-MM-DD, UTC)")
	olderThan := fs.String("older-than", "", "delete what is older than `AGE` (for example 400d or 720h)")
	dryRun := fs.Bool("dry-run", false, "only count what would be deleted")
	asJSON := fs.Bool("json", false, "print JSON")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(env.Stderr, "tlsrpt prune", "no arguments expected")
	}
	if *before != "" && *olderThan != "" {
		return usageError(env.Stderr, "tlsrpt prune", "give --before or --older-than, not both")
	}
	cfg, err := reports.LoadConfig(df.config)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt prune: %v\n", err)
		return ExitError
	}
	var day time.Time
	switch {
	case *before != "":
		if day, err = reports.ParseDay(*before); err != nil {
			return usageError(env.Stderr, "tlsrpt prune", "%v", err)
		}
	case *olderThan != "" || cfg.Retention != "":
		age := cmpOr(*olderThan, cfg.Retention)
		d, err := parseAge(age)
		if err != nil {
			return usageError(env.Stderr, "tlsrpt prune", "%v", err)
		}
		day = retentionDay(time.Now(), d)
	default:
		return usageError(env.Stderr, "tlsrpt prune", "give --before or --older-than (or retention in the configuration)")
	}
	log := newLogger(env.Stderr, "text", new(slog.LevelVar))
	_, st, err := df.open(ctx, env, log)
	if err != nil {
		if errors.Is(err, sqlstore.ErrBadSpec) {
			return usageError(env.Stderr, "tlsrpt prune", "%v", err)
		}
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt prune: %v\n", err)
		return ExitError
	}
	defer st.Close()
	res, err := st.Prune(ctx, reports.Prune{Before: day, DryRun: *dryRun})
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt prune: %v\n", err)
		return ExitError
	}
	if *asJSON {
		return writeRows(env.Stdout, "json", []reports.PruneResult{res}, nil)
	}
	verb := "deleted"
	if *dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(env.Stdout, "before %s: %s %s (%s) and %s\n", day.Format(time.DateOnly), verb, plural(res.Reports, "report", "reports"),
		plural(res.RollupRows, "rollup row", "rollup rows"), plural(res.Rejected, "rejected input", "rejected inputs"))
	return ExitOK
}

// parseAge reads a retention age: a number of days ("400d") or a Go
// duration ("720h").
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("age %q: want a positive number of days (400d) or a duration (720h)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return 0, fmt.Errorf("age %q: want a positive number of days (400d) or a duration (720h)", s)
		}
	}
	return d, nil
}

// retentionDay is the first day kept under a retention age: the UTC day
// of now minus age.
func retentionDay(now time.Time, age time.Duration) time.Time {
	y, m, d := now.UTC().Add(-age).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
