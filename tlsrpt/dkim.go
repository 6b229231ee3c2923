package tlsrpt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/mailsts/mailsts/dnsresolve"
)

// maxDKIMSignatures bounds the work one message can cause.
const maxDKIMSignatures = 5

// DKIMResult is the outcome of VerifyDKIM: one entry per DKIM-Signature
// header, in header order (at most 5 are checked).
type DKIMResult struct {
	Signatures []DKIMSignature
}

// DKIMSignature is one verified (or failed) signature.
type DKIMSignature struct {
	// Domain (d=) and Selector (s=) of the signature.
	Domain   string
	Selector string
	// Err is nil when the signature is cryptographically valid.
	Err error
	// Temporary is true when Err is a DNS lookup failure: verify again later
	// rather than dropping the report.
	Temporary bool
	// Services is the key record's s= tag split on ":" (nil when absent,
	// meaning all services, RFC 6376 §3.6.1).
	Services []string
	// HeaderKeys are the signed header fields (h=).
	HeaderKeys []string
}

// ServiceTLSRPT reports whether the key allows the tlsrpt service: s=
// absent, "*", or listing "tlsrpt" (RFC 8460 §3, RPT-MAIL-6).
func (s DKIMSignature) ServiceTLSRPT() bool {
	if s.Services == nil {
		return true
	}
	for _, v := range s.Services {
		if v == "*" || strings.EqualFold(v, "tlsrpt") {
			return true
		}
	}
	return false
}

// Passes reports whether a valid signature authenticates a report from
// submitter (the TLS-Report-Submitter domain, or the contact-info domain):
// see Authenticates.
func (r DKIMResult) Passes(submitter string) bool {
	_, ok := r.Authenticates(submitter)
	return ok
}

// Authenticates returns the signing domain (lowercased, without a
// trailing dot) of the first valid signature that authenticates a report
// from the reporting organisation whose domains are orgDomains (see
// OrganizationDomains): the key allows the tlsrpt service and d= belongs
// to the organisation (SameOrganization with one of orgDomains: the
// domain itself, a parent or a child, so that Mail.ru's d=corp.mail.ru
// authenticates TLS-Report-Submitter mail.ru). A signature by an
// unrelated domain authenticates nothing, however valid. Decision on
// RPT-MAIL-6's MAY: a key limited to other services (s=email) does not
// pass. RFC 8460 §3: reports without such a signature MUST be ignored
// (RPT-MAIL-7, RPT-RECV-1).
func (r DKIMResult) Authenticates(orgDomains ...string) (string, bool) {
	for _, s := range r.Signatures {
		d := normName(s.Domain)
		if s.Err != nil || d == "" || !s.ServiceTLSRPT() {
			continue
		}
		for _, o := range orgDomains {
			if SameOrganization(d, o) {
				return d, true
			}
		}
	}
	return "", false
}

// SameOrganization reports whether domains a and b belong to one
// organisation as far as DNS names alone tell, without a public-suffix
// list: they are equal, or one is a parent of the other (a dot-suffix:
// mail.ru and corp.mail.ru) and that parent has at least two labels, so
// that a bare TLD ("ru") joins nothing. Case and a trailing dot are
// ignored; an empty name matches nothing. Without a public-suffix list a
// two-label public suffix (co.uk) still counts as a parent; that gives
// nobody more than signing with their own domain already does.
func SameOrganization(a, b string) bool {
	a, b = normName(a), normName(b)
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	if len(a) < len(b) {
		a, b = b, a
	}
	// b is the candidate parent.
	return strings.HasSuffix(a, "."+b) && strings.Contains(b, ".")
}

// OrganizationDomains returns the domains that identify the reporting
// organisation of a report mail: the submitter (TLS-Report-Submitter,
// RPT-MAIL-3; the contact-info domain when the header is absent), then
// the contact-info and From domains when they agree with it
// (SameOrganization). Domains that disagree with the submitter are left
// out: a From or contact-info of another organisation authenticates
// nothing. Empty when there is no submitter.
func OrganizationDomains(submitter, contactDomain, fromDomain string) []string {
	sub := normName(submitter)
	if sub == "" {
		sub = normName(contactDomain)
	}
	if sub == "" {
		return nil
	}
	out := []string{sub}
	for _, d := range []string{contactDomain, fromDomain} {
		if d = normName(d); d != "" && d != sub && SameOrganization(d, sub) && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func normName(s string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")) }

// Temporary reports whether no signature passed only because a key lookup
// failed temporarily; the caller should retry later.
func (r DKIMResult) Temporary() bool {
	for _, s := range r.Signatures {
		if s.Temporary {
			return true
		}
	}
	return false
}

// VerifyDKIM checks the DKIM signatures of a raw message (RFC 6376, via
// go-msgauth) with key records looked up through r. Signatures with the
// insecure l= tag fail (RPT-MAIL-5). The key's s= tag is recorded per
// signature and judged by DKIMResult.Passes rather than by go-msgauth,
// which would reject keys without "email" such as F-6's s=tlsrpt.
//
// The error is non-nil only when the message cannot be read; a message
// without signatures gives an empty result (which Passes nothing).
func VerifyDKIM(ctx context.Context, raw []byte, r dnsresolve.Resolver) (DKIMResult, error) {
	var res DKIMResult
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return res, fmt.Errorf("%w: message header: %w", ErrSyntax, err)
	}
	var sels [][2]string // d, s per signature, header order
	fields := th.FieldsByKey("Dkim-Signature")
	for fields.Next() {
		tags := parseTags(fields.Value())
		sels = append(sels, [2]string{tags["d"], tags["s"]})
	}
	if len(sels) == 0 {
		return res, nil
	}
	kl := &keyLookup{ctx: ctx, r: r, services: map[string][]string{}, temp: map[string]bool{}}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT:        kl.lookup,
		MaxVerifications: maxDKIMSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return res, fmt.Errorf("%w: dkim: %w", ErrSyntax, err)
	}
	for i, v := range verifs {
		sig := DKIMSignature{Domain: v.Domain, Err: v.Err, HeaderKeys: v.HeaderKeys}
		if i < len(sels) {
			sig.Selector = sels[i][1]
			name := keyName(sels[i][1], sels[i][0])
			kl.mu.Lock()
			sig.Services = kl.services[name]
			sig.Temporary = v.Err != nil && dkim.IsTempFail(v.Err) && kl.temp[name]
			kl.mu.Unlock()
		}
		res.Signatures = append(res.Signatures, sig)
	}
	return res, nil
}

func keyName(selector, domain string) string {
	return strings.ToLower(strings.TrimSpace(selector) + "._domainkey." + strings.TrimSuffix(strings.TrimSpace(domain), "."))
}

// keyLookup adapts a dnsresolve.Resolver to go-msgauth's LookupTXT, records
// each key's s= tag and removes it before go-msgauth sees the record.
type keyLookup struct {
	ctx      context.Context
	r        dnsresolve.Resolver
	mu       sync.Mutex
	services map[string][]string
	temp     map[string]bool
}

// tempError makes go-msgauth classify a lookup failure as a temporary
// failure (it checks net.Error's Temporary).
type tempError struct{ err error }

func (e tempError) Error() string   { return e.err.Error() }
func (e tempError) Unwrap() error   { return e.err }
func (e tempError) Timeout() bool   { return false }
func (e tempError) Temporary() bool { return true }

func (k *keyLookup) lookup(name string) ([]string, error) {
	key := strings.ToLower(strings.TrimSuffix(name, "."))
	txts, _, err := k.r.LookupTXT(k.ctx, name)
	if err != nil {
		if !errors.Is(err, dnsresolve.ErrNotFound) {
			k.mu.Lock()
			k.temp[key] = true
			k.mu.Unlock()
			return nil, tempError{err}
		}
		return nil, err
	}
	if len(txts) != 1 {
		return txts, nil // go-msgauth rejects 0 or several records
	}
	tags := parseTags(txts[0])
	if s, ok := tags["s"]; ok {
		var svcs []string
		for _, v := range strings.Split(s, ":") {
			if v = strings.TrimSpace(v); v != "" {
				svcs = append(svcs, v)
			}
		}
		if svcs == nil {
			svcs = []string{}
		}
		k.mu.Lock()
		k.services[key] = svcs
		k.mu.Unlock()
	}
	return []string{removeTag(txts[0], "s")}, nil
}

// parseTags parses a DKIM tag list (RFC 6376 §3.2) loosely: for reading
// d=, s= only; go-msgauth does the strict parse.
func parseTags(s string) map[string]string {
	tags := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; !dup {
			tags[k] = strings.Join(strings.Fields(v), "")
		}
	}
	return tags
}

func removeTag(record, tag string) string {
	var keep []string
	for _, kv := range strings.Split(record, ";") {
		k, _, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(k) == tag {
			continue
		}
		keep = append(keep, kv)
	}
	return strings.Join(keep, ";")
}
