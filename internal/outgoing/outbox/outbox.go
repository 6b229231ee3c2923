package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/tlsrpt"
)

// Defaults of Config.
const (
	DefaultSpread       = 4 * time.Hour
	DefaultRetryBase    = 5 * time.Minute
	DefaultRetryMax     = 4 * time.Hour
	DefaultMaxAge       = 24 * time.Hour // RPT-DELIV-5: retry for up to 24 hours
	DefaultLease        = 15 * time.Minute
	DefaultMaxSize      = 10 << 20
	DefaultSuppressDays = 3
	DefaultWorkers      = 2
	DefaultHTTPTimeout  = 2 * time.Minute
	DefaultMaxPerPass   = 10000
	DefaultKeep         = 30 * 24 * time.Hour
	// MaxDestinations is the most rua one report is delivered to, in
	// record order.
	MaxDestinations      = 10
	maxHTTPResponseBytes = 4096
)

// Config holds the delivery settings; zero fields take the defaults.
type Config struct {
	// Spread: each report waits a delay in [0, Spread) after the end of
	// its UTC day, derived from its report-id, so that a fleet's reports
	// do not all leave at midnight and a rebuilt report keeps its slot.
	Spread time.Duration
	// RetryBase is the first back-off; it doubles per attempt up to
	// RetryMax.
	RetryBase, RetryMax time.Duration
	// MaxAge: a delivery still failing this long after its first attempt
	// is given up.
	MaxAge time.Duration
	// Lease is how long a claim on a delivery lasts. It must exceed the
	// longest attempt (HTTP or SMTP timeouts): a worker that outlives
	// its lease may see the delivery sent twice.
	Lease time.Duration
	// MaxSize: reports with a larger gzip body are given up (RFC 8460
	// §5.3: receivers may refuse large reports). Negative: no limit.
	MaxSize int64
	// SuppressAfterDays: a destination failing on this many consecutive
	// UTC days without a success is suppressed. Negative: never.
	SuppressAfterDays int
	// Workers deliver in parallel.
	Workers int
	// DisableSpread sends reports as soon as their day is over.
	DisableSpread bool
	// Keep is how long finished reports (every delivery sent or given up)
	// stay listed before a pass deletes them; default 30 days, negative
	// keeps them forever.
	Keep time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Spread, DefaultSpread)
	def(&c.RetryBase, DefaultRetryBase)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.MaxAge, DefaultMaxAge)
	def(&c.Lease, DefaultLease)
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.SuppressAfterDays == 0 {
		c.SuppressAfterDays = DefaultSuppressDays
	}
	if c.SuppressAfterDays < 0 {
		c.SuppressAfterDays = 0
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	return c
}

// Outbox delivers reports: Enqueue stores them, RunOnce (or Run) delivers
// what is due to every rua of the policy domain's _smtp._tls record,
// looked up at send time (RFC 8460 §3).
type Outbox struct {
	Store  *Store
	Config Config
	// Resolver looks up _smtp._tls records and, for HTTPS destinations,
	// host addresses. Required.
	Resolver dnsresolve.Resolver
	// Mail sends mailto: deliveries; nil gives up on them.
	Mail *Mailer
	// HTTP posts https: deliveries; nil means a default HTTPSPoster.
	HTTP *HTTPSPoster
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Owner names this worker in leases; empty means host:pid:random.
	Owner  string
	Logger *slog.Logger
	// Observer, when set, hears of every delivery attempt (for metrics).
	Observer Observer

	ownerOnce sync.Once
	owner     string
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

func (o *Outbox) log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o *Outbox) ownerName() string {
	o.ownerOnce.Do(func() {
		o.owner = o.Owner
		if o.owner == "" {
			host, _ := os.Hostname()
			var b [4]byte
			_, _ = rand.Read(b[:])
			o.owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
		}
	})
	return o.owner
}

// Observer is told the outcome of every delivery attempt: the
// destination's scheme ("mailto" or "https"), the state it left the
// delivery in, and how long the attempt took. Implementations must be safe
// for concurrent use and quick.
type Observer interface {
	DeliveryAttempt(scheme string, st State, took time.Duration)
}

// SendTime returns when a report of the given day and report-id is first
// sent: the end of its UTC day plus a delay in [0, spread) derived from
// the report-id (the same id always gives the same delay).
func SendTime(day time.Time, reportID string, spread time.Duration) time.Time {
	y, m, d := day.UTC().Date()
	end := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Add(24 * time.Hour)
	if spread <= 0 {
		return end
	}
	h := fnv.New64a()
	h.Write([]byte(reportID))
	return end.Add(time.Duration(h.Sum64()%uint64(spread/time.Second)) * time.Second)
}

// Enqueue stores a report for delivery. It is idempotent per
// (PolicyDomain, Day): a second report for the same pair is ignored, so
// a builder that crashed after Enqueue may enqueue again.
func (o *Outbox) Enqueue(ctx context.Context, r Report) error {
	if r.PolicyDomain == "" || r.ReportID == "" || r.Filename == "" || len(r.Body) == 0 || r.Day.IsZero() {
		return errors.New("outbox: enqueue: report without policy domain, day, report-id, file name or body")
	}
	cfg := o.Config.withDefaults()
	spread := cfg.Spread
	if cfg.DisableSpread {
		spread = 0
	}
	inserted, err := o.Store.insert(ctx, r, o.now(), SendTime(r.Day, r.ReportID, spread))
	if err != nil {
		return err
	}
	if !inserted {
		o.log().Debug("report already in the outbox", "policy_domain", r.PolicyDomain, "day", dayString(r.Day))
	}
	return nil
}

// backoff returns the wait after the attempts-th failed attempt.
func (c Config) backoff(attempts int) time.Duration {
	d := c.RetryBase
	for i := 1; i < attempts && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}

// PassResult counts what one delivery pass did.
type PassResult struct {
	Resolved   int // reports whose destinations were looked up
	Sent       int
	Retrying   int
	GivenUp    int
	Suppressed int
	LeaseLost  int
	Pruned     int // finished reports deleted (Config.Keep)
}

func (p *PassResult) add(q PassResult) {
	p.Resolved += q.Resolved
	p.Sent += q.Sent
	p.Retrying += q.Retrying
	p.GivenUp += q.GivenUp
	p.Suppressed += q.Suppressed
	p.LeaseLost += q.LeaseLost
}

// RunOnce runs one delivery pass: it looks up the destinations of every
// report that is due, then delivers every due delivery with
// Config.Workers workers, and returns when nothing more is due (or after
// a bounded number of items). Errors are storage errors; delivery
// failures are recorded in the outbox, not returned.
func (o *Outbox) RunOnce(ctx context.Context) (PassResult, error) {
	cfg := o.Config.withDefaults()
	var total PassResult
	for range DefaultMaxPerPass {
		c, err := o.Store.claimReport(ctx, o.ownerName(), o.now(), cfg.Lease)
		if err != nil {
			return total, err
		}
		if c == nil {
			break
		}
		r, err := o.resolve(ctx, cfg, c)
		total.add(r)
		if err != nil {
			return total, err
		}
	}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			for range DefaultMaxPerPass {
				if ctx.Err() != nil {
					return
				}
				c, err := o.Store.claimDelivery(ctx, o.ownerName(), o.now(), cfg.Lease)
				if err == nil && c == nil {
					return
				}
				var r PassResult
				if err == nil {
					r, err = o.deliver(ctx, cfg, c)
				}
				mu.Lock()
				total.add(r)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && cfg.Keep > 0 {
		n, err := o.Store.Prune(ctx, o.now().Add(-cfg.Keep))
		if err != nil {
			return total, err
		}
		total.Pruned = int(n)
	}
	return total, firstErr
}

// Run calls RunOnce every interval until ctx is done.
func (o *Outbox) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := o.RunOnce(ctx); err != nil && ctx.Err() == nil {
			o.log().Error("outbox delivery pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// resolve looks up the report's _smtp._tls record at send time and
// creates one delivery per usable rua.
func (o *Outbox) resolve(ctx context.Context, cfg Config, c *claimedReport) (PassResult, error) {
	owner := o.ownerName()
	now := o.now()
	var res PassResult
	fail := func(permanent bool, why string) (PassResult, error) {
		st, next := StateRetrying, now.Add(cfg.backoff(c.Attempts))
		if permanent || next.Sub(c.AgeFrom) > cfg.MaxAge {
			st, next = StateGivenUp, now
			res.GivenUp++
		} else {
			res.Retrying++
		}
		o.log().Warn("report destinations", "policy_domain", c.PolicyDomain, "report_id", c.ReportID, "state", st, "err", why)
		err := o.Store.failReport(ctx, c.ID, owner, st, next, why, o.now())
		if errors.Is(err, ErrLeaseLost) {
			return PassResult{LeaseLost: 1}, nil
		}
		return res, err
	}
	if o.Resolver == nil {
		return fail(false, "no DNS resolver configured")
	}
	rec, err := tlsrpt.LookupRecord(ctx, o.Resolver, c.PolicyDomain)
	switch {
	case errors.Is(err, tlsrpt.ErrDNS):
		return fail(false, "looking up the TLSRPT record: "+err.Error())
	case err != nil:
		// RFC 8460 §3: without exactly one valid record the domain does
		// not want reports.
		return fail(true, "no usable TLSRPT record: "+err.Error())
	}
	usable, ignored := rec.UsableRUA()
	for _, ig := range ignored {
		o.log().Info("rua ignored", "policy_domain", c.PolicyDomain, "rua", ig.Raw, "reason", ig.Reason)
	}
	if len(usable) == 0 {
		// RPT-TXT-4: no usable URI, no report.
		return fail(true, "the TLSRPT record has no usable rua")
	}
	var dests []string
	for _, u := range usable {
		if !slices.Contains(dests, u.Raw) {
			dests = append(dests, u.Raw)
		}
	}
	if len(dests) > MaxDestinations {
		// A hostile record must not turn one report into a flood.
		o.log().Warn("rua beyond the limit ignored", "policy_domain", c.PolicyDomain, "limit", MaxDestinations, "ignored", dests[MaxDestinations:])
		dests = dests[:MaxDestinations]
	}
	err = o.Store.resolveReport(ctx, c.ID, owner, dests, o.now())
	if errors.Is(err, ErrLeaseLost) {
		return PassResult{LeaseLost: 1}, nil
	}
	if err != nil {
		return res, err
	}
	res.Resolved++
	return res, nil
}

// deliver makes one attempt at a claimed delivery and records it.
func (o *Outbox) deliver(ctx context.Context, cfg Config, c *Claimed) (PassResult, error) {
	var res PassResult
	var oc outcome
	var took time.Duration
	log := o.log().With("id", c.ID, "destination", c.Destination, "policy_domain", c.Report.PolicyDomain, "report_id", c.Report.ReportID, "attempt", c.Attempts)
	switch {
	case c.Suppressed:
		oc = outcome{State: StateSuppressed, Error: "destination suppressed"}
		res.Suppressed++
	case cfg.MaxSize > 0 && int64(len(c.Report.Body)) > cfg.MaxSize:
		oc = outcome{State: StateGivenUp, Error: fmt.Sprintf("report of %d bytes is above the delivery size limit of %d bytes", len(c.Report.Body), cfg.MaxSize)}
		res.GivenUp++
	default:
		// The attempt ends well within the lease, so that no other worker
		// can take the delivery over while it is still under way.
		actx, cancel := context.WithTimeout(ctx, cfg.Lease*9/10)
		start := time.Now()
		err := o.send(actx, c)
		took = time.Since(start)
		cancel()
		now := o.now()
		switch {
		case err == nil:
			oc = outcome{State: StateSent, Counts: true}
			res.Sent++
			log.Info("report delivered")
		case Permanent(err):
			oc = outcome{State: StateGivenUp, Error: err.Error(), Counts: true}
			res.GivenUp++
			log.Warn("report delivery failed for good", "err", err)
		default:
			next := now.Add(cfg.backoff(c.Attempts))
			if next.Sub(c.AgeFrom) > cfg.MaxAge {
				oc = outcome{State: StateGivenUp, Error: fmt.Sprintf("gave up after %d attempts: %v", c.Attempts, err), Counts: true}
				res.GivenUp++
				log.Warn("report delivery given up", "err", err)
			} else {
				oc = outcome{State: StateRetrying, Next: next, Error: err.Error(), Counts: true}
				res.Retrying++
				log.Info("report delivery failed, will retry", "err", err, "next_attempt", next)
			}
		}
	}
	if o.Observer != nil {
		scheme, _, _ := strings.Cut(c.Destination, ":")
		o.Observer.DeliveryAttempt(strings.ToLower(scheme), oc.State, took)
	}
	suppressed, err := o.Store.finishDelivery(ctx, c, o.ownerName(), oc, o.now(), cfg.SuppressAfterDays)
	if errors.Is(err, ErrLeaseLost) {
		log.Error("delivery lease expired during the attempt; another worker owns it", "outcome", oc.State)
		return PassResult{LeaseLost: 1}, nil
	}
	if suppressed {
		log.Warn("destination suppressed after consecutive days of failures")
	}
	return res, err
}

func (o *Outbox) send(ctx context.Context, c *Claimed) error {
	scheme, _, _ := strings.Cut(c.Destination, ":")
	switch strings.ToLower(scheme) {
	case "mailto":
		if o.Mail == nil {
			return permanent(errors.New("mail delivery is not configured (delivery.mail)"))
		}
		return o.Mail.Deliver(ctx, c.Report, mailtoAddress(c.Destination), o.now())
	case "https":
		h := o.HTTP
		if h == nil {
			h = &HTTPSPoster{}
		}
		return h.Post(ctx, o.Resolver, c.Destination, c.Report)
	}
	return permanent(fmt.Errorf("unsupported rua %q", c.Destination))
}
