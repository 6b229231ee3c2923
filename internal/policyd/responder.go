package policyd

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
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
	// DeferFetchedMXCheck lets an enforce policy fetched by the lookup
	// itself count as MX-checked for MXCheckInterval when no MX set is
	// known: its MX check, and the MX query, wait until then. A policy
	// fetched a moment ago is the newest the domain publishes, so the
	// check's recovery (a re-fetch, STS-APPLY-4) could find nothing newer;
	// what is lost is the early warning about MX hosts the new policy
	// does not match. The daemon sets it; `mailsts resolve --explain`
	// leaves it off to show the check.
	DeferFetchedMXCheck bool
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
	// (stscache.Cache.Touch).
	Touch func(domain string, now time.Time) bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger gets a line per TEMP answer, recovery, expired override and
	// window end (Info/Warn), and per answer at Debug; nil discards.
	Logger *slog.Logger
	// Observer, when set, receives events for metrics.
	Observer Observer
	// Report, when set, hears what was answered per next-hop domain and
	// the discovery failures, for TLS reporting (see ReportObserver).
	Report ReportObserver

	rules      atomic.Pointer[compiled]
	initOnce   sync.Once
	memo       *answerMemo
	memoHits   atomic.Int64
	seed       maphash.Seed
	shared     sharedReplies
	mxSets     mxSets
	states     [stateShards]stateShard // domain → *domainState
	nstates    atomic.Int64
	validating atomic.Bool   // the resolver has set the AD bit at least once
	dnssec     atomic.Uint32 // a validation: does the resolver validate DNSSEC (validation.go)
	probed     atomic.Bool   // dnssec has been set once (and logged)
	// onValidation, when set, hears dnssec's changes (the daemon's status
	// file).
	onValidation func(state string)
	group        singleflight.Group
}

func (r *Responder) init() {
	r.initOnce.Do(func() {
		r.memo = newAnswerMemo()
		r.seed = maphash.MakeSeed()
	})
}

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
			if e.report != nil && r.Report != nil {
				a := *e.report
				a.Time = now
				r.Report.PolicyAnswered(a)
			}
			return e.reply
		}
	}
	var f memoFill
	reply, d := r.answer(ctx, name, key, now, &f)
	var report *PolicyAnswer
	if r.Report != nil {
		if report = policyAnswer(&d, f.policy, now); report != nil {
			r.Report.PolicyAnswered(*report)
		}
	}
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
		until: f.until(now).UnixNano(), report: report,
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
