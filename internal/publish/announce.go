package publish

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/mailsts/mailsts/internal/publish/dnsupdate"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Outcomes of Announcer.Announce (stable: metric label values and JSON).
const (
	// AnnouncePublished: the records were written.
	AnnouncePublished = "published"
	// AnnounceWouldPublish: every check passed; a dry run wrote nothing.
	AnnounceWouldPublish = "would_publish"
	// AnnounceRefused: a readiness check failed (the policy is not served
	// yet, or an MX of an enforce policy fails); nothing was written.
	AnnounceRefused = "refused"
	// AnnounceFailed: the primary refused the update or did not answer,
	// or the record is invalid.
	AnnounceFailed = "failed"
)

// AnnounceObserver counts announcements (internal/metrics implements it).
type AnnounceObserver interface {
	Announced(domain, outcome string)
}

// Announcement is what Announce did for one domain.
type Announcement struct {
	Domain  string `json:"domain"`
	Mode    string `json:"mode"`
	ID      string `json:"id"`
	Outcome string `json:"outcome"`
	// Records are the TXT records written (or that a dry run would
	// write), in the order written.
	Records []DNSRecord `json:"records"`
	// Reason says why the domain was refused or failed.
	Reason string `json:"reason,omitempty"`
}

// Announcer publishes the TXT records of hosted domains through a
// dnsupdate.Publisher, with the readiness checks RFC 8461 §8.1 calls
// for: the policy fetched as a sender fetches it is byte for byte the one
// whose id is announced (STS-PUB-4), and for enforce every live MX host
// passes the strict checks of Checker (the checks of `policy status`).
type Announcer struct {
	// Records receives the updates (a *dnsupdate.Updater); unused in a
	// dry run.
	Records dnsupdate.Records
	// Checker fetches the policy (Checker.STS) and probes the MX hosts.
	Checker *Checker
	// DryRun runs the checks and writes nothing.
	DryRun bool
	// Observer, when not nil, counts each outcome.
	Observer AnnounceObserver
	// Logger receives refusals and publications; nil discards.
	Logger *slog.Logger
}

// recorder collects the records a Publisher writes, and passes them on
// unless dry.
type recorder struct {
	next dnsupdate.Records
	dry  bool
	recs []DNSRecord
}

func (r *recorder) SetSTS(ctx context.Context, domain, id string) error {
	if !r.dry {
		if err := r.next.SetSTS(ctx, domain, id); err != nil {
			return err
		}
	}
	r.recs = append(r.recs, DNSRecord{Name: "_mta-sts." + domain, Type: "TXT", Value: (&mtasts.Record{ID: id}).String()})
	return nil
}

func (r *recorder) SetTLSRPT(ctx context.Context, domain string, rua ...string) error {
	if !r.dry {
		if err := r.next.SetTLSRPT(ctx, domain, rua...); err != nil {
			return err
		}
	}
	r.recs = append(r.recs, DNSRecord{Name: "_smtp._tls." + domain, Type: "TXT", Value: (&tlsrpt.Record{RUA: rua}).String()})
	return nil
}

// Announce publishes d's _smtp._tls record (when records.rua is set) and
// its _mta-sts record with the id of the policy served, once the checks
// pass.
func (a *Announcer) Announce(ctx context.Context, d *Domain) Announcement {
	sv := d.Policy()
	an := Announcement{Domain: d.Name, Mode: string(d.Mode), ID: sv.ID, Records: []DNSRecord{}}
	rec := &recorder{next: a.Records, dry: a.DryRun}
	log := a.Logger
	if a.DryRun {
		// The dry run's refusals are the caller's to print.
		log = nil
	}
	c := dnsupdate.Change{Domain: d.Name, ID: sv.ID, Mode: string(d.Mode),
		PolicyServed: dnsupdate.PolicyServed(a.Checker.STS, d.Name, sv.Text),
		MXReady:      func(ctx context.Context) error { return a.Checker.MXReady(ctx, d) }}
	for _, r := range strings.Split(d.Records.RUA, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.TLSRPT = append(c.TLSRPT, r)
		}
	}
	err := (&dnsupdate.Publisher{Records: rec, Logger: log}).Publish(ctx, c)
	an.Records = append(an.Records, rec.recs...)
	switch {
	case err == nil && a.DryRun:
		an.Outcome = AnnounceWouldPublish
	case err == nil:
		an.Outcome = AnnouncePublished
	case errors.Is(err, dnsupdate.ErrNotReady):
		an.Outcome, an.Reason = AnnounceRefused, err.Error()
	default:
		an.Outcome, an.Reason = AnnounceFailed, err.Error()
	}
	if a.Observer != nil && !a.DryRun {
		a.Observer.Announced(d.Name, an.Outcome)
	}
	return an
}
