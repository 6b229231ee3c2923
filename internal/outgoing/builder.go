package outgoing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// Builder defaults.
const (
	DefaultLease      = 10 * time.Minute
	DefaultRetryAfter = 15 * time.Minute
	DefaultDelay      = 10 * time.Minute
	DefaultSpread     = 2 * time.Hour
)

// ErrConfig means the Builder's settings cannot make a valid report (an
// empty organisation name, a contact-info that is not an addr-spec, no
// store or sink).
var ErrConfig = errors.New("outgoing: builder configuration")

// Builder builds one RFC 8460 report per finished UTC day and policy
// domain and hands it to Sink, exactly once across every node sharing the
// Store: each (domain, day) is claimed in the database with a lease
// before it is built and marked done after Sink took it. A node that
// crashes between claim and done leaves a claim whose lease runs out, and
// another node (or the same after restart) builds the report again; the
// report-id and body are deterministic, so the rebuild is identical and
// the Sink, idempotent per (domain, day), keeps one.
type Builder struct {
	Store *Store
	Sink  Sink
	// OrganizationName and ContactInfo go into every report
	// (RFC 8460 §4.4); ContactInfo's domain is the submitter.
	OrganizationName string
	ContactInfo      string
	// Node names this builder in claims; empty means host name, process
	// id and a random suffix.
	Node string
	// Lease is how long a claim holds; zero means DefaultLease. It must
	// exceed the time one report takes to build and enqueue.
	Lease time.Duration
	// RetryAfter is how long a failed build waits; zero means
	// DefaultRetryAfter.
	RetryAfter time.Duration
	// Delay is how long after a day's end it counts as finished, for late
	// results; zero means DefaultDelay, negative none.
	Delay time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// BuildStats count what one pass did.
type BuildStats struct {
	Built   int // handed to the Sink and marked done
	Claimed int // held by another node's running lease, or done meanwhile
	Failed  int // build or Sink failed; retried after RetryAfter
}

func (b *Builder) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Builder) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (b *Builder) node() string {
	if b.Node == "" {
		h, _ := os.Hostname()
		var r [4]byte
		_, _ = rand.Read(r[:])
		b.Node = fmt.Sprintf("%s/%d/%s", h, os.Getpid(), hex.EncodeToString(r[:]))
	}
	return b.Node
}

func dur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return max(d, 0)
}

// Check reports whether the settings can build valid reports (ErrConfig).
func (b *Builder) Check() error {
	if b.Store == nil || b.Sink == nil {
		return fmt.Errorf("%w: a Store and a Sink are needed", ErrConfig)
	}
	return b.CheckIdentity()
}

// CheckIdentity checks what the reports say about their sender (the
// organisation name and the contact address), which a configuration
// check can do before any store is open.
func (b *Builder) CheckIdentity() error {
	if b.OrganizationName == "" {
		return fmt.Errorf("%w: organization name is empty", ErrConfig)
	}
	if a, err := mail.ParseAddress(b.ContactInfo); err != nil || a.Address != b.ContactInfo || a.Name != "" {
		return fmt.Errorf("%w: contact-info %q is not an addr-spec", ErrConfig, clip(b.ContactInfo))
	}
	return nil
}

// Submitter is the report submitter domain: ContactInfo's domain.
func (b *Builder) Submitter() string {
	_, d, _ := strings.Cut(b.ContactInfo, "@")
	return strings.ToLower(d)
}

// Build builds the report of one domain and day from the store, without
// claiming it: the same data always gives the same bytes.
func (b *Builder) Build(ctx context.Context, dd DomainDay) (BuiltReport, error) {
	if err := b.Check(); err != nil {
		return BuiltReport{}, err
	}
	ps, err := b.Store.Policies(ctx, dd)
	if err != nil {
		return BuiltReport{}, err
	}
	if len(ps) == 0 {
		return BuiltReport{}, fmt.Errorf("outgoing: no results for %s on %s", dd.Domain, dayString(dd.Day))
	}
	day := tlsrpt.DayRange(dd.Day)
	sub := b.Submitter()
	r := &tlsrpt.Report{
		OrganizationName: b.OrganizationName,
		DateRange:        day,
		ContactInfo:      b.ContactInfo,
		// RPT-JSON-9: unique per submitter, domain and day; the same on
		// every rebuild.
		ReportID: tlsrpt.NewReportID(day.Start, dd.Domain, sub),
		Policies: ps,
	}
	if err := r.Validate(); err != nil {
		return BuiltReport{}, fmt.Errorf("outgoing: report for %s on %s: %w", dd.Domain, dayString(dd.Day), err)
	}
	body, err := tlsrpt.MarshalGzip(r)
	if err != nil {
		return BuiltReport{}, err
	}
	fn := tlsrpt.Filename{Sender: sub, PolicyDomain: dd.Domain, Begin: day.Start, End: day.End, Gzip: true}
	return BuiltReport{PolicyDomain: dd.Domain, Day: day.Start, ReportID: r.ReportID, Filename: fn.String(), Body: body, Submitter: sub}, nil
}

// RunOnce builds every finished day's pending reports that no other node
// holds. It stops at the first storage error; a failed build or Sink is
// logged, counted and left for RetryAfter.
func (b *Builder) RunOnce(ctx context.Context) (BuildStats, error) {
	var st BuildStats
	if err := b.Check(); err != nil {
		return st, err
	}
	log := b.logger()
	now := b.now().UTC()
	finished := now.Add(-dur(b.Delay, DefaultDelay))
	for range 1000 { // bounded: each pass takes at most 1000 pages
		pend, err := b.Store.Pending(ctx, finished, 200)
		if err != nil {
			return st, err
		}
		progress := false
		for _, dd := range pend {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			won, err := b.Store.Claim(ctx, dd, b.node(), b.now(), dur(b.Lease, DefaultLease))
			if err != nil {
				return st, err
			}
			if !won {
				st.Claimed++
				continue
			}
			progress = true
			if err := b.buildClaimed(ctx, dd); err != nil {
				st.Failed++
				log.Error("outgoing: report not built; will retry", "report", dd, "retry_after", dur(b.RetryAfter, DefaultRetryAfter), "err", err)
				if rerr := b.Store.Release(ctx, dd, b.node(), b.now().Add(dur(b.RetryAfter, DefaultRetryAfter))); rerr != nil {
					return st, rerr
				}
				continue
			}
			st.Built++
		}
		if len(pend) < 200 || !progress {
			break
		}
	}
	return st, nil
}

func (b *Builder) buildClaimed(ctx context.Context, dd DomainDay) error {
	br, err := b.Build(ctx, dd)
	if err != nil {
		return err
	}
	if err := b.Sink.Enqueue(ctx, br); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	ok, err := b.Store.Done(ctx, dd, b.node(), br.ReportID, b.now())
	if err != nil {
		return err
	}
	if !ok {
		// Our lease ran out and another node took over: it enqueues the
		// same report, which the Sink keeps once.
		b.logger().Warn("outgoing: claim taken over before done; the sink keeps one copy", "report", dd)
		return nil
	}
	b.logger().Info("outgoing: report built", "report", dd, "report_id", br.ReportID, "bytes", len(br.Body))
	return nil
}

// NextRun returns when a scheduled builder next runs after now: Delay
// past the next UTC midnight plus a random share of spread, so that many
// senders do not all deliver at 00:00 (RFC 8460 §5.1 asks for reports to
// be spread out).
func NextRun(now time.Time, delay, spread time.Duration) time.Time {
	y, m, d := now.UTC().Date()
	next := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Add(24*time.Hour + max(delay, 0))
	if spread > 0 {
		if n, err := rand.Int(rand.Reader, big.NewInt(int64(spread))); err == nil {
			next = next.Add(time.Duration(n.Int64()))
		}
	}
	return next
}

// ExpireDaily deletes results older than keepDays days now and then
// every day until ctx ends: for nodes that collect without building
// (Schedule expires after its passes).
func ExpireDaily(ctx context.Context, st *Store, keepDays int, now func() time.Time, logger *slog.Logger) {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for {
		if n, err := st.Expire(ctx, now().AddDate(0, 0, -keepDays)); err != nil && ctx.Err() == nil {
			logger.Error("outgoing: expiry failed", "err", err)
		} else if n > 0 {
			logger.Info("outgoing: expired old results", "policies", n, "keep_days", keepDays)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(24 * time.Hour):
		}
	}
}

// Schedule runs the builder until ctx ends: once at start (days left over
// from a stop), then every day at NextRun, and after a pass with failures
// again after RetryAfter. After each pass it expires results older than
// keepDays days (0 keeps everything).
func (b *Builder) Schedule(ctx context.Context, spread time.Duration, keepDays int) error {
	if err := b.Check(); err != nil {
		return err
	}
	log := b.logger()
	for {
		st, err := b.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Error("outgoing: builder pass failed", "err", err)
		} else if st.Built+st.Failed > 0 {
			log.Info("outgoing: builder pass", "built", st.Built, "failed", st.Failed, "held_elsewhere", st.Claimed)
		}
		if keepDays > 0 {
			if n, err := b.Store.Expire(ctx, b.now().AddDate(0, 0, -keepDays)); err != nil {
				log.Error("outgoing: expiry failed", "err", err)
			} else if n > 0 {
				log.Info("outgoing: expired old results", "policies", n, "keep_days", keepDays)
			}
		}
		now := b.now()
		next := NextRun(now, dur(b.Delay, DefaultDelay), spread)
		if err != nil || st.Failed > 0 || st.Claimed > 0 {
			next = now.Add(dur(b.RetryAfter, DefaultRetryAfter))
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
