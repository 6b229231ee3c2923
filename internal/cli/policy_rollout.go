package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/sqlstore"
	"github.com/mailsts/mailsts/mtasts"
)

const policyPromoteHelp = `
Switches DOMAIN from mode testing to enforce in the configuration file,
only when the evidence says senders will not defer its mail:
  - mode: the domain is configured in testing;
  - testing period: serve has served it in testing for at least
    publish.testing_period (default 14d), as recorded in the state file
    (publish.state_file, default publish-state.json in the state
    directory: serve writes it when a domain's policy or mode changes);
  - mx: every live MX host matches a pattern and passes STARTTLS with a
    valid certificate, probed as the strictest sender would
    ('mailsts check --strict');
  - tls reports: the reports received for DOMAIN since testing began
    (the report database, --db) show no sts failure that enforce turns
    into deferred mail: starttls-not-supported, certificate-host-mismatch,
    certificate-expired, certificate-not-trusted, validation-failure.
The evidence is listed either way. --force writes enforce despite failed
evidence, with a warning; a configuration that would not load (a live MX
that enforce would refuse) is never written.

The file is edited in place (comments kept). Then reload serve
(systemctl reload mailsts-serve, or kill -HUP), check with 'mailsts
policy status DOMAIN', and publish the new TXT id 'mailsts policy records
DOMAIN' prints.

Examples:
  mailsts policy promote example.org
  mailsts policy promote --config /etc/mailsts/reports.yml --db postgres://mailsts@db/mailsts example.org
  mailsts policy promote --force example.org

Exit codes:
  0  promoted: mode enforce written
  1  refused: the evidence (listed) does not allow it
  2  could not run: configuration, report database or state file
  64 usage error, or DOMAIN is not hosted
`

func runPolicyPromote(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("policy promote", "mailsts policy promote [--config F] [--db DB] [--force] DOMAIN", policyPromoteHelp, env.Stderr)
	var pf publishFlags
	pf.register(fs)
	db := fs.String("db", "", "report database: sqlite:`PATH` or postgres://… (default: the configuration's db, else sqlite in the state directory)")
	force := fs.Bool("force", false, "promote even when the evidence does not allow it")
	smtpPort := fs.Int("smtp-port", checker.DefaultSMTPPort, "probe MX hosts on this `port` (for test networks)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(env.Stderr, "policy promote", "want one DOMAIN")
	}
	cfg, set, doms, sc, code := pf.prepareCheck(ctx, env, "promote", fs, *smtpPort)
	if set == nil {
		return code
	}
	d := doms[0]
	fail := func(format string, args ...any) int {
		fmt.Fprintf(env.Stderr, "mailsts policy promote: "+format+"\n", args...)
		return ExitError
	}
	state, err := publish.LoadState(publishStatePath(env, cfg.Publish))
	if err != nil {
		return fail("%v", err)
	}
	if *db != "" {
		cfg.DB = *db
	}
	st, err := sqlstore.Open(ctx, cfg.DB, policyd.DefaultStateDir(env.getenv), slog.New(slog.DiscardHandler))
	if err != nil {
		return fail("report database: %v", err)
	}
	defer st.Close()
	ev := (&publish.Promoter{Checker: sc, Store: st, Period: set.TestingPeriod}).Evaluate(ctx, d, state.Domains[d.Name])
	fmt.Fprintf(env.Stdout, "Evidence for switching %s to enforce:\n", d.Name)
	for _, it := range ev.Items {
		mark := "ok"
		if !it.OK {
			mark = "NO"
		}
		fmt.Fprintf(env.Stdout, "  [%s] %s: %s\n", mark, it.Check, it.Detail)
	}
	for _, n := range ev.Notes {
		fmt.Fprintf(env.Stdout, "  note: %s\n", n)
	}
	// The configuration after the switch must load: serve would refuse it.
	next, err := withMode(ctx, sc.STS.DNS, cfg, d.Name, mtasts.ModeEnforce)
	if err != nil {
		fmt.Fprintf(env.Stdout, "Refused: with mode enforce the configuration is invalid:\n%v\n", err)
		return ExitFailure
	}
	if !ev.Allowed {
		if !*force {
			fmt.Fprintf(env.Stdout, "Refused: %s stays in testing. Fix what is marked NO, or give --force.\n", d.Name)
			return ExitFailure
		}
		fmt.Fprintf(env.Stderr, "mailsts policy promote: WARNING: --force: promoting %s although the evidence does not allow it; senders may defer its mail\n", d.Name)
	}
	if err := publish.SetModeInFile(pf.path(), d.Name, string(mtasts.ModeEnforce)); err != nil {
		return fail("%v", err)
	}
	nd := next.Domain(d.Name)
	fmt.Fprintf(env.Stdout, "Wrote mode: enforce for %s to %s (policy id %s, was %s).\n", d.Name, pf.path(), nd.Policy().ID, d.Policy().ID)
	fmt.Fprintf(env.Stdout, "Next: reload serve (systemctl reload mailsts-serve, or kill -HUP), run 'mailsts policy status %s', then publish\n  %s\n", d.Name, txtRecord(nd))
	return ExitOK
}

// withMode returns the publish set of cfg with domain switched to mode,
// validated against live DNS as serve would validate it.
func withMode(ctx context.Context, dns dnsresolve.Resolver, cfg *reports.Config, domain string, mode mtasts.Mode) (*publish.Set, error) {
	pc := cfg.Publish
	pc.Domains = append([]reports.PublishDomain(nil), pc.Domains...)
	for i, d := range pc.Domains {
		if n, err := dnsresolve.Normalize(d.Domain); err == nil && n == domain {
			pc.Domains[i].Mode = string(mode)
		}
	}
	return (&publish.Loader{DNS: dns}).Load(ctx, pc)
}

func txtRecord(d *publish.Domain) string {
	recs, _ := d.DNSRecords()
	for _, r := range recs {
		if r.Type == "TXT" && r.Name == "_mta-sts."+d.Name {
			return r.String()
		}
	}
	return ""
}

const policyRetireHelp = `
Switches DOMAIN to mode none in the configuration file (RFC 8461 §8.3,
STS-PUB-6) and says until when the policy host and the TXT record must
stay: senders may hold the policy served now, and any earlier one the
state file remembers, for its max_age; until every such copy has expired
the mode none policy (with its new id) must be served, so that senders
that look again learn that MTA-STS is off. After that date remove the
_mta-sts TXT record first, then the policy host.

Then reload serve and publish the new TXT id ('mailsts policy records
DOMAIN').

Examples:
  mailsts policy retire example.org

Exit codes:
  0  mode none written; the date is printed
  2  could not run: configuration or state file
  64 usage error, or DOMAIN is not hosted
`

func runPolicyRetire(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("policy retire", "mailsts policy retire [--config F] DOMAIN", policyRetireHelp, env.Stderr)
	var pf publishFlags
	pf.register(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(env.Stderr, "policy retire", "want one DOMAIN")
	}
	cfg, set, dns, err := pf.load(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy retire: %v\n", err)
		return ExitError
	}
	doms, err := pick(set, fs.Args())
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy retire: %v\n", err)
		return ExitUsage
	}
	d := doms[0]
	state, err := publish.LoadState(publishStatePath(env, cfg.Publish))
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy retire: %v\n", err)
		return ExitError
	}
	next, err := withMode(ctx, dns, cfg, d.Name, mtasts.ModeNone)
	if err == nil {
		err = publish.SetModeInFile(pf.path(), d.Name, string(mtasts.ModeNone))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts policy retire: %v\n", err)
		return ExitError
	}
	nd := next.Domain(d.Name)
	until := state.RetireUntil(d, time.Now())
	fmt.Fprintf(env.Stdout, "Wrote mode: none for %s to %s (policy id %s, was %s).\n", d.Name, pf.path(), nd.Policy().ID, d.Policy().ID)
	fmt.Fprintf(env.Stdout, "Next: reload serve, then publish\n  %s\n", txtRecord(nd))
	fmt.Fprintf(env.Stdout, "Keep serving https://%s%s and the _mta-sts TXT record until %s;\nafter that remove the TXT record first, then the policy host.\n",
		d.PolicyHost(), publish.WellKnownPath, until.Format(time.RFC3339))
	return ExitOK
}
