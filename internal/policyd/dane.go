package policyd

import (
	"context"
	"errors"
	"log/slog"
	"sync"
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
	if st.mxAt != 0 && now.UnixNano()-st.mxAt < int64(maxAge) {
		hosts, auth, kind, at = st.mxHosts, st.mxAuth, st.mxKind, st.mxAt
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
			r.validating.Store(true)
		}
		return res, nil
	})
	m := v.(mxResult)
	st.mu.Lock()
	st.mxHosts, st.mxAuth, st.mxKind, st.mxAt = m.hosts, m.auth, m.kind, now.UnixNano()
	st.gen.Add(1)
	st.mu.Unlock()
	return m.hosts, m.auth, m.kind, now.UnixNano()
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
	if st.daneAt != 0 && now.UnixNano()-st.daneAt < int64(r.daneTTL()) {
		return st.dane, true
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
	if out != DANETemp {
		st.mu.Lock()
		st.dane, st.daneAt = out, now.UnixNano()
		st.gen.Add(1)
		st.mu.Unlock()
	}
	return out
}

func (r *Responder) lookupDANE(ctx context.Context, st *domainState, domain string, mode DANEMode, now time.Time) string {
	hosts, auth, kind, _ := r.mx(ctx, st, domain, now, r.daneTTL())
	switch {
	case kind == mxFailed:
		// STS-DANE-3: with a validating resolver, a failed MX lookup
		// leaves open whether DANE applies: defer. Without one (auto mode,
		// no AD bit ever seen), DANE cannot apply anyway.
		if mode == DANEOn || r.validating.Load() {
			return DANETemp
		}
		return DANEInsecure
	case !auth:
		// DANE-1: DANE only applies to a DNSSEC-secure MX RRset.
		return DANEInsecure
	case kind == mxNotFound:
		// A secure denial of MX: mail goes to the domain itself (RFC 5321
		// §5.1 implicit MX), whose TLSA records then count.
		hosts = []string{domain}
	case len(hosts) == 1 && hosts[0] == ".":
		return DANENoMX
	}
	if len(hosts) > maxMXHosts {
		hosts = hosts[:maxMXHosts]
	}
	type hostResult struct {
		tlsa   bool // DNSSEC-validated TLSA records exist
		usable bool // and at least one is usable (DANE-6)
		failed bool
	}
	results := make([]hostResult, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		if h == "." {
			continue
		}
		wg.Go(func() {
			recs, ans, err := r.DNS.LookupTLSA(ctx, 25, "tcp", h)
			switch {
			case errors.Is(err, dnsresolve.ErrNotFound):
				// DANE-4: no TLSA (secure or not) → no DANE for the host.
			case err != nil:
				// DANE-5: a failed TLSA lookup under a secure MX RRset.
				results[i].failed = true
			case ans.Authenticated && len(recs) > 0:
				results[i].tlsa = true
				results[i].usable = dane.AnyUsable(recs)
			}
		})
	}
	wg.Wait()
	usable, withTLSA := 0, 0
	for _, hr := range results {
		if hr.failed {
			r.logger().LogAttrs(ctx, slog.LevelInfo, "TLSA lookup failed under a DNSSEC-signed MX RRset; deferring (STS-DANE-3)",
				slog.String("domain", domain))
			return DANETemp
		}
		if hr.tlsa {
			withTLSA++
		}
		if hr.usable {
			usable++
		}
	}
	switch {
	case usable == len(hosts):
		return DANEAll
	case withTLSA > 0:
		// Some hosts have TLSA records (usable or not, DANE-3): Postfix's
		// "dane" level authenticates those and uses opportunistic TLS for
		// the others.
		return DANESome
	default:
		return DANENone
	}
}
