package checker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/plural"
	"github.com/mailsts/mailsts/internal/trustroots"
	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// stsState is what the MTA-STS part of a check learned.
type stsState struct {
	summary STSSummary
	record  findings
	pol     findings
	// policy is the parsed policy (lenient parse), for matching and
	// diagnostics, even when a sender would not use it.
	policy *mtasts.Policy
	// effective reports whether a sender would apply policy: the TXT
	// record is usable and the fetch succeeded.
	effective bool
	// txts are the TXT records at _mta-sts, body the policy body fetched
	// (for the draft forms).
	txts []string
	body []byte
}

// checkSTS checks the _mta-sts TXT record and the policy host.
func (c *Checker) checkSTS(ctx context.Context, d string) (st stsState) {
	st.summary.PolicyURL = mtasts.PolicyURL(d)
	name := "_mta-sts." + d
	txts, ans, err := c.dns.LookupTXT(ctx, name)
	switch {
	case errors.Is(err, dnsresolve.ErrNotFound):
		st.summary.Result = result.NoPolicy
		st.record.add("sts.record.missing", SeverityWarn, "", "no TXT record at "+name+": the domain has no MTA-STS policy, so senders use opportunistic TLS")
		return st
	case err != nil:
		st.summary.Result = result.DNSError
		st.record.add("sts.record.dns-error", SeverityFail, "", "the TXT lookup of "+name+" failed: "+err.Error()+"; senders cannot discover the policy")
		return st
	}
	st.txts = txts
	if cn := strings.TrimSuffix(ans.CanonicalName, "."); cn != "" && cn != name {
		st.summary.RecordName = cn
		st.record.add("sts.record.cname", SeverityInfo, "", name+" is an alias of "+cn+"; the policy is still fetched from mta-sts."+d+" (RFC 8461 §3.1)")
	}
	var candidates, others []string
	for _, t := range txts {
		if _, err := mtasts.SelectRecord([]string{t}); errors.Is(err, mtasts.ErrNoRecord) {
			others = append(others, t)
		} else {
			candidates = append(candidates, t)
		}
	}
	if len(others) > 0 && len(candidates) > 0 {
		st.record.add("sts.record.other", SeverityInfo, "", fmt.Sprintf("%s at %s %s ignored, such as %q", plural.Count(len(others), "other TXT record", "other TXT records"), name, plural.Noun(len(others), "is", "are"), clip(others[0])))
	}
	rec, err := mtasts.SelectRecord(txts)
	recordOK := false
	switch {
	case errors.Is(err, mtasts.ErrNoRecord):
		st.summary.Result = result.NoPolicy
		st.record.add("sts.record.missing", SeverityWarn, "", fmt.Sprintf("none of the %d TXT records at %s begins with v=STSv1: the domain has no MTA-STS policy", len(txts), name))
		return st
	case errors.Is(err, mtasts.ErrMultipleRecords):
		st.summary.Result = result.NoPolicy
		st.record.add("sts.record.multiple", SeverityFail, "", fmt.Sprintf("%d TXT records at %s begin with v=STSv1 (%s); senders then ignore MTA-STS (RFC 8461 §3.1)", len(candidates), name, quoteList(candidates)))
	case err != nil:
		st.summary.Result = result.NoPolicy
		st.summary.Record = candidates[0]
		msg := fmt.Sprintf("the record %q is invalid: %v; senders ignore it (RFC 8461 §3.1)", clip(candidates[0]), err)
		if id := lenientID(candidates[0]); id != "" {
			msg += "; lenient parsers would read id " + id + ", RFC-conforming ones do not"
		}
		st.record.add("sts.record.syntax", SeverityFail, "", msg)
	default:
		recordOK = true
		st.summary.Record, st.summary.ID = candidates[0], rec.ID
		st.record.add("sts.record.ok", SeverityOK, "", "v=STSv1 record with id "+rec.ID)
	}

	// The policy host is checked even when the record is unusable: the
	// owner needs both fixed, and the fetch shows what is there.
	pol, usable := c.checkPolicy(ctx, d, &st)
	st.policy = pol
	st.effective = recordOK && usable && pol != nil
	if recordOK && !st.effective && st.summary.Result == "" {
		// The fetch worked but the body is invalid (for a strict
		// check: not valid under the strict grammar). RFC 8460 §4.3.
		st.summary.Result = mtasts.ResultPolicyInvalid
	}
	if st.policy != nil {
		st.summary.Mode = string(pol.Mode)
		st.summary.MX = append([]string{}, pol.MX...)
		st.summary.MaxAge = pol.MaxAge
	}
	return st
}

// checkPolicy fetches and judges the policy. It returns the leniently
// parsed policy (nil when there is none) and whether a sender would use it:
// the fetch succeeded the way a sender requires (status, type, size,
// certificate) and the body is valid (with Strict, under the strict
// grammar: the strictest sender rejects a policy that only parses
// leniently, OPEN-3).
func (c *Checker) checkPolicy(ctx context.Context, d string, st *stsState) (*mtasts.Policy, bool) {
	host := "mta-sts." + d
	res, err := c.sts.FetchRaw(ctx, d)
	fs := &st.pol
	if res != nil {
		st.body = res.Body
		st.summary.Fetch = &FetchSummary{Status: res.StatusCode, ContentType: res.ContentType, Bytes: len(res.Body)}
		if res.TLS != nil {
			st.summary.Fetch.TLSVersion = tls.VersionName(res.TLS.Version)
			st.summary.Fetch.Cert = verifyCert(res.TLS.PeerCertificates, host, c.sts.RootCAs, c.now())
		}
	}
	if err != nil {
		if st.summary.Fetch == nil {
			st.summary.Fetch = &FetchSummary{}
		}
		st.summary.Fetch.Error = err.Error()
		if st.summary.Result == "" {
			st.summary.Result = mtasts.ResultType(err)
		}
	}
	var verr *tls.CertificateVerificationError
	switch {
	case err == nil:
	case errors.Is(err, mtasts.ErrPolicyCertificate):
		var ci *CertInfo
		if errors.As(err, &verr) {
			ci = verifyCert(verr.UnverifiedCertificates, host, c.sts.RootCAs, c.now())
			st.summary.Fetch.Cert = ci
		}
		c.certFinding(fs, "sts.policy", "", host, ci, SeverityFail, err)
		return nil, false
	case errors.Is(err, mtasts.ErrPolicyFetch) && res == nil:
		if errors.Is(err, dnsresolve.ErrNotFound) || errors.Is(err, dnsresolve.ErrLookupFailed) {
			fs.add("sts.policy.host-dns", SeverityFail, "", "cannot resolve "+host+": "+err.Error())
		} else {
			fs.add("sts.policy.connect", SeverityFail, "", err.Error())
		}
		return nil, false
	case errors.Is(err, mtasts.ErrPolicyFetch) && res.StatusCode >= 300 && res.StatusCode < 400:
		fs.add("sts.policy.redirect", SeverityFail, "", err.Error())
		return nil, false
	case errors.Is(err, mtasts.ErrPolicyFetch) && res.StatusCode != 200:
		fs.add("sts.policy.status", SeverityFail, "", err.Error())
		return nil, false
	case errors.Is(err, mtasts.ErrPolicyFetch) && errors.Is(err, context.DeadlineExceeded):
		fs.add("sts.policy.connect", SeverityFail, "", err.Error())
		return nil, false
	case errors.Is(err, mtasts.ErrPolicyFetch):
		fs.add("sts.policy.size", SeverityFail, "", err.Error())
		return nil, false
	case errors.Is(err, mtasts.ErrPolicySyntax):
		// The media type is wrong; the body is still judged below so
		// that all problems show at once.
		fs.add("sts.policy.content-type", SeverityFail, "", err.Error())
	default:
		fs.add("sts.policy.connect", SeverityFail, "", err.Error())
		return nil, false
	}
	if res.TLS != nil {
		c.certFinding(fs, "sts.policy", "", host, st.summary.Fetch.Cert, SeverityFail, nil)
		if len(res.TLS.VerifiedChains) > 0 {
			if root, ok := trustroots.Describe(res.TLS.VerifiedChains[0]); ok {
				st.summary.Fetch.Root = &root
				where := "in the curated root set (fetch.roots: curated trusts it)"
				if !root.Curated {
					where = "not in the curated root set: senders using it (policyd fetch.roots: curated) refuse the policy unless fetch.zone_roots adds this root"
				}
				fs.add("sts.policy.root", SeverityInfo, "", fmt.Sprintf("the certificate chain of %s depends on the root %q (SHA-256 %s…), %s", host, root.Subject, root.SHA256[:16], where))
			}
		}
	}
	pol, strictOK := c.judgeBody(res.Body, fs)
	return pol, err == nil && pol != nil && (strictOK || !c.Strict)
}

// judgeBody parses a policy body leniently and strictly and adds the
// findings about it. It returns the lenient parse (nil when even that
// fails) and whether the body is also valid under the strict grammar.
func (c *Checker) judgeBody(body []byte, fs *findings) (*mtasts.Policy, bool) {
	// RFC 8461 §3.2 (STS-POL-4, STS-ERRATA-1): LF and CRLF are both
	// allowed; point out CRLF and mixtures, which some tools mishandle.
	crlf := bytes.Count(body, []byte("\r\n"))
	lf := bytes.Count(body, []byte("\n")) - crlf
	switch {
	case crlf > 0 && lf > 0:
		fs.add("sts.policy.line-endings", SeverityInfo, "", fmt.Sprintf("the policy mixes CRLF (%d) and LF (%d) line endings; allowed, but use one", crlf, lf))
	case crlf > 0:
		fs.add("sts.policy.line-endings", SeverityInfo, "", "the policy uses CRLF line endings (allowed, RFC 8461 §3.2)")
	}
	pol, notices, err := mtasts.ParsePolicyDetail(body, false)
	if err != nil {
		var se *mtasts.SyntaxError
		msg := err.Error()
		if errors.As(err, &se) && se.Line > 0 {
			msg = fmt.Sprintf("line %d: %s", se.Line, se.Msg)
		}
		fs.add("sts.policy.syntax", SeverityFail, "", "the policy is invalid: "+msg+"; senders ignore it")
		return nil, false
	}
	_, _, serr := mtasts.ParsePolicyDetail(body, true)
	if serr != nil || len(notices) > 0 {
		sev := SeverityWarn
		if c.Strict {
			sev = SeverityFail
		}
		var parts []string
		if serr != nil {
			parts = append(parts, "strict grammar: "+serr.Error())
		}
		for i, n := range notices {
			if i == 3 {
				parts = append(parts, fmt.Sprintf("%d more", len(notices)-3))
				break
			}
			parts = append(parts, n.String())
		}
		msg := "the policy parses only leniently: " + strings.Join(parts, "; ")
		if c.Strict && serr != nil {
			msg += "; a strict sender ignores the policy"
		}
		fs.add("sts.policy.lenient", sev, "", msg)
	}
	fs.add("sts.policy.ok", SeverityOK, "", fmt.Sprintf("policy mode %s with %s, max_age %d", pol.Mode, plural.Count(len(pol.MX), "mx pattern", "mx patterns"), pol.MaxAge))
	switch pol.Mode {
	case mtasts.ModeEnforce:
		fs.add("sts.policy.mode", SeverityOK, "", "mode enforce: senders refuse MX hosts that fail the checks")
	case mtasts.ModeTesting:
		fs.add("sts.policy.mode", SeverityInfo, "", "mode testing: senders deliver anyway and only report failures; switch to enforce once every MX passes")
	case mtasts.ModeNone:
		fs.add("sts.policy.mode", SeverityWarn, "", "mode none: the policy is withdrawn and protects nothing", "publish mode testing, then enforce, or remove the record once earlier policies expired (STS-PUB-6)")
	}
	if raw := rawMaxAge(body); raw > mtasts.MaxMaxAge {
		fs.add("sts.policy.max-age-long", SeverityWarn, "", fmt.Sprintf("max_age %d is above the maximum %d; senders clamp or reject it", raw, mtasts.MaxMaxAge))
	}
	switch {
	case pol.MaxAge < 86400 && pol.Mode != mtasts.ModeNone:
		fs.add("sts.policy.max-age-short", SeverityWarn, "", fmt.Sprintf("max_age %d is under a day: a downgrade attacker only has to wait that long", pol.MaxAge))
	case pol.MaxAge < 7*86400 && pol.Mode != mtasts.ModeNone:
		fs.add("sts.policy.max-age-short", SeverityInfo, "", fmt.Sprintf("max_age %d is under a week; RFC 8461 §3.2 suggests weeks or more", pol.MaxAge))
	}
	return pol, serr == nil
}

// certFinding adds the finding for a certificate presented by host, under
// prefix ("sts.policy" or "mx"). sev is the severity of a problem; cause is
// the handshake error when there is no certificate information.
func (c *Checker) certFinding(fs *findings, prefix, findingHost, host string, ci *CertInfo, sev Severity, cause error) {
	if ci == nil {
		msg := "the certificate of " + host + " failed verification"
		if cause != nil {
			msg += ": " + cause.Error()
		}
		fs.add(prefix+".cert-untrusted", sev, findingHost, msg)
		return
	}
	switch ci.Problem {
	case certExpired:
		fs.add(prefix+".cert-expired", sev, findingHost, fmt.Sprintf("the certificate of %s expired on %s", host, ci.NotAfter.Format(time.DateOnly)))
	case certNotYetValid:
		fs.add(prefix+".cert-expired", sev, findingHost, "the certificate of "+host+" is not valid yet")
	case certNameMismatch:
		names := "no DNS names"
		if len(ci.DNSNames) > 0 {
			names = "only " + strings.Join(ci.DNSNames, ", ")
		}
		fs.add(prefix+".cert-name", sev, findingHost, fmt.Sprintf("the certificate of %s is not valid for that name (it lists %s; the CN %q is not used)", host, names, ci.Subject))
	case certUntrusted:
		fs.add(prefix+".cert-untrusted", sev, findingHost, fmt.Sprintf("the certificate of %s (issuer %s) does not chain to a trusted root", host, ci.Issuer))
	default:
		if left := time.Duration(ci.DaysLeft) * 24 * time.Hour; left < ExpiryWarning {
			fs.add(prefix+".cert-expiring", SeverityWarn, findingHost, fmt.Sprintf("the certificate of %s expires in %s, on %s", host, plural.Count(ci.DaysLeft, "day", "days"), ci.NotAfter.Format(time.DateOnly)))
		} else {
			fs.add(prefix+".cert-ok", SeverityOK, findingHost, fmt.Sprintf("the certificate of %s is valid for %s", host, plural.Count(ci.DaysLeft, "more day", "more days")))
		}
	}
}

// rawMaxAge returns the first max_age value of body as written, or -1.
// The parser clamps values above the maximum (OPEN-2); this recovers them
// for the advice.
func rawMaxAge(body []byte) int64 {
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "max_age:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// lenientID returns the id a tolerant parser (splitting on ";" and
// ignoring empty fields and spacing) would read from an invalid record,
// or "".
func lenientID(txt string) string {
	for f := range strings.SplitSeq(txt, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), "id="); ok && v != "" {
			if _, err := mtasts.ParseRecord("v=STSv1; id=" + v); err == nil {
				return v
			}
		}
	}
	return ""
}

func quoteList(ss []string) string {
	q := make([]string, 0, min(len(ss), 3))
	for i, s := range ss {
		if i == 3 {
			q = append(q, "…")
			break
		}
		q = append(q, strconv.Quote(clip(s)))
	}
	return strings.Join(q, ", ")
}
