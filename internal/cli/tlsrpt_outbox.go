package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

const outboxHelp = `
The outbox holds the TLS reports this site sends (RFC 8460) until each has
reached every rua of its domain's _smtp._tls record, looked up when the
report is due: mailto: as DKIM-signed mail through delivery.mail.relay or
sendmail, https: as a POST of application/tlsrpt+gzip. Failed deliveries
are retried with growing waits (delivery.retry_base up to retry_max) and
given up after delivery.max_age (24h); SMTP 5xx and reports above a size
limit are given up at once, every HTTP status but 2xx is retried. A
destination failing on delivery.suppress_after_days consecutive days is
suppressed.

Actions (default list):
  list                 deliveries and reports waiting for their record lookup, newest day first
  send                 one delivery pass: everything due now (for cron and tests)
  retry ID             make a delivery (d12) or a record lookup (r7) due now
  suppress DEST        stop delivering to a rua (as published) until unsuppressed
  unsuppress DEST      deliver to DEST again; its suppressed deliveries are due now
  suppressed           suppressed destinations and why

States: pending, sending (a worker holds it), failed-retrying (with the
next attempt), sent, given-up (with the reason), suppressed.

The outbox database is delivery.db of --config (or --db): sqlite:PATH or
postgres://… shared by several nodes; the default is tlsrpt-outbox.db in the
state directory. See docs/tlsrpt-outbox.md.

Examples:
  mailsts tlsrpt outbox --config /etc/mailsts/reports.yml
  mailsts tlsrpt outbox --state failed --json
  mailsts tlsrpt outbox send --config /etc/mailsts/reports.yml
  mailsts tlsrpt outbox retry d42
  mailsts tlsrpt outbox suppress https://reports.example.net/tlsrpt --reason "answers 404"
  mailsts tlsrpt outbox unsuppress mailto:tlsrpt@example.net

--check-config validates the configuration (the delivery: section, its
DKIM key, the log: settings) and exits, opening nothing.

Exit codes:
  0  done (send: the pass ran; failed deliveries are recorded, not errors)
  1  retry or unsuppress: no such delivery, or it cannot be retried (sending,
     sent), or the destination is not suppressed
  2  the configuration, database, DNS or DKIM key could not be loaded
  64 usage error: unknown action, bad flags or --state
`

func runTLSRPTOutbox(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("tlsrpt outbox", "mailsts tlsrpt outbox [flags] [list|send|retry ID|suppress DEST|unsuppress DEST|suppressed]", outboxHelp, env.Stderr)
	config := fs.String("config", "", "YAML configuration `file` (optional; the delivery: section)")
	db := fs.String("db", "", "outbox database: sqlite:`PATH` or postgres://… (default delivery.db, else tlsrpt-outbox.db in the state directory)")
	asJSON := fs.Bool("json", false, "print JSON (snake_case keys)")
	stateFlag := fs.String("state", "", "list only these `states`, comma-separated (failed means failed-retrying and given-up)")
	limit := fs.Int("limit", 1000, "list at most `n` entries")
	reason := fs.String("reason", "", "suppress: the `reason` shown in listings")
	dnsServers := fs.String("dns", "", "send: DNS `servers`, comma-separated (default delivery.dns, dns, /etc/resolv.conf)")
	var lf logFlags
	lf.register(fs, "warn")
	check := checkConfigFlag(fs)
	// Flags may come before, between and after the action and its
	// argument.
	var pos []string
	for range len(args) + 1 {
		if code := parseFlags(fs, args); code >= 0 {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	action, rest := "list", pos
	if len(pos) > 0 {
		action, rest = pos[0], pos[1:]
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt outbox: "+format+"\n", a...)
		return code
	}
	wantArgs := map[string]int{"list": 0, "send": 0, "suppressed": 0, "retry": 1, "suppress": 1, "unsuppress": 1}
	n, ok := wantArgs[action]
	if !ok {
		return fail(ExitUsage, "unknown action %q (see --help)", action)
	}
	if len(rest) != n {
		return fail(ExitUsage, "%s takes %d argument(s), got %d", action, n, len(rest))
	}
	var states []outbox.State
	if *stateFlag != "" {
		for s := range strings.SplitSeq(*stateFlag, ",") {
			st := outbox.State(strings.TrimSpace(s))
			if st == "failed" {
				states = append(states, outbox.StateRetrying, outbox.StateGivenUp)
				continue
			}
			if !validState(st) {
				return fail(ExitUsage, "--state %q: want one of %v", s, outbox.States)
			}
			states = append(states, st)
		}
	}
	if err := lf.check(); err != nil {
		return usageError(env.Stderr, "tlsrpt outbox", "%v", err)
	}
	cfg, err := reports.LoadConfig(*config)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	cfg.Log = lf.apply(cfg.Log)
	if err := cfg.Log.Validate(); err != nil {
		return fail(ExitError, "%v", err)
	}
	log, _ := newLog(env.Stderr, cfg.Log)
	if *db != "" {
		cfg.Delivery.DB = *db
	}
	if *check {
		if _, err := NewOutbox(cfg, nil, log); err != nil {
			return fail(ExitError, "%v", err)
		}
		return configOK(env.Stdout, "tlsrpt outbox", "outbox %s, log %s/%s",
			redactDB(cmpOr(cfg.Delivery.DB, "sqlite:"+filepath.Join(policyd.DefaultStateDir(env.getenv), outbox.DefaultFile))), cfg.Log.Level, cfg.Log.Format)
	}
	st, err := outbox.Open(ctx, cfg.Delivery.DB, policyd.DefaultStateDir(env.getenv))
	if err != nil {
		if errors.Is(err, outbox.ErrBadSpec) {
			return fail(ExitUsage, "--db %v", err)
		}
		return fail(ExitError, "%v", err)
	}
	defer st.Close()
	now := time.Now().UTC()
	switch action {
	case "list":
		es, err := st.List(ctx, outbox.ListOptions{States: states, Limit: *limit})
		if err != nil {
			return fail(ExitError, "%v", err)
		}
		if *asJSON {
			if es == nil {
				es = []outbox.Entry{}
			}
			return printJSON(env, es)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDAY\tDOMAIN\tDESTINATION\tSTATE\tATTEMPTS\tNEXT/SENT\tREASON")
		for _, e := range es {
			when := ""
			switch {
			case !e.SentAt.IsZero():
				when = e.SentAt.Format(time.RFC3339)
			case !e.NextAttempt.IsZero():
				when = e.NextAttempt.Format(time.RFC3339)
			}
			dest := e.Destination
			if e.Kind == "report" {
				dest = "(record lookup)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Day, termSafe(e.PolicyDomain), termSafe(dest), e.State, e.Attempts, when, termSafe(e.LastError))
		}
		tw.Flush()
		return ExitOK
	case "suppressed":
		ds, err := st.Destinations(ctx, true)
		if err != nil {
			return fail(ExitError, "%v", err)
		}
		if *asJSON {
			if ds == nil {
				ds = []outbox.Destination{}
			}
			return printJSON(env, ds)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tSINCE\tFAIL_DAYS\tREASON")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", termSafe(d.Destination), d.SuppressedAt.Format(time.RFC3339), d.FailDays, termSafe(d.SuppressedReason))
		}
		tw.Flush()
		return ExitOK
	case "retry":
		if err := st.Retry(ctx, rest[0], now); err != nil {
			if errors.Is(err, outbox.ErrNotFound) {
				return fail(ExitFailure, "%s: no such delivery waiting, failed, given up or suppressed", rest[0])
			}
			return fail(ExitError, "%v", err)
		}
		fmt.Fprintf(env.Stdout, "%s is due now\n", rest[0])
		return ExitOK
	case "suppress":
		if err := st.Suppress(ctx, rest[0], *reason, now); err != nil {
			return fail(ExitError, "%v", err)
		}
		fmt.Fprintf(env.Stdout, "suppressed %s\n", termSafe(rest[0]))
		return ExitOK
	case "unsuppress":
		if err := st.Unsuppress(ctx, rest[0], now); err != nil {
			if errors.Is(err, outbox.ErrNotFound) {
				return fail(ExitFailure, "%s is not suppressed", termSafe(rest[0]))
			}
			return fail(ExitError, "%v", err)
		}
		fmt.Fprintf(env.Stdout, "unsuppressed %s\n", termSafe(rest[0]))
		return ExitOK
	}
	// send
	if *dnsServers != "" {
		cfg.Delivery.DNS = strings.Split(*dnsServers, ",")
	}
	o, err := NewOutbox(cfg, st, log)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	res, err := o.RunOnce(ctx)
	if err != nil {
		return fail(ExitError, "%v", err)
	}
	if *asJSON {
		return printJSON(env, map[string]int{"resolved": res.Resolved, "sent": res.Sent, "retrying": res.Retrying,
			"given_up": res.GivenUp, "suppressed": res.Suppressed, "lease_lost": res.LeaseLost, "pruned": res.Pruned})
	}
	fmt.Fprintf(env.Stdout, "looked up %d records; sent %d, failed %d (will retry), gave up %d, suppressed %d\n",
		res.Resolved, res.Sent, res.Retrying, res.GivenUp, res.Suppressed)
	return ExitOK
}

func validState(st outbox.State) bool {
	for _, s := range outbox.States {
		if s == st {
			return true
		}
	}
	return false
}

func printJSON(env Env, v any) int {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts tlsrpt outbox: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// NewOutbox builds the delivery workers of the delivery: section on an
// open outbox store: DNS, the HTTPS poster, the mailer with its DKIM key.
// A daemon runs the result with Outbox.Run.
func NewOutbox(cfg *reports.Config, st *outbox.Store, log *slog.Logger) (*outbox.Outbox, error) {
	d := cfg.Delivery
	servers := d.DNS
	if len(servers) == 0 {
		servers = cfg.DNS
	}
	res, err := dnsresolve.NewClient(servers...)
	if err != nil {
		return nil, fmt.Errorf("delivery.dns: %w", err)
	}
	roots, err := mtasts.LoadRootCAs(d.CAFile)
	if err != nil {
		return nil, fmt.Errorf("delivery.ca_file: %w", err)
	}
	m := d.Mail
	mailer := &outbox.Mailer{From: m.From, Relay: m.Relay, StartTLS: m.StartTLS, Username: m.Username,
		HelloName: m.HelloName, Sendmail: m.Sendmail, Timeout: m.Timeout, TLSConfig: &tls.Config{RootCAs: roots}, Resolver: res}
	switch m.StartTLS {
	case "", outbox.StartTLSRequired, outbox.StartTLSOpportunistic, outbox.StartTLSOff:
	default:
		return nil, fmt.Errorf("delivery.mail.starttls %q: want required, opportunistic or off", m.StartTLS)
	}
	switch d.HTTPSVerify {
	case "", "log", "require":
	default:
		return nil, fmt.Errorf("delivery.https_verify %q: want log or require", d.HTTPSVerify)
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("delivery.mail.password_file: %w", err)
		}
		mailer.Password = strings.TrimSpace(string(b))
	}
	if m.DKIM.KeyFile != "" {
		if m.DKIM.Domain == "" || m.DKIM.Selector == "" {
			return nil, errors.New("delivery.mail.dkim: key_file needs domain and selector")
		}
		key, err := outbox.LoadDKIMKey(m.DKIM.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("delivery.mail.dkim.key_file: %w", err)
		}
		mailer.DKIM = &outbox.DKIMSigner{Domain: m.DKIM.Domain, Selector: m.DKIM.Selector, Key: key}
	} else {
		// RFC 8460 §3: unsigned report mail is ignored by receivers.
		log.Warn("delivery.mail.dkim.key_file is not set: report mail is sent unsigned and receivers will ignore it")
	}
	return &outbox.Outbox{
		Store:    st,
		Resolver: res,
		Mail:     mailer,
		HTTP:     &outbox.HTTPSPoster{RootCAs: roots, Timeout: d.HTTPTimeout, RequireValidCertificates: d.HTTPSVerify == "require", AllowPrivate: d.HTTPSAllowPrivate, Logger: log},
		Logger:   log,
		Config: outbox.Config{Spread: d.Spread, RetryBase: d.RetryBase, RetryMax: d.RetryMax, MaxAge: d.MaxAge, Lease: d.Lease,
			MaxSize: d.MaxSize, SuppressAfterDays: d.SuppressAfterDays, Workers: d.Workers, Keep: d.Keep},
	}, nil
}
