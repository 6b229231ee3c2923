package policyd

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Defaults of the Responder fields.
const (
	// DefaultDANETTL is how long a DANE decision (and the MX set it was
	// made from) is reused before DNS is asked again.
	DefaultDANETTL = 5 * time.Minute
	// DefaultMXCheckInterval is how long a domain's live MX set is trusted
	// when checking a cached enforce policy against it.
	DefaultMXCheckInterval = 15 * time.Minute
	// DefaultMaxStates caps the per-domain state (MX sets, DANE decisions,
	// failure windows) kept in memory; Prune drops the oldest beyond it.
	DefaultMaxStates = 200000
	// TLSRPTMapName is the socketmap map name that asks for the TLSRPT
	// attributes whatever the zone says (postfix-tlspol's convention,
	// PFX-STS-2).
	TLSRPTMapName = "QUERYwithTLSRPT"
	// maxMXHosts bounds the TLSA lookups per domain.
	maxMXHosts = 16
)

// Answer kinds, the values of Decision.Answer and of the metrics label.
const (
	AnswerSecure   = "ok_secure"
	AnswerDANE     = "ok_dane"
	AnswerDANEOnly = "ok_dane_only"
	AnswerMay      = "ok_may"
	AnswerNotFound = "notfound"
	AnswerTemp     = "temp"
	AnswerPerm     = "perm"
)

// DANE outcomes, the values of Decision.DANE.
const (
	DANESkipped  = ""          // DANE not looked at (off, override, no resolver)
	DANEAll      = "dane-only" // every MX host has usable TLSA records
	DANESome     = "dane"      // some MX hosts have TLSA records (answer: the enforced MTA-STS policy, else "OK dane")
	DANENone     = "none"      // secure proof that no MX host has TLSA records
	DANEInsecure = "insecure"  // the MX (or TLSA) answers are not DNSSEC-validated
	DANETemp     = "temp"      // a lookup failed while DANE could apply
	DANENoMX     = "no-mx"     // null MX: the domain accepts no mail
)

// Decision explains an answer: for logs, metrics and `resolve --explain`.
type Decision struct {
	Key    string
	Zone   string
	Domain string // the policy domain, "" when the key has none
	// Answer is one of the Answer* constants.
	Answer string
	// Source is where the answer comes from: "key" (the key itself decided),
	// "override", "dane", or the mtasts.Source of the policy ("cache",
	// "fetched", "stale", "none").
	Source string
	// Mode and PolicyID describe the MTA-STS policy that was applied or
	// looked at; empty without one.
	Mode     mtasts.Mode
	PolicyID string
	// MXCheck is the outcome of the live MX check of an enforce policy:
	// "" (not done), "match", "mismatch", "recovered", "recovery-failed",
	// "lookup-failed".
	MXCheck string
	// MXHosts is the live MX set the check used, and Unmatched its hosts
	// that match none of MXPatterns, the applied policy's mx patterns:
	// Postfix cannot authenticate those hosts (RFC 8461 §4.1), and when
	// every host is unmatched an enforce answer defers all mail.
	MXHosts, Unmatched, MXPatterns []string
	// DANE is one of the DANE* outcomes.
	DANE string
	// Override is the override's reason when one decided.
	Override string
	// Err is the class of the discovery error: an RFC 8460 result type,
	// a local class of package result ("dns-error", "no-policy",
	// "cache-error"), "policy-render" or "".
	Err string
	// Reason says why, in one line for people.
	Reason string
}

// LogValue implements slog.LogValuer.
func (d Decision) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("key", d.Key), slog.String("zone", d.Zone), slog.String("answer", d.Answer)}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("domain", d.Domain)
	add("source", d.Source)
	add("mode", string(d.Mode))
	add("policy_id", d.PolicyID)
	add("mx_check", d.MXCheck)
	if len(d.Unmatched) > 0 {
		attrs = append(attrs, slog.Any("unmatched_mx", d.Unmatched))
	}
	add("dane", d.DANE)
	add("override", d.Override)
	add("error", d.Err)
	add("reason", d.Reason)
	return slog.GroupValue(attrs...)
}

// Observer receives the Responder's events, for metrics. Methods must be
// fast and safe for concurrent use. zone is a configured zone name or
// "default", never a client-chosen string.
type Observer interface {
	Query(zone, answer string, elapsed time.Duration)
	MXRecovery(ok bool)
	DANEDecision(outcome string)
}

// Responder decides what to answer Postfix for a TLS policy lookup: the brain
// of the policy daemon, without listeners. It implements postfix.Handler.
//
// Order of the rules, first match wins:
//  1. the key: parent probes, IP literals and invalid keys are NOTFOUND
//     with no DNS traffic (STS-SEL-3, STS-SEL-4, PFX-POL-2); "[relay]:port"
//     looks up the relay host (OPEN-5, STS-SEL-2);
//  2. an unexpired override for the policy domain;
//  3. DANE (RFC 8461 §2, STS-DANE-1..4, OPEN-6), decided by dane.Decider
//     (RFC 7672 §2.2: validated MX RRset, address records and TLSA): with
//     usable TLSA records on every MX host "OK dane-only"; on some only,
//     the enforced MTA-STS answer when there is one (it authenticates
//     every host; "dane" would not), else "OK dane"; a failed lookup where
//     DANE could apply is TEMP, never a downgrade to MTA-STS
//     (STS-DANE-3);
//  4. MTA-STS from the Cache: enforce is "OK secure match=… servername=…"
//     (PFX-STS-1/2/5); testing is NOTFOUND unless the zone has
//     StrictTesting; none and no policy are NOTFOUND (STS-APPLY-3); a
//     transient failure with nothing cached is TEMP for the zone's
//     TempWindow, then NOTFOUND (OPEN-1).
//
// An enforce policy is checked against the domain's live MX set (cached for
// MXCheckInterval); when an MX host matches no pattern the policy is
// re-fetched before answering, even with an unchanged id (Cache.Refresh with
// force, rate-limited by the Cache).
//
// A cached answer costs no DNS and no store write. Set the exported fields
// before the first Answer; SetRules may be called at any time.
type Responder struct {
	// Cache answers MTA-STS lookups. Required.
	Cache *mtasts.Cache
	// DNS is used for MX and TLSA lookups (DANE and the MX check); nil
	// disables both.
	DNS dnsresolve.Resolver
	// DANETTL is how long DANE decisions are reused; 0 means
	// DefaultDANETTL.
	DANETTL time.Duration
	// MXCheckInterval is how long an MX set is trusted for the MX check;
	// 0 means DefaultMXCheckInterval.
	MXCheckInterval time.Duration
	// MaxStates caps per-domain memory; 0 means DefaultMaxStates.
	MaxStates int
	// Timeout bounds the work behind one answer that is not memoised: the
	// DANE lookups (MX, TLSA), the MX check and the wait for MTA-STS
	// discovery (TXT, A/AAAA, HTTPS) all run under one deadline, so that
	// Postfix gets its answer (TEMP if nothing was learned in time) within
	// Timeout whatever the DNS client's per-query timeout and retries. A
	// discovery cut short goes on in the Cache, bounded by the Client's
	// Timeout, and the next lookup finds its result. 0 means no bound
	// beyond the caller's ctx. The daemon sets it to fetch.timeout.
	Timeout time.Duration
	// Touch, when set, is called with the policy domain of every MTA-STS
	// answer, so that the store can record use without a write per query
	// (stscache.Tiered.Touch).
	Touch func(domain string, now time.Time) bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger gets a line per TEMP answer, recovery, expired override and
	// window end (Info/Warn), and per answer at Debug; nil discards.
	Logger *slog.Logger
	// Observer, when set, receives events for metrics.
	Observer Observer

	rules      atomic.Pointer[compiled]
	initOnce   sync.Once
	memo       *answerMemo
	memoHits   atomic.Int64
	seed       maphash.Seed
	shared     sharedReplies
	states     [stateShards]stateShard // domain → *domainState
	nstates    atomic.Int64
	validating atomic.Bool // the resolver has set the AD bit at least once
	group      singleflight.Group
}

// stateShards splits the per-domain state map, so that lookups of
// different domains rarely share a lock.
const stateShards = 64

type stateShard struct {
	mu sync.RWMutex
	m  map[string]*domainState
}

func (r *Responder) init() {
	r.initOnce.Do(func() {
		r.memo = newAnswerMemo()
		r.seed = maphash.MakeSeed()
	})
}

// domainState is what the Responder remembers per policy domain.
type domainState struct {
	used atomic.Int64 // unix nanoseconds of the last query
	// gen moves on every change below that can change an answer (MX set,
	// DANE decision, MX check, failure window): memoised answers derived
	// from the state check it.
	gen atomic.Uint64

	// Times are unix nanoseconds, 0 for none: a domainState exists for
	// every domain looked up recently, so it is kept small.
	mu     sync.Mutex
	mxKind uint8 // mxOK, mxNotFound, mxFailed
	mxAuth bool
	// fitWarned: an answer was shortened to fit a reply limit, and logged.
	fitWarned bool
	// MX set
	mxHosts []string
	mxAt    int64
	// DANE decision
	dane   string
	daneAt int64
	// MX check of the policy
	checkedPolicy *mtasts.Policy
	checkedMXAt   int64
	mismatch      []string
	// OPEN-1 window
	failingSince int64
	// the last rendered secure reply, nil until one is needed
	rendered *renderedReply
}

// renderedReply is a secure answer built for one policy and zone variant.
type renderedReply struct {
	policy  *mtasts.Policy
	variant string
	data    string
}

const (
	mxOK = iota
	mxNotFound
	mxFailed
)

// SetRules installs zones and overrides, replacing the previous ones. It
// validates them first and keeps the old rules on error.
func (r *Responder) SetRules(rules *Rules) error {
	c, err := compile(rules)
	if err != nil {
		return err
	}
	r.rules.Store(c)
	return nil
}

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Responder) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

var emptyRules = &compiled{}

func (r *Responder) compiled() *compiled {
	if c := r.rules.Load(); c != nil {
		return c
	}
	return emptyRules
}

// zone returns the settings for a map name, whether TLSRPT attributes are
// wanted, and the metrics label.
func (c *compiled) zone(name string) (Zone, bool, string) {
	if z, ok := c.zones[name]; ok {
		return z, z.TLSRPT || name == TLSRPTMapName, name
	}
	if name == TLSRPTMapName {
		return c.def, true, name
	}
	return c.def, c.def.TLSRPT, "default"
}

// Lookup implements postfix.Handler: it answers, logs and observes.
// Repeated lookups are answered from the answer memo (see memo.go) while
// nothing they were derived from has changed.
func (r *Responder) Lookup(ctx context.Context, name, key string) postfix.Reply {
	start := time.Now()
	now := start
	if r.Now != nil {
		now = r.Now()
	}
	debug := r.Logger != nil && r.Logger.Enabled(ctx, slog.LevelDebug)
	r.init()
	mk := memoKey{name, key}
	if !debug {
		// A memoised answer may come from a connection with a larger reply
		// limit (socketmap and tcp_table with one map name).
		if e := r.memo.get(mk); e != nil && r.memoValid(e, now.UnixNano()) &&
			(e.reply.Status != postfix.StatusOK || postfix.ReplyFits(ctx, e.reply.Data)) {
			r.memoHits.Add(1)
			if e.domain != "" {
				if o := r.Cache.Observer; o != nil {
					o.Answered(e.domain, e.src, e.err)
				}
			}
			if e.record != nil {
				e.record(time.Since(start))
			}
			return e.reply
		}
	}
	var f memoFill
	reply, d := r.answer(ctx, name, key, now, &f)
	_, _, label := f.rules.zone(name)
	record := r.recorder(label, d.Answer)
	if record != nil {
		record(time.Since(start))
	}
	if debug {
		r.Logger.LogAttrs(ctx, slog.LevelDebug, "policy lookup", slog.Any("decision", d))
		return reply
	}
	e := &memoEntry{
		reply: reply, record: record,
		rules: f.rules, st: f.st, stGen: f.stGen,
		domain: f.domain, cacheGen: f.cacheGen, src: f.src, err: f.err,
		until: f.until(now).UnixNano(),
	}
	// A lookup that changed what it was derived from (state, a fetched
	// policy) is not stored: the next one will be.
	if f.memoable(&d) && r.memoValid(e, now.UnixNano()) {
		r.memo.put(mk, e, now.UnixNano())
	}
	return reply
}

// recorder returns the function that records a query with these labels,
// nil without an Observer.
func (r *Responder) recorder(label, answer string) func(time.Duration) {
	switch o := r.Observer.(type) {
	case nil:
		return nil
	case queryFuncer:
		return o.QueryFunc(label, answer)
	default:
		return func(elapsed time.Duration) { o.Query(label, answer, elapsed) }
	}
}

// queryFuncer is implemented by Observers that can hand out a recorder for
// one (zone, answer) pair, saving the label lookup on memoised answers.
type queryFuncer interface {
	QueryFunc(zone, answer string) func(elapsed time.Duration)
}

// memoFill collects, while an answer is computed, what it depends on.
type memoFill struct {
	rules    *compiled
	st       *domainState
	stGen    uint64
	domain   string // set when the Cache was asked
	cacheGen uint64
	src      mtasts.Source
	err      error
	cacheTil time.Time // Result.Until
	ovTil    time.Time // the deciding override's expiry
	no       bool      // not memoable
}

// memoable reports whether the kind of answer just computed may be reused
// at all: not TEMP, not decided by a failure window, and when the Cache was
// asked, an answer it would repeat from the store (Result.Until).
func (f *memoFill) memoable(d *Decision) bool {
	return !f.no && d.Answer != AnswerTemp && (f.domain == "" || !f.cacheTil.IsZero())
}

// until is when a memo of the answer expires.
func (f *memoFill) until(now time.Time) time.Time {
	t := now.Add(memoTTL)
	if !f.cacheTil.IsZero() && f.cacheTil.Before(t) {
		t = f.cacheTil
	}
	if !f.ovTil.IsZero() && f.ovTil.Before(t) {
		t = f.ovTil
	}
	return t
}

// Answer decides the reply to a lookup of key in map zone (see Responder).
func (r *Responder) Answer(ctx context.Context, zone, key string) (postfix.Reply, Decision) {
	return r.answer(ctx, zone, key, r.now(), &memoFill{})
}

func (r *Responder) answer(ctx context.Context, zone, key string, now time.Time, f *memoFill) (postfix.Reply, Decision) {
	r.init()
	var dl *deadline
	if r.Timeout > 0 {
		// Issue #10 item 9: one deadline for every step of this answer.
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
		if mode := z.daneMode(); mode != DANEOff {
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
		s := "secure match=" + ov.match
		if sn := z.serverName(); sn != "" {
			s += " servername=" + sn
		}
		return postfix.Found(s), *d
	default:
		return r.notFound(d)
	}
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
			// Issue #10 item 9: never a TEMP for a long policy (fit.go).
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

// errClass returns the error class for Decision.Err.
func errClass(err error) string {
	if err == nil {
		return ""
	}
	return string(mtasts.ResultType(err))
}

// checkMX compares an enforce policy with the live MX set and re-fetches it
// when some MX host matches no pattern. It returns the new result and true
// when a recovery produced one.
func (r *Responder) checkMX(ctx context.Context, st *domainState, domain string, res mtasts.Result, now time.Time, d *Decision) (mtasts.Result, bool) {
	hosts, _, kind, mxAt := r.mx(ctx, st, domain, now, r.mxCheckInterval())
	if kind != mxOK {
		if kind == mxFailed {
			d.MXCheck = "lookup-failed"
		}
		return res, false
	}
	d.MXHosts = hosts // shared, never modified
	st.mu.Lock()
	if st.checkedPolicy == res.Policy && st.checkedMXAt == mxAt {
		mismatch := st.mismatch
		st.mu.Unlock()
		d.Unmatched = mismatch
		if len(mismatch) == 0 {
			d.MXCheck = "match"
		} else {
			d.MXCheck = "mismatch"
		}
		return res, false
	}
	var mismatch []string
	for _, h := range hosts {
		if h == "." {
			continue
		}
		if _, ok := res.Policy.Match(h); !ok {
			mismatch = append(mismatch, h)
		}
	}
	st.checkedPolicy, st.checkedMXAt, st.mismatch = res.Policy, mxAt, mismatch
	st.gen.Add(1)
	st.mu.Unlock()
	d.Unmatched = mismatch
	if len(mismatch) == 0 {
		d.MXCheck = "match"
		return res, false
	}
	// Issue #3 item 5: the MX set moved away from the cached policy; the
	// domain may have published a new policy under the same id. RFC 8461
	// §5.1 (STS-APPLY-4): look for a newer policy before failing mail.
	nres, err := r.Cache.Refresh(ctx, domain, true)
	ok := err == nil && nres.Source == mtasts.SourceFetched
	if r.Observer != nil {
		r.Observer.MXRecovery(ok)
	}
	lvl := slog.LevelWarn
	r.logger().LogAttrs(ctx, lvl, "MX hosts outside the cached MTA-STS policy; re-fetched it",
		slog.String("domain", domain), slog.Any("unmatched_mx", mismatch), slog.String("old_id", res.ID),
		slog.String("new_id", nres.ID), slog.String("source", nres.Source.String()), slog.Bool("new_policy", ok),
		slog.Any("error", firstErr(err, nres.Err)))
	if err != nil {
		d.MXCheck = "recovery-failed"
		return res, false
	}
	if !ok {
		d.MXCheck = "recovery-failed"
	} else {
		d.MXCheck = "recovered"
	}
	if nres.Policy != nil && nres.Policy != res.Policy {
		st.mu.Lock()
		var still []string
		for _, h := range hosts {
			if _, m := nres.Policy.Match(h); !m && h != "." {
				still = append(still, h)
			}
		}
		st.checkedPolicy, st.checkedMXAt, st.mismatch = nres.Policy, mxAt, still
		st.gen.Add(1)
		st.mu.Unlock()
		d.Unmatched = still
	}
	return nres, true
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (r *Responder) mxCheckInterval() time.Duration {
	if r.MXCheckInterval > 0 {
		return r.MXCheckInterval
	}
	return DefaultMXCheckInterval
}

func (r *Responder) daneTTL() time.Duration {
	if r.DANETTL > 0 {
		return r.DANETTL
	}
	return DefaultDANETTL
}

// state returns the per-domain state, creating it.
func (r *Responder) state(domain string, now time.Time) *domainState {
	sh := &r.states[maphash.String(r.seed, domain)%stateShards]
	sh.mu.RLock()
	st := sh.m[domain]
	sh.mu.RUnlock()
	if st == nil {
		sh.mu.Lock()
		if st = sh.m[domain]; st == nil {
			if sh.m == nil {
				sh.m = make(map[string]*domainState)
			}
			st = &domainState{}
			sh.m[domain] = st
			r.nstates.Add(1)
		}
		sh.mu.Unlock()
	}
	if n := now.UnixNano(); st.used.Load() < n-int64(time.Second) {
		st.used.Store(n)
	}
	return st
}

func (st *domainState) failing(now time.Time) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failingSince == 0 {
		st.failingSince = now.UnixNano()
		st.gen.Add(1)
	}
	return time.Unix(0, st.failingSince)
}

func (st *domainState) clearFailure() {
	st.mu.Lock()
	if st.failingSince != 0 {
		st.failingSince = 0
		st.gen.Add(1)
	}
	st.mu.Unlock()
}

// Prune drops per-domain state unused for longer than both the DANE TTL and
// the MX check interval, and the least recently used beyond MaxStates. The
// daemon calls it periodically. It returns how many were dropped.
func (r *Responder) Prune(now time.Time) int {
	ttl := max(r.daneTTL(), r.mxCheckInterval())
	cut := now.Add(-ttl).UnixNano()
	n := 0
	type aged struct {
		sh   *stateShard
		k    string
		used int64
	}
	var rest []aged
	for i := range r.states {
		sh := &r.states[i]
		sh.mu.Lock()
		for k, st := range sh.m {
			u := st.used.Load()
			st.mu.Lock()
			busy := st.failingSince != 0
			st.mu.Unlock()
			if u < cut && !busy {
				delete(sh.m, k)
				r.nstates.Add(-1)
				n++
			} else {
				rest = append(rest, aged{sh, k, u})
			}
		}
		sh.mu.Unlock()
	}
	limit := r.MaxStates
	if limit <= 0 {
		limit = DefaultMaxStates
	}
	if over := len(rest) - limit; over > 0 {
		// Oldest first; a partial selection would do, but this runs rarely.
		sortAged := func(a, b aged) int {
			switch {
			case a.used < b.used:
				return -1
			case a.used > b.used:
				return 1
			}
			return 0
		}
		slices.SortFunc(rest, sortAged)
		for _, a := range rest[:over] {
			a.sh.mu.Lock()
			if _, ok := a.sh.m[a.k]; ok {
				delete(a.sh.m, a.k)
				r.nstates.Add(-1)
				n++
			}
			a.sh.mu.Unlock()
		}
	}
	return n
}

// States returns the number of domains with per-domain state.
func (r *Responder) States() int { return int(r.nstates.Load()) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// matchList turns mx patterns into Postfix's match list (PFX-STS-1):
// MatchFromSTS of each, policy order kept, joined with ':'.
func matchList(mx []string) string {
	var b strings.Builder
	for i, p := range mx {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(postfix.MatchFromSTS(p))
	}
	return b.String()
}

// render returns the secure answer for res, reusing the string built for the
// same policy and zone settings.
func (r *Responder) render(ctx context.Context, st *domainState, res mtasts.Result, z Zone, tlsrpt bool) (string, error) {
	sn := z.serverName()
	variant := sn
	if tlsrpt {
		variant = "tlsrpt " + sn
	}
	st.mu.Lock()
	if rr := st.rendered; rr != nil && rr.policy == res.Policy && rr.variant == variant {
		s := rr.data
		st.mu.Unlock()
		return s, nil
	}
	st.mu.Unlock()
	p := postfix.TLSPolicy{Level: "secure", ServerName: sn}
	for _, m := range res.Policy.MX {
		p.Match = append(p.Match, postfix.MatchFromSTS(m))
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("policy of %s: %w", res.Domain, err)
	}
	if tlsrpt {
		// PFX-STS-3/5: Postfix 3.10+ TLSRPT attributes; mx_host_pattern
		// keeps "*." so that Postfix 3.10.5+ matches MX names as RFC 8461
		// §4.1 says (PFX-STS-4).
		t := p
		t.PolicyType = "sts"
		t.PolicyDomain = res.Domain
		t.MXHostPatterns = res.Policy.MX
		for _, l := range res.Policy.Lines() {
			t.PolicyStrings = append(t.PolicyStrings, strings.TrimSpace(l))
		}
		if err := t.Validate(); err != nil {
			// A hostile extension value (braces are legal in one) must not
			// make Postfix reject the whole answer: keep the lines Postfix
			// can take.
			kept := t.PolicyStrings[:0:0]
			for _, l := range t.PolicyStrings {
				if !strings.ContainsAny(l, "{}") && (postfix.TLSPolicy{Level: "secure", PolicyType: "sts", PolicyStrings: []string{l}}).Validate() == nil {
					kept = append(kept, l)
				}
			}
			t.PolicyStrings = kept
			if err2 := t.Validate(); err2 != nil {
				r.logger().LogAttrs(ctx, slog.LevelWarn, "policy cannot carry TLSRPT attributes; sending it without them",
					slog.String("domain", res.Domain), slog.String("error", err2.Error()))
				t = p
			} else {
				r.logger().LogAttrs(ctx, slog.LevelWarn, "policy lines dropped from the TLSRPT attributes",
					slog.String("domain", res.Domain), slog.String("error", err.Error()))
			}
		}
		p = t
	}
	rr := &renderedReply{policy: res.Policy, variant: variant, data: p.String()}
	if !tlsrpt {
		// Without the TLSRPT attributes the reply depends on the policy
		// and the zone only, and equal policies are one pointer (the
		// store shares them): domains of one mail host share one reply.
		rr = r.shared.reply(rr)
	}
	st.mu.Lock()
	st.rendered = rr
	st.mu.Unlock()
	return rr.data, nil
}

// sharedReplies holds one renderedReply per (policy, variant) for replies
// that do not name the domain. It is bounded: when full it starts over,
// which costs a rebuild per policy, never a wrong answer.
type sharedReplies struct {
	mu sync.Mutex
	m  map[renderKey]*renderedReply
}

type renderKey struct {
	policy  *mtasts.Policy
	variant string
}

const maxSharedReplies = 4096

func (s *sharedReplies) reply(rr *renderedReply) *renderedReply {
	k := renderKey{rr.policy, rr.variant}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[k]; old != nil {
		return old
	}
	if s.m == nil || len(s.m) >= maxSharedReplies {
		s.m = make(map[renderKey]*renderedReply)
	}
	s.m[k] = rr
	return rr
}
