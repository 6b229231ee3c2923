package checker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
)

// Forms of the early MTA-STS and TLSRPT drafts that are still published:
// no current sender reads them, so a domain relying on one has no policy or
// no reporting address in practice. Each finding says what the form is and
// the exact record or file to publish instead.
//
//   - _smtp_sts.<domain> TXT: the record name of the first MTA-STS drafts
//     (RFC 8461 §3.1 uses _mta-sts).
//   - v=STS1 or a mis-cased v=STSV1 in the record: draft or mistyped
//     version strings; RFC 8461 §3.1 requires exactly "v=STSv1".
//   - /.well-known/mta-sts.json: the drafts' JSON policy (RFC 8461 §3.2
//     serves text at /.well-known/mta-sts.txt).
//   - mode: report: the drafts' name of mode testing (RFC 8461 §5).
//   - _smtp-tlsrpt.<domain> TXT: the early TLSRPT drafts' record name
//     (RFC 8460 §3 uses _smtp._tls).

// DraftJSONPath is where the early MTA-STS drafts put a JSON policy.
const DraftJSONPath = "/.well-known/mta-sts.json"

// draftLookups are the DNS lookups of the draft forms, done concurrently
// with the rest of a check.
type draftLookups struct {
	stsTXT []string // _smtp_sts.<d>
	rptTXT []string // _smtp-tlsrpt.<d>
}

func (c *Checker) lookupDrafts(ctx context.Context, d string) draftLookups {
	var dl draftLookups
	// Lookup failures are not findings here: these names are optional and
	// the current forms' lookups already report a broken zone.
	dl.stsTXT, _, _ = c.dns.LookupTXT(ctx, "_smtp_sts."+d)
	dl.rptTXT, _, _ = c.dns.LookupTXT(ctx, "_smtp-tlsrpt."+d)
	return dl
}

// DraftVersion reports whether a TXT record is an MTA-STS record with a
// version string other than the exact "v=STSv1" (the drafts' "v=STS1", or
// a different case such as "v=STSV1"), and returns that version.
func DraftVersion(txt string) (string, bool) {
	v, _, _ := strings.Cut(strings.TrimLeft(txt, " \t"), ";")
	v = strings.TrimSpace(v)
	switch {
	case v == "v=STSv1":
		return "", false
	case strings.EqualFold(v, "v=STSv1"), strings.EqualFold(v, "v=STS1"):
		return v, true
	}
	return "", false
}

// draftID returns the id= of a draft record, or a fresh one.
func (c *Checker) draftID(txt string) string {
	for f := range strings.SplitSeq(txt, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k == "id" && v != "" && len(v) <= 32 {
			if _, err := mtasts.ParseRecord("v=STSv1; id=" + v); err == nil {
				return v
			}
		}
	}
	return c.now().UTC().Format("20060102T150405")
}

// judgeDrafts adds the draft-form findings to the groups of the check.
func (c *Checker) judgeDrafts(ctx context.Context, d string, dl draftLookups, sts *stsState, rpt *findings, rptSum TLSRPTSummary) {
	haveRecord := sts.summary.ID != "" // a valid _mta-sts record
	// _mta-sts records with a draft version.
	for _, t := range sts.txts {
		if v, ok := DraftVersion(t); ok {
			sts.record.add("sts.record.draft-version", SeverityWarn, "", fmt.Sprintf("the TXT record %q at _mta-sts.%s has the version %q of the early drafts or a mistyped one; no current sender reads it (the version is exactly \"v=STSv1\", case-sensitive, RFC 8461 §3.1)", clip(t), d, v),
				fmt.Sprintf("publish instead: _mta-sts.%s TXT \"v=STSv1; id=%s\"", d, c.draftID(t)))
		}
	}
	// _smtp_sts records.
	for _, t := range dl.stsTXT {
		sev, what := SeverityWarn, "the domain has no MTA-STS record that senders read"
		if haveRecord {
			sev, what = SeverityInfo, "a leftover next to the current _mta-sts record: remove it"
		}
		sts.record.add("sts.record.draft-name", sev, "", fmt.Sprintf("_smtp_sts.%s TXT %q is the record name of the first MTA-STS drafts; no current sender looks it up (RFC 8461 §3.1 uses _mta-sts.%s): %s", d, clip(t), d, what),
			fmt.Sprintf("publish instead: _mta-sts.%s TXT \"v=STSv1; id=%s\" and the policy at %s", d, c.draftID(t), mtasts.PolicyURL(d)))
	}
	// mode: report in the text policy.
	if bytes.Contains(sts.body, []byte("mode: report")) || bytes.Contains(sts.body, []byte("mode:report")) {
		sts.pol.add("sts.policy.draft-mode", SeverityWarn, "", "the policy says \"mode: report\", the early drafts' name of mode testing; no current sender accepts it, so the policy is invalid (RFC 8461 §5: enforce, testing or none)",
			"publish instead: \"mode: testing\" in "+mtasts.PolicyURL(d)+" (and change the id of the _mta-sts record)")
	}
	// The JSON policy, looked for when a record exists in some form but
	// no policy is in effect.
	if !sts.effective && (len(dl.stsTXT) > 0 || sts.summary.Record != "" || len(sts.txts) > 0) {
		if body, err := c.fetchDraftJSON(ctx, d); err == nil {
			if text, mode, ok := draftJSONToText(body); ok {
				msg := fmt.Sprintf("https://mta-sts.%s%s serves a JSON policy of the early drafts; no current sender fetches it (RFC 8461 §3.2: text at %s)", d, DraftJSONPath, mtasts.PolicyURL(d))
				if mode == "report" {
					msg += "; its mode \"report\" is now \"testing\""
				}
				sts.pol.add("sts.policy.draft-json", SeverityWarn, "", msg,
					fmt.Sprintf("publish instead at %s, as text/plain: %s", mtasts.PolicyURL(d), strings.ReplaceAll(strings.TrimSpace(text), "\n", " ⏎ ")))
			}
		}
	}
	// _smtp-tlsrpt records.
	for _, t := range dl.rptTXT {
		sev, what := SeverityWarn, "the domain receives no TLS reports"
		if rptSum.Record != "" {
			sev, what = SeverityInfo, "a leftover next to the current _smtp._tls record: remove it"
		}
		rua := "mailto:tlsrpt@" + d
		if _, v, ok := strings.Cut(t, "rua="); ok {
			if v, _, _ = strings.Cut(v, ";"); strings.TrimSpace(v) != "" {
				rua = strings.TrimSpace(v)
			}
		}
		rpt.add("tlsrpt.draft-name", sev, "", fmt.Sprintf("_smtp-tlsrpt.%s TXT %q is the record name of the early TLSRPT drafts; no current sender looks it up (RFC 8460 §3 uses _smtp._tls.%s): %s", d, clip(t), d, what),
			fmt.Sprintf("publish instead: _smtp._tls.%s TXT \"v=TLSRPTv1; rua=%s\"", d, rua))
	}
}

// maxDraftJSON caps the JSON policy read: it is only shown, never used.
const maxDraftJSON = 64 << 10

// fetchDraftJSON GETs https://mta-sts.<d>/.well-known/mta-sts.json through
// the checker's DNS, roots and port, bounded like a policy fetch: no
// redirects, 64 KiB, the policy fetch timeout.
func (c *Checker) fetchDraftJSON(ctx context.Context, d string) ([]byte, error) {
	host := "mta-sts." + d
	port := c.sts.HTTPSPort
	if port == 0 {
		port = 443
	}
	timeout := c.sts.Timeout
	if timeout == 0 {
		timeout = mtasts.DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: c.sts.RootCAs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		Proxy:             nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addrs, _, err := c.dns.LookupIP(ctx, host)
			if err != nil {
				return nil, err
			}
			if len(addrs) == 0 {
				return nil, dnsresolve.ErrNotFound
			}
			var nd net.Dialer
			return nd.DialContext(ctx, network, net.JoinHostPort(addrs[0].Unmap().String(), strconv.Itoa(port)))
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+DraftJSONPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDraftJSON+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxDraftJSON {
		return nil, errors.New("too large")
	}
	return body, nil
}

// draftJSONToText converts a draft JSON policy ({"version": "STSv1",
// "mode": …, "mx": [...], "max_age": …}) to the RFC 8461 text form, mode
// "report" becoming "testing". ok is false for a body that is not such a
// policy.
func draftJSONToText(body []byte) (text, mode string, ok bool) {
	var p struct {
		Version string          `json:"version"`
		Mode    string          `json:"mode"`
		MX      json.RawMessage `json:"mx"`
		MaxAge  json.Number     `json:"max_age"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil || !strings.HasPrefix(strings.ToUpper(p.Version), "STS") {
		return "", "", false
	}
	var mx []string
	if err := json.Unmarshal(p.MX, &mx); err != nil {
		var one string
		if json.Unmarshal(p.MX, &one) != nil {
			return "", "", false
		}
		mx = []string{one}
	}
	newMode := strings.ToLower(p.Mode)
	if newMode == "report" {
		newMode = "testing"
	}
	maxAge := p.MaxAge.String()
	if _, err := strconv.ParseInt(maxAge, 10, 64); err != nil {
		maxAge = "604800"
	}
	var b strings.Builder
	b.WriteString("version: STSv1\nmode: " + newMode + "\n")
	for _, m := range mx {
		if m = strings.TrimSpace(m); m != "" && !strings.ContainsAny(m, "\r\n") {
			b.WriteString("mx: " + m + "\n")
		}
	}
	b.WriteString("max_age: " + maxAge + "\n")
	if _, err := mtasts.ParsePolicy([]byte(b.String())); err != nil {
		return "", "", false
	}
	return b.String(), strings.ToLower(p.Mode), true
}

// DraftNotes looks for the draft forms of domain (for `mailsts resolve`,
// after it found no usable policy) and returns one line per form found:
// what it is and what to publish instead. sts supplies the DNS, roots and
// port; nil uses the defaults. It costs the TXT lookups of _mta-sts,
// _smtp_sts and _smtp-tlsrpt, one policy fetch and, when a record exists,
// one fetch of the JSON policy.
func DraftNotes(ctx context.Context, sts *mtasts.Client, domain string) []string {
	c := &Checker{STS: sts}
	if sts != nil {
		c.DNS, c.RootCAs = sts.DNS, sts.RootCAs
	}
	c.init()
	if c.dnsErr != nil {
		return nil
	}
	var st stsState
	st.txts, _, _ = c.dns.LookupTXT(ctx, "_mta-sts."+domain)
	if rec, err := mtasts.SelectRecord(st.txts); err == nil {
		st.summary.ID = rec.ID
	}
	if len(st.txts) > 0 {
		if res, _ := c.sts.FetchRaw(ctx, domain); res != nil {
			st.body = res.Body
			_, perr := mtasts.ParsePolicy(res.Body)
			st.effective = perr == nil && res.StatusCode == http.StatusOK && st.summary.ID != ""
		}
	}
	var rpt findings
	var rptSum TLSRPTSummary
	dl := c.lookupDrafts(ctx, domain)
	if txts, _, err := c.dns.LookupTXT(ctx, "_smtp._tls."+domain); err == nil && len(txts) > 0 {
		rptSum.Record = txts[0]
	}
	c.judgeDrafts(ctx, domain, dl, &st, &rpt, rptSum)
	var out []string
	for _, fs := range []findings{st.record, st.pol, rpt} {
		for _, f := range fs {
			out = append(out, f.Message+"; "+f.Fix)
		}
	}
	return out
}
