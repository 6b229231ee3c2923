package policyd

import (
	"context"
	"log/slog"
	"slices"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// fit shortens a secure answer that does not fit the reply size limit of
// the connection (tcp_table: 4096 bytes, PFX-TCP-3; socketmap: the
// listener's max_reply_size, PFX-SOCKETMAP-6), which the server would
// otherwise replace with TEMP, so that Postfix deferred the domain's mail
// on every lookup for as long as the policy lasts. It never weakens the
// policy: every step keeps level secure and servername, and only drops
// attributes Postfix does not need to authenticate a host, or match
// patterns, which narrows the certificates Postfix accepts. In order, the
// first answer that fits wins:
//  1. the TLSRPT attributes without the policy_string lines (reporting
//     only), keeping policy_type, policy_domain and mx_host_pattern;
//  2. no TLSRPT attributes at all: every pattern, checked as Postfix's
//     plain "secure match=" does (PFX-POL-7);
//  3. only the patterns that match the domain's live MX hosts, in MX
//     preference order (without a known MX set, in policy order), as many
//     as fit: MX hosts whose pattern is left out cannot be authenticated,
//     so Postfix defers them and delivers to the hosts it tries first
//     (smtp_mx_address_limit caps those at 5 addresses anyway).
//
// It logs a warning once per domain (per domain state) and returns the
// answer.
func (r *Responder) fit(ctx context.Context, st *domainState, res mtasts.Result, z Zone, tlsrpt bool, d *Decision) string {
	p := postfix.TLSPolicy{Level: "secure", ServerName: z.serverName()}
	for _, m := range res.Policy.MX {
		p.Match = append(p.Match, postfix.MatchFromSTS(m))
	}
	step, data := "", ""
	if tlsrpt {
		t := p
		t.PolicyType, t.PolicyDomain, t.MXHostPatterns = "sts", res.Domain, res.Policy.MX
		if s := t.String(); t.Validate() == nil && postfix.ReplyFits(ctx, s) {
			step, data = "without the policy_string attributes", s
		}
	}
	if data == "" {
		if s := p.String(); postfix.ReplyFits(ctx, s) {
			step, data = "without the TLSRPT attributes", s
		}
	}
	if data == "" {
		// Patterns in the order Postfix needs them: those matching the
		// live MX hosts, by preference (d.MXHosts is sorted, set by the
		// MX check of this answer, or looked up now when the check was
		// deferred for a policy just fetched: DeferFetchedMXCheck).
		if len(d.MXHosts) == 0 && r.DNS != nil {
			if hosts, _, kind, _ := r.mx(ctx, st, d.Domain, r.now(), r.mxCheckInterval()); kind == mxOK {
				d.MXHosts = hosts
			}
		}
		var patterns []string
		for _, h := range d.MXHosts {
			if pat, ok := res.Policy.Match(h); ok && !slices.Contains(patterns, pat) {
				patterns = append(patterns, pat)
			}
		}
		if len(patterns) == 0 {
			patterns = res.Policy.MX
		}
		q := postfix.TLSPolicy{Level: "secure", ServerName: p.ServerName}
		for _, pat := range patterns {
			q.Match = append(q.Match, postfix.MatchFromSTS(pat))
			if len(q.Match) > 1 && !postfix.ReplyFits(ctx, q.String()) {
				q.Match = q.Match[:len(q.Match)-1]
				break
			}
		}
		// One pattern always fits (a name is at most 253 bytes).
		step, data = "with only the match patterns of the live MX hosts that fit", q.String()
		if len(d.MXHosts) == 0 {
			step = "with only the first match patterns that fit (MX set unknown)"
		}
	}
	d.Reason += "; answer shortened to fit Postfix's reply size limit, " + step
	st.mu.Lock()
	warned := st.fitWarned
	st.fitWarned = true
	st.mu.Unlock()
	if !warned {
		r.logger().LogAttrs(ctx, slog.LevelWarn, "policy answer over Postfix's reply size limit; sending a shorter one that is no weaker",
			slog.String("domain", res.Domain), slog.String("how", step), slog.Int("patterns", len(res.Policy.MX)),
			slog.Int("bytes", len(data)))
	}
	return data
}
