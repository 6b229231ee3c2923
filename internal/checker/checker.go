package checker

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
)

// Defaults for the zero-valued fields of Checker.
const (
	// DefaultSMTPPort is where MX hosts are probed (RFC 5321 §4.5.4.2).
	DefaultSMTPPort = 25
	// DefaultProbeTimeout bounds each step of an SMTP probe (connect,
	// greeting, EHLO, STARTTLS, handshake).
	DefaultProbeTimeout = 10 * time.Second
	// DefaultTimeout bounds a whole Check.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxMX is how many MX hosts are probed per domain.
	DefaultMaxMX = 10
	// DefaultEHLOName is the name the probe gives in EHLO.
	DefaultEHLOName = "localhost"
	// ExpiryWarning is how close to expiry a certificate draws a warning.
	ExpiryWarning = 14 * 24 * time.Hour
)

// Checker audits the email transport security of domains. Set the fields
// before the first Check and leave them alone afterwards; a Checker is then
// safe for concurrent use (bulk runs share one). It must not be copied after
// first use. The zero value checks against the system's resolvers and roots.
type Checker struct {
	// DNS answers every lookup; nil means a dnsresolve.Client with the
	// servers of /etc/resolv.conf.
	DNS dnsresolve.Resolver
	// STS fetches policies; nil means an mtasts.Client using DNS and
	// RootCAs. Its Timeout bounds the fetch.
	STS *mtasts.Client
	// RootCAs verifies MX and client endpoint certificates; nil means the
	// system pool.
	RootCAs *x509.CertPool
	// SMTPPort is the port MX hosts are probed on; 0 means 25.
	SMTPPort int
	// ProbeTimeout bounds each step of a probe; 0 means DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// Timeout bounds a whole Check; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxMX caps the MX hosts probed per domain; 0 means DefaultMaxMX.
	MaxMX int
	// EHLOName is sent in EHLO; "" means DefaultEHLOName.
	EHLOName string
	// Strict judges as the strictest sender would: the policy must follow
	// the RFC 8461 grammar exactly (a policy valid only under the lenient
	// grammar fails and is not applied), and MX problems fail even when
	// the policy is in mode testing or absent.
	Strict bool
	// Clients are RFC 8314 mail client endpoints to probe as well.
	Clients []Endpoint
	// ClientAccount, when set, is an address, domain or host whose mail
	// client endpoints are discovered (mailclient: RFC 6186 SRV records,
	// then well-known names, the name itself last) and probed as well.
	ClientAccount string
	// ClientPorts replaces the standard port of a service (by IANA name)
	// for endpoints found by well-known names (test networks).
	ClientPorts map[string]int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives a debug line per check; nil discards.
	Logger *slog.Logger

	once   sync.Once
	dns    dnsresolve.Resolver
	sts    *mtasts.Client
	dnsErr error
}

func (c *Checker) init() {
	c.once.Do(func() {
		c.dns = c.DNS
		if c.dns == nil {
			cl, err := dnsresolve.NewClient()
			if err != nil {
				c.dnsErr = err
			} else {
				c.dns = cl
			}
		}
		c.sts = c.STS
		if c.sts == nil {
			c.sts = &mtasts.Client{DNS: c.dns, RootCAs: c.RootCAs}
		}
	})
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Checker) smtpPort() int {
	if c.SMTPPort > 0 {
		return c.SMTPPort
	}
	return DefaultSMTPPort
}

func (c *Checker) probeTimeout() time.Duration {
	if c.ProbeTimeout > 0 {
		return c.ProbeTimeout
	}
	return DefaultProbeTimeout
}

func (c *Checker) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Checker) maxMX() int {
	if c.MaxMX > 0 {
		return c.MaxMX
	}
	return DefaultMaxMX
}

func (c *Checker) ehloName() string {
	if c.EHLOName != "" {
		return c.EHLOName
	}
	return DefaultEHLOName
}

// ErrInvalidDomain is reported (in Report.Error, with VerdictError) when
// the name given to Check is not a valid domain name. Fix the input.
var ErrInvalidDomain = errors.New("checker: invalid domain name")

// ErrIPLiteral is reported (in Report.Error, with VerdictError) when the
// name given to Check is an IP address ("192.0.2.1", "[IPv6:2001:db8::1]"):
// MTA-STS applies to domain names only (RFC 8461 §4.1, STS-SEL-4), as
// policyd answers NOTFOUND for address literals.
var ErrIPLiteral = errors.New("IP literal: MTA-STS does not apply")

// ErrResolver is reported (in Report.Error, with VerdictError) when the
// configured DNS resolver itself did not answer: every lookup of the
// domain failed without an answer and so did a lookup of its top-level
// domain. The domain was not judged: fix the resolver (--dns) and retry.
var ErrResolver = errors.New("could not run: resolver unreachable")

// IsIPLiteral reports whether s is an IP address, bare or as an RFC 5321
// address literal in brackets.
func IsIPLiteral(s string) bool {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok {
			return false
		}
		if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
			inner = inner[5:]
		}
		s = inner
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// Check audits domain (U-labels or A-labels, with or without a trailing
// dot) and returns its report. It never returns nil, and finishes within
// Timeout (or when ctx ends, with what it learned so far). An invalid name
// gives a report with VerdictError.
func (c *Checker) Check(ctx context.Context, domain string) *Report {
	c.init()
	start := c.now()
	r := &Report{Schema: SchemaVersion, Started: start.UTC(), Strict: c.Strict, MX: []MXResult{}, Findings: []Finding{}}
	if IsIPLiteral(domain) {
		r.Domain, r.Verdict, r.Error = domain, VerdictError, ErrIPLiteral.Error()
		return r
	}
	d, err := dnsresolve.Normalize(domain)
	if err != nil {
		r.Domain, r.Verdict = domain, VerdictError
		r.Error = ErrInvalidDomain.Error() + ": " + err.Error()
		return r
	}
	r.Domain = d
	if domain != d {
		r.Input = domain
	}
	if c.dnsErr != nil {
		r.Verdict, r.Error = VerdictError, c.dnsErr.Error()
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()

	var (
		wg           sync.WaitGroup
		sts          stsState
		mx           mxState
		rpt, clients findings
		rptSum       TLSRPTSummary
		clientRes    []EndpointResult
		clientSum    *ClientSummary
		drafts       draftLookups
	)
	wg.Go(func() { sts = c.checkSTS(ctx, d) })
	wg.Go(func() { mx = c.checkMX(ctx, d) })
	wg.Go(func() { rptSum, rpt = c.checkTLSRPT(ctx, d) })
	wg.Go(func() { drafts = c.lookupDrafts(ctx, d) })
	if len(c.Clients) > 0 || c.ClientAccount != "" {
		wg.Go(func() { clientRes, clientSum, clients = c.checkClients(ctx) })
	}
	wg.Wait()

	if c.resolverDown(ctx, d, sts, mx, rpt) {
		r.Verdict, r.Error = VerdictError, ErrResolver.Error()
		r.DurationMS = c.now().Sub(start).Milliseconds()
		return r
	}
	if mx.nxdomain {
		// The other findings ("publish an MX record", "no _mta-sts
		// record") would advise a domain that does not exist.
		r.Findings = append(r.Findings, mx.lookup...)
		r.finish()
		r.DurationMS = c.now().Sub(start).Milliseconds()
		return r
	}
	c.judgeDrafts(ctx, d, drafts, &sts, &rpt, rptSum)
	r.STS = sts.summary
	matchFindings := c.judgeMX(sts, &mx)
	if mx.results != nil {
		r.MX = mx.results // else the empty array: "mx" is never null
	}
	r.TLSRPT = rptSum
	r.Clients = clientRes
	r.ClientSummary = clientSum

	all := make([]Finding, 0, len(sts.record)+len(sts.pol)+len(matchFindings)+len(mx.hostF)+len(mx.dane)+len(rpt)+len(clients))
	for _, part := range []findings{sts.record, sts.pol, matchFindings, mx.hostF, mx.dane, rpt, clients} {
		all = append(all, part...)
	}
	r.Findings = all
	r.finish()
	r.DurationMS = c.now().Sub(start).Milliseconds()
	c.logger().LogAttrs(ctx, slog.LevelDebug, "checked", slog.Any("report", r))
	return r
}

// resolverDown tells a resolver that does not answer from a domain whose
// authoritative servers fail: when the _mta-sts TXT, MX and _smtp._tls TXT
// lookups all failed, a lookup of the domain's top-level domain decides.
// An answer there (even "no such record") means the resolver works and the
// failures are the domain's; no answer means the fault is local, and
// blaming the domain would be wrong.
func (c *Checker) resolverDown(ctx context.Context, d string, sts stsState, mx mxState, rpt findings) bool {
	has := func(fs findings, id string) bool {
		for _, f := range fs {
			if f.ID == id {
				return true
			}
		}
		return false
	}
	if !has(sts.record, "sts.record.dns-error") || !has(mx.lookup, "sts.mx.lookup-error") || !has(rpt, "tlsrpt.dns-error") {
		return false
	}
	tld := d[strings.LastIndexByte(d, '.')+1:]
	// The domain's own time limit may be spent: the probe gets its own.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.probeTimeout())
	defer cancel()
	_, _, err := c.dns.LookupMX(pctx, tld)
	return errors.Is(err, dnsresolve.ErrLookupFailed)
}

// finish computes Counts and Verdict from Findings.
func (r *Report) finish() {
	r.Counts = Counts{}
	worst := SeverityOK
	for _, f := range r.Findings {
		switch f.Severity {
		case SeverityOK:
			r.Counts.OK++
		case SeverityInfo:
			r.Counts.Info++
		case SeverityWarn:
			r.Counts.Warn++
		case SeverityFail:
			r.Counts.Fail++
		}
		worst = max(worst, f.Severity)
	}
	switch worst {
	case SeverityFail:
		r.Verdict = VerdictFail
	case SeverityWarn:
		r.Verdict = VerdictWarn
	default:
		r.Verdict = VerdictPass
	}
}
