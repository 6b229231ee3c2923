package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

// Defaults of the publish section.
const (
	// DefaultMaxAge is a week: long enough to ride out a policy host
	// outage, short enough to move MX hosts within days (RFC 8461 §3.2
	// recommends weeks or more for enforce).
	DefaultMaxAge = 7 * 24 * 3600
	// DefaultTestingPeriod is how long a domain stays in testing before
	// promote agrees: two weeks of daily TLS reports.
	DefaultTestingPeriod = 14 * 24 * time.Hour
	// DefaultMXRefresh is how often live MX of mx: auto domains are read.
	DefaultMXRefresh = time.Hour
	// DefaultCheckInterval is how often serve checks hosted domains.
	DefaultCheckInterval = time.Hour
)

// ErrConfig is wrapped by every configuration problem.
var ErrConfig = errors.New("publish: invalid configuration")

// Problem is one configuration problem, about one domain ("" for the
// section).
type Problem struct {
	Domain string
	Msg    string
}

func (p Problem) String() string {
	if p.Domain == "" {
		return "publish: " + p.Msg
	}
	return "publish: " + p.Domain + ": " + p.Msg
}

// ConfigError lists every problem found, one a line. It wraps ErrConfig.
type ConfigError struct {
	Problems []Problem
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

// Domain is one hosted policy domain after validation.
type Domain struct {
	// Name is the policy domain, lowercase A-labels.
	Name string
	Mode mtasts.Mode
	// Auto is true for mx: auto; Patterns are then the live MX hosts.
	Auto bool
	// Patterns are the mx patterns served (Planned appended).
	Patterns []string
	// Planned are the mx_planned patterns.
	Planned []string
	MaxAge  int64
	// Records is the section's records with the domain's overrides.
	Records reports.PublishRecords
	// LiveMX are the MX hosts seen when the domain was loaded.
	LiveMX []string

	served *Served
}

// Policy returns the policy served for the domain.
func (d *Domain) Policy() *Served { return d.served }

// PolicyHost returns mta-sts.<domain>.
func (d *Domain) PolicyHost() string { return "mta-sts." + d.Name }

// Set is the validated publish section: the hosted domains in
// configuration order.
type Set struct {
	Domains []*Domain
	// TestingPeriod, MXRefresh and CheckInterval are the section's
	// durations with defaults applied.
	TestingPeriod time.Duration
	MXRefresh     time.Duration
	CheckInterval time.Duration
}

// Domain returns the hosted domain name (any case, U- or A-labels), or nil.
func (s *Set) Domain(name string) *Domain {
	n, err := dnsresolve.Normalize(name)
	if err != nil {
		return nil
	}
	for _, d := range s.Domains {
		if d.Name == n {
			return d
		}
	}
	return nil
}

// Loader validates a publish section against live DNS.
type Loader struct {
	// DNS reads the live MX records; required.
	DNS dnsresolve.Resolver
	// Logger receives a warning per domain whose MX could not be read;
	// nil discards.
	Logger *slog.Logger
}

// Load validates cfg and builds its Set. Every problem is reported, one
// per line, in a *ConfigError: an invalid domain or mode, an mx pattern
// that is invalid or a two-label wildcard, max_age above 31557600, an mx
// pattern no live MX host matches, a domain none of whose live MX hosts
// the patterns match (its mail goes elsewhere), a live MX host an enforce
// policy would refuse, a null MX. A failed MX lookup is a problem for mx:
// auto (nothing to serve) and a logged warning otherwise (the patterns are
// served unchecked).
func (l *Loader) Load(ctx context.Context, cfg reports.PublishConfig) (*Set, error) {
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var probs []Problem
	bad := func(domain, format string, args ...any) {
		probs = append(probs, Problem{Domain: domain, Msg: fmt.Sprintf(format, args...)})
	}
	s := &Set{TestingPeriod: DefaultTestingPeriod, MXRefresh: DefaultMXRefresh, CheckInterval: DefaultCheckInterval}
	if cfg.TestingPeriod != "" {
		d, err := ParseAge(cfg.TestingPeriod)
		if err != nil {
			bad("", "testing_period: %v", err)
		}
		s.TestingPeriod = d
	}
	if cfg.MXRefresh < 0 {
		bad("", "mx_refresh %s is negative", cfg.MXRefresh)
	} else if cfg.MXRefresh > 0 {
		s.MXRefresh = cfg.MXRefresh
	}
	if cfg.CheckInterval != 0 {
		s.CheckInterval = cfg.CheckInterval
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			bad("", "tls_cert and tls_key go together")
		}
	}
	if cfg.PlainHTTP && (cfg.TLSCert != "" || cfg.CertDir != "") {
		bad("", "plain_http excludes tls_cert and cert_dir")
	}
	seen := map[string]bool{}
	for i, dc := range cfg.Domains {
		name, err := dnsresolve.Normalize(dc.Domain)
		if dc.Domain == "" {
			bad("", "domains[%d]: no domain", i)
			continue
		}
		if err != nil {
			bad(dc.Domain, "not a valid domain name: %v", err)
			continue
		}
		if seen[name] {
			bad(name, "listed twice")
			continue
		}
		seen[name] = true
		d := &Domain{Name: name, Auto: dc.MX.Auto(), MaxAge: dc.MaxAge, Records: mergeRecords(cfg.Records, dc.Records)}
		n := len(probs)
		switch m := mtasts.Mode(dc.Mode); m {
		case "":
			d.Mode = mtasts.ModeTesting
		case mtasts.ModeEnforce, mtasts.ModeTesting, mtasts.ModeNone:
			d.Mode = m
		default:
			bad(name, "mode %q is not enforce, testing or none", dc.Mode)
		}
		switch {
		case d.MaxAge == 0:
			d.MaxAge = DefaultMaxAge
		case d.MaxAge < 0:
			bad(name, "max_age %d is negative", d.MaxAge)
		case d.MaxAge > mtasts.MaxMaxAge:
			// RFC 8461 §3.2: max_age has a maximum of 31557600 (STS-ERRATA-3).
			bad(name, "max_age %d is above the maximum 31557600 (one year)", d.MaxAge)
		}
		for _, p := range append(d.explicit(dc.MX), dc.MXPlanned...) {
			if msg := patternProblem(p); msg != "" {
				bad(name, "%s", msg)
			}
		}
		for _, msg := range checkRecords(d.Records) {
			bad(name, "%s", msg)
		}
		if !d.Auto && len(dc.MX) == 0 && d.Mode != mtasts.ModeNone {
			bad(name, "no mx patterns: list them, or write mx: auto")
		}
		if len(probs) > n {
			continue
		}
		for _, p := range d.explicit(dc.MX) {
			d.Patterns = append(d.Patterns, strings.ToLower(p))
		}
		for _, p := range dc.MXPlanned {
			d.Planned = append(d.Planned, strings.ToLower(p))
		}
		live, err := liveMX(ctx, l.DNS, name)
		switch {
		case err != nil && d.Auto:
			bad(name, "mx auto: %v", err)
		case err != nil:
			log.Warn("publish: cannot read the live MX; the mx patterns are served unchecked", "domain", name, "error", err)
		default:
			d.LiveMX = live
			if d.Auto {
				d.Patterns = slices.Clone(live)
			}
			for _, msg := range checkLive(d, live) {
				bad(name, "%s", msg)
			}
		}
		if len(probs) > n {
			continue
		}
		if err := d.render(); err != nil {
			bad(name, "%v", err)
			continue
		}
		s.Domains = append(s.Domains, d)
	}
	probs = append(probs, checkEffects(cfg, seen)...)
	if len(probs) > 0 {
		return nil, &ConfigError{Problems: probs}
	}
	return s, nil
}

// explicit returns the configured patterns, none for auto.
func (d *Domain) explicit(m reports.PublishMX) []string {
	if d.Auto {
		return nil
	}
	return slices.Clone(m)
}

// render builds the served policy from the domain's fields.
func (d *Domain) render() error {
	mx := slices.Clone(d.Patterns)
	for _, p := range d.Planned {
		if !slices.Contains(mx, p) {
			mx = append(mx, p)
		}
	}
	sv, err := Render(d.Name, d.Mode, mx, d.MaxAge)
	if err != nil {
		return err
	}
	d.served = sv
	return nil
}

// patternProblem explains why p is not a pattern to publish, or "".
func patternProblem(p string) string {
	if strings.HasPrefix(p, "*.*.") || (strings.Count(p, "*") > 1) {
		// RFC 8461 §4.1: a wildcard covers exactly one label, and only
		// the left-most.
		return fmt.Sprintf("mx %q: a wildcard covers exactly one left-most label (RFC 8461 §4.1); list each level, for example *.%s", p, strings.TrimLeft(p, "*."))
	}
	if strings.HasSuffix(p, ".") {
		return fmt.Sprintf("mx %q: remove the trailing dot", p)
	}
	if err := mtasts.ValidPattern(p); err != nil {
		return err.Error()
	}
	return ""
}

// liveMX returns the domain's MX host names in preference order. A null
// MX (RFC 7505) or an empty RRset is an error: the domain takes no mail.
func liveMX(ctx context.Context, r dnsresolve.Resolver, domain string) ([]string, error) {
	if r == nil {
		return nil, errors.New("no DNS resolver")
	}
	mxs, _, err := r.LookupMX(ctx, domain)
	if errors.Is(err, dnsresolve.ErrNotFound) {
		return nil, fmt.Errorf("the domain has no MX records (MTA-STS applies to MX hosts, RFC 8461 §4)")
	}
	if err != nil {
		return nil, fmt.Errorf("MX lookup failed: %w", err)
	}
	var hosts []string
	for _, m := range mxs {
		if m.Host == "." {
			return nil, fmt.Errorf("the domain publishes a null MX (RFC 7505): it takes no mail")
		}
		if !slices.Contains(hosts, m.Host) {
			hosts = append(hosts, m.Host)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("the domain has no MX records")
	}
	return hosts, nil
}

// checkLive compares the patterns with the live MX hosts: every pattern
// must match one (mx_planned excepted), some host must match (else the
// mail goes elsewhere), and in enforce mode every host must match.
func checkLive(d *Domain, live []string) []string {
	if d.Mode == mtasts.ModeNone {
		return nil
	}
	pol := &mtasts.Policy{Mode: d.Mode, MX: d.Patterns}
	var msgs []string
	matched := 0
	var unmatched []string
	for _, v := range pol.CheckMX(live) {
		if v.Allowed {
			matched++
		} else {
			unmatched = append(unmatched, v.Host+" ("+v.Reason+")")
		}
	}
	if matched == 0 {
		return []string{fmt.Sprintf("no live MX host matches the mx patterns %s: the domain's mail goes to %s; host its policy where its MX is, or fix the patterns",
			strings.Join(d.Patterns, ", "), strings.Join(live, ", "))}
	}
	for _, p := range mtasts.UnusedPatterns(pol, live) {
		msgs = append(msgs, fmt.Sprintf("mx %q matches no live MX host (live: %s); remove it, or move it to mx_planned while the MX is being added", p, strings.Join(live, ", ")))
	}
	if d.Mode == mtasts.ModeEnforce && len(unmatched) > 0 {
		msgs = append(msgs, fmt.Sprintf("enforce would make senders refuse live MX host %s; add a pattern for it", strings.Join(unmatched, ", ")))
	}
	return msgs
}

// mergeRecords returns base with the non-empty fields of over.
func mergeRecords(base reports.PublishRecords, over reports.PublishRecords) reports.PublishRecords {
	r := base
	if over.CNAME != "" || len(over.IPv4) > 0 || len(over.IPv6) > 0 {
		r.CNAME, r.IPv4, r.IPv6 = over.CNAME, over.IPv4, over.IPv6
	}
	if over.RUA != "" {
		r.RUA = over.RUA
	}
	if len(over.CAA) > 0 {
		r.CAA = over.CAA
	}
	return r
}

// ParseAge parses a duration with a d (days) suffix or any Go duration.
func ParseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days < 0 || fmt.Sprint(days) != n {
			return 0, fmt.Errorf("%q: want a number of days like 14d, or a duration like 336h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days like 14d, or a duration like 336h", s)
	}
	return d, nil
}
