package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/postfix"
)

// renderedReply is a secure answer built for one policy and zone variant.
type renderedReply struct {
	policy  *mtasts.Policy
	variant string
	data    string
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
