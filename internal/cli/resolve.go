package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/trustroots"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

var resolveCommand = command{
	name:    "resolve",
	summary: "discover a domain's MTA-STS policy now and explain it",
	run:     runResolve,
}

const resolveHelp = `
Looks up _mta-sts.DOMAIN (TXT), fetches https://mta-sts.DOMAIN/.well-known/mta-sts.txt
with certificate validation, parses the policy and explains what a sender does with it.
Nothing is cached. When there is no usable policy, forms of the early drafts that no
sender reads (_smtp_sts, v=STS1, mta-sts.json, mode report, _smtp-tlsrpt) are
noted with what to publish instead.

With --explain, also shows what mailsts policyd would answer Postfix for the
domain right now and why (DANE, overrides, zone settings such as strict_testing,
the MX check). With --config, resolve runs as policyd built from that file
would: its DNS servers, CA file, HTTPS port and time limit (unless given as
flags), zones, overrides and DANE settings.

Examples:
  mailsts resolve gmail.com
  mailsts resolve --explain --config /etc/mailsts/policyd.yml --zone postfix example.com
  mailsts resolve --json example.com | jq .mode
  mailsts resolve --dns 127.0.0.1:5353 --ca-file private-root.pem example.org
  mailsts resolve --roots curated example.com

JSON output (--json): one object with domain, id, mode (enforce|testing|none, empty
when there is no policy), mx (patterns), max_age (seconds), error (empty, an RFC 8460
result type such as sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid,
or dns-error, or no-policy), detail (human text) and, when draft forms were found,
notes (array of text).

Exit codes:
  0  a policy was found (any mode, including none)
  1  the domain has no MTA-STS policy (no usable _mta-sts TXT record), or the
     argument is an IP address (IP literal: MTA-STS does not apply)
  2  error: DNS failure, the policy could not be fetched, or it is invalid
  64 usage error
`

// resolveOutput is the --json object; the field names are part of the
// command-line contract (DESIGN.md).
type resolveOutput struct {
	Domain string   `json:"domain"`
	ID     string   `json:"id"`
	Mode   string   `json:"mode"`
	MX     []string `json:"mx"`
	MaxAge int64    `json:"max_age"`
	// Error is the class of the discovery failure (mtasts.ResultType,
	// never result.ValidationFailure), "" on success.
	Error  result.Type `json:"error"`
	Detail string      `json:"detail"`
	// PolicyURL is where the policy was (or would be) fetched from.
	PolicyURL string `json:"policy_url,omitempty"`
	// Notes explain forms of the early drafts found when there is no
	// usable policy (_smtp_sts, v=STS1, mta-sts.json, mode report,
	// _smtp-tlsrpt) and what to publish instead.
	Notes []string `json:"notes,omitempty"`
	// Policyd is what the policy daemon would answer (--explain).
	Policyd *explainOutput `json:"policyd,omitempty"`
}

// explainOutput is the --explain part of the output.
type explainOutput struct {
	Zone  string `json:"zone"`
	Reply string `json:"reply"`
	// Warning says plainly when the answer stops mail (an MX mismatch).
	Warning  string          `json:"warning,omitempty"`
	Decision explainDecision `json:"decision"`
}

// explainDecision is policyd.Decision in the JSON output.
type explainDecision struct {
	Domain   string `json:"domain"`
	Answer   string `json:"answer"`
	Source   string `json:"source"`
	Mode     string `json:"mode,omitempty"`
	PolicyID string `json:"policy_id,omitempty"`
	MXCheck  string `json:"mx_check,omitempty"`
	// MXHosts, UnmatchedMX and MXPatterns: the live MX set checked, its
	// hosts matching no pattern, and the policy's mx patterns.
	MXHosts     []string `json:"mx_hosts,omitempty"`
	UnmatchedMX []string `json:"unmatched_mx,omitempty"`
	MXPatterns  []string `json:"mx_patterns,omitempty"`
	DANE        string   `json:"dane,omitempty"`
	Override    string   `json:"override,omitempty"`
	Error       string   `json:"error,omitempty"`
	Reason      string   `json:"reason"`
}

// netFlags are the network plumbing flags shared by resolve, check and
// policyd-like commands.
type netFlags struct {
	dns       string
	caFile    string
	timeout   time.Duration
	httpsPort int
}

func (nf *netFlags) register(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	IntVar(*int, string, int, string)
}) {
	fs.StringVar(&nf.dns, "dns", "", "DNS server(s) to query, `host:port[,host:port]` (default: from /etc/resolv.conf)")
	fs.StringVar(&nf.caFile, "ca-file", "", "extra trusted root certificates (PEM `file`), added to the system pool")
	fs.DurationVar(&nf.timeout, "timeout", 30*time.Second, "time limit for the whole lookup (DNS and HTTPS)")
	fs.IntVar(&nf.httpsPort, "https-port", 0, "connect to policy hosts on this `port` instead of 443 (for test networks)")
}

// applyTo overrides cfg's network settings with the flags given on the
// command line (set holds their names): --dns, --ca-file, --https-port and
// --timeout (fetch.timeout).
func (nf *netFlags) applyTo(cfg *policyd.Config, set map[string]bool) {
	if set["dns"] {
		cfg.DNS.Servers = nil
		for _, s := range strings.Split(nf.dns, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.DNS.Servers = append(cfg.DNS.Servers, s)
			}
		}
	}
	if set["ca-file"] {
		cfg.Fetch.CAFile = nf.caFile
	}
	if set["https-port"] {
		cfg.Fetch.HTTPSPort = nf.httpsPort
	}
	if set["timeout"] {
		cfg.Fetch.Timeout = nf.timeout
	}
}

func userAgent() string {
	return "mailsts/" + Version() + " (+https://github.com/mailsts/mailsts)"
}

// checkValues returns a usage error for a set flag whose value cannot work.
func (nf *netFlags) checkValues(set map[string]bool) error {
	if set["dns"] {
		for _, srv := range strings.Split(nf.dns, ",") {
			if srv = strings.TrimSpace(srv); srv == "" {
				continue
			}
			if _, err := dnsresolve.NormalizeServer(srv); err != nil {
				return fmt.Errorf("--dns: %w", err)
			}
		}
	}
	if nf.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive")
	}
	if nf.httpsPort < 0 || nf.httpsPort > 65535 {
		return fmt.Errorf("--https-port must be a TCP port")
	}
	return nil
}

// client builds the mtasts client the flags describe.
func (nf *netFlags) client() (*mtasts.Client, error) {
	var servers []string
	if nf.dns != "" {
		for _, s := range strings.Split(nf.dns, ",") {
			if s = strings.TrimSpace(s); s != "" {
				servers = append(servers, s)
			}
		}
	}
	dnsClient, err := dnsresolve.NewClient(servers...)
	if err != nil {
		return nil, fmt.Errorf("--dns: %w", err)
	}
	roots, err := mtasts.LoadRootCAs(nf.caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	return &mtasts.Client{
		DNS:       dnsClient,
		RootCAs:   roots,
		Timeout:   nf.timeout,
		HTTPSPort: nf.httpsPort,
		UserAgent: userAgent(),
	}, nil
}

func runResolve(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("resolve", "mailsts resolve [--dns ADDR] [--ca-file F] [--json] DOMAIN", resolveHelp, env.Stderr)
	var nf netFlags
	nf.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	explain := fs.Bool("explain", false, "also show what mailsts policyd would answer Postfix, and why")
	configFile := fs.String("config", "", "policyd configuration `file`: its DNS servers, CA file, HTTPS port and time limit (unless given as flags), and for --explain its zones, overrides and DANE settings")
	zone := fs.String("zone", "postfix", "socketmap map `name` (zone) --explain asks in")
	roots := fs.String("roots", "", "root `set` verifying the policy host: system (default) or curated (the vendored list), plus --ca-file; with --config, replaces fetch.roots")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(env.Stderr, "resolve", "exactly one DOMAIN is required")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := nf.checkValues(set); err != nil {
		return usageError(env.Stderr, "resolve", "%v", err)
	}
	// With --config, the network plumbing is the configuration's, as
	// policyd builds it (flags given on the command line win, as for
	// policyd), so that --explain answers what the daemon answers.
	cfg := policyd.Default()
	var client *mtasts.Client
	var err error
	if *configFile != "" {
		if cfg, _, err = policyd.Load(*configFile); err != nil {
			return usageError(env.Stderr, "resolve", "%v", err)
		}
		nf.applyTo(cfg, set)
		if !set["timeout"] {
			nf.timeout = max(nf.timeout, cfg.Fetch.Timeout)
		}
		if client, err = policyd.NewClient(cfg, nil); err == nil {
			client.UserAgent = userAgent()
		}
	} else {
		client, err = nf.client()
		cfg.Fetch.Timeout = nf.timeout
	}
	if err == nil && *roots != "" {
		f := cfg.Fetch
		if *configFile == "" {
			f = policyd.FetchConfig{CAFile: nf.caFile}
		}
		f.Roots = *roots
		var set *trustroots.Set
		if set, err = policyd.RootSet(f); err == nil {
			client.RootCAs = set.Default()
			if len(f.ZoneRoots) > 0 {
				client.RootsFor = set.For
			}
		}
	}
	if err != nil {
		return usageError(env.Stderr, "resolve", "%v", err)
	}
	if checker.IsIPLiteral(fs.Arg(0)) {
		// STS-SEL-4: no MTA-STS for address literals; policyd answers
		// NOTFOUND for them without a lookup, and so does this.
		out := resolveOutput{Domain: fs.Arg(0), MX: []string{}, Error: result.NoPolicy, Detail: checker.ErrIPLiteral.Error()}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				return ExitError
			}
		} else {
			fmt.Fprintf(env.Stdout, "%s: %s (RFC 8461 covers domain names; policyd answers NOTFOUND).\n", fs.Arg(0), checker.ErrIPLiteral)
		}
		return ExitFailure
	}
	domain, err := dnsresolve.Normalize(fs.Arg(0))
	if err != nil {
		return usageError(env.Stderr, "resolve", "%q is not a valid domain name: %v", fs.Arg(0), err)
	}

	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	rec, pol, err := client.Get(ctx, domain)
	out := resolveResult(domain, rec, pol, err)
	if out.Error != "" {
		out.Notes = checker.DraftNotes(ctx, client, domain)
	}
	if *explain {
		ex, err := explainPolicyd(ctx, client, cfg, *zone, domain)
		if err != nil {
			return usageError(env.Stderr, "resolve", "--explain: %v", err)
		}
		out.Policyd = ex
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return ExitError
		}
	} else {
		writeResolveText(env.Stdout, out, fs.Arg(0))
		if out.Policyd != nil {
			writeExplainText(env.Stdout, out.Policyd)
		}
	}
	switch {
	case out.Error == "":
		return ExitOK
	case out.Error == result.NoPolicy:
		return ExitFailure
	default:
		return ExitError
	}
}

// resolveResult turns the outcome of a discovery into the output object.
func resolveResult(domain string, rec *mtasts.Record, pol *mtasts.Policy, err error) resolveOutput {
	out := resolveOutput{Domain: domain, MX: []string{}, PolicyURL: mtasts.PolicyURL(domain)}
	if rec != nil {
		out.ID = rec.ID
	}
	if err != nil {
		out.Error = mtasts.ResultType(err)
		out.Detail = err.Error()
		if out.Error == result.ValidationFailure {
			// Not a discovery error class: the lookup itself broke (for
			// example the time limit ran out before DNS answered).
			out.Error = result.DNSError
		}
		return out
	}
	out.Mode = string(pol.Mode)
	out.MX = append(out.MX, pol.MX...)
	out.MaxAge = pol.MaxAge
	switch pol.Mode {
	case mtasts.ModeEnforce:
		out.Detail = "senders must deliver only over TLS with a valid certificate to MX hosts matching the mx patterns, and defer otherwise"
	case mtasts.ModeTesting:
		out.Detail = "senders deliver as usual even when the MX checks fail, and report the failures (TLSRPT)"
	case mtasts.ModeNone:
		out.Detail = "the domain withdrew its policy: senders treat it as having no MTA-STS policy"
	}
	return out
}

func writeResolveText(w io.Writer, out resolveOutput, input string) {
	name := out.Domain
	if input != "" && !strings.EqualFold(strings.TrimSuffix(input, "."), out.Domain) {
		name = fmt.Sprintf("%s (%s)", out.Domain, input)
	}
	// The detail and the policy quote DNS and HTTP answers: escaped.
	name, out.Detail, out.ID = termSafe(name), termSafe(out.Detail), termSafe(out.ID)
	for i := range out.MX {
		out.MX[i] = termSafe(out.MX[i])
	}
	switch {
	case out.Error == result.NoPolicy:
		fmt.Fprintf(w, "%s: no MTA-STS policy.\n  %s\n  Senders deliver with opportunistic TLS (RFC 8461 §3.1); a sender that cached an unexpired policy keeps applying it.\n", name, out.Detail)
	case out.Error != "":
		fmt.Fprintf(w, "%s: MTA-STS policy could not be obtained (%s).\n  %s\n  Senders with no cached policy deliver as if there were none (RFC 8461 §3.3); senders with one keep applying it.\n", name, out.Error, out.Detail)
	default:
		fmt.Fprintf(w, "%s: MTA-STS policy %s (id %s), valid for %s after fetching.\n", name, out.Mode, out.ID, humanDuration(time.Duration(out.MaxAge)*time.Second))
		if len(out.MX) > 0 {
			fmt.Fprintf(w, "  MX patterns: %s\n", strings.Join(out.MX, ", "))
		}
		fmt.Fprintf(w, "  Meaning: %s.\n", out.Detail)
	}
	for _, n := range out.Notes {
		fmt.Fprintf(w, "  Note: %s\n", termSafe(n))
	}
}

// explainPolicyd asks the policyd Responder built from cfg (zones,
// overrides, DANE and the MX check, through client as the daemon would use
// it) with a fresh in-memory cache, what it would answer for domain in zone.
func explainPolicyd(ctx context.Context, client *mtasts.Client, cfg *policyd.Config, zone, domain string) (*explainOutput, error) {
	r, err := policyd.NewResponder(cfg, &mtasts.Cache{Client: client, Store: mtasts.NewMemoryStore()})
	if err != nil {
		return nil, err
	}
	reply, d := r.Answer(ctx, zone, domain)
	var hosts []string
	for _, h := range d.MXHosts {
		if h != "." {
			hosts = append(hosts, h)
		}
	}
	return &explainOutput{
		Zone:    zone,
		Reply:   strings.TrimSpace(reply.Status.String() + " " + reply.Data),
		Warning: mismatchWarning(d, hosts),
		Decision: explainDecision{
			Domain: d.Domain, Answer: d.Answer, Source: d.Source, Mode: string(d.Mode), PolicyID: d.PolicyID,
			MXCheck: d.MXCheck, MXHosts: hosts, UnmatchedMX: d.Unmatched, MXPatterns: d.MXPatterns,
			DANE: d.DANE, Override: d.Override, Error: d.Err, Reason: d.Reason,
		},
	}, nil
}

// mismatchWarning says what an MX mismatch does to mail under an enforced
// policy: RFC 8461 §4.1 and §5, a sender delivers only to MX hosts that
// match a pattern (and whose certificate is valid for them), so hosts
// outside the patterns get no mail, and with none left all mail is
// deferred. "" when there is nothing to say.
func mismatchWarning(d policyd.Decision, hosts []string) string {
	if d.Answer != policyd.AnswerSecure || len(d.Unmatched) == 0 || len(hosts) == 0 {
		return ""
	}
	which := fmt.Sprintf("(MX hosts: %s; policy mx patterns: %s)", strings.Join(d.Unmatched, ", "), strings.Join(d.MXPatterns, ", "))
	if len(d.Unmatched) >= len(hosts) {
		return fmt.Sprintf("every MX host of %s fails the policy's mx patterns: Postfix will defer all mail to this domain until the policy or the MX records are fixed %s", d.Domain, which)
	}
	return fmt.Sprintf("%d of the %s of %s fail the policy's mx patterns: Postfix will not deliver to them, only to the other MX hosts %s", len(d.Unmatched), plural(len(hosts), "MX host", "MX hosts"), d.Domain, which)
}

func writeExplainText(w io.Writer, ex *explainOutput) {
	e := *ex
	ex = &e
	d := ex.Decision
	d.Reason, d.Error, ex.Reply = termSafe(d.Reason), termSafe(d.Error), termSafe(ex.Reply)
	fmt.Fprintf(w, "policyd (map %q) would answer: %s\n  Why: %s\n", ex.Zone, ex.Reply, d.Reason)
	if ex.Warning != "" {
		fmt.Fprintf(w, "  Warning: %s.\n", ex.Warning)
	}
	var facts []string
	add := func(k, v string) {
		if v != "" {
			facts = append(facts, k+" "+v)
		}
	}
	add("source", d.Source)
	add("mode", d.Mode)
	add("DANE", d.DANE)
	add("MX check", d.MXCheck)
	add("override", d.Override)
	add("error", d.Error)
	if len(facts) > 0 {
		fmt.Fprintf(w, "  (%s)\n", strings.Join(facts, "; "))
	}
}

// humanDuration prints whole days, hours or seconds: "7d", "1d 2h", "300s".
func humanDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s == 0:
		return "0s (not reusable)"
	case s%86400 == 0:
		return fmt.Sprintf("%dd", s/86400)
	case s >= 86400:
		return fmt.Sprintf("%dd %dh", s/86400, (s%86400)/3600)
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	default:
		return fmt.Sprintf("%ds", s)
	}
}
