package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-msgauth/dkim"
)

// Aggregator collects session results into report policies. RPT-AGG-9
// (mox convention): one policies[] entry per distinct (policy-type,
// policy-string, policy-domain, mx-host); failure details that agree in
// every member but the count are merged and their counts added. The zero
// value is ready to use; it is not safe for concurrent use.
type Aggregator struct {
	results []PolicyResult
	index   map[string]int
}

func policyKey(p Policy) string {
	return strings.Join([]string{p.Type, strings.Join(p.String, "\n"), p.Domain, strings.Join(p.MXHost, "\n")}, "\x00")
}

func (a *Aggregator) entry(p Policy) *PolicyResult {
	if a.index == nil {
		a.index = map[string]int{}
	}
	k := policyKey(p)
	i, ok := a.index[k]
	if !ok {
		i = len(a.results)
		a.index[k] = i
		p.String = append([]string(nil), p.String...)
		p.MXHost = append([]string(nil), p.MXHost...)
		a.results = append(a.results, PolicyResult{Policy: p})
	}
	return &a.results[i]
}

// AddSuccess counts n sessions that negotiated policy-compliant TLS under p
// (RFC 8460 §4.2, RPT-AGG-3).
func (a *Aggregator) AddSuccess(p Policy, n int64) {
	a.entry(p).Summary.TotalSuccessfulSessionCount += n
}

// AddFailure counts one failed session under p with the results it logged.
// A session may log several results (an expired and mismatched
// certificate): the failure total grows by one while each detail counts the
// session (RFC 8460 §4, RPT-AGG-4). A detail's FailedSessionCount of 0
// means 1.
func (a *Aggregator) AddFailure(p Policy, details ...FailureDetails) {
	e := a.entry(p)
	e.Summary.TotalFailureSessionCount++
	for _, d := range details {
		n := d.FailedSessionCount
		if n <= 0 {
			n = 1
		}
		d.FailedSessionCount = 0
		merged := false
		for i := range e.FailureDetails {
			x := e.FailureDetails[i]
			x.FailedSessionCount = 0
			if x == d {
				e.FailureDetails[i].FailedSessionCount += n
				merged = true
				break
			}
		}
		if !merged {
			d.FailedSessionCount = n
			e.FailureDetails = append(e.FailureDetails, d)
		}
	}
}

// Policies returns a copy of the aggregated entries in first-seen order.
func (a *Aggregator) Policies() []PolicyResult {
	out := make([]PolicyResult, len(a.results))
	for i, r := range a.results {
		r.FailureDetails = append([]FailureDetails(nil), r.FailureDetails...)
		out[i] = r
	}
	return out
}

// ReportParams describe the report to build around aggregated policies.
type ReportParams struct {
	OrganizationName string
	// ContactInfo is an addr-spec; its domain is the submitter.
	ContactInfo string
	// PolicyDomain is the reported domain (A-labels), used in the report-id.
	PolicyDomain string
	// Day is any instant of the reported UTC day.
	Day time.Time
}

// Report builds a report of everything aggregated so far for one UTC day
// (RFC 8460 §4.1), with a report-id from NewReportID.
func (a *Aggregator) Report(p ReportParams) *Report {
	_, submitter, _ := strings.Cut(p.ContactInfo, "@")
	return &Report{
		OrganizationName: p.OrganizationName,
		DateRange:        DayRange(p.Day),
		ContactInfo:      p.ContactInfo,
		ReportID:         NewReportID(p.Day, p.PolicyDomain, submitter),
		Policies:         a.Policies(),
	}
}

// DayRange returns the UTC day containing t: 00:00:00Z to 23:59:59Z
// (RFC 8460 §4.1; OPEN-7 chooses the RFC example's 23:59:59Z end).
func DayRange(t time.Time) DateRange {
	y, m, d := t.UTC().Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)}
}

// NewReportID returns "YYYYMMDD.<policy-domain>@<submitter>": unique per
// day, domain and submitter, and in msg-id form so that the Subject's
// Report-ID can be the same string (RPT-JSON-9, mox convention).
func NewReportID(day time.Time, policyDomain, submitter string) string {
	return day.UTC().Format("20060102") + "." + policyDomain + "@" + submitter
}

// MarshalGzip returns Marshal(r) compressed with gzip (RFC 8460 §5.2,
// RPT-DELIV-4). The compressors are reused (gzipWriters): a new
// gzip.Writer allocates about 1 MB of state, and an outbox sending a
// day's reports, or a benchmark building them, paid that per report in
// allocation and garbage collection.
func MarshalGzip(r *Report) ([]byte, error) {
	js, err := Marshal(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	// Reset drops the reference to buf, which the caller now owns.
	zw.Reset(io.Discard)
	return buf.Bytes(), nil
}

// gzipWriters are MarshalGzip's compressors at the default level;
// Reset gives a writer the state of a new one, so the output is the
// same bytes as from gzip.NewWriter.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// MailOptions configure ComposeMessage.
type MailOptions struct {
	// From is the sender address; empty means the report's contact-info.
	From string
	// To are the recipient addresses (decoded mailto rua, see UsableRUA).
	To []string
	// Date of the message (required; inject the clock).
	Date time.Time
	// MessageID without angle brackets; empty means a random one at the
	// submitter domain.
	MessageID string
	// PolicyDomain for TLS-Report-Domain; empty means the first policy's.
	PolicyDomain string
	// UniqueID is the optional file name unique-id (letters and digits).
	UniqueID string
	// Uncompressed sends application/tlsrpt+json instead of +gzip.
	Uncompressed bool
	// HumanText is the first, human-readable part; empty means a default.
	HumanText string
}

// ComposeMessage builds the report mail of RFC 8460 §5.3, ready for DKIM
// signing (SignMessage): multipart/report; report-type="tlsrpt"
// (RPT-MAIL-1), a text/plain part then the base64 application/tlsrpt+gzip
// (or +json) attachment named per §5.1 (RPT-MAIL-2, RPT-DELIV-2/3), the
// TLS-Report-Domain and TLS-Report-Submitter headers with the submitter
// equal to the contact-info domain (RPT-MAIL-3, RPT-JSON-10), and the
// Subject of RPT-MAIL-4. The report must pass Validate.
func ComposeMessage(r *Report, o MailOptions) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	_, submitter, _ := strings.Cut(r.ContactInfo, "@")
	domain := o.PolicyDomain
	if domain == "" {
		domain = r.Policies[0].Policy.Domain
	}
	if o.Date.IsZero() {
		return nil, errors.New("tlsrpt: ComposeMessage needs a Date")
	}
	if len(o.To) == 0 {
		return nil, errors.New("tlsrpt: ComposeMessage needs a recipient")
	}
	from := o.From
	if from == "" {
		from = r.ContactInfo
	}
	for _, a := range append([]string{from}, o.To...) {
		if !validAddrSpec(a) {
			return nil, fmt.Errorf("tlsrpt: %q is not an addr-spec", clip(a))
		}
	}
	if o.UniqueID != "" && !validUniqueID(o.UniqueID) {
		return nil, fmt.Errorf("tlsrpt: invalid unique-id %q", clip(o.UniqueID))
	}
	msgID := o.MessageID
	if msgID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		msgID = hex.EncodeToString(b[:]) + "@" + submitter
	}
	subjID := r.ReportID
	if !strings.Contains(subjID, "@") {
		subjID += "@" + submitter
	}
	fn := Filename{Sender: submitter, PolicyDomain: domain, Begin: r.DateRange.Start, End: r.DateRange.End,
		UniqueID: o.UniqueID, Gzip: !o.Uncompressed}
	var body []byte
	var err error
	ctype := MediaTypeGzip
	if o.Uncompressed {
		ctype = MediaTypeJSON
		body, err = Marshal(r)
	} else {
		body, err = MarshalGzip(r)
	}
	if err != nil {
		return nil, err
	}
	human := o.HumanText
	if human == "" {
		human = "This is an aggregate TLS report from " + submitter + " for " + domain + ".\r\n"
	}

	var h message.Header
	h.Set("From", from)
	h.Set("To", strings.Join(o.To, ", "))
	h.Set("Date", o.Date.Format(time.RFC1123Z))
	h.Set("Subject", Subject{Domain: domain, Submitter: submitter, ReportID: subjID}.String())
	h.Set("Message-Id", "<"+msgID+">")
	h.Set("TLS-Report-Domain", domain)
	h.Set("TLS-Report-Submitter", submitter)
	h.Set("MIME-Version", "1.0")
	h.SetContentType("multipart/report", map[string]string{"report-type": "tlsrpt"})

	var buf bytes.Buffer
	mw, err := message.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	var th message.Header
	th.SetContentType("text/plain", map[string]string{"charset": "us-ascii"})
	th.Set("Content-Transfer-Encoding", "7bit")
	pw, err := mw.CreatePart(th)
	if err != nil {
		return nil, err
	}
	if _, err := pw.Write([]byte(human)); err != nil {
		return nil, err
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	var ah message.Header
	ah.SetContentType(ctype, nil)
	ah.Set("Content-Transfer-Encoding", "base64")
	ah.SetContentDisposition("attachment", map[string]string{"filename": fn.String()})
	aw, err := mw.CreatePart(ah)
	if err != nil {
		return nil, err
	}
	if _, err := aw.Write(body); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// defaultSignedHeaders are the header fields SignMessage signs by default:
// RFC 6376 §5.4.1's recommendation plus the TLS-Report-* fields that
// RFC 8460 §5.3 says SHOULD be signed (RPT-MAIL-5).
var defaultSignedHeaders = []string{
	"From", "To", "Subject", "Date", "Message-Id", "MIME-Version", "Content-Type",
	"TLS-Report-Domain", "TLS-Report-Submitter",
}

// SignMessage prepends a DKIM-Signature made with o (Domain, Selector and
// Signer required) to msg. When o.HeaderKeys is nil the TLS-Report-* fields
// and the usual ones are signed; otherwise the TLS-Report-* fields are
// added if missing. go-msgauth never emits the l= tag, as RFC 8460 §3
// requires (RPT-MAIL-5).
func SignMessage(msg []byte, o dkim.SignOptions) ([]byte, error) {
	if o.HeaderKeys == nil {
		o.HeaderKeys = append([]string(nil), defaultSignedHeaders...)
	} else {
		o.HeaderKeys = append([]string(nil), o.HeaderKeys...)
		for _, k := range []string{"TLS-Report-Domain", "TLS-Report-Submitter"} {
			found := false
			for _, h := range o.HeaderKeys {
				if strings.EqualFold(h, k) {
					found = true
				}
			}
			if !found {
				o.HeaderKeys = append(o.HeaderKeys, k)
			}
		}
	}
	var sig bytes.Buffer
	if err := dkim.Sign(&sig, bytes.NewReader(msg), &o); err != nil {
		return nil, fmt.Errorf("tlsrpt: dkim sign: %w", err)
	}
	return sig.Bytes(), nil
}
