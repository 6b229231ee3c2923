package checker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/dane"
	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/plural"
	"github.com/mailsts/mailsts/mtasts"
)

// mxState is what the MX part of a check learned, before it is judged
// against the policy.
type mxState struct {
	domain   string
	nxdomain bool     // the domain does not exist: nothing else matters
	lookup   findings // findings about the MX RRset itself
	hosts    []hostData
	secure   bool // the MX RRset was DNSSEC-authenticated
	// decision is the DANE decision (RFC 7672 §2.2) from the answers
	// below, made by the dane library as policyd makes it.
	decision dane.Result
	results  []MXResult
	hostF    findings
	dane     findings
}

// hostData is the raw outcome for one MX host.
type hostData struct {
	mx      dnsresolve.MX
	addrs   []netip.Addr
	addrErr error
	addrAD  bool
	// addrDNSErr is the address lookup's own error (addrErr also says
	// "no address" when it succeeded empty).
	addrDNSErr error
	probe      probeOutcome
	tlsa       []dnsresolve.TLSA
	tlsaAD     bool
	tlsaErr    error
}

// checkMX looks up the MX hosts and probes each of them (concurrently):
// address, TLSA records and an SMTP STARTTLS probe.
func (c *Checker) checkMX(ctx context.Context, d string) (st mxState) {
	st.domain = d
	mxs, ans, err := c.dns.LookupMX(ctx, d)
	var de *dnsresolve.Error
	switch {
	case errors.Is(err, dnsresolve.ErrNotFound) && errors.As(err, &de) && de.Rcode == dns.RcodeNameError:
		// NXDOMAIN, not NODATA: there is no domain to publish an MX in.
		st.nxdomain = true
		st.lookup.add("sts.mx.nxdomain", SeverityFail, "", d+" does not exist (NXDOMAIN): mail to it cannot be delivered, and it can have no MTA-STS policy")
		return st
	case errors.Is(err, dnsresolve.ErrNotFound):
		// RFC 5321 §5.1: with no MX RRset the domain itself is the
		// implicit MX (STS-MX-6).
		st.lookup.add("sts.mx.implicit", SeverityWarn, "", d+" has no MX record: mail goes to the domain's own address, which is probed as the implicit MX")
		mxs = []dnsresolve.MX{{Pref: 0, Host: d}}
	case err != nil:
		st.lookup.add("sts.mx.lookup-error", SeverityFail, "", "the MX lookup of "+d+" failed: "+err.Error())
		return st
	}
	if len(mxs) == 1 && mxs[0].Host == "." {
		st.lookup.add("sts.mx.null", SeverityInfo, "", d+" publishes a null MX (RFC 7505): it accepts no mail")
		return st
	}
	st.secure = ans.Authenticated
	if len(mxs) > c.maxMX() {
		st.lookup.add("sts.mx.truncated", SeverityInfo, "", fmt.Sprintf("%d MX records; only the first %d are probed", len(mxs), c.maxMX()))
		mxs = mxs[:c.maxMX()]
	}
	st.hosts = make([]hostData, len(mxs))
	var wg sync.WaitGroup
	for i, m := range mxs {
		h := &st.hosts[i]
		h.mx = m
		wg.Go(func() { c.checkHost(ctx, h) })
	}
	wg.Wait()
	mxl := dane.MXLookup{Answer: ans, Err: err}
	if err == nil {
		mxl.Records = mxs
	}
	lookups := make([]dane.HostLookup, len(st.hosts))
	for i, h := range st.hosts {
		lookups[i] = dane.HostLookup{Name: h.mx.Host, AddrAD: h.addrAD, AddrErr: h.addrDNSErr,
			TLSA: h.tlsa, TLSAAD: h.tlsaAD, TLSAErr: h.tlsaErr}
	}
	st.decision = dane.Decide(d, mxl, lookups)
	return st
}

// checkHost resolves, probes and looks up TLSA records of one MX host.
func (c *Checker) checkHost(ctx context.Context, h *hostData) {
	var wg sync.WaitGroup
	wg.Go(func() {
		// RFC 7672 §2.2 (DANE-1): TLSA records at _25._tcp.<mx>.
		var ans dnsresolve.Answer
		h.tlsa, ans, h.tlsaErr = c.dns.LookupTLSA(ctx, 25, "tcp", h.mx.Host)
		h.tlsaAD = ans.Authenticated
	})
	var ans dnsresolve.Answer
	h.addrs, ans, h.addrErr = c.dns.LookupIP(ctx, h.mx.Host)
	h.addrAD, h.addrDNSErr = ans.Authenticated, h.addrErr
	if h.addrErr == nil && len(h.addrs) > 0 {
		h.probe = c.probe(ctx, h.mx.Host, pickAddr(h.addrs), c.smtpPort(), false)
	} else {
		h.probe.res.Stage = stageDNS
		if h.addrErr == nil {
			h.addrErr = errors.New("no address")
		}
		h.probe.res.Error = "no address: " + h.addrErr.Error()
	}
	wg.Wait()
}

// pickAddr prefers IPv4, which every test network and most probes can
// reach.
func pickAddr(addrs []netip.Addr) netip.Addr {
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	return addrs[0]
}

// problemSeverity is the severity of an MX problem under the effective
// policy: a failure with mode enforce or in strict mode, else a warning.
func (c *Checker) problemSeverity(pol *mtasts.Policy, effective bool) Severity {
	if c.Strict || (effective && pol != nil && pol.Mode == mtasts.ModeEnforce) {
		return SeverityFail
	}
	return SeverityWarn
}

// judgeMX turns the raw MX data into results and findings, now that the
// policy is known. It returns the sts-mx findings.
func (c *Checker) judgeMX(sts stsState, st *mxState) findings {
	match := append(findings{}, st.lookup...)
	pol := sts.policy
	sev := c.problemSeverity(pol, sts.effective)
	applies := pol != nil && pol.Mode != mtasts.ModeNone
	var verdicts []mtasts.MXVerdict
	if applies && len(st.hosts) > 0 {
		names := make([]string, len(st.hosts))
		for i, h := range st.hosts {
			names[i] = h.mx.Host
		}
		verdicts = pol.CheckMX(names)
		for _, v := range verdicts {
			// RFC 8461 §4.1 (STS-MX-1..3): the MX host name must match a
			// pattern; "*." covers exactly one label.
			if v.Allowed {
				match.add("sts.mx.match", SeverityOK, v.Host, v.Host+": "+v.Reason)
			} else {
				match.add("sts.mx.nomatch", sev, v.Host, v.Host+": "+v.Reason+"; senders applying the policy refuse this host")
			}
		}
		for _, p := range mtasts.UnusedPatterns(pol, names) {
			match.add("sts.mx.unused-pattern", SeverityInfo, "", "mx pattern "+p+" matches none of the MX hosts")
		}
	}
	for i, h := range st.hosts {
		r := MXResult{Host: h.mx.Host, Pref: h.mx.Pref, Addrs: []string{}, Probe: h.probe.res, STSDecision: "n/a"}
		for _, a := range h.addrs {
			r.Addrs = append(r.Addrs, a.String())
		}
		if verdicts != nil && verdicts[i].Allowed {
			r.Pattern = verdicts[i].Pattern
		}
		good := c.hostFindings(&st.hostF, h, sev)
		r.DANE = c.daneFindings(&st.dane, st, h, st.decision.Hosts[i])
		if applies && sts.effective {
			switch {
			case good && r.Pattern != "":
				r.STSDecision = "deliver"
				st.hostF.add("mx.sts-deliver", SeverityOK, h.mx.Host, "a sender applying the "+string(pol.Mode)+" policy delivers to "+h.mx.Host)
			case pol.Mode == mtasts.ModeTesting:
				r.STSDecision = "report"
				st.hostF.add("mx.sts-refuse", sev, h.mx.Host, "a sender applying the testing policy delivers to "+h.mx.Host+" anyway and reports the failure; with mode enforce it would refuse it")
			default:
				r.STSDecision = "refuse"
				st.hostF.add("mx.sts-refuse", SeverityFail, h.mx.Host, "a sender applying the enforce policy refuses "+h.mx.Host)
			}
		}
		st.results = append(st.results, r)
	}
	return match
}

// hostFindings adds the findings of one host's probe and reports whether
// it passed every TLS check an MTA-STS sender makes.
func (c *Checker) hostFindings(fs *findings, h hostData, sev Severity) bool {
	host := h.mx.Host
	p := h.probe.res
	switch p.Stage {
	case stageDNS:
		fs.add("mx.address", sev, host, "cannot resolve "+host+": "+h.addrErr.Error())
		return false
	case stageConnect:
		fs.add("mx.connect", sev, host, host+" is not reachable on the SMTP port: "+p.Error)
		return false
	case stageBanner:
		fs.add("mx.banner", sev, host, host+" sent no usable greeting: "+p.Error)
		return false
	case stageEHLO:
		fs.add("mx.ehlo", sev, host, host+": "+p.Error)
		return false
	case stageSTARTTLS:
		// RFC 8461 §4 item 2 (STS-CERT-1): the MX must offer STARTTLS.
		fs.add("mx.starttls", sev, host, host+": "+p.Error)
		return false
	case stageHandshake:
		fs.add("mx.tls", sev, host, host+": "+p.Error)
		return false
	}
	fs.add("mx.tls-ok", SeverityOK, host, fmt.Sprintf("%s: STARTTLS with %s, %s", host, p.TLSVersion, p.CipherSuite))
	c.certFinding(fs, "mx", host, host, p.Cert, sev, nil)
	return p.Cert != nil && p.Cert.Problem == ""
}

// daneFindings reports the DANE decision for one host (dane.Decide: the
// one place mailsts decides whether DANE applies, RFC 7672 §2.2), checks
// the presented chain where DANE applies, and returns the MXResult.DANE
// value.
func (c *Checker) daneFindings(fs *findings, st *mxState, h hostData, dh dane.Host) string {
	host := h.mx.Host
	name := "_25._tcp." + host
	tlsaFailed := h.tlsaErr != nil && !errors.Is(h.tlsaErr, dnsresolve.ErrNotFound)
	switch dh.Status {
	case dane.HostFailed:
		// DANE-5: a failed lookup under a secure MX RRset.
		fs.add("dane.lookup-error", SeverityWarn, host, "the DNSSEC lookup for "+host+" failed ("+dh.Err.Error()+"): whether DANE applies is unknown; DANE senders defer mail to this host")
		return "lookup-error"
	case dane.HostNoAddress:
		fs.add("dane.none", SeverityInfo, host, host+" has no address records: DANE does not apply")
		return "none"
	case dane.HostNoTLSA:
		how := "not DNSSEC-proven"
		if h.tlsaAD {
			how = "DNSSEC-proven"
		}
		fs.add("dane.none", SeverityInfo, host, "no TLSA records at "+name+" ("+how+"): DANE does not apply")
		return "none"
	case dane.HostInsecure:
		// RFC 7672 §2.2 (DANE-1): TLSA records count only when the MX
		// RRset, the host's addresses and the TLSA RRset are all
		// DNSSEC-secure.
		var insecure []string
		if !st.secure {
			insecure = append(insecure, "MX of "+st.domain)
		}
		if !h.addrAD {
			insecure = append(insecure, "addresses of "+host)
		}
		if !h.tlsaAD && !tlsaFailed {
			insecure = append(insecure, name)
		}
		switch {
		case tlsaFailed:
			fs.add("dane.lookup-error", SeverityWarn, host, "the TLSA lookup of "+name+" failed: "+h.tlsaErr.Error()+"; senders ignore it, as the answers for "+strings.Join(insecure, ", ")+" are not DNSSEC-validated")
			return "lookup-error"
		case errors.Is(h.tlsaErr, dnsresolve.ErrNotFound) || len(h.tlsa) == 0:
			fs.add("dane.none", SeverityInfo, host, "no TLSA records at "+name+" (not DNSSEC-proven): DANE does not apply")
			return "none"
		}
		fs.add("dane.insecure", SeverityWarn, host, fmt.Sprintf("%s at %s, but the answers for %s are not DNSSEC-validated: senders ignore them", plural.Count(len(h.tlsa), "TLSA record", "TLSA records"), name, strings.Join(insecure, ", ")))
		return "insecure"
	case dane.HostUnusable:
		// DANE-3, DANE-6: usages 0 and 1 are unusable for SMTP.
		fs.add("dane.unusable", SeverityWarn, host, "none of the TLSA records at "+name+" is usable for SMTP (usage 2 or 3 with known selector and matching type); senders require TLS but cannot authenticate")
		return "unusable"
	}
	if h.probe.chain == nil {
		fs.add("dane.nomatch", SeverityFail, host, name+" has usable TLSA records but no TLS session was established ("+h.probe.res.Error+"); DANE senders do not deliver (DANE-2)")
		return "invalid"
	}
	// DANE-8: reference names for DANE-TA are the MX host name and the
	// next-hop domain, as in Postfix.
	rec, err := dane.Verify(dh.TLSA, h.probe.chain, []string{host, st.domain}, c.now())
	if err != nil {
		fs.add("dane.nomatch", SeverityFail, host, "the certificate of "+host+" matches none of the TLSA records at "+name+": "+err.Error())
		return "invalid"
	}
	fs.add("dane.match", SeverityOK, host, fmt.Sprintf("the certificate of %s matches TLSA %d %d %d at %s", host, rec.Usage, rec.Selector, rec.MatchingType, name))
	return "valid"
}
