package outbox

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/tlsrpt"
)

// ErrPermanent marks a delivery failure that retrying cannot fix (an SMTP
// 5xx reply, a report above a size limit): the delivery
// is given up at once. Test with Permanent.
var ErrPermanent = errors.New("permanent failure")

// ErrTooLarge means the destination refuses a report of this size (SMTP
// SIZE extension or 552, HTTP 413). Over SMTP it comes with ErrPermanent;
// over HTTPS it is retried (RPT-HTTP-3).
var ErrTooLarge = errors.New("report too large for the destination")

func permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Permanent reports whether a delivery error is not worth retrying.
func Permanent(err error) bool { return errors.Is(err, ErrPermanent) }

// mailtoAddress returns the decoded address of a mailto: rua ("" when it
// is not one).
func mailtoAddress(dest string) string {
	usable, _ := (&tlsrpt.Record{RUA: []string{dest}}).UsableRUA()
	if len(usable) != 1 || usable[0].Scheme != "mailto" {
		return ""
	}
	return usable[0].Address
}

// MessageIDPrefix starts the local part of the Message-ID of every report
// mail. Postfix logs each message's Message-ID (cleanup: message-id=<…>),
// so a log collector can tell a queue ID that carries a report and leave
// its delivery out of the reports: see IsReportMessageID.
const MessageIDPrefix = "mailsts-tlsrpt."

// IsReportMessageID reports whether a Message-ID (with or without angle
// brackets) is one the outbox gave a report mail. Collectors use it so
// that the sessions that deliver reports are never counted themselves
// (no report-about-report loops).
func IsReportMessageID(id string) bool {
	return strings.HasPrefix(strings.TrimPrefix(strings.TrimSpace(id), "<"), MessageIDPrefix)
}

// reportMessageID is the same for every attempt of one delivery, so that
// a receiver that got a message twice (a lost reply) can tell.
func reportMessageID(reportID, to, submitter string) string {
	h := sha256.Sum256([]byte(reportID + "\n" + strings.ToLower(to)))
	return MessageIDPrefix + hex.EncodeToString(h[:12]) + "@" + submitter
}

// DKIMSigner signs report mail (RFC 8460 §3: reports by mail MUST be
// DKIM-signed by the reporting organisation).
type DKIMSigner struct {
	Domain   string
	Selector string
	Key      crypto.Signer
}

// LoadDKIMKey reads a PEM private key (PKCS #8 RSA or Ed25519, or PKCS #1
// RSA) for DKIM signing.
func LoadDKIMKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// StartTLS modes of the relay connection: required (STARTTLS and a
// certificate that verifies for the relay's name), opportunistic
// (STARTTLS when offered, the certificate not checked) or off. Empty
// means off for a relay on loopback, else required.
const (
	StartTLSRequired      = "required"
	StartTLSOpportunistic = "opportunistic"
	StartTLSOff           = "off"
)

// Mailer sends report mail: composed per RFC 8460 §5.3 by the tlsrpt
// package, DKIM-signed, through an SMTP relay or the local sendmail.
type Mailer struct {
	// From is the From header and envelope sender; empty means the
	// report's contact-info.
	From string
	// DKIM signs every message; nil sends unsigned mail, which receivers
	// must ignore (RPT-MAIL-7): configure it.
	DKIM *DKIMSigner
	// Relay is the SMTP relay's host:port; empty runs Sendmail instead.
	Relay string
	// StartTLS is required, opportunistic or off (see StartTLSRequired);
	// empty means off for a loopback relay, else required.
	StartTLS string
	// TLSConfig for STARTTLS; nil verifies the relay's name against the
	// system roots.
	TLSConfig *tls.Config
	// Username and Password authenticate (PLAIN, only over TLS or to
	// localhost).
	Username, Password string
	// HelloName is the EHLO name; empty means the host name.
	HelloName string
	// Timeout bounds one SMTP conversation (default 2 minutes).
	Timeout time.Duration
	// Sendmail is the sendmail binary (default /usr/sbin/sendmail).
	Sendmail string
	// Dial connects to the relay; nil means net.Dialer, with a relay host
	// name resolved through Resolver when set.
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	Resolver dnsresolve.Resolver
}

// Compose builds the signed report mail for one recipient.
func (m *Mailer) Compose(r Report, to string, now time.Time) (from string, msg []byte, err error) {
	js, _, err := tlsrpt.Decode(bytes.NewReader(r.Body), tlsrpt.MediaTypeGzip, tlsrpt.Limits{})
	if err != nil {
		return "", nil, permanent(fmt.Errorf("report body: %w", err))
	}
	rep, _, err := tlsrpt.Parse(js)
	if err != nil {
		return "", nil, permanent(fmt.Errorf("report body: %w", err))
	}
	opts := tlsrpt.MailOptions{From: m.From, To: []string{to}, Date: now, PolicyDomain: r.PolicyDomain,
		MessageID: reportMessageID(r.ReportID, to, r.Submitter),
		HumanText: fmt.Sprintf("This is an aggregate TLS report (RFC 8460) from %s for %s,\r\ncovering %s (UTC). The report is attached as %s.\r\n",
			r.Submitter, r.PolicyDomain, dayString(r.Day), r.Filename)}
	if f, err := tlsrpt.ParseFilename(r.Filename); err == nil {
		opts.UniqueID = f.UniqueID
	}
	msg, err = tlsrpt.ComposeMessage(rep, opts)
	if err != nil {
		return "", nil, permanent(fmt.Errorf("composing the mail: %w", err))
	}
	// RFC 8460 §5.3 and RFC 3834: reports are machine-generated; the
	// TLS-Required: No header (RFC 8689) lets them through to a domain
	// whose TLS is broken, which is what the report is about.
	msg = append([]byte("TLS-Required: No\r\nAuto-Submitted: auto-generated\r\n"), msg...)
	if m.DKIM != nil {
		msg, err = tlsrpt.SignMessage(msg, dkim.SignOptions{Domain: m.DKIM.Domain, Selector: m.DKIM.Selector, Signer: m.DKIM.Key,
			HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-Id", "MIME-Version", "Content-Type",
				"TLS-Report-Domain", "TLS-Report-Submitter", "TLS-Required", "Auto-Submitted"}})
		if err != nil {
			return "", nil, permanent(err)
		}
	}
	from = m.From
	if from == "" {
		from = rep.ContactInfo
	}
	return from, msg, nil
}

// Deliver composes, signs and sends the report to one mailto address.
func (m *Mailer) Deliver(ctx context.Context, r Report, to string, now time.Time) error {
	if to == "" {
		return permanent(errors.New("not a usable mailto address"))
	}
	// RFC 8460 §3's own example, mailto:tls%2Creports@…, decodes to a
	// local part that must be quoted in headers and SMTP commands (a bare
	// comma would also split it into two recipients).
	to = quoteAddress(to)
	from, msg, err := m.Compose(r, to, now)
	if err != nil {
		return err
	}
	if m.Relay == "" {
		return m.sendmail(ctx, from, to, msg)
	}
	return m.smtp(ctx, from, to, msg)
}

// quoteAddress returns addr as an RFC 5322 addr-spec, quoting the local
// part when it holds specials; an address that already parses is kept.
func quoteAddress(addr string) string {
	if a, err := mail.ParseAddress(addr); err == nil && a.Name == "" && a.Address == addr {
		return addr
	}
	return strings.TrimSuffix(strings.TrimPrefix((&mail.Address{Address: addr}).String(), "<"), ">")
}

func (m *Mailer) timeout() time.Duration {
	if m.Timeout > 0 {
		return m.Timeout
	}
	return 2 * time.Minute
}

// smtpErr classifies an SMTP error: 5xx replies are permanent.
func smtpErr(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		if te.Code == 552 || te.Code == 523 {
			return fmt.Errorf("relay %s: %w: %w: %w", step, ErrPermanent, ErrTooLarge, err)
		}
		return fmt.Errorf("relay %s: %w: %w", step, ErrPermanent, err)
	}
	return fmt.Errorf("relay %s: %w", step, err)
}

func (m *Mailer) smtp(ctx context.Context, from, to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	dial := m.Dial
	if dial == nil {
		dial = resolvingDialer(m.Resolver)
	}
	conn, err := dial(ctx, "tcp", m.Relay)
	if err != nil {
		return fmt.Errorf("relay %s: %w", m.Relay, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	host, _, _ := net.SplitHostPort(m.Relay)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return smtpErr("greeting", err)
	}
	defer c.Close()
	hello := m.HelloName
	if hello == "" {
		hello, _ = os.Hostname()
		if hello == "" {
			hello = "localhost"
		}
	}
	if err := c.Hello(hello); err != nil {
		return smtpErr("EHLO", err)
	}
	mode := m.StartTLS
	if mode == "" {
		mode = StartTLSRequired
		if isLoopback(host) {
			// The local MTA: nothing to protect on the wire, and its
			// certificate rarely names 127.0.0.1.
			mode = StartTLSOff
		}
	}
	if ok, _ := c.Extension("STARTTLS"); ok && mode != StartTLSOff {
		tc := m.TLSConfig.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if mode == StartTLSOpportunistic {
			tc.InsecureSkipVerify = true // encryption without authentication, like Postfix's "may"
		}
		if err := c.StartTLS(tc); err != nil {
			return smtpErr("STARTTLS", err)
		}
	} else if mode == StartTLSRequired {
		return fmt.Errorf("relay %s offers no STARTTLS (delivery.mail.starttls: required)", m.Relay)
	}
	if m.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return smtpErr("AUTH", err)
		}
	}
	// RFC 1870: a relay announcing SIZE refuses larger messages; do not
	// send them only to be refused.
	if ok, p := c.Extension("SIZE"); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64); err == nil && n > 0 && int64(len(msg)) > n {
			return fmt.Errorf("relay %s: message of %d bytes above its SIZE %d: %w: %w", m.Relay, len(msg), n, ErrPermanent, ErrTooLarge)
		}
	}
	if err := c.Mail(from); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	if err := c.Rcpt(to); err != nil {
		return smtpErr("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("end of DATA", err)
	}
	_ = c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

func (m *Mailer) sendmail(ctx context.Context, from, to string, msg []byte) error {
	path := m.Sendmail
	if path == "" {
		path = "/usr/sbin/sendmail"
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-i", "-f", from, "--", to)
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 2048}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	detail := strings.TrimSpace(stderr.String())
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// sysexits: EX_DATAERR, EX_NOUSER, EX_NOHOST will not change.
		switch ee.ExitCode() {
		case 65, 67, 68:
			return fmt.Errorf("%s: %w: exit %d: %s", path, ErrPermanent, ee.ExitCode(), detail)
		}
		return fmt.Errorf("%s: exit %d: %s", path, ee.ExitCode(), detail)
	}
	return fmt.Errorf("%s: %w", path, err)
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	n := len(p)
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return n, nil
}

// HTTPSPoster delivers reports to https: destinations (RFC 8460 §5.4): a
// POST of application/tlsrpt+gzip. Redirects are never followed, the
// response body is read up to 4 KiB, and the whole exchange has a
// timeout.
type HTTPSPoster struct {
	// Timeout bounds one POST (default 2 minutes).
	Timeout time.Duration
	// RootCAs verify the destination; nil means the system roots.
	RootCAs *x509.CertPool
	// Client, when set, is used instead of one built here (its
	// CheckRedirect is replaced: redirects are never followed).
	Client *http.Client
	// UserAgent of the requests; empty means "mailsts".
	UserAgent string
	// RequireValidCertificates refuses destinations whose certificate
	// does not verify. RFC 8460 §3 lets a reporter ignore certificate
	// errors when posting (RPT-HTTP-4); by default such a POST is logged
	// and made anyway, since the report is about TLS trouble in the first
	// place. It has no effect on an injected Client.
	RequireValidCertificates bool
	// AllowPrivate lets https rua reach loopback, private, link-local
	// and other non-public addresses. Off by default: a domain's record
	// must not make this host POST to services on its own network.
	AllowPrivate bool
	Logger       *slog.Logger

	once     sync.Once
	client   *http.Client
	insecure *http.Client
}

func (h *HTTPSPoster) log() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

func (h *HTTPSPoster) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultHTTPTimeout
}

func (h *HTTPSPoster) httpClient(res dnsresolve.Resolver) *http.Client {
	h.once.Do(func() {
		if h.Client != nil {
			c := *h.Client
			h.client = &c
		} else {
			tr := &http.Transport{
				DialContext:            publicDialer(res, h.AllowPrivate),
				TLSClientConfig:        &tls.Config{RootCAs: h.RootCAs, MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout:    30 * time.Second,
				ResponseHeaderTimeout:  h.timeout(),
				MaxResponseHeaderBytes: 64 << 10, // a hostile destination's headers are bounded too
				MaxIdleConnsPerHost:    2,
				IdleConnTimeout:        time.Minute,
			}
			h.client = &http.Client{Transport: tr}
			itr := tr.Clone()
			itr.TLSClientConfig.InsecureSkipVerify = true
			h.insecure = &http.Client{Transport: itr}
		}
		for _, c := range []*http.Client{h.client, h.insecure} {
			if c != nil {
				c.Timeout = h.timeout()
				c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			}
		}
	})
	return h.client
}

// resolvingDialer resolves host names through the project's DNS layer.
func resolvingDialer(res dnsresolve.Resolver) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return publicDialer(res, true)
}

// ErrNotPublic means an https rua's host is (or resolves to) an address
// that is not public: loopback, private, link-local, unspecified or
// multicast. It wraps ErrPermanent; HTTPSPoster.AllowPrivate allows them.
var ErrNotPublic = fmt.Errorf("%w: destination address is not public", ErrPermanent)

func public(a netip.Addr) bool {
	a = a.Unmap()
	return !(a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified())
}

// publicDialer resolves host names through the DNS layer (res nil: the
// system's) and, unless allowPrivate, dials public addresses only.
func publicDialer(res dnsresolve.Resolver, allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if res == nil {
			if allowPrivate {
				return d.DialContext(ctx, network, addr)
			}
			ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				return nil, fmt.Errorf("resolving %s: %w", host, err)
			}
		} else {
			ips, _, err = res.LookupIP(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("resolving %s: %w", host, err)
			}
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolving %s: no address", host)
		}
		var errs []error
		for _, ip := range ips {
			if !allowPrivate && !public(ip) {
				errs = append(errs, fmt.Errorf("%s is not a public address", ip))
				continue
			}
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		if len(errs) == len(ips) && !allowPrivate && !slices.ContainsFunc(ips, public) {
			return nil, fmt.Errorf("%s (%v): %w", host, ips, ErrNotPublic)
		}
		return nil, errors.Join(errs...)
	}
}

// Post sends the report to one https: rua.
func (h *HTTPSPoster) Post(ctx context.Context, res dnsresolve.Resolver, dest string, r Report) error {
	u, err := url.Parse(dest)
	if err != nil || !strings.EqualFold(u.Scheme, "https") {
		return permanent(fmt.Errorf("not an https URI: %q", dest))
	}
	limit := h.timeout()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return permanent(err)
	}
	// RFC 8460 §5.4: the body is the report, gzip-compressed here
	// (RPT-DELIV-4), as application/tlsrpt+gzip.
	req.Header.Set("Content-Type", tlsrpt.MediaTypeGzip)
	ua := h.UserAgent
	if ua == "" {
		ua = "mailsts"
	}
	req.Header.Set("User-Agent", ua)
	resp, err := h.httpClient(res).Do(req)
	var cve *tls.CertificateVerificationError
	if err != nil && errors.As(err, &cve) && h.insecure != nil && !h.RequireValidCertificates {
		// RPT-HTTP-4: log the certificate error and post anyway.
		h.log().Warn("report destination's certificate does not verify; posting anyway", "url", u.Redacted(), "err", cve)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(r.Body))
		if err != nil {
			return permanent(err)
		}
		req.Header.Set("Content-Type", tlsrpt.MediaTypeGzip)
		req.Header.Set("User-Agent", ua)
		resp, err = h.insecure.Do(req)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("POST %s: no answer within %v: %w", u.Redacted(), limit, context.DeadlineExceeded)
		}
		return fmt.Errorf("POST %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	// The answer matters only by its status; read a bounded prefix for
	// the error text and drop the rest.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxHTTPResponseBytes))
	text := printable(head, 200)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// RFC 8460 §5.4 does not allow for redirects; following one
		// would send reports where the domain's record does not say.
		return fmt.Errorf("POST %s: %s, redirect to %q not followed", u.Redacted(), resp.Status, printable([]byte(resp.Header.Get("Location")), 200))
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		// RPT-HTTP-3: every other status is a failure to retry, 413
		// included (the receiver's limit may change; the give-up age
		// bounds the cost).
		return fmt.Errorf("POST %s: %s %s: %w", u.Redacted(), resp.Status, text, ErrTooLarge)
	}
	return fmt.Errorf("POST %s: %s %s", u.Redacted(), resp.Status, text)
}

// printable keeps the first n printable ASCII characters of b.
func printable(b []byte, n int) string {
	var s strings.Builder
	for _, c := range b {
		if s.Len() >= n {
			s.WriteString("…")
			break
		}
		switch {
		case c >= 0x20 && c < 0x7f:
			s.WriteByte(c)
		case c == '\n' || c == '\r' || c == '\t':
			s.WriteByte(' ')
		}
	}
	return strings.TrimSpace(s.String())
}
