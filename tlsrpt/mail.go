package tlsrpt

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Message is a TLS report received by mail (RFC 8460 §5.3), as far as the
// mail wrapping goes. The reports themselves are in Attachments as JSON;
// call Attachment.Parse (or Parse) on each.
type Message struct {
	// ReportDomain and Submitter are the TLS-Report-Domain and
	// TLS-Report-Submitter header values (RPT-MAIL-3), trimmed.
	ReportDomain string
	Submitter    string
	// From, MessageID and Date are the raw header values, for display.
	From      string
	MessageID string
	Date      string
	// Subject is the decoded Subject. SubjectInfo is its RFC 8460 §5.3
	// parse, nil when it does not follow the form (SubjectErr says why).
	Subject     string
	SubjectInfo *Subject
	SubjectErr  error
	// Attachments holds every report part found, in message order.
	Attachments []Attachment
	// Repairs lists what was tolerated in the mail wrapping.
	Repairs []Repair
}

// LogValue implements slog.LogValuer.
func (m *Message) LogValue() slog.Value {
	if m == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("report_domain", m.ReportDomain),
		slog.String("submitter", m.Submitter),
		slog.String("message_id", m.MessageID),
		slog.Int("attachments", len(m.Attachments)),
		slog.Int("repairs", len(m.Repairs)),
	)
}

// Attachment is one report part of a message.
type Attachment struct {
	// ContentType is the declared media type, lowercased, without
	// parameters ("" when the whole message is the report and declares none).
	ContentType string
	// Filename is from Content-Disposition, else from the Content-Type name
	// parameter (quirk 18), with folding whitespace removed.
	Filename string
	// FilenameInfo is the RFC 8460 §5.1 parse of Filename, nil when it does
	// not follow the form (it is advisory).
	FilenameInfo *Filename
	// JSON is the report after transfer decoding and decompression.
	JSON []byte
	// Repairs lists what was tolerated to extract this part.
	Repairs []Repair
}

// Parse parses the attachment's JSON (see Parse).
func (a *Attachment) Parse() (*Report, []Repair, error) { return Parse(a.JSON) }

// maxParts and maxNesting bound the MIME walk of a hostile message.
const (
	maxParts   = 64
	maxNesting = 5
)

// reportTypes may hold a report. text/* parts are the human-readable part
// (text/plain per RFC 6522, text/html from Microsoft, quirk 17).
var reportTypes = map[string]bool{
	MediaTypeJSON: true, MediaTypeGzip: true,
	"application/tlsrpt":           true, // quirk 23
	"application/json":             true,
	"application/gzip":             true, // quirk 28
	"application/x-gzip":           true,
	"application/zip":              true,
	"application/x-zip-compressed": true,
	"application/octet-stream":     true,
}

// genericTypes may hold something other than a report; a part of such a
// type that does not decode is skipped rather than failing the message.
var genericTypes = map[string]bool{
	"application/json": true, "application/gzip": true, "application/x-gzip": true,
	"application/zip": true, "application/x-zip-compressed": true, "application/octet-stream": true,
}

// ParseMessage reads a report mail: RFC 6522 multipart/report with an
// application/tlsrpt+gzip or +json part (RPT-MAIL-1/2), and the shapes real
// senders use: bare application/tlsrpt, gzip/zip/octet-stream attachments,
// an HTML human part, extra trailing parts, nested multiparts, the report as
// the whole message (quirk 24, RPT-MAIL-10), base64 that strict decoders
// reject (quirk 26) and a misspelt "ContentType:" header (quirk 27).
//
// It reads at most lim.MaxInput bytes of message and decompresses at most
// lim.MaxOutput bytes over all its reports (ErrTooLarge). It returns ErrNoReport when
// the message holds no report part, and an error wrapping ErrSyntax when the
// MIME structure is broken or a report part does not decode. It does not
// verify DKIM: call VerifyDKIM on the same bytes (RPT-MAIL-7).
func ParseMessage(r io.Reader, lim Limits) (*Message, error) {
	raw, err := readCapped(r, lim.maxInput())
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%w: message above %d bytes", ErrTooLarge, lim.maxInput())
		}
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	th, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: message header: %w", ErrSyntax, err)
	}
	h := message.Header{Header: th}
	m := &Message{
		ReportDomain: strings.TrimSpace(h.Get("TLS-Report-Domain")),
		Submitter:    strings.TrimSpace(h.Get("TLS-Report-Submitter")),
		From:         h.Get("From"),
		MessageID:    h.Get("Message-Id"),
		Date:         h.Get("Date"),
	}
	if s, err := h.Text("Subject"); err == nil {
		m.Subject = s
	} else {
		m.Subject = h.Get("Subject")
	}
	if m.Subject != "" {
		sub, reps, err := ParseSubject(m.Subject)
		if err == nil {
			m.SubjectInfo = &sub
			m.Repairs = append(m.Repairs, reps...)
		} else {
			m.SubjectErr = err
		}
	}
	// RFC 8460 §5.3: both headers MUST be present; their absence is noted,
	// not fatal, because the body wins anyway (RPT-DELIV-6).
	if m.ReportDomain == "" {
		m.Repairs = append(m.Repairs, Repair{Code: "header-missing", Detail: "no TLS-Report-Domain header"})
	}
	if m.Submitter == "" {
		m.Repairs = append(m.Repairs, Repair{Code: "header-missing", Detail: "no TLS-Report-Submitter header"})
	} else if !validFilenameDomain(m.Submitter) {
		// Quirk 29: sys4 once put the organisation name here.
		m.Repairs = append(m.Repairs, Repair{Code: "submitter-not-domain", Detail: fmt.Sprintf("TLS-Report-Submitter %q is not a domain name", clip(m.Submitter))})
	}
	w := &walker{lim: lim, msg: m}
	if err := w.walk(h, br, 0); err != nil {
		return nil, err
	}
	if len(m.Attachments) == 0 {
		if w.firstErr != nil {
			return nil, w.firstErr
		}
		return nil, ErrNoReport
	}
	return m, nil
}

type walker struct {
	lim      Limits
	msg      *Message
	parts    int
	firstErr error
	out      int64 // bytes decompressed so far
}

func (w *walker) note(code, format string, args ...any) {
	w.msg.Repairs = append(w.msg.Repairs, Repair{Code: code, Detail: fmt.Sprintf(format, args...)})
}

// contentType returns the media type and parameters of h, tolerating a
// misspelt header name (quirk 27) and unparseable parameters.
func (w *walker) contentType(h message.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		// "ContentType:" is canonicalised by textproto as "Contenttype".
		if alt := h.Get("Contenttype"); alt != "" {
			w.note("content-type-misspelt", "used a %q header as Content-Type", "ContentType")
			v = alt
		}
	}
	if v == "" {
		return "", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		// Keep the type, drop broken parameters (GO-6).
		t = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		w.note("content-type-invalid", "Content-Type %q: %v", clip(v), err)
		if t, params, err = mime.ParseMediaType(t); err != nil {
			return "", nil
		}
	}
	return t, params
}

func (w *walker) walk(h message.Header, body io.Reader, depth int) error {
	w.parts++
	if w.parts > maxParts {
		return fmt.Errorf("%w: more than %d MIME parts", ErrSyntax, maxParts)
	}
	mt, params := w.contentType(h)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= maxNesting {
			return fmt.Errorf("%w: multipart nested deeper than %d", ErrSyntax, maxNesting)
		}
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("%w: %s without boundary", ErrSyntax, mt)
		}
		mr := textproto.NewMultipartReader(body, boundary)
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if len(w.msg.Attachments) > 0 {
					// The report is out already; a broken tail (quirk 20:
					// extra trailing parts) does not cost it.
					w.note("multipart-truncated", "%s: %v", mt, err)
					return nil
				}
				return fmt.Errorf("%w: %s: %w", ErrSyntax, mt, err)
			}
			if err := w.walk(message.Header{Header: p.Header}, p, depth+1); err != nil {
				return err
			}
		}
	case reportTypes[mt] || (mt == "" && depth == 0):
		return w.leaf(h, mt, params, body)
	default:
		// text/plain, text/html (quirk 17), images, …: not a report.
		return nil
	}
}

func (w *walker) leaf(h message.Header, mt string, params map[string]string, body io.Reader) error {
	var reps []Repair
	raw, err := io.ReadAll(body) // bounded: the message is capped already
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The message ended inside this part: no closing boundary (the
		// last part is often complete all the same). Keep what was read;
		// the transfer, gzip and JSON decoding below decide whether it
		// is whole, and a cut report fails there.
		reps = append(reps, Repair{Code: "multipart-unterminated", Detail: fmt.Sprintf("%s part: message ended without the closing boundary", mt)})
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%w: reading %s part: %w", ErrSyntax, mt, err)
	}
	data, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), raw, &reps)
	if err != nil {
		return w.partFailed(mt, err)
	}
	if mt == "" && !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) && !looksLikeJSON(data) {
		return nil // a plain message without a report
	}
	if mt == "application/tlsrpt" {
		reps = append(reps, Repair{Code: "media-type-bare-tlsrpt", Detail: "application/tlsrpt without +json or +gzip"})
	}
	// The decompressed budget is per message, not per part: 64 parts of
	// 20 MB each would otherwise cost 1.3 GB (RFC 8460 §7).
	lim := w.lim
	lim.MaxOutput = lim.maxOutput() - w.out
	if lim.MaxOutput <= 0 {
		return fmt.Errorf("%w: report parts decompress to more than %d bytes in all", ErrTooLarge, w.lim.maxOutput())
	}
	out, dreps, err := decodeBytes(data, mt, lim, 0)
	if err != nil {
		return w.partFailed(mt, err)
	}
	w.out += int64(len(out))
	a := Attachment{ContentType: mt, JSON: out, Repairs: append(reps, dreps...)}
	a.Filename = w.filename(h, params, &a.Repairs)
	if a.Filename != "" {
		if f, err := ParseFilename(a.Filename); err == nil {
			a.FilenameInfo = &f
		}
	}
	w.msg.Attachments = append(w.msg.Attachments, a)
	return nil
}

// partFailed decides whether a part that did not decode fails the message.
func (w *walker) partFailed(mt string, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	if w.firstErr == nil {
		w.firstErr = err
	}
	if genericTypes[mt] {
		w.note("attachment-not-report", "%s part skipped: %v", mt, err)
		return nil
	}
	return err
}

// filename takes Content-Disposition's filename, else Content-Type's name
// (quirk 18). Whitespace from folding is removed (F-9 folds inside it).
func (w *walker) filename(h message.Header, ctParams map[string]string, reps *[]Repair) string {
	name := ""
	if _, p, err := h.ContentDisposition(); err == nil {
		name = p["filename"]
	}
	if name == "" {
		name = ctParams["name"]
		if name != "" {
			if d, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
				name = d
			}
			*reps = append(*reps, Repair{Code: "filename-from-content-type", Detail: "file name taken from the Content-Type name parameter"})
		}
	}
	if strings.ContainsAny(name, " \t\r\n") {
		name = strings.Join(strings.Fields(name), "")
		*reps = append(*reps, Repair{Code: "filename-whitespace", Detail: "folding whitespace removed from the file name"})
	}
	return name
}

// decodeTransfer undoes the Content-Transfer-Encoding. Base64 is decoded
// strictly first and leniently when that fails (quirk 26: Google).
func decodeTransfer(cte string, raw []byte, reps *[]Repair) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := make([]byte, 0, len(raw))
		for _, c := range raw {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				clean = append(clean, c)
			}
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		if n, err := base64.StdEncoding.Decode(out, clean); err == nil {
			return out[:n], nil
		}
		out, err := decodeBase64Lenient(clean)
		if err != nil {
			return nil, fmt.Errorf("%w: base64: %w", ErrSyntax, err)
		}
		*reps = append(*reps, Repair{Code: "base64-lenient", Detail: "base64 body failed strict decoding; decoded leniently"})
		return out, nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return nil, fmt.Errorf("%w: quoted-printable: %w", ErrSyntax, err)
		}
		return out, nil
	case "", "7bit", "8bit", "binary":
		return raw, nil
	default:
		*reps = append(*reps, Repair{Code: "transfer-encoding-unknown", Detail: fmt.Sprintf("unknown Content-Transfer-Encoding %q, body taken as is", clip(cte))})
		return raw, nil
	}
}

// decodeBase64Lenient keeps only alphabet characters (URL-safe ones
// mapped), ignores padding and garbage, and drops a dangling last sextet.
func decodeBase64Lenient(b []byte) ([]byte, error) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case isAlnum(c) || c == '+' || c == '/':
			clean = append(clean, c)
		case c == '-':
			clean = append(clean, '+')
		case c == '_':
			clean = append(clean, '/')
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// Subject is the parse of an RFC 8460 §5.3 Subject:
//
//	"Report" FWS "Domain:" FWS domain FWS "Submitter:" FWS domain FWS "Report-ID:" FWS "<" id-left "@" id-right ">" [CFWS]
type Subject struct {
	Domain    string
	Submitter string
	// ReportID is the msg-id without angle brackets. It need not equal the
	// JSON report-id (quirk 21); the body wins (RPT-DELIV-6).
	ReportID string
}

// String formats the Subject as generated (RPT-MAIL-4).
func (s Subject) String() string {
	return "Report Domain: " + s.Domain + " Submitter: " + s.Submitter + " Report-ID: <" + s.ReportID + ">"
}

// ParseSubject parses an unfolded Subject (RPT-MAIL-4). Folding anywhere is
// tolerated (F-8; quirk 20 folds after "Report"), as are a prefix such as
// "Fwd:" (repair "subject-prefix"), literals in another case
// ("subject-literal-case"), a Report-ID without angle brackets (quirk 19,
// "subject-report-id-no-brackets") or split by whitespace
// ("subject-report-id-whitespace"). Errors wrap ErrSubject.
func ParseSubject(s string) (Subject, []Repair, error) {
	var reps []Repair
	f := strings.Fields(s)
	start := -1
	for i := 0; i+1 < len(f); i++ {
		if strings.EqualFold(f[i], "Report") && strings.EqualFold(f[i+1], "Domain:") {
			start = i
			break
		}
	}
	if start < 0 {
		return Subject{}, nil, fmt.Errorf("%w: no \"Report Domain:\" in %q", ErrSubject, clip(s))
	}
	if start > 0 {
		reps = append(reps, Repair{Code: "subject-prefix", Detail: fmt.Sprintf("ignored %q before \"Report\"", clip(strings.Join(f[:start], " ")))})
	}
	f = f[start:]
	if len(f) < 7 {
		return Subject{}, nil, fmt.Errorf("%w: %q is too short", ErrSubject, clip(s))
	}
	lits := []struct {
		i    int
		want string
	}{{0, "Report"}, {1, "Domain:"}, {3, "Submitter:"}, {5, "Report-ID:"}}
	caseFixed := false
	for _, l := range lits {
		if f[l.i] == l.want {
			continue
		}
		if !strings.EqualFold(f[l.i], l.want) {
			return Subject{}, nil, fmt.Errorf("%w: expected %q, found %q", ErrSubject, l.want, clip(f[l.i]))
		}
		caseFixed = true
	}
	if caseFixed {
		reps = append(reps, Repair{Code: "subject-literal-case", Detail: "Subject literals are case-sensitive (RFC 8460 §5.3)"})
	}
	sub := Subject{Domain: f[2], Submitter: f[4]}
	rest := f[6:]
	var id string
	if strings.HasPrefix(rest[0], "<") {
		// Join until the closing bracket; anything after it is CFWS.
		for i, t := range rest {
			id += t
			if strings.HasSuffix(t, ">") {
				if i > 0 {
					reps = append(reps, Repair{Code: "subject-report-id-whitespace", Detail: "whitespace inside the Report-ID removed"})
				}
				break
			}
		}
		if !strings.HasSuffix(id, ">") {
			return Subject{}, nil, fmt.Errorf("%w: Report-ID %q has no closing '>'", ErrSubject, clip(id))
		}
		id = id[1 : len(id)-1]
	} else {
		reps = append(reps, Repair{Code: "subject-report-id-no-brackets", Detail: "Report-ID without angle brackets"})
		id = strings.Join(rest, "")
		if len(rest) > 1 {
			reps = append(reps, Repair{Code: "subject-report-id-whitespace", Detail: "whitespace inside the Report-ID removed"})
		}
	}
	if id == "" {
		return Subject{}, nil, fmt.Errorf("%w: empty Report-ID", ErrSubject)
	}
	sub.ReportID = id
	return sub, reps, nil
}

// CheckConsistency compares what the mail wrapping says with the report body
// and lists the disagreements. RFC 8460 §5.6: the body wins (RPT-DELIV-6),
// so these are for display and for spotting forged or broken senders:
// "submitter-contact-mismatch" (RPT-JSON-10, RPT-MAIL-3),
// "header-domain-mismatch", "subject-domain-mismatch",
// "subject-submitter-mismatch", "subject-report-id-mismatch" (quirk 21),
// "filename-domain-mismatch", "filename-sender-mismatch".
func CheckConsistency(m *Message, a *Attachment, r *Report) []Problem {
	var ps []Problem
	add := func(code, format string, args ...any) {
		ps = append(ps, Problem{Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	contactDomain := ""
	if _, d, ok := strings.Cut(r.ContactInfo, "@"); ok {
		contactDomain = d
	}
	// Domains of one organisation (mail.ru and corp.mail.ru) agree.
	agree := func(a, b string) bool { return strings.EqualFold(a, b) || SameOrganization(a, b) }
	hasDomain := func(d string) bool {
		for _, p := range r.Policies {
			if strings.EqualFold(p.Policy.Domain, d) {
				return true
			}
		}
		return false
	}
	if m != nil {
		if m.Submitter != "" && !agree(m.Submitter, contactDomain) {
			add("submitter-contact-mismatch", "TLS-Report-Submitter %q, contact-info domain %q", clip(m.Submitter), clip(contactDomain))
		}
		if m.ReportDomain != "" && !hasDomain(m.ReportDomain) {
			add("header-domain-mismatch", "TLS-Report-Domain %q is not a policy-domain of the report", clip(m.ReportDomain))
		}
		if s := m.SubjectInfo; s != nil {
			if !hasDomain(s.Domain) {
				add("subject-domain-mismatch", "Subject domain %q is not a policy-domain of the report", clip(s.Domain))
			}
			if !agree(s.Submitter, contactDomain) {
				add("subject-submitter-mismatch", "Subject submitter %q, contact-info domain %q", clip(s.Submitter), clip(contactDomain))
			}
			// ComposeMessage appends "@submitter" to a report-id that is
			// not in msg-id form; that is the same id.
			if s.ReportID != r.ReportID && s.ReportID != r.ReportID+"@"+contactDomain {
				add("subject-report-id-mismatch", "Subject Report-ID %q, report-id %q", clip(s.ReportID), clip(r.ReportID))
			}
		}
	}
	if a != nil && a.FilenameInfo != nil {
		if !hasDomain(a.FilenameInfo.PolicyDomain) {
			add("filename-domain-mismatch", "file name domain %q is not a policy-domain of the report", clip(a.FilenameInfo.PolicyDomain))
		}
		if !agree(a.FilenameInfo.Sender, contactDomain) {
			add("filename-sender-mismatch", "file name sender %q, contact-info domain %q", clip(a.FilenameInfo.Sender), clip(contactDomain))
		}
	}
	return ps
}

// FillPolicyDomain gives every policy of r that has no policy-domain (quirk
// 13: sys4 and others omit it for no-policy-found) the domain the mail
// wrapping names: the TLS-Report-Domain header, the Subject and the
// attachment's file name, in that order of trust. It fills only when the
// sources that name a domain agree (or only one does), and returns one
// "policy-domain-from-mail" repair per policy filled; nil when nothing was
// filled. m or a may be nil. The body still wins where it names a domain
// (RPT-DELIV-6); this only keeps a report from being stored under none.
func FillPolicyDomain(m *Message, a *Attachment, r *Report) []Repair {
	if r == nil {
		return nil
	}
	missing := false
	for _, p := range r.Policies {
		missing = missing || strings.TrimSpace(p.Policy.Domain) == ""
	}
	if !missing {
		return nil
	}
	type source struct{ name, domain string }
	var srcs []source
	if m != nil {
		srcs = append(srcs, source{"TLS-Report-Domain header", m.ReportDomain})
		if m.SubjectInfo != nil {
			srcs = append(srcs, source{"Subject", m.SubjectInfo.Domain})
		}
	}
	if a != nil && a.FilenameInfo != nil {
		srcs = append(srcs, source{"file name", a.FilenameInfo.PolicyDomain})
	}
	domain := ""
	var from []string
	for _, s := range srcs {
		d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s.domain), "."))
		if d == "" {
			continue
		}
		if !validFilenameDomain(d) || domain != "" && d != domain {
			return nil // a source that is not a domain, or two that disagree
		}
		domain = d
		from = append(from, s.name)
	}
	if domain == "" {
		return nil
	}
	var reps []Repair
	for i := range r.Policies {
		if strings.TrimSpace(r.Policies[i].Policy.Domain) != "" {
			continue
		}
		r.Policies[i].Policy.Domain = domain
		reps = append(reps, Repair{Code: "policy-domain-from-mail", Detail: fmt.Sprintf("policies[%d]: no policy-domain; %q taken from the %s",
			i, domain, strings.Join(from, ", "))})
	}
	return reps
}
