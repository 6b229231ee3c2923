package policyd

import (
	"context"
	"log/slog"
	"time"

	"github.com/mailsts/mailsts/mtasts"
)

// checkMX compares an enforce policy with the live MX set and re-fetches it
// when some MX host matches no pattern. It returns the new result and true
// when a recovery produced one.
func (r *Responder) checkMX(ctx context.Context, st *domainState, domain string, res mtasts.Result, now time.Time, d *Decision) (mtasts.Result, bool) {
	if r.deferCheck(st, res, now) {
		return res, false
	}
	hosts, _, kind, mxAt := r.mx(ctx, st, domain, now, r.mxCheckInterval())
	if kind != mxOK {
		if kind == mxFailed {
			d.MXCheck = "lookup-failed"
		}
		return res, false
	}
	d.MXHosts = hosts // shared, never modified
	st.mu.Lock()
	if st.checked(res.Policy, mxAt) {
		mismatch := st.mismatched()
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
	st.setMismatch(res.Policy, mxAt, mismatch)
	st.gen.Add(1)
	st.mu.Unlock()
	d.Unmatched = mismatch
	if len(mismatch) == 0 {
		d.MXCheck = "match"
		return res, false
	}
	// The MX set moved away from the cached policy; the
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
		st.setMismatch(nres.Policy, mxAt, still)
		st.gen.Add(1)
		st.mu.Unlock()
		d.Unmatched = still
	}
	return nres, true
}

// deferCheck reports whether the MX check waits: the state's MX check is
// deferred (mxDeferred) and younger than MXCheckInterval, or, with
// DeferFetchedMXCheck, res was fetched by this lookup and the state holds
// no usable MX set (with one the check costs no query and runs); then it
// records the deferral.
func (r *Responder) deferCheck(st *domainState, res mtasts.Result, now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	fresh := st.mxAt != 0 && now.UnixNano()-st.mxAt < int64(r.mxCheckInterval())
	switch {
	case st.mxKind == mxDeferred && fresh:
		return true
	case !r.DeferFetchedMXCheck || res.Source != mtasts.SourceFetched || fresh && st.mxKind != mxDeferred:
		return false
	}
	st.mx, st.mxAuth, st.mxKind, st.mxAt = nil, false, mxDeferred, now.UnixNano()
	st.clearCheck()
	return true
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
