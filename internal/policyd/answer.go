package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Answer decides the reply to a lookup of key in map zone (see Responder).
func (r *Responder) Answer(ctx context.Context, zone, key string) (postfix.Reply, Decision) {
	return r.answer(ctx, zone, key, r.now(), &memoFill{})
}

func (r *Responder) answer(ctx context.Context, zone, key string, now time.Time, f *memoFill) (postfix.Reply, Decision) {
	r.init()
	var dl *deadline
	if r.Timeout > 0 {
		// One deadline for every step of this answer.
		dl = &deadline{}
		ctx, dl.cancel = context.WithTimeout(ctx, r.Timeout)
		dl.refs.Store(1)
		defer dl.release()
	}
	rules := r.compiled()
	f.rules = rules
	z, tlsrpt, _ := rules.zone(zone)
	d := Decision{Key: key, Zone: zone}

	hop := postfix.ParseNextHop(key)
	domain, ok := hop.PolicyDomain()
	if !ok {
		d.Source = "key"
		switch hop.Kind {
		case postfix.KeyParentProbe:
			// RFC 8461 §3.4: no fallback to a parent zone (STS-SEL-3).
			d.Reason = "parent-domain probe: MTA-STS never applies to a parent zone (RFC 8461 §3.4)"
		case postfix.KeyIPLiteral:
			// RFC 8461 §3.4: no MTA-STS for address literals (STS-SEL-4).
			d.Reason = "IP literal: MTA-STS has no policy for address literals (RFC 8461 §3.4)"
		default:
			d.Reason = "not a next-hop domain"
		}
		return r.notFound(&d)
	}
	if !isASCII(domain) || strings.Contains(domain, "xn--") {
		// U-labels become A-labels, and an "xn--" label must be valid
		// Punycode (RFC 5891 §5.5): a key that fails is not a domain that
		// can have a policy or TLSA records, so it is NOTFOUND with no DNS
		// traffic like every other unusable key, never TEMP from a DNS
		// layer refusing the name. ParseNextHop checked the rest (labels,
		// characters, length) for ASCII names.
		a, err := dnsresolve.Normalize(domain)
		if err != nil {
			d.Source, d.Reason = "key", "invalid domain name: "+err.Error()
			return r.notFound(&d)
		}
		domain = a
	}
	d.Domain = domain

	if ov := rules.overrides[domain]; ov != nil {
		if ov.Expires.IsZero() || now.Before(ov.Expires) {
			f.ovTil = ov.Expires
			return r.applyOverride(ov, z, &d)
		}
		r.logExpired(ctx, ov)
	}

	st := r.state(domain, now)
	f.st, f.stGen = st, st.gen.Load()
	var early chan stsLookup
	if r.DNS != nil {
		if mode := z.daneMode(); r.skipDANE(mode) {
			// dane: auto with a resolver that does not validate: DANE
			// cannot apply (DANE-1), no MX query for it.
			// Not kept in the state: an answer with the AD bit turns
			// the lookups back on at once.
			d.DANE = DANEInsecure
		} else if mode != DANEOff {
			if !r.daneFresh(st, now) {
				// The DANE decision needs DNS (MX, then TLSA): discover
				// the MTA-STS policy meanwhile, so that a cold answer waits
				// for the longer of the two chains, not their sum. When
				// DANE decides, the discovery still fills the cache.
				f.domain, f.cacheGen = domain, r.Cache.Generation(domain)
				early = make(chan stsLookup, 1)
				dl.hold() // the discovery may outlive the answer
				go func() {
					defer dl.release()
					res, err := r.Cache.Get(ctx, domain)
					early <- stsLookup{res, err}
				}()
			}
			d.DANE = r.dane(ctx, st, domain, mode, now)
			switch d.DANE {
			case DANEAll:
				d.Source, d.Reason = "dane", "every MX host has DNSSEC-validated usable TLSA records (RFC 7672); DANE takes precedence over MTA-STS (RFC 8461 §2)"
				d.Answer = AnswerDANEOnly
				return postfix.Found("dane-only"), d
			case DANESome:
				// Postfix applies one level to every MX host of the
				// destination: "dane" would leave the hosts without TLSA
				// to opportunistic TLS, weaker than an enforced MTA-STS
				// policy. The policy decides first (daneSome).
				rep, dec := r.answerSTS(ctx, st, z, tlsrpt, domain, now, &d, f, early)
				return r.daneSome(rep, dec)
			case DANETemp:
				// STS-DANE-3: never downgrade to MTA-STS on a failed
				// DNSSEC lookup.
				d.Source, d.Err = "dane", string(result.DNSError)
				d.Reason = "DNS lookup for DANE failed; not downgrading to MTA-STS (STS-DANE-3)"
				return r.temp(ctx, &d, "DANE lookup failed")
			}
		}
	}
	return r.answerSTS(ctx, st, z, tlsrpt, domain, now, &d, f, early)
}

// daneSome turns the MTA-STS answer for a domain where DANE applies to
// some MX hosts only into the answer under which no host is left to
// unauthenticated TLS. An enforced policy ("OK secure …") stays: PKIX and
// the policy's MX patterns authenticate every host, those with TLSA
// records included (RFC 8461 §2 only forbids MTA-STS overriding a failing
// DANE validation, and Postfix's secure level does no DANE at all). TEMP
// stays (a policy may exist: OPEN-1, STS-DANE-3). Without an enforced
// policy (NOTFOUND) the answer is "OK dane": opportunistic DANE, Postfix's
// own level for such destinations (DANE-2, DANE-4).
func (r *Responder) daneSome(rep postfix.Reply, d Decision) (postfix.Reply, Decision) {
	switch d.Answer {
	case AnswerSecure:
		d.Reason += "; DANE applies to some MX hosts only, and Postfix applies one level to all of them: the MTA-STS policy authenticates every host (PKIX), where \"dane\" would leave the hosts without TLSA records to unauthenticated TLS"
		return rep, d
	case AnswerNotFound:
		d.Source, d.Answer = "dane", AnswerDANE
		d.Reason = "some MX hosts have DNSSEC-validated TLSA records and no MTA-STS policy is enforced (" + d.Reason + "): opportunistic DANE (RFC 7672)"
		return postfix.Found("dane"), d
	}
	return rep, d
}

// deadline is the time limit of one answer, shared with the discovery the
// answer may start and not wait for (when DANE decides): the last of the
// two to finish releases the timer, so the discovery still gets its result
// (and the Cache counts it) within the limit.
type deadline struct {
	refs   atomic.Int32
	cancel context.CancelFunc
}

func (d *deadline) hold() {
	if d != nil {
		d.refs.Add(1)
	}
}

func (d *deadline) release() {
	if d != nil && d.refs.Add(-1) == 0 {
		d.cancel()
	}
}

// stsLookup is the outcome of a Cache.Get started before the DANE decision.
type stsLookup struct {
	res mtasts.Result
	err error
}

func (r *Responder) notFound(d *Decision) (postfix.Reply, Decision) {
	d.Answer = AnswerNotFound
	return postfix.NotFound(), *d
}

func (r *Responder) temp(ctx context.Context, d *Decision, reason string) (postfix.Reply, Decision) {
	d.Answer = AnswerTemp
	r.logger().LogAttrs(ctx, slog.LevelInfo, "answering TEMP: Postfix defers delivery", slog.Any("decision", *d))
	return postfix.TempFail(reason), *d
}

func (r *Responder) applyOverride(ov *override, z Zone, d *Decision) (postfix.Reply, Decision) {
	d.Source, d.Override = "override", ov.Reason
	d.Reason = "override " + string(ov.Action)
	if ov.Reason != "" {
		d.Reason += ": " + ov.Reason
	}
	switch ov.Action {
	case ActionNone:
		d.Answer = AnswerMay
		return postfix.Found("may"), *d
	case ActionDANE:
		d.Answer = AnswerDANE
		return postfix.Found("dane"), *d
	case ActionDANEOnly:
		d.Answer = AnswerDANEOnly
		return postfix.Found("dane-only"), *d
	case ActionEnforce:
		d.Answer = AnswerSecure
		return postfix.Found(ov.secureAnswer(z)), *d
	default:
		return r.notFound(d)
	}
}

// secureAnswer is an enforce override's answer in zone z.
func (ov *override) secureAnswer(z Zone) string {
	s := "secure match=" + ov.match
	if sn := z.serverName(); sn != "" {
		s += " servername=" + sn
	}
	return s
}

func (r *Responder) logExpired(ctx context.Context, ov *override) {
	// One line per override and rule set, not one per query.
	if ov.loggedOnce() {
		return
	}
	r.logger().LogAttrs(ctx, slog.LevelWarn, "override expired; ignoring it",
		slog.String("domain", ov.Domain), slog.String("action", string(ov.Action)),
		slog.String("reason", ov.Reason), slog.Time("expired", ov.Expires))
}

func (o *override) loggedOnce() bool { return o.logged.Swap(true) }

// answerSTS applies the MTA-STS policy of domain.
func (r *Responder) answerSTS(ctx context.Context, st *domainState, z Zone, tlsrpt bool, domain string, now time.Time, d *Decision, f *memoFill, early chan stsLookup) (postfix.Reply, Decision) {
	var res mtasts.Result
	var err error
	if early != nil {
		l := <-early
		res, err = l.res, l.err
	} else {
		f.domain, f.cacheGen = domain, r.Cache.Generation(domain)
		res, err = r.Cache.Get(ctx, domain)
	}
	f.src, f.err, f.cacheTil = res.Source, res.Err, res.Until
	if res.Domain != domain {
		f.no = true
	}
	if err != nil {
		if errors.Is(err, mtasts.ErrInvalidDomain) {
			d.Source, d.Reason = "key", "invalid domain name"
			return r.notFound(d)
		}
		// No answer at all (a failing store, ctx ended): defer, as
		// mtasts.Cache.Get asks.
		d.Err, d.Reason = string(result.CacheError), err.Error()
		return r.temp(ctx, d, "policy lookup failed")
	}
	if r.Touch != nil {
		r.Touch(res.Domain, now)
	}
	recovered := false
	for {
		d.Source = res.Source.String()
		d.Err = errClass(res.Err)
		d.Mode, d.PolicyID = "", res.ID
		p := res.Policy
		f.policy = p
		if p == nil {
			return r.noPolicy(ctx, st, z, res, now, d, f)
		}
		st.clearFailure()
		d.Mode = p.Mode
		switch {
		case p.Mode == mtasts.ModeNone:
			// RFC 8461 §5: mode none is treated as no policy
			// (STS-APPLY-3, STS-CACHE-6).
			d.Reason = "policy mode none: treated as no policy (RFC 8461 §5)"
			return r.notFound(d)
		case p.Mode == mtasts.ModeTesting && !z.StrictTesting:
			// RFC 8461 §5: testing never stops delivery (STS-APPLY-2,
			// PFX-STS-1).
			d.Reason = "policy mode testing: deliver as usual (RFC 8461 §5); strict_testing is off"
			return r.notFound(d)
		}
		if r.DNS != nil && !recovered {
			if nres, ok := r.checkMX(ctx, st, domain, res, now, d); ok {
				res, recovered = nres, true
				f.no = true
				continue
			}
		}
		d.Answer = AnswerSecure
		d.MXPatterns = res.Policy.MX
		if p.Mode == mtasts.ModeTesting {
			d.Reason = "policy mode testing, enforced because strict_testing is on"
		} else {
			d.Reason = "policy mode enforce (RFC 8461 §5)"
		}
		data, err := r.render(ctx, st, res, z, tlsrpt)
		if err != nil {
			d.Err, d.Reason = "policy-render", err.Error()
			return r.temp(ctx, d, "cannot express the policy for Postfix")
		}
		if !postfix.ReplyFits(ctx, data) {
			// Never a TEMP for a long policy (fit.go).
			data, f.no = r.fit(ctx, st, res, z, tlsrpt, d), true
		}
		return postfix.Found(data), *d
	}
}

// noPolicy answers when no policy applies: NOTFOUND, or TEMP within the
// zone's window after a transient failure (OPEN-1).
func (r *Responder) noPolicy(ctx context.Context, st *domainState, z Zone, res mtasts.Result, now time.Time, d *Decision, f *memoFill) (postfix.Reply, Decision) {
	if !mtasts.Temporary(res.Err) {
		st.clearFailure()
		switch {
		case errors.Is(res.Err, mtasts.ErrNoRecord):
			d.Reason = "no MTA-STS policy: " + res.Err.Error()
		case res.Err != nil:
			// RFC 8461 §3.3: an invalid policy or a certificate failure
			// with nothing cached is "no policy" (STS-FETCH-9).
			d.Reason = "no usable MTA-STS policy: " + res.Err.Error()
		default:
			d.Reason = "no MTA-STS policy"
		}
		return r.notFound(d)
	}
	f.no = true // the OPEN-1 window decides: never memoised
	since := st.failing(now)
	window := z.tempWindow()
	if now.Sub(since) < window {
		// OPEN-1: defer for a bounded window rather than deliver without
		// a policy that may exist.
		d.Reason = fmt.Sprintf("transient discovery failure with nothing cached (failing since %s, TEMP for at most %s, OPEN-1): %v",
			since.UTC().Format(time.RFC3339), window, res.Err)
		return r.temp(ctx, d, "MTA-STS policy discovery failed temporarily")
	}
	d.Reason = fmt.Sprintf("transient discovery failure for longer than %s: treated as no policy (OPEN-1): %v", window, res.Err)
	r.logger().LogAttrs(ctx, slog.LevelWarn, "MTA-STS discovery still failing after the TEMP window; answering NOTFOUND",
		slog.String("domain", d.Domain), slog.Time("failing_since", since), slog.String("error", res.Err.Error()))
	return r.notFound(d)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
