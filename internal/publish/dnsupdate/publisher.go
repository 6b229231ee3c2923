package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailsts/mailsts/mtasts"
)

// ErrNotReady is wrapped by Publish when a readiness check failed; nothing
// was published and the caller retries later.
var ErrNotReady = errors.New("dnsupdate: not ready to publish")

// Records is what Publisher writes; *Updater implements it.
type Records interface {
	SetSTS(ctx context.Context, domain, id string) error
	SetTLSRPT(ctx context.Context, domain string, rua ...string) error
}

// Ready checks one precondition of publishing; nil means satisfied, an
// error says what is missing.
type Ready func(ctx context.Context) error

// Change is a new or changed policy to announce.
type Change struct {
	// Domain is the policy domain.
	Domain string
	// ID is the policy's id, derived from its content.
	ID string
	// Mode is the policy's mode ("enforce", "testing" or "none").
	Mode string
	// PolicyServed must succeed before anything is published: the policy
	// host mta-sts.<Domain> answers over HTTPS with a valid certificate
	// and serves the policy with this ID.
	PolicyServed Ready
	// MXReady must succeed before an enforce policy is announced: every
	// MX presents a valid certificate for its name over STARTTLS.
	// Required when Mode is "enforce".
	MXReady Ready
	// TLSRPT, when not empty, is the rua list of the _smtp._tls record
	// published with the policy.
	TLSRPT []string
}

// Publisher announces policies in DNS in the order RFC 8461 §8.1 asks for:
// the TXT id changes only after the new policy is served (STS-PUB-4) with
// a valid certificate (STS-PUB-3), and an enforce policy only after its MX
// hosts can be verified, so a sender never fetches an id whose policy it
// cannot get or apply.
type Publisher struct {
	// Records receives the updates.
	Records Records
	// Logger receives refusals (with the reason) and publications; nil
	// discards.
	Logger *slog.Logger
}

// Publish checks c's preconditions in order and publishes its records only
// when all of them hold. A failed check returns an error wrapping
// ErrNotReady and publishes nothing; an error from Records is returned as
// is.
func (p *Publisher) Publish(ctx context.Context, c Change) error {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("domain", c.Domain, "id", c.ID, "mode", c.Mode)
	refuse := func(err error) error {
		log.Warn("policy not published in DNS", "reason", err.Error())
		return err
	}
	if _, err := mtasts.ParseRecord((&mtasts.Record{ID: c.ID}).String()); err != nil || c.ID == "" {
		return refuse(fmt.Errorf("%w: id %q: %v", ErrRecord, c.ID, err))
	}
	switch c.Mode {
	case "enforce", "testing", "none":
	default:
		return refuse(fmt.Errorf("%w: mode %q", ErrRecord, c.Mode))
	}
	if c.PolicyServed == nil {
		return refuse(fmt.Errorf("%w: no check that the policy is served", ErrNotReady))
	}
	if err := c.PolicyServed(ctx); err != nil {
		return refuse(fmt.Errorf("%w: policy host mta-sts.%s: %w", ErrNotReady, c.Domain, err))
	}
	if c.Mode == "enforce" {
		if c.MXReady == nil {
			return refuse(fmt.Errorf("%w: enforce without a check of the MX hosts", ErrNotReady))
		}
		if err := c.MXReady(ctx); err != nil {
			return refuse(fmt.Errorf("%w: MX hosts of %s: %w", ErrNotReady, c.Domain, err))
		}
	}
	if len(c.TLSRPT) > 0 {
		if err := p.Records.SetTLSRPT(ctx, c.Domain, c.TLSRPT...); err != nil {
			return refuse(err)
		}
	}
	// The _mta-sts record last: it is what tells senders to refetch.
	if err := p.Records.SetSTS(ctx, c.Domain, c.ID); err != nil {
		return refuse(err)
	}
	log.Info("policy published in DNS")
	return nil
}
