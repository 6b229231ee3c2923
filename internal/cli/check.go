package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
)

var checkCommand = command{
	name:    "check",
	summary: "audit a domain's email transport security (MTA-STS, MX TLS, DANE, TLSRPT), one or in bulk",
	run:     runCheck,
}

// Exit codes of check (documented in its help).
const (
	checkExitPass  = 0
	checkExitWarn  = 1
	checkExitFail  = 2
	checkExitError = 3
)

const checkHelp = `
Checks what a strict sending MTA sees: the _mta-sts TXT record, the policy at
https://mta-sts.DOMAIN/.well-known/mta-sts.txt (certificate, status, type,
syntax), the live MX hosts against the policy's mx patterns, a STARTTLS probe
of every MX host (TLS version, certificate chain, name and expiry), DANE TLSA
records, and the _smtp._tls TLSRPT record. With --clients ACCOUNT it also
checks the RFC 8314 mail-client endpoints of ACCOUNT (user@example.org, a
domain or a host) as a mail client finds them: RFC 6186 SRV records
(_submissions._tcp, _submission._tcp, _imaps._tcp, _imap._tcp, _pop3s._tcp,
_pop3._tcp), else the well-known names smtp., imap., pop3., mail. and the name
itself on the standard ports: submission (465 implicit TLS, 587 STARTTLS),
IMAP (993, 143 STARTTLS) and POP3 (995, 110 STLS); --client-ports moves the
standard ports, as the testnet needs. It shows whether a client requiring
validated TLS accepts each endpoint, and what a latching client would
remember and refuse later. Each finding has a stable id, a
severity (ok, info, warn, fail), a checklist or RFC reference and a fix hint.
The JSON schema and every finding id are documented in docs/check.md.

Examples:
  mailsts check example.com
  mailsts check --strict --json example.com | jq '.findings[] | select(.severity=="fail")'
  mailsts check --clients user@example.com example.com
  mailsts check --clients mail.example.com example.com
  mailsts check <testnet flags> --clients user@clients.example clients.example
  mailsts check --bulk domains.txt --out results.jsonl
  mailsts check --bulk top.csv --column domain --concurrency 128 --out results.jsonl

Bulk mode: one domain per line (# comments allowed), or a CSV column
(--column NAME or a 1-based number). One JSON object per line goes to --out
(or stdout) as results arrive; rerunning with the same --out skips the domains
already there (resume after an interruption). A progress bar shows on a
terminal; a summary table ends the run (on stderr).

Exit codes:
  0  every check passed (only ok and info findings)
  1  warnings, no failures
  2  failures (bulk: in at least one domain, or an input line that is not a domain;
     a resumed run counts the results already in --out)
  3  could not run: unreadable input, unwritable output, or the DNS resolver
     does not answer (nothing was judged; fix --dns or /etc/resolv.conf)
  64 usage error: bad flags or values, a missing or invalid DOMAIN, an IP
     address (IP literal: MTA-STS does not apply)
`

func runCheck(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("check", "mailsts check [flags] DOMAIN | --bulk FILE", checkHelp, env.Stderr)
	var nf netFlags
	nf.register(fs)
	asJSON := fs.Bool("json", false, "print the report as one JSON object (schema in docs/check.md)")
	strict := fs.Bool("strict", false, "judge as the strictest sender would: lenient policy syntax and every MX problem fail")
	smtpPort := fs.Int("smtp-port", checker.DefaultSMTPPort, "probe MX hosts on this `port` (for test networks)")
	probeTimeout := fs.Duration("probe-timeout", checker.DefaultProbeTimeout, "time limit for each step of an SMTP probe")
	clients := fs.String("clients", "", "also check the RFC 8314 mail-client endpoints of `ACCOUNT` (user@domain, a domain or a host): SRV records, else well-known names")
	clientPorts := fs.String("client-ports", "", "probe the --clients services on these ports instead: `LIST` of service=port, services submissions, submission, imaps, imap, pop3s, pop3 (for test networks)")
	bulk := fs.String("bulk", "", "check every domain listed in `FILE` (one per line, or CSV with --column)")
	column := fs.String("column", "", "CSV column holding the domain: header `name` or 1-based number (with --bulk)")
	concurrency := fs.Int("concurrency", checker.DefaultConcurrency, "domains checked at once (with --bulk)")
	out := fs.String("out", "", "write JSON Lines to `FILE` and resume from it (with --bulk; default stdout)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "mailsts check: "+format+"\n", a...)
		return checkExitError
	}
	usage := func(format string, a ...any) int {
		return usageError(env.Stderr, "check", format, a...)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if (*bulk == "") == (fs.NArg() == 0) || fs.NArg() > 1 {
		return usage("give exactly one DOMAIN, or --bulk FILE")
	}
	if *bulk == "" && (set["column"] || set["out"] || set["concurrency"]) {
		return usage("--column, --out and --concurrency need --bulk")
	}
	if *concurrency < 1 || *concurrency > 4096 {
		return usage("--concurrency must be between 1 and 4096")
	}
	if *smtpPort < 1 || *smtpPort > 65535 {
		return usage("--smtp-port must be a TCP port")
	}
	if *probeTimeout <= 0 {
		return usage("--probe-timeout must be positive")
	}
	ports, err := parseClientPorts(*clientPorts)
	if err != nil {
		return usage("--client-ports: %v", err)
	}
	if err := nf.checkValues(set); err != nil {
		return usage("%v", err)
	}
	if *bulk == "" {
		if checker.IsIPLiteral(fs.Arg(0)) {
			// As policyd (NOTFOUND) and resolve: no MTA-STS for addresses.
			return usage("%s: %v (give a domain name)", fs.Arg(0), checker.ErrIPLiteral)
		}
		if _, err := dnsresolve.Normalize(fs.Arg(0)); err != nil {
			return usage("%q is not a valid domain name: %v", fs.Arg(0), err)
		}
	}
	sts, err := nf.client()
	if err != nil {
		return usage("%v", err)
	}
	c := &checker.Checker{
		DNS:          sts.DNS,
		STS:          sts,
		RootCAs:      sts.RootCAs,
		SMTPPort:     *smtpPort,
		ProbeTimeout: *probeTimeout,
		// --timeout bounds the policy fetch; the whole check gets it
		// plus time for the probes after it.
		Timeout: nf.timeout + 2**probeTimeout,
		Strict:  *strict,
	}
	if *clients != "" {
		c.ClientAccount, c.ClientPorts = *clients, ports
	}
	if *bulk != "" {
		return runCheckBulk(ctx, env, c, *bulk, *column, *out, *concurrency)
	}

	r := c.Check(ctx, fs.Arg(0))
	if r.Verdict == checker.VerdictError {
		return fail("%s", termSafe(r.Error))
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return checkExitError
		}
	} else {
		writeCheckText(env.Stdout, r, useColor(env, env.Stdout))
	}
	return verdictExit(r.Verdict)
}

// parseClientPorts reads --client-ports: "service=port,…" with the
// services of checker.ClientEndpoints. `mailsts testnet` prints the
// value for its client hosts. Without --clients the flag changes nothing,
// so the testnet's "check flags" line works for every check.
func parseClientPorts(s string) (map[string]int, error) {
	ports := map[string]int{}
	if s == "" {
		return ports, nil
	}
	known := map[string]bool{}
	var names []string
	for _, ep := range checker.ClientEndpoints("") {
		known[ep.Service] = true
		names = append(names, ep.Service)
	}
	for item := range strings.SplitSeq(s, ",") {
		svc, p, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not service=port", item)
		}
		if !known[svc] {
			return nil, fmt.Errorf("unknown service %q (known: %s)", svc, strings.Join(names, ", "))
		}
		if _, dup := ports[svc]; dup {
			return nil, fmt.Errorf("%s given twice", svc)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: %q is not a TCP port", svc, p)
		}
		ports[svc] = n
	}
	return ports, nil
}

func verdictExit(v string) int {
	switch v {
	case checker.VerdictPass:
		return checkExitPass
	case checker.VerdictWarn:
		return checkExitWarn
	case checker.VerdictFail:
		return checkExitFail
	}
	return checkExitError
}

func runCheckBulk(ctx context.Context, env Env, c *checker.Checker, in, column, outPath string, conc int) int {
	f, err := os.Open(in)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts check: %v\n", err)
		return checkExitError
	}
	defer f.Close()
	b := &checker.Bulk{Checker: c, Concurrency: conc, Out: env.Stdout}
	if outPath != "" {
		of, done, err := checker.OpenResume(outPath)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailsts check: --out: %v\n", err)
			return checkExitError
		}
		defer of.Close()
		b.Out, b.Done = of, done
		if done.Len() > 0 {
			fmt.Fprintf(env.Stderr, "resuming: %s already in %s skipped\n", plural(done.Len(), "domain", "domains"), outPath)
		}
	}
	if env.isTerminal(env.Stderr) {
		// The total is counted up front (a cheap pass over the file) so
		// that the bar can show an ETA; the run itself streams.
		total := int64(-1)
		if n, err := countDomains(in, column); err == nil {
			total = int64(n - b.Done.Len())
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("checking"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("domains"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
		b.OnReport = func(*checker.Report) { _ = bar.Add(1) }
		defer bar.Finish()
	}
	sum, err := b.Run(ctx, checker.NewDomainReader(bufio.NewReaderSize(f, 64<<10), column))
	if sum != nil {
		sum.WriteTable(env.Stderr, 10)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts check: %v\n", err)
		return checkExitError
	}
	if sum.Checked > 0 && sum.ResolverDown == sum.Checked {
		// Nothing was judged: the resolver, not the domains, failed.
		fmt.Fprintf(env.Stderr, "mailsts check: %v (every domain of this run)\n", checker.ErrResolver)
		return checkExitError
	}
	return verdictExit(sum.ExitVerdict())
}

func countDomains(path, column string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dr := checker.NewDomainReader(bufio.NewReaderSize(f, 64<<10), column)
	n := 0
	for {
		_, err := dr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// useColor: colour only on a terminal, and never with NO_COLOR set
// (https://no-color.org).
func useColor(env Env, w io.Writer) bool {
	return env.getenv("NO_COLOR") == "" && env.isTerminal(w)
}

var groupTitles = map[string]string{
	checker.GroupSTSRecord: "MTA-STS record",
	checker.GroupSTSPolicy: "MTA-STS policy",
	checker.GroupSTSMX:     "Policy against the MX hosts",
	checker.GroupMX:        "MX hosts (SMTP STARTTLS probe)",
	checker.GroupDANE:      "DANE",
	checker.GroupTLSRPT:    "TLS reporting",
	checker.GroupClients:   "Mail client endpoints (RFC 8314)",
}

// writeCheckText prints the grouped human report.
func writeCheckText(w io.Writer, r *checker.Report, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	marks := map[checker.Severity]string{
		checker.SeverityOK:   paint("32", "✓"),
		checker.SeverityInfo: paint("34", "·"),
		checker.SeverityWarn: paint("33", "!"),
		checker.SeverityFail: paint("31", "✗"),
	}
	name := r.Domain
	if r.Input != "" && r.Input != r.Domain {
		name += " (" + r.Input + ")"
	}
	// Findings quote DNS and HTTP answers: escaped (termSafe).
	name = termSafe(name)
	fmt.Fprintf(w, "%s\n", paint("1", "mailsts check "+name))
	if r.STS.Mode != "" {
		fmt.Fprintf(w, "  policy: mode %s, id %s, max_age %s, mx %s\n", termSafe(r.STS.Mode), termSafe(r.STS.ID), humanDuration(time.Duration(r.STS.MaxAge)*time.Second), termSafe(strings.Join(r.STS.MX, " ")))
		if r.STS.Result != "" {
			// The body parsed, but senders do not use it (bad record,
			// fetch or, with --strict, lenient-only syntax).
			fmt.Fprintf(w, "  not applied by senders: %s\n", termSafe(string(r.STS.Result)))
		}
	}
	for _, g := range checker.Groups() {
		first := true
		for _, f := range r.Findings {
			if f.Group != g {
				continue
			}
			if first {
				fmt.Fprintf(w, "\n%s\n", paint("1", groupTitles[g]))
				first = false
			}
			fmt.Fprintf(w, "  %s %s  %s\n", marks[f.Severity], termSafe(f.Message), paint("2", "["+f.ID+" "+f.Ref+"]"))
			if f.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", termSafe(f.Fix))
			}
		}
	}
	verdict := strings.ToUpper(r.Verdict)
	switch r.Verdict {
	case checker.VerdictPass:
		verdict = paint("1;32", verdict)
	case checker.VerdictWarn:
		verdict = paint("1;33", verdict)
	default:
		verdict = paint("1;31", verdict)
	}
	mode := ""
	if r.Strict {
		mode = ", strict"
	}
	fmt.Fprintf(w, "\nVerdict: %s (%d fail, %d warn, %d ok, %d info%s) in %d ms\n", verdict, r.Counts.Fail, r.Counts.Warn, r.Counts.OK, r.Counts.Info, mode, r.DurationMS)
}
