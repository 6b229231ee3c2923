package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

var policyCommand = command{
	name:    "policy",
	summary: "hosted MTA-STS policies: DNS records, status, promote to enforce, retire",
	run:     runPolicy,
}

// defaultPublishConfig is where the packaged configuration lives.
const defaultPublishConfig = "/etc/mailsts/reports.yml"

// Exit codes of `mailsts policy status` and `promote` beyond the shared
// ones: 3 when a check could not complete (a DNS lookup failed).
const ExitCheckIncomplete = 3

const policyHelp = `
Subcommands:
  records    the DNS records to publish for hosted domains
  status     each hosted domain as senders see it: TXT id, served policy, certificate, MX
  publish    publish the TXT records with DNS UPDATE, once the policy is served
  promote    switch a domain from testing to enforce, if the evidence allows it
  retire     switch a domain to mode none and say until when to keep serving it

The hosted domains are the publish: section of the serve configuration
(--config, default ` + defaultPublishConfig + `; see docs/publish.md). The policy
served for a domain is derived from it, and so is the TXT id: the first 32
hex digits of the SHA-256 of the served text.

Run 'mailsts policy <subcommand> --help' for its flags and examples.
`

func runPolicy(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 {
		return usageError(env.Stderr, "policy", "a subcommand is required: records, status, publish, promote or retire")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(env.Stdout, "Usage: mailsts policy <subcommand> [flags]\n%s", policyHelp)
		return ExitOK
	}
	switch args[0] {
	case "records":
		return runPolicyRecords(ctx, env, args[1:])
	case "status":
		return runPolicyStatus(ctx, env, args[1:])
	case "publish":
		return runPolicyPublish(ctx, env, args[1:])
	case "promote":
		return runPolicyPromote(ctx, env, args[1:])
	case "retire":
		return runPolicyRetire(ctx, env, args[1:])
	}
	return usageError(env.Stderr, "policy", "unknown subcommand %q", args[0])
}

// publishFlags are the flags every policy subcommand shares.
type publishFlags struct {
	config string
	nf     netFlags
}

func (p *publishFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.config, "config", "", "serve configuration `file` with the publish: section (default "+defaultPublishConfig+")")
	p.nf.register(fs)
}

func (p *publishFlags) path() string {
	if p.config == "" {
		return defaultPublishConfig
	}
	return p.config
}

// load reads the configuration and validates its publish section against
// live DNS (--dns, else the file's dns:, else /etc/resolv.conf).
func (p *publishFlags) load(ctx context.Context) (*reports.Config, *publish.Set, dnsresolve.Resolver, error) {
	cfg, err := reports.LoadConfig(p.path())
	if err != nil {
		return nil, nil, nil, err
	}
	servers := cfg.DNS
	if p.nf.dns != "" {
		servers = strings.Split(p.nf.dns, ",")
	}
	dns, err := dnsresolve.NewClient(servers...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dns: %w", err)
	}
	if len(cfg.Publish.Domains) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: the publish: section lists no domains", p.path())
	}
	set, err := (&publish.Loader{DNS: dns}).Load(ctx, cfg.Publish)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, set, dns, nil
}

// pick returns the named domains of set (all for none), or an error
// naming one that is not hosted.
func pick(set *publish.Set, names []string) ([]*publish.Domain, error) {
	if len(names) == 0 {
		return set.Domains, nil
	}
	var out []*publish.Domain
	for _, n := range names {
		d := set.Domain(n)
		if d == nil {
			return nil, fmt.Errorf("%s is not a hosted domain (not in the publish: section)", n)
		}
		out = append(out, d)
	}
	return out, nil
}

const policyRecordsHelp = `
Prints, for each hosted domain (all without DOMAIN), every DNS record to
publish, in the order to publish them: mta-sts.<domain> (CNAME or A/AAAA,
from publish.records), optional CAA records limiting who may issue its
certificate (RFC 8659, with the RFC 8657 accounturi and
validationmethods), the _mta-sts TXT record with the id of the policy
served now, and the _smtp._tls TXT record when a rua is configured.

Warnings (on stderr) name the MX hosts that senders holding an earlier
enforce policy in their cache would refuse, and until when: the state
file remembers the policies served before. Move MX hosts safely: add the
new host to the policy first (mx, or mx_planned while it is not in DNS),
wait max_age, then change the MX records.

Change the _mta-sts TXT record only after serve serves the new policy
(RFC 8461 §8.1): reload serve first, check with 'mailsts policy status',
then publish the printed id.

Examples:
  mailsts policy records example.org
  mailsts policy records --config /etc/mailsts/reports.yml --json

Exit codes:
  0  printed
  2  the configuration is invalid, or DNS could not be read for mx: auto
  64 usage error, or DOMAIN is not hosted
`

// recordsJSON is one domain of `policy records --json`.
type recordsJSON struct {
	Domain  string              `json:"domain"`
	Mode    string              `json:"mode"`
	ID      string              `json:"id"`
	Policy  string              `json:"policy"`
	Records []publish.DNSRecord `json:"records"`
	Notes   []string            `json:"notes"`
	// Warnings are the MX hosts senders' cached enforce policies refuse.
	Warnings []string `json:"warnings"`
}

func runPolicyRecords(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("policy records", "mailsts policy records [--config F] [--dns ADDR] [--json] [DOMAIN...]", policyRecordsHelp, env.Stderr)
	var pf publishFlags
	pf.register(fs)
	asJSON := fs.Bool("json", false, "print a JSON array, one object per domain")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	cfg, set, _, err := pf.load(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy records: %v\n", err)
		return ExitError
	}
	doms, err := pick(set, fs.Args())
	if err != nil {
		return usageError(env.Stderr, "policy records", "%v", err)
	}
	warnings := map[string][]string{}
	if state, err := publish.LoadState(publishStatePath(env, cfg.Publish)); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy records: %v (no MX change warnings)\n", err)
	} else {
		for _, w := range state.MXWarnings(set, time.Now()) {
			warnings[w.Domain] = append(warnings[w.Domain], w.Msg)
		}
	}
	var out []recordsJSON
	for i, d := range doms {
		recs, notes := d.DNSRecords()
		for _, w := range warnings[d.Name] {
			fmt.Fprintf(env.Stderr, "mailsts policy records: WARNING: %s: %s\n", d.Name, w)
		}
		if *asJSON {
			out = append(out, recordsJSON{Domain: d.Name, Mode: string(d.Mode), ID: d.Policy().ID, Policy: string(d.Policy().Text), Records: recs,
				Notes: append([]string{}, notes...), Warnings: append([]string{}, warnings[d.Name]...)})
			continue
		}
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		fmt.Fprintf(env.Stdout, "; %s: mode %s, policy id %s\n", d.Name, d.Mode, d.Policy().ID)
		for _, r := range recs {
			fmt.Fprintf(env.Stdout, "%s\n", r)
		}
		for _, n := range notes {
			fmt.Fprintf(env.Stdout, "; note: %s\n", n)
		}
	}
	if *asJSON {
		return writeJSON(env, out)
	}
	return ExitOK
}

func writeJSON(env Env, v any) int {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy: %v\n", err)
		return ExitError
	}
	return ExitOK
}

const policyStatusHelp = `
Looks at each hosted domain (all without DOMAIN) the way a strict sender
does, and reports:
  - the live _mta-sts TXT id equals the id of the policy served now
    (publish.txt.missing, publish.txt.stale);
  - the policy fetched from https://mta-sts.<domain>/.well-known/mta-sts.txt
    over the network, like a sender, is the configured one byte for byte
    (publish.policy.fetch, publish.policy.differs);
  - the certificate of mta-sts.<domain> is valid for 14 more days
    (publish.cert.expiring);
  - every live MX host matches a pattern and passes STARTTLS with a valid
    certificate, probed by the checker of 'mailsts check --strict'
    (publish.mx.unmatched, publish.mx.tls).
serve runs the same checks every publish.check_interval and logs and
exports the findings.

Examples:
  mailsts policy status
  mailsts policy status --json example.org

Exit codes:
  0  every domain is as configured and every MX passes
  1  findings: something senders see is wrong (listed)
  2  could not run: invalid configuration or DNS setup
  3  some check could not complete (a DNS lookup failed)
  64 usage error, or DOMAIN is not hosted
`

// statusChecker builds the status checker of the policy commands and of
// serve's periodic checks.
func statusChecker(sts *mtasts.Client, smtpPort int) *publish.Checker {
	return &publish.Checker{STS: sts, MX: &checker.Checker{DNS: sts.DNS, STS: sts, RootCAs: sts.RootCAs, SMTPPort: smtpPort, Strict: true,
		Timeout: sts.Timeout + 2*checker.DefaultProbeTimeout}}
}

func runPolicyStatus(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("policy status", "mailsts policy status [--config F] [--dns ADDR] [--ca-file F] [--json] [DOMAIN...]", policyStatusHelp, env.Stderr)
	var pf publishFlags
	pf.register(fs)
	asJSON := fs.Bool("json", false, "print a JSON array, one object per domain")
	smtpPort := fs.Int("smtp-port", checker.DefaultSMTPPort, "probe MX hosts on this `port` (for test networks)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	cfg, set, doms, sc, code := pf.prepareCheck(ctx, env, "status", fs, *smtpPort)
	if set == nil {
		return code
	}
	stored, closeStored, err := storedCerts(ctx, cfg, sc.STS.DNS)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy status: %v\n", err)
		return ExitError
	}
	defer closeStored()
	var all []*publish.Status
	worst := publish.SeverityOK
	for _, d := range doms {
		st := sc.Check(ctx, d)
		stored(ctx, d, st)
		all = append(all, st)
		worst = worse(worst, st.Verdict)
		if !*asJSON {
			printStatus(env, st)
		}
	}
	if *asJSON {
		if c := writeJSON(env, all); c != ExitOK {
			return c
		}
	}
	return statusExit(worst)
}

// prepareCheck loads the configuration, picks the domains of the
// arguments and builds the status checker; a nil set and the exit code
// when it cannot.
func (pf *publishFlags) prepareCheck(ctx context.Context, env Env, name string, fs *flag.FlagSet, smtpPort int) (*reports.Config, *publish.Set, []*publish.Domain, *publish.Checker, int) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := pf.nf.checkValues(set); err != nil {
		return nil, nil, nil, nil, usageError(env.Stderr, "policy "+name, "%v", err)
	}
	cfg, pset, dns, err := pf.load(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy %s: %v\n", name, err)
		return nil, nil, nil, nil, ExitError
	}
	doms, err := pick(pset, fs.Args())
	if err != nil {
		return nil, nil, nil, nil, usageError(env.Stderr, "policy "+name, "%v", err)
	}
	roots, err := mtasts.LoadRootCAs(pf.nf.caFile)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy %s: --ca-file: %v\n", name, err)
		return nil, nil, nil, nil, ExitError
	}
	sts := &mtasts.Client{DNS: dns, RootCAs: roots, Timeout: pf.nf.timeout, HTTPSPort: pf.nf.httpsPort, UserAgent: userAgent()}
	return cfg, pset, doms, statusChecker(sts, smtpPort), ExitOK
}

func worse(a, b string) string {
	rank := map[string]int{publish.SeverityOK: 0, publish.SeverityWarn: 1, publish.SeverityFail: 2, publish.SeverityError: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func statusExit(worst string) int {
	switch worst {
	case publish.SeverityFail:
		return ExitFailure
	case publish.SeverityError:
		return ExitCheckIncomplete
	}
	return ExitOK
}

func printStatus(env Env, st *publish.Status) {
	cert := "-"
	if st.CertNotAfter != nil {
		cert = st.CertNotAfter.UTC().Format("2006-01-02")
	}
	fmt.Fprintf(env.Stdout, "%s: %s (mode %s, id %s, live id %s, served id %s, certificate until %s)\n",
		st.Domain, strings.ToUpper(st.Verdict), st.Mode, st.ID, orDash(st.LiveID), orDash(st.ServedID), cert)
	switch {
	case st.StoredCertNotAfter != nil:
		fmt.Fprintf(env.Stdout, "  acme certificate in storage: until %s, issuer %s\n", st.StoredCertNotAfter.UTC().Format("2006-01-02"), st.StoredCertIssuer)
	case st.StoredCertError != "":
		fmt.Fprintf(env.Stdout, "  acme certificate in storage: none (%s)\n", st.StoredCertError)
	}
	for _, m := range st.MX {
		state := "ok"
		if m.Problem != "" {
			state = m.Problem
		}
		fmt.Fprintf(env.Stdout, "  mx %s: pattern %s, %s\n", m.Host, orDash(m.Pattern), state)
	}
	for _, f := range st.Findings {
		host := ""
		if f.Host != "" {
			host = " " + f.Host + ":"
		}
		fmt.Fprintf(env.Stdout, "  %-5s %s%s %s\n", f.Severity, f.ID, host, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(env.Stdout, "        fix: %s\n", f.Fix)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
