package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/mailsts/mailsts/internal/alerts"
	"github.com/mailsts/mailsts/internal/publish"
)

// hostedStatuses feeds the publishing-side alert rules
// (policy-cert-expiring, policy-id-mismatch) with the last periodic
// check of each domain served now (serve_policies.go keeps them).
type hostedStatuses struct {
	pr func() *publishRun
}

func (h hostedStatuses) HostedStatuses(context.Context) ([]alerts.HostedStatus, error) {
	pr := h.pr()
	if pr == nil {
		return nil, fmt.Errorf("hosted policies: no policy host yet: %w", alerts.ErrNotReady)
	}
	return pr.hostedStatuses()
}

// hostedStatuses returns the last check of every served domain that has
// been checked; ErrNotReady before the first round of checks.
func (pr *publishRun) hostedStatuses() ([]alerts.HostedStatus, error) {
	set := pr.current()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var out []alerts.HostedStatus
	for _, d := range set.Domains {
		st := pr.lastStatus[d.Name]
		if st == nil {
			continue
		}
		hs := alerts.HostedStatus{Domain: d.Name, PolicyHost: d.PolicyHost(), PolicyID: st.ID, LiveID: st.LiveID, Checked: st.Checked,
			TXTUnknown: slices.ContainsFunc(st.Findings, func(f publish.Finding) bool { return f.ID == publish.FindTXTLookup })}
		if st.CertNotAfter != nil {
			hs.CertNotAfter = *st.CertNotAfter
		}
		out = append(out, hs)
	}
	if len(out) == 0 && len(set.Domains) > 0 {
		return nil, fmt.Errorf("hosted policies: not checked yet: %w", alerts.ErrNotReady)
	}
	return out, nil
}
