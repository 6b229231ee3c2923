package testnet

import (
	"encoding/hex"
	"strings"

	"github.com/miekg/dns"
)

// DNS answer parameters.
const (
	dnsTTL      = 300
	negativeTTL = 60
	maxCNAMEs   = 8
)

// node is everything the scenario says about one owner name.
type node struct {
	exists bool
	fault  Fault
	secure bool
	cname  string // canonical target, no trailing dot
	rrs    []dns.RR
}

// ServeDNS answers a query from the scenario. It implements dns.Handler, so
// a Net can also be mounted on another miekg/dns server.
func (n *Net) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		_ = w.WriteMsg(resp)
		return
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(resp)
		return
	}
	tcp := w.LocalAddr() != nil && w.LocalAddr().Network() == "tcp"
	n.nqueries.Add(1)
	n.stats.Lock()
	n.queries[dnsQuestion{req.Question[0].Qtype, strings.ToLower(strings.TrimSuffix(req.Question[0].Name, "."))}]++
	n.stats.Unlock()
	resp.SetReply(req)
	resp.Authoritative = true
	// The server stands in for a recursive resolver too, so that stub
	// clients (Go's resolver among them) accept its answers.
	resp.RecursionAvailable = true
	q := req.Question[0]
	if !n.answer(resp, q, tcp) {
		n.log.Debug("testnet: DNS timeout fault", "name", q.Name, "type", dns.TypeToString[q.Qtype])
		return // FaultTimeout: no reply at all
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		// RFC 6891 §7: answer EDNS with EDNS.
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		resp.SetEdns0(4096, opt.Do())
	}
	if !tcp {
		// Answers too big for the client's buffer get TC set and are cut
		// (the OPT record is kept and counted).
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// answer fills resp for q; false means "do not reply" (FaultTimeout).
func (n *Net) answer(resp *dns.Msg, q dns.Question, tcp bool) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	owner := q.Name
	if name == "" {
		// The root zone, which a validating resolver always validates:
		// its answers tell a client whether the resolver validates.
		resp.AuthenticatedData = n.validating()
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = []dns.RR{n.soa("")}
		} else {
			resp.Ns = []dns.RR{n.soa("")} // NODATA
		}
		return true
	}
	secure := true
	for hop := 0; ; hop++ {
		if hop > maxCNAMEs {
			resp.Rcode = dns.RcodeServerFailure
			resp.Answer = nil
			return true
		}
		nd := n.node(name, owner)
		secure = secure && nd.secure
		resp.AuthenticatedData = secure
		switch nd.fault {
		case FaultTimeout:
			return false
		case FaultServFail:
			resp.Rcode = dns.RcodeServerFailure
			resp.Answer = nil
			return true
		case FaultRefused:
			resp.Rcode = dns.RcodeRefused
			resp.Answer = nil
			return true
		case FaultTruncate:
			if !tcp {
				resp.Truncated = true
				resp.Answer = nil
				return true
			}
		case FaultNXDomain:
			nd.exists = false
		case FaultNoData:
			nd.exists, nd.cname, nd.rrs = true, "", nil
		}
		if !nd.exists {
			// RFC 6604: the RCODE describes the last name of a CNAME chain.
			resp.Rcode = dns.RcodeNameError
			resp.Ns = []dns.RR{n.soa(name)}
			return true
		}
		if nd.cname != "" && q.Qtype != dns.TypeCNAME {
			target := nd.cname + "."
			resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME), Target: target})
			name, owner = nd.cname, target
			continue
		}
		found := false
		for _, rr := range nd.rrs {
			if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
				resp.Answer = append(resp.Answer, rr)
				found = true
			}
		}
		if !found {
			resp.Ns = []dns.RR{n.soa(name)} // NODATA
		}
		return true
	}
}

// node collects the records at name, built with the given owner spelling.
// n.mu must be held.
func (n *Net) node(name, owner string) node {
	var nd node
	merge := func(f Fault, secure bool) {
		nd.exists = true
		nd.secure = nd.secure || secure
		if nd.fault == FaultNone {
			nd.fault = f
		}
	}
	if d, ok := strings.CutPrefix(name, "_mta-sts."); ok {
		if e := n.domains[d]; e != nil && (e.d.STSTXT != nil || e.d.STSCNAME != "" || e.d.STSFault != FaultNone) {
			merge(e.d.STSFault, e.d.Secure)
			if e.d.STSCNAME != "" {
				nd.cname = e.d.STSCNAME
				nd.rrs = append(nd.rrs, &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME), Target: e.d.STSCNAME + "."})
			}
			nd.rrs = appendTXT(nd.rrs, owner, e.d.STSTXT)
		}
	}
	if d, ok := strings.CutPrefix(name, "mta-sts."); ok {
		if e := n.domains[d]; e != nil && e.d.Policy != nil {
			merge(e.d.Policy.Fault, e.d.Secure)
			nd.rrs = append(nd.rrs, addrRR(owner, n.opts.IP.AsSlice()))
		}
	}
	if d, ok := strings.CutPrefix(name, "_smtp._tls."); ok {
		if e := n.domains[d]; e != nil && e.d.TLSRPTTXT != nil {
			merge(FaultNone, e.d.Secure)
			nd.rrs = appendTXT(nd.rrs, owner, e.d.TLSRPTTXT)
		}
	}
	if d, ok := strings.CutPrefix(name, "_tls."); ok {
		if e := n.domains[d]; e != nil && e.d.TLSRPTTXT != nil {
			merge(FaultNone, e.d.Secure) // empty non-terminal
		}
	}
	if e := n.domains[name]; e != nil {
		merge(e.d.MXFault, e.d.Secure)
		if e.d.NullMX {
			// RFC 7505: a single MX of preference 0 and exchange ".".
			nd.rrs = append(nd.rrs, &dns.MX{Hdr: hdr(owner, dns.TypeMX), Preference: 0, Mx: "."})
		}
		for _, h := range e.d.MX {
			nd.rrs = append(nd.rrs, &dns.MX{Hdr: hdr(owner, dns.TypeMX), Preference: h.Pref, Mx: h.Name + "."})
		}
	}
	if m := n.mx[name]; m != nil {
		merge(m.conf.Fault, n.mxSecure(m))
		if a, ok := n.addrs[name]; ok {
			nd.rrs = append(nd.rrs, addrRR(owner, a.AsSlice()))
		}
	}
	if ce := n.clients[name]; ce != nil {
		merge(ce.conf.Fault, n.refsSecure(ce.refs))
		if a, ok := n.addrs[name]; ok && n.mx[name] == nil {
			nd.rrs = append(nd.rrs, addrRR(owner, a.AsSlice()))
		}
	}
	if mxName, ok := strings.CutPrefix(name, "_25._tcp."); ok {
		if m := n.mx[mxName]; m != nil && m.conf.TLSA != TLSANone {
			merge(FaultNone, n.mxSecure(m))
			if rr := n.tlsa(owner, mxName, m.conf); rr != nil {
				nd.rrs = append(nd.rrs, rr)
			}
		}
	}
	if mxName, ok := strings.CutPrefix(name, "_tcp."); ok {
		if m := n.mx[mxName]; m != nil && m.conf.TLSA != TLSANone {
			merge(FaultNone, n.mxSecure(m)) // empty non-terminal
		}
		if n.hasClientSRV(mxName) {
			merge(FaultNone, n.domains[mxName].d.Secure) // empty non-terminal
		}
	}
	if rrs, ok, secure := n.clientSRV(name, owner); ok {
		merge(FaultNone, secure)
		nd.rrs = append(nd.rrs, rrs...)
	}
	for _, r := range n.raw[name] {
		secure := false
		if e := n.domains[r.domain]; e != nil {
			secure = e.d.Secure
		}
		merge(FaultNone, secure)
		rr := dns.Copy(r.rr)
		rr.Header().Name = owner
		if cn, ok := rr.(*dns.CNAME); ok {
			nd.cname = strings.ToLower(strings.TrimSuffix(cn.Target, "."))
		}
		nd.rrs = append(nd.rrs, rr)
	}
	if !nd.exists {
		// Empty non-terminals exist; a denial is as secure as its zone.
		nd.exists = n.ents[name] > 0
		nd.secure = n.zoneSecure(name)
	}
	return nd
}

// validating reports whether the server stands for a validating resolver:
// Options.Validating, or some scenario domain is Secure. n.mu must be held.
func (n *Net) validating() bool {
	if n.opts.Validating {
		return true
	}
	for _, e := range n.domains {
		if e.d.Secure {
			return true
		}
	}
	return false
}

// mxSecure reports whether any domain listing the MX host is Secure.
func (n *Net) mxSecure(m *mxEntry) bool {
	for d := range m.refs {
		if e := n.domains[d]; e != nil && e.d.Secure {
			return true
		}
	}
	return false
}

// zoneSecure reports whether the closest enclosing domain or MX host is
// Secure.
func (n *Net) zoneSecure(name string) bool {
	for {
		if e := n.domains[name]; e != nil {
			return e.d.Secure
		}
		if m := n.mx[name]; m != nil {
			return n.mxSecure(m)
		}
		if ce := n.clients[name]; ce != nil {
			return n.refsSecure(ce.refs)
		}
		_, rest, ok := strings.Cut(name, ".")
		if !ok {
			return false
		}
		name = rest
	}
}

// zone returns the closest scenario domain at or above name.
func (n *Net) zone(name string) *domainEntry {
	for {
		if e := n.domains[name]; e != nil {
			return e
		}
		_, rest, ok := strings.Cut(name, ".")
		if !ok {
			return nil
		}
		name = rest
	}
}

// soa is the authority record of negative answers (RFC 2308): owned by the
// closest scenario domain, or by the top-level label.
func (n *Net) soa(name string) dns.RR {
	zone := name
	if e := n.zone(name); e != nil {
		zone = e.d.Name
	} else if i := strings.LastIndexByte(name, '.'); i >= 0 {
		zone = name[i+1:]
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone + ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negativeTTL},
		Ns:      "ns.testnet.invalid.",
		Mbox:    "hostmaster.testnet.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  negativeTTL,
	}
}

// tlsa builds the TLSA record of an MX host (RFC 6698, RFC 7672).
func (n *Net) tlsa(owner, mxName string, h MXHost) dns.RR {
	rr := &dns.TLSA{Hdr: hdr(owner, dns.TypeTLSA)}
	switch h.TLSA {
	case TLSADaneEE:
		cert, err := n.ca.Leaf(mxName, h.Cert, n.opts.CertValidity)
		if err != nil {
			n.log.Error("testnet: TLSA certificate", "mx", mxName, "err", err)
			return nil
		}
		rr.Usage, rr.Selector, rr.MatchingType = 3, 1, 1
		rr.Certificate = hex.EncodeToString(spkiSHA256(cert.Leaf))
	case TLSADaneTA:
		rr.Usage, rr.Selector, rr.MatchingType = 2, 0, 1
		rr.Certificate = hex.EncodeToString(n.ca.TASHA256())
	case TLSAWrong:
		rr.Usage, rr.Selector, rr.MatchingType = 3, 1, 1
		rr.Certificate = strings.Repeat("00", 32)
	default:
		return nil
	}
	return rr
}

func hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
}

func addrRR(owner string, ip []byte) dns.RR {
	if len(ip) == 4 {
		return &dns.A{Hdr: hdr(owner, dns.TypeA), A: ip}
	}
	return &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA), AAAA: ip}
}

// appendTXT adds one TXT RR per entry. miekg/dns reads backslash escapes in
// TXT strings, so backslashes are doubled to serve the bytes as written.
func appendTXT(rrs []dns.RR, owner string, txt [][]string) []dns.RR {
	for _, strs := range txt {
		esc := make([]string, len(strs))
		for i, s := range strs {
			esc[i] = strings.ReplaceAll(s, `\`, `\\`)
		}
		rrs = append(rrs, &dns.TXT{Hdr: hdr(owner, dns.TypeTXT), Txt: esc})
	}
	return rrs
}
