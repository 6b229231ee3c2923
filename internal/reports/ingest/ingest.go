package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/tlsrpt"
)

// More sentinel errors, for ingestion.
var (
	// ErrTemporary means the input could not be judged now (a DKIM key
	// lookup failed temporarily). Nothing was stored: retry later (mail
	// pipe: EX_TEMPFAIL; HTTP: 503; Maildir/IMAP: leave the message).
	ErrTemporary = errors.New("reports: temporary failure")
	// ErrRead means the input could not be read to its end (the client
	// went away). Nothing was stored; the sender will retry.
	ErrRead = errors.New("reports: reading input failed")
)

// DKIMMode says whether mail input must carry a valid DKIM signature.
type DKIMMode int

const (
	// DKIMRequire, the zero value: RFC 8460 §3 (RPT-MAIL-7, RPT-RECV-1):
	// reports by mail without a valid DKIM signature of the submitter
	// MUST be ignored. They are kept as rejected (reason "dkim").
	DKIMRequire DKIMMode = iota
	// DKIMOff trusts the MTA to have verified DKIM already (for example
	// an OpenDKIM milter that rejects failures).
	DKIMOff
)

// MaxSessionCount is the largest session count a report may carry in any
// counter (a summary total or a failed-session-count). The busiest
// senders report millions of sessions a day per domain; 10^12 leaves six
// orders of magnitude, and a report of 1,000 policies (tlsrpt.MaxPolicies)
// at this count still sums far below 2^63, so totals cannot wrap.
const MaxSessionCount = 1_000_000_000_000

// checkCounts rejects implausible counts (counts near 2^53,
// which tlsrpt.Parse accepts as I-JSON integers, drove the rollup past
// int64). The error wraps tlsrpt.ErrInvalid.
func checkCounts(r *tlsrpt.Report) error {
	for i, p := range r.Policies {
		s := p.Summary
		if s.TotalSuccessfulSessionCount > MaxSessionCount || s.TotalFailureSessionCount > MaxSessionCount {
			return fmt.Errorf("%w: policies[%d]: a summary count is above %d, not a plausible number of sessions for one day",
				tlsrpt.ErrInvalid, i, int64(MaxSessionCount))
		}
		for j, d := range p.FailureDetails {
			if d.FailedSessionCount > MaxSessionCount {
				return fmt.Errorf("%w: policies[%d].failure-details[%d]: failed-session-count %d is above %d",
					tlsrpt.ErrInvalid, i, j, d.FailedSessionCount, int64(MaxSessionCount))
			}
		}
	}
	return nil
}

// DefaultFutureSkew is the clock-skew allowance of the future-date check.
const DefaultFutureSkew = time.Hour

// rejectedPrefix caps the raw bytes kept of rejected input: of input
// above the size cap the rest is not even read (RFC 8460 §7: no unbounded
// work for hostile input); of other rejected input the whole is read and
// its SHA-256 kept with the prefix (three junk POSTs kept
// whole were 43 MB).
const rejectedPrefix = 64 << 10

// rejectedDetailMax caps the stored (and logged) text of a rejection.
const rejectedDetailMax = 4 << 10

// DefaultRejectedBudget is the byte budget of rejected input when
// Ingester.RejectedBudget is 0: beyond it the oldest rows are deleted.
const DefaultRejectedBudget = 256 << 20

// Ingester turns received bytes into stored reports or stored rejections.
// Decisions:
//   - Every input ends either as a report (PutReport) or as a rejection
//     with its raw bytes and reason (PutRejected); only storage failures
//     and temporary DKIM failures return an error, and then nothing was
//     stored so the sender or MTA can retry.
//   - A report whose start-datetime is later than now plus FutureSkew is
//     rejected (reason "future-date"): a report describes sessions that
//     happened, so such a date is a broken clock or a forgery, and storing
//     it would pollute every later summary. Other oddities
//     (tlsrpt.Report.Problems, tlsrpt.CheckConsistency) are stored as
//     flags with the report.
//   - A report without report-id cannot be de-duplicated (RPT-RECV-4) and
//     is rejected (reason "no-report-id").
type Ingester struct {
	Store reports.Store
	// Resolver looks up DKIM keys; required unless DKIM is DKIMOff.
	Resolver dnsresolve.Resolver
	DKIM     DKIMMode
	// Limits caps input and decompressed sizes (zero: tlsrpt defaults,
	// 15 MB in and 20 MB decompressed).
	Limits tlsrpt.Limits
	// FutureSkew is the clock-skew allowance; 0 means DefaultFutureSkew.
	FutureSkew time.Duration
	// RejectedBudget caps the bytes kept of rejected input over all
	// rejections (after each rejection the oldest are deleted to fit);
	// 0 means DefaultRejectedBudget, negative means no budget.
	RejectedBudget int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Outcome is what happened to one input.
type Outcome string

// Outcomes. An input with several reports (a mail with two attachments)
// is Stored if any was stored, else Duplicate if any was a duplicate,
// else Rejected; Result lists each.
const (
	OutcomeStored    Outcome = "stored"
	OutcomeDuplicate Outcome = "duplicate"
	OutcomeRejected  Outcome = "rejected"
)

// Result describes one ingested input.
type Result struct {
	Outcome Outcome
	Reports []ReportResult
	// Rejections lists what was kept as rejected.
	Rejections []RejectionResult
}

// ReportResult is one stored (or duplicate) report.
type ReportResult struct {
	ID           int64
	Organization string
	ReportID     string
	Duplicate    bool
	// Conflict: another stored report has this organisation and
	// report-id but other content; both are kept (Store.PutReport).
	Conflict      bool
	Authenticated bool
	Repairs       int
	Problems      []string
}

// RejectionResult is one stored rejection. Err wraps the tlsrpt sentinel
// that caused it (tlsrpt.ErrTooLarge, tlsrpt.ErrUnsupportedType, …).
type RejectionResult struct {
	ID     int64
	Reason string
	Err    error
}

func (r *Result) finish() {
	switch {
	case len(r.Reports) == 0:
		r.Outcome = OutcomeRejected
	default:
		r.Outcome = OutcomeDuplicate
		for _, rr := range r.Reports {
			if !rr.Duplicate {
				r.Outcome = OutcomeStored
			}
		}
	}
}

func (in *Ingester) now() time.Time {
	if in.Now != nil {
		return in.Now().UTC()
	}
	return time.Now().UTC()
}

func (in *Ingester) logger() *slog.Logger {
	if in.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.Logger
}

// MaxInput is the cap on input bytes read: Limits.MaxInput, else
// tlsrpt.DefaultMaxInput.
func (in *Ingester) MaxInput() int64 {
	if in.Limits.MaxInput > 0 {
		return in.Limits.MaxInput
	}
	return tlsrpt.DefaultMaxInput
}

// MaxOutput is the cap on decompressed input: Limits.MaxOutput, else
// tlsrpt.DefaultMaxOutput.
func (in *Ingester) MaxOutput() int64 {
	if in.Limits.MaxOutput > 0 {
		return in.Limits.MaxOutput
	}
	return tlsrpt.DefaultMaxOutput
}

// readCapped reads at most max bytes of r. When r holds more it returns
// the first bytes read and tooLarge=true without reading the rest.
func readCapped(r io.Reader, max int64) (data []byte, tooLarge bool, err error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, max+1))
	if err != nil {
		return buf.Bytes(), false, err
	}
	if n > max {
		return buf.Bytes(), true, nil
	}
	return buf.Bytes(), false, nil
}

// inputKey is the context key of MessageOnce's key, read by reject.
type inputKey struct{}

// reasonOf maps a tlsrpt error to a rejection reason.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, tlsrpt.ErrTooLarge):
		return reports.ReasonTooLarge
	case errors.Is(err, tlsrpt.ErrUnsupportedType):
		return reports.ReasonBadType
	case errors.Is(err, tlsrpt.ErrNoReport):
		return reports.ReasonNoReport
	default:
		return reports.ReasonSyntax
	}
}

// reject stores a rejection and adds it to res. It keeps the first
// rejectedPrefix bytes of the input with the SHA-256 of the whole, and
// then trims the rejected input to the byte budget.
func (in *Ingester) reject(ctx context.Context, res *Result, rj reports.Rejection, cause error) error {
	rj.ReceivedAt = in.now()
	if k, _ := ctx.Value(inputKey{}).(string); k != "" && rj.Key == "" {
		// One input may hold several rejected attachments.
		rj.Key = fmt.Sprintf("%s#%d", k, len(res.Rejections))
	}
	if rj.Detail == "" && cause != nil {
		rj.Detail = cause.Error()
	}
	rj.Detail = reports.ClipText(rj.Detail, rejectedDetailMax)
	rj.Origin = reports.ClipText(rj.Origin, 1024)
	if !rj.Truncated {
		sum := sha256.Sum256(rj.Raw)
		rj.SHA256 = hex.EncodeToString(sum[:])
		if len(rj.Raw) > rejectedPrefix {
			rj.Size, rj.Truncated = int64(len(rj.Raw)), true
			rj.Raw = rj.Raw[:rejectedPrefix]
		}
	}
	id, err := in.Store.PutRejected(ctx, rj)
	if err != nil {
		return err
	}
	in.logger().Warn("reports: input rejected and kept", "id", id, "source", rj.Source, "origin", rj.Origin,
		"reason", rj.Reason, "detail", reports.ClipText(rj.Detail, 512))
	if budget := in.RejectedBudget; budget >= 0 {
		if budget == 0 {
			budget = DefaultRejectedBudget
		}
		if _, err := in.Store.TrimRejected(ctx, budget); err != nil {
			// The rejection is stored; the budget is enforced next time.
			in.logger().Warn("reports: trimming rejected input failed", "error", err)
		}
	}
	if cause == nil {
		cause = errors.New(rj.Detail)
	}
	res.Rejections = append(res.Rejections, RejectionResult{ID: id, Reason: rj.Reason, Err: cause})
	return nil
}

// tooLarge keeps the prefix of an input above the cap.
func (in *Ingester) tooLarge(ctx context.Context, res *Result, prefix []byte, declared int64, source, origin string) error {
	if len(prefix) > rejectedPrefix {
		prefix = prefix[:rejectedPrefix]
	}
	cause := fmt.Errorf("%w: input above %d bytes", tlsrpt.ErrTooLarge, in.MaxInput())
	return in.reject(ctx, res, reports.Rejection{Raw: prefix, Truncated: true, Size: declared, Source: source, Origin: origin,
		Reason: reports.ReasonTooLarge}, cause)
}

// Body ingests a report body as POSTed over HTTPS (RFC 8460 §5.4) or read
// from a file: gzip or JSON, recognised by its bytes; contentType is the
// declared media type ("" when unknown). declaredSize is the
// Content-Length, or -1.
func (in *Ingester) Body(ctx context.Context, r io.Reader, contentType string, declaredSize int64, source, origin string) (Result, error) {
	var res Result
	if declaredSize > in.MaxInput() {
		// Declared too large: read only the prefix that is kept, never
		// the rest (a 100 MB POST costs 64 KiB). Not beyond the cap
		// either: a reader bounded there (http.MaxBytesReader) would
		// fail, and the answer would be 400 instead of 413.
		prefix, _, err := readCapped(r, min(rejectedPrefix, in.MaxInput()))
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrRead, err)
		}
		err = in.tooLarge(ctx, &res, prefix, declaredSize, source, origin)
		res.finish()
		return res, err
	}
	raw, over, err := readCapped(r, in.MaxInput())
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrRead, err)
	}
	if over {
		err := in.tooLarge(ctx, &res, raw, declaredSize, source, origin)
		res.finish()
		return res, err
	}
	js, repairs, err := tlsrpt.Decode(bytes.NewReader(raw), contentType, in.Limits)
	if err != nil {
		err := in.reject(ctx, &res, reports.Rejection{Raw: raw, Source: source, Origin: origin, Reason: reasonOf(err)}, err)
		res.finish()
		return res, err
	}
	if err := in.report(ctx, &res, raw, js, repairs, nil, nil, reports.Incoming{Source: source, Origin: origin}); err != nil {
		return res, err
	}
	res.finish()
	return res, nil
}

// report parses one JSON report and stores it or its rejection. m and a
// are the mail wrapping, nil for HTTP and files.
func (in *Ingester) report(ctx context.Context, res *Result, raw, js []byte, repairs []tlsrpt.Repair, m *tlsrpt.Message, a *tlsrpt.Attachment, base reports.Incoming) error {
	rejectAs := func(reason string, cause error) error {
		detail := cause.Error()
		if a != nil && a.Filename != "" {
			detail = "attachment " + a.Filename + ": " + detail
		}
		return in.reject(ctx, res, reports.Rejection{Raw: raw, Source: base.Source, Origin: base.Origin, Reason: reason, Detail: detail}, cause)
	}
	rep, preps, err := tlsrpt.Parse(js)
	if err != nil {
		return rejectAs(reasonOf(err), err)
	}
	if err := checkCounts(rep); err != nil {
		return rejectAs(reports.ReasonImplausible, err)
	}
	// A policy without policy-domain (quirk 13) takes the domain the mail
	// headers, Subject and file name agree on, so that queries by domain
	// find it. A file's own name counts like an attachment's.
	fa := a
	if fa == nil && base.Source == reports.SourceFile {
		if f, err := tlsrpt.ParseFilename(filepath.Base(base.Origin)); err == nil {
			fa = &tlsrpt.Attachment{Filename: filepath.Base(base.Origin), FilenameInfo: &f}
		}
	}
	preps = append(preps, tlsrpt.FillPolicyDomain(m, fa, rep)...)
	now := in.now()
	skew := in.FutureSkew
	if skew <= 0 {
		skew = DefaultFutureSkew
	}
	if rep.DateRange.Start.After(now.Add(skew)) {
		return rejectAs(reports.ReasonFutureDate, fmt.Errorf("%w: start-datetime %s is in the future (now %s)",
			tlsrpt.ErrInvalid, tlsrpt.FormatTime(rep.DateRange.Start), tlsrpt.FormatTime(now)))
	}
	if strings.TrimSpace(rep.ReportID) == "" {
		return rejectAs(reports.ReasonNoReportID, fmt.Errorf("%w: report-id is missing, the report cannot be de-duplicated", tlsrpt.ErrInvalid))
	}
	inc := base
	inc.Report = rep
	inc.Raw = raw
	inc.ReceivedAt = now
	inc.Repairs = append(append([]tlsrpt.Repair(nil), repairs...), preps...)
	inc.Problems = rep.Problems(now)
	if m != nil {
		inc.Problems = append(inc.Problems, tlsrpt.CheckConsistency(m, a, rep)...)
	}
	if inc.Submitter == "" {
		_, inc.Submitter, _ = strings.Cut(rep.ContactInfo, "@")
	}
	put, err := in.Store.PutReport(ctx, inc)
	if err != nil {
		return err
	}
	rr := ReportResult{ID: put.ID, Organization: rep.OrganizationName, ReportID: rep.ReportID, Duplicate: put.Duplicate,
		Conflict: put.Conflict, Authenticated: inc.Authenticated, Repairs: len(inc.Repairs)}
	for _, p := range inc.Problems {
		rr.Problems = append(rr.Problems, p.Code)
	}
	res.Reports = append(res.Reports, rr)
	if put.Conflict {
		// Someone sent a different report under this organisation and
		// report-id: a broken sender or a forgery.
		in.logger().Warn("reports: report conflicts with another of the same organisation and report-id; both kept",
			"id", put.ID, "organization", rep.OrganizationName, "report_id", rep.ReportID, "authenticated", inc.Authenticated,
			"source", base.Source, "origin", base.Origin)
	}
	in.logger().Info("reports: report received", "id", put.ID, "duplicate", put.Duplicate, "source", base.Source,
		"origin", base.Origin, "report", rep, "repairs", len(inc.Repairs), "problems", rr.Problems)
	return nil
}

// Message ingests one report mail (RFC 8460 §5.3): every report
// attachment is stored, after the DKIM check unless DKIM is DKIMOff.
func (in *Ingester) Message(ctx context.Context, r io.Reader, source, origin string) (Result, error) {
	return in.MessageOnce(ctx, r, source, origin, "")
}

// MessageOnce is Message for input that may be ingested again after a
// crash (a Maildir file stored but not yet moved): key identifies the
// input, and a rejection already stored under it is not stored again.
// Reports need no key: a second copy is a duplicate (RPT-RECV-4).
func (in *Ingester) MessageOnce(ctx context.Context, r io.Reader, source, origin, key string) (Result, error) {
	var res Result
	ctx = context.WithValue(ctx, inputKey{}, key)
	raw, over, err := readCapped(r, in.MaxInput())
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrRead, err)
	}
	if over {
		err := in.tooLarge(ctx, &res, raw, -1, source, origin)
		res.finish()
		return res, err
	}
	err = in.message(ctx, &res, raw, source, origin)
	res.finish()
	return res, err
}

func (in *Ingester) message(ctx context.Context, res *Result, raw []byte, source, origin string) error {
	base := reports.Rejection{Raw: raw, Source: source, Origin: origin}
	m, err := tlsrpt.ParseMessage(bytes.NewReader(raw), in.Limits)
	if err != nil {
		base.Reason = reasonOf(err)
		return in.reject(ctx, res, base, err)
	}
	if origin == "" {
		origin = m.MessageID
		base.Origin = origin
	}
	inc := reports.Incoming{Source: source, Origin: origin, Submitter: m.Submitter}
	if in.DKIM != DKIMOff {
		// The reporting organisation: the submitter, and the contact-info
		// domain of the first report (the submitter when the header is
		// absent, RPT-JSON-10) and the From domain when they agree with it.
		contact := ""
		for _, a := range m.Attachments {
			if rep, _, err := a.Parse(); err == nil {
				_, contact, _ = strings.Cut(rep.ContactInfo, "@")
				break
			}
		}
		orgDomains := tlsrpt.OrganizationDomains(m.Submitter, contact, addressDomain(m.From))
		domain, err := in.verifyDKIM(ctx, raw, orgDomains)
		if errors.Is(err, ErrTemporary) {
			return err
		}
		if err != nil {
			base.Reason = reports.ReasonDKIM
			return in.reject(ctx, res, base, err)
		}
		inc.DKIMDomain = domain
		// RFC 8460 §3: signed by a domain of the reporting organisation.
		inc.Authenticated = true
	}
	for i := range m.Attachments {
		a := &m.Attachments[i]
		repairs := append(append([]tlsrpt.Repair(nil), m.Repairs...), a.Repairs...)
		if err := in.report(ctx, res, raw, a.JSON, repairs, m, a, inc); err != nil {
			return err
		}
	}
	return nil
}

// verifyDKIM returns the signing domain that authenticates the reporting
// organisation (orgDomains, tlsrpt.OrganizationDomains). RFC 8460 §3
// (RPT-MAIL-7): a report without a valid DKIM signature MUST be ignored;
// here it is kept as rejected rather than dropped. A valid signature by
// an unrelated domain is treated as no signature: anyone holding any DKIM
// key could otherwise speak for any organisation.
func (in *Ingester) verifyDKIM(ctx context.Context, raw []byte, orgDomains []string) (string, error) {
	if in.Resolver == nil {
		return "", fmt.Errorf("%w: DKIM required but no resolver configured", ErrTemporary)
	}
	res, err := tlsrpt.VerifyDKIM(ctx, raw, in.Resolver)
	if err != nil {
		return "", err
	}
	if d, ok := res.Authenticates(orgDomains...); ok {
		return d, nil
	}
	if res.Temporary() {
		return "", fmt.Errorf("%w: DKIM key lookup failed, verify again later", ErrTemporary)
	}
	if len(res.Signatures) == 0 {
		return "", fmt.Errorf("no DKIM signature (RFC 8460 §3: reports without a valid signature are ignored)")
	}
	var why []string
	for _, s := range res.Signatures {
		switch {
		case s.Err != nil:
			why = append(why, fmt.Sprintf("d=%s s=%s: %v", s.Domain, s.Selector, s.Err))
		case !s.ServiceTLSRPT():
			why = append(why, fmt.Sprintf("d=%s s=%s: key service %q excludes tlsrpt", s.Domain, s.Selector, strings.Join(s.Services, ":")))
		default:
			why = append(why, fmt.Sprintf("d=%s s=%s: valid, but not a domain of the reporting organisation %q", s.Domain, s.Selector, strings.Join(orgDomains, ", ")))
		}
	}
	return "", fmt.Errorf("no valid DKIM signature of the reporting organisation: %s", strings.Join(why, "; "))
}

// addressDomain is the domain of the first address in a From header
// value, "" when it does not parse.
func addressDomain(from string) string {
	a, err := mail.ParseAddress(from)
	if err != nil {
		return ""
	}
	_, d, _ := strings.Cut(a.Address, "@")
	return d
}
