package publish

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailsts/mailsts/internal/reports"
)

// DNSRecord is one record to publish for a hosted domain.
type DNSRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	// Note says why the record is there.
	Note string `json:"note,omitempty"`
}

// String returns the record in zone-file presentation form (TTL 3600).
func (r DNSRecord) String() string {
	v := r.Value
	if r.Type == "TXT" {
		v = strconv.Quote(v)
	}
	return fmt.Sprintf("%s. 3600 IN %s %s", r.Name, r.Type, v)
}

// DNSRecords returns every DNS record the domain needs, in the order to
// publish them: the policy host (mta-sts CNAME, or A/AAAA) and its CAA
// records first, then the _mta-sts TXT record with the current id (RFC
// 8461 §8.1, STS-PUB-4: the TXT record last, once the new policy is
// served), and the _smtp._tls TXT record when a rua is configured.
// Notes lists what the configuration leaves to the operator.
func (d *Domain) DNSRecords() (recs []DNSRecord, notes []string) {
	host := d.PolicyHost()
	r := d.Records
	switch {
	case r.CNAME != "":
		recs = append(recs, DNSRecord{Name: host, Type: "CNAME", Value: strings.TrimSuffix(r.CNAME, ".") + ".", Note: "the policy host, delegated (RFC 8461 §8.2)"})
	case len(r.IPv4)+len(r.IPv6) > 0:
		for _, a := range r.IPv4 {
			recs = append(recs, DNSRecord{Name: host, Type: "A", Value: a, Note: "the policy host"})
		}
		for _, a := range r.IPv6 {
			recs = append(recs, DNSRecord{Name: host, Type: "AAAA", Value: a, Note: "the policy host"})
		}
	default:
		notes = append(notes, "point "+host+" (CNAME, A or AAAA) at the serve policy listener; set publish.records.cname or ipv4/ipv6 to print it")
	}
	for _, c := range r.CAA {
		v := c.Issuer
		if c.AccountURI != "" {
			v += "; accounturi=" + c.AccountURI
		}
		if len(c.ValidationMethods) > 0 {
			v += "; validationmethods=" + strings.Join(c.ValidationMethods, ",")
		}
		recs = append(recs, DNSRecord{Name: host, Type: "CAA", Value: "0 issue " + strconv.Quote(v), Note: "who may issue the policy host's certificate (RFC 8659, RFC 8657)"})
	}
	recs = append(recs, DNSRecord{Name: "_mta-sts." + d.Name, Type: "TXT", Value: d.Policy().Record(), Note: "the id of the served policy; change it only once the new policy is served"})
	if r.RUA != "" {
		recs = append(recs, DNSRecord{Name: "_smtp._tls." + d.Name, Type: "TXT", Value: "v=TLSRPTv1; rua=" + r.RUA, Note: "where senders send TLS reports (RFC 8460 §3)"})
	} else {
		notes = append(notes, "no TLSRPT record: set publish.records.rua to receive TLS reports, which promote relies on")
	}
	return recs, notes
}

// checkRecords validates the records section of a domain.
func checkRecords(r reports.PublishRecords) []string {
	var msgs []string
	for _, a := range r.IPv4 {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			msgs = append(msgs, fmt.Sprintf("records.ipv4 %q is not an IPv4 address", a))
		}
	}
	for _, a := range r.IPv6 {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is6() {
			msgs = append(msgs, fmt.Sprintf("records.ipv6 %q is not an IPv6 address", a))
		}
	}
	if r.CNAME != "" && len(r.IPv4)+len(r.IPv6) > 0 {
		msgs = append(msgs, "records: a name with a CNAME can have no A or AAAA records; give cname or ipv4/ipv6")
	}
	if r.RUA != "" && !strings.HasPrefix(r.RUA, "mailto:") && !strings.HasPrefix(r.RUA, "https://") {
		msgs = append(msgs, fmt.Sprintf("records.rua %q: want mailto: or https: (RFC 8460 §3)", r.RUA))
	}
	return msgs
}
