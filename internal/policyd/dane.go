package policyd

import (
	"context"
	"errors"
	"log/slog"
	"time"
	"unique"

	"github.com/mailsts/mailsts/dane"
	"github.com/mailsts/mailsts/dnsresolve"
)

// failedMXTTL is how long a failed MX lookup is remembered.
const failedMXTTL = 30 * time.Second

// mx returns the MX set of domain, looked up when the cached one is older
// than maxAge. Concurrent lookups of one domain share one query. kind says
// whether the lookup found records, proved there are none, or failed; at is
// when the returned set was looked up.
func (r *Responder) mx(ctx context.Context, st *domainState, domain string, now time.Time, maxAge time.Duration) (hosts []string, auth bool, kind uint8, at int64) {
	st.mu.Lock()
	if st.mxKind == mxFailed {
		// A failure is remembered briefly, so that a domain whose DNS is
		// broken costs one query per failedMXTTL, not one per message.
		maxAge = min(maxAge, failedMXTTL)
	}
	if st.mxAt != 0 && st.mxKind != mxDeferred && now.UnixNano()-st.mxAt < int64(maxAge) {
		hosts, auth, kind, at = st.mxHosts(), st.mxAuth, st.mxKind, st.mxAt
		st.mu.Unlock()
		return
	}
	st.mu.Unlock()
	type mxResult struct {
		hosts []string
		auth  bool
		kind  uint8
	}
	v, _, _ := r.group.Do("mx "+domain, func() (any, error) {
		recs, ans, err := r.DNS.LookupMX(ctx, domain)
		res := mxResult{auth: ans.Authenticated}
		switch {
		case errors.Is(err, dnsresolve.ErrNotFound):
			res.kind = mxNotFound
		case err != nil:
			res.kind = mxFailed
			r.logger().LogAttrs(ctx, slog.LevelDebug, "MX lookup failed", slog.String("domain", domain), slog.String("error", err.Error()))
		default:
			// MX host names repeat across domains (hosted mail), and
			// the state keeps them for MXCheckInterval: one copy each.
			res.hosts = make([]string, len(recs))
			for i, m := range recs {
				res.hosts[i] = unique.Make(m.Host).Value()
			}
		}
		if res.auth {
			r.sawAD()
		}
		return res, nil
	})
	m := v.(mxResult)
	set := r.mxSets.get(m.hosts)
	st.mu.Lock()
	st.mx, st.mxAuth, st.mxKind, st.mxAt = set, m.auth, m.kind, now.UnixNano()
	st.clearCheck()
	st.gen.Add(1)
	st.mu.Unlock()
	return set.hostsOrNil(), m.auth, m.kind, now.UnixNano()
}

// daneFresh reports whether dane would answer from the domain's state
// without DNS.
func (r *Responder) daneFresh(st *domainState, now time.Time) bool {
	_, ok := r.daneDecided(st, now)
	return ok
}

// daneDecided returns the domain's DANE decision while it is younger than
// DANETTL.
func (r *Responder) daneDecided(st *domainState, now time.Time) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.daneAt != 0 && now.Sub(time.Unix(int64(st.daneAt), 0)) < r.daneTTL() {
		return st.dane.String(), true
	}
	return "", false
}

// dane decides whether DANE applies to domain (RFC 7672, RFC 8461 §2),
// reusing a decision younger than DANETTL. Failed lookups are not cached.
func (r *Responder) dane(ctx context.Context, st *domainState, domain string, mode DANEMode, now time.Time) string {
	if out, ok := r.daneDecided(st, now); ok {
		return out
	}
	v, _, _ := r.group.Do("dane "+domain, func() (any, error) {
		return r.lookupDANE(ctx, st, domain, mode, now), nil
	})
	out := v.(string)
	if r.Observer != nil {
		r.Observer.DANEDecision(out)
	}
	if c, ok := daneCodeOf(out); ok && out != DANETemp {
		st.mu.Lock()
		st.dane, st.daneAt = c, max(useSeconds(now), 1)
		st.gen.Add(1)
		st.mu.Unlock()
	}
	return out
}

func (r *Responder) lookupDANE(ctx context.Context, st *domainState, domain string, mode DANEMode, now time.Time) string {
	hosts, auth, kind, _ := r.mx(ctx, st, domain, now, r.daneTTL())
	// The MX set is the one the MX check uses (kept in the domain's
	// state); the dane library decides from it (RFC 7672 §2.2).
	mx := dane.MXLookup{Answer: dnsresolve.Answer{Authenticated: auth}}
	switch kind {
	case mxNotFound:
		mx.Err = dnsresolve.ErrNotFound
	case mxFailed:
		mx.Err = dnsresolve.ErrLookupFailed
	default:
		mx.Records = make([]dnsresolve.MX, len(hosts))
		for i, h := range hosts {
			mx.Records[i].Host = h
		}
	}
	res := (&dane.Decider{Resolver: r.DNS, MaxHosts: maxMXHosts}).ForMX(ctx, domain, mx)
	switch {
	case kind == mxFailed:
		// STS-DANE-3: with a validating resolver, a failed MX lookup
		// leaves open whether DANE applies: defer. Without one (auto mode,
		// no AD bit ever seen), DANE cannot apply anyway.
		if mode == DANEOn || r.validating.Load() {
			return DANETemp
		}
		return DANEInsecure
	case !res.MXSecure:
		// DANE-1: DANE only applies to a DNSSEC-secure MX RRset.
		return DANEInsecure
	case res.NullMX:
		return DANENoMX
	}
	switch res.Summary {
	case dane.TemporaryFailure:
		// DANE-5: an address or TLSA lookup failed under a secure MX
		// RRset.
		r.logger().LogAttrs(ctx, slog.LevelInfo, "DNSSEC lookup for DANE failed under a signed MX RRset; deferring (STS-DANE-3)",
			slog.String("domain", domain), slog.Any("error", res.Err))
		return DANETemp
	case dane.All:
		return DANEAll
	case dane.Some:
		return DANESome
	default:
		return DANENone
	}
}

func (r *Responder) daneTTL() time.Duration {
	if r.DANETTL > 0 {
		return r.DANETTL
	}
	return DefaultDANETTL
}
