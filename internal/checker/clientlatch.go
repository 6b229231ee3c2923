package checker

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mailclient"
)

// ClientSummary is what a mail client (the mailclient package, with its
// default policy: TLS 1.2 or later with a validated certificate) would
// find and remember for the checked account.
type ClientSummary struct {
	// Account is what was discovered: an address, a domain or a host.
	Account string `json:"account"`
	// Domain is the account's domain.
	Domain string `json:"domain"`
	// NotOffered lists services whose SRV target is "." (RFC 6186 §4).
	NotOffered []string `json:"not_offered,omitempty"`
	// Notes are discovery notes (failed lookups, fallbacks).
	Notes []string `json:"notes,omitempty"`
	// Protocols has one entry per protocol with endpoints.
	Protocols []ClientProtocol `json:"protocols"`
}

// ClientProtocol is the outcome for one protocol (smtp, imap, pop3).
type ClientProtocol struct {
	Protocol string `json:"protocol"`
	// Endpoint is the first endpoint a client would accept ("" for none):
	// "host:port (service)".
	Endpoint string `json:"endpoint,omitempty"`
	// Level is the confidentiality level of that connection: validated,
	// tls-unvalidated, cleartext, or unknown when none is acceptable.
	Level string `json:"level"`
	// Latch is what a latching client remembers after connecting.
	Latch *mailclient.Latch `json:"latch,omitempty"`
	// RefuseLater says what would make that client refuse a later
	// connection.
	RefuseLater []string `json:"refuse_later,omitempty"`
}

// discoverClients resolves Checker.ClientAccount into endpoints with the
// mailclient discovery (RFC 6186 SRV, then well-known names).
func (c *Checker) discoverClients(ctx context.Context) ([]Endpoint, *mailclient.Discovery, error) {
	r, ok := c.dns.(interface {
		dnsresolve.Resolver
		dnsresolve.SRVResolver
	})
	if !ok {
		r = noSRV{c.dns}
	}
	ports := map[mailclient.Service]int{}
	for s, p := range c.ClientPorts {
		ports[mailclient.Service(s)] = p
	}
	disc, err := (&mailclient.Discoverer{Resolver: r, Ports: ports, Logger: c.Logger}).Discover(ctx, c.ClientAccount)
	if err != nil {
		return nil, nil, err
	}
	eps := make([]Endpoint, 0, len(disc.Endpoints))
	for _, e := range disc.Endpoints {
		eps = append(eps, Endpoint{Host: e.Host, Port: e.Port, Service: string(e.Service), STARTTLS: !e.Service.Implicit(),
			Source: string(e.Source), Priority: e.Priority, Weight: e.Weight, Confirm: e.Confirm})
	}
	return eps, disc, nil
}

// noSRV adapts a Resolver without SRV lookups: every SRV lookup fails.
type noSRV struct{ dnsresolve.Resolver }

func (noSRV) LookupSRV(context.Context, string, string, string) ([]dnsresolve.SRV, dnsresolve.Answer, error) {
	return nil, dnsresolve.Answer{}, fmt.Errorf("the resolver has no SRV lookups: %w", dnsresolve.ErrLookupFailed)
}

// observe turns a probe into what a mailclient.Dialer would have observed;
// ok is false when the probe never reached a session to judge (DNS,
// connection, greeting or handshake failures).
func observe(r EndpointResult) (mailclient.Observation, bool) {
	o := mailclient.Observation{Endpoint: mailclient.Endpoint{Service: mailclient.Service(r.Service), Host: r.Host, Port: r.Port}}
	p := r.Probe
	switch p.Stage {
	case stageSTARTTLS:
		o.STARTTLSMissing = true
		return o, true
	case stageDone:
	default:
		return o, false
	}
	o.TLS = true
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		if tls.VersionName(v) == p.TLSVersion {
			o.TLSVersion = v
		}
	}
	if p.Cert != nil && p.Cert.Problem == "" {
		o.Validation = mailclient.PKIX
	} else if p.Cert != nil {
		o.ValidationError = "certificate " + p.Cert.Problem
	}
	return o, true
}

// judgeClients adds the verdict of each endpoint (the mailclient default
// policy) and the summary of what a latching client would remember.
func (c *Checker) judgeClients(fs *findings, res []EndpointResult, disc *mailclient.Discovery) *ClientSummary {
	for i := range res {
		o, ok := observe(res[i])
		if !ok {
			res[i].Level = mailclient.LevelUnknown.String()
			continue
		}
		v := mailclient.Decide(o, mailclient.Policy{}, mailclient.Latch{}, false)
		res[i].Level, res[i].Accept, res[i].Reasons = o.Level().String(), v.Accept, v.Reasons
	}
	if disc == nil {
		return nil
	}
	sum := &ClientSummary{Account: c.ClientAccount, Domain: disc.Domain, Notes: disc.Notes, Protocols: []ClientProtocol{}}
	for _, s := range disc.NotOffered {
		sum.NotOffered = append(sum.NotOffered, string(s))
	}
	srv := 0
	for _, r := range res {
		if r.Source == string(mailclient.FromSRV) {
			srv++
		}
		if r.Confirm {
			// RFC 6186 §6, RFC 7817 §3.
			fs.add("clients.srv-confirm", SeverityWarn, r.Host, fmt.Sprintf("%s:%d (%s): the SRV target is outside %s and the record is not DNSSEC-signed: clients must ask the user to confirm it", r.Host, r.Port, r.Service, disc.Domain))
		}
	}
	switch {
	case srv > 0:
		msg := fmt.Sprintf("%d endpoints from RFC 6186 SRV records at _<service>._tcp.%s", srv, disc.Domain)
		if len(sum.NotOffered) > 0 {
			msg += "; not offered (target \".\"): " + strings.Join(sum.NotOffered, ", ")
		}
		fs.add("clients.discovery", SeverityOK, disc.Domain, msg)
	case len(res) > 0:
		fs.add("clients.discovery", SeverityInfo, disc.Domain, fmt.Sprintf("no RFC 6186 SRV records at _<service>._tcp.%s: clients guess host names (%s)", disc.Domain, strings.Join(disc.Notes, "; ")),
			fmt.Sprintf("publish _submissions._tcp.%s SRV 0 1 465 <host>. (and _imaps._tcp 993, _pop3s._tcp 995; \".\" for a service not offered)", disc.Domain))
	default:
		fs.add("clients.discovery", SeverityWarn, disc.Domain, "no mail client endpoint found: no SRV records and no well-known host name resolves",
			fmt.Sprintf("publish _submissions._tcp.%s SRV 0 1 465 <host>. and the _imaps._tcp/_pop3s._tcp records of the services offered", disc.Domain))
	}
	for _, p := range mailclient.Protocols() {
		cp, any := ClientProtocol{Protocol: string(p), Level: mailclient.LevelUnknown.String()}, false
		for _, r := range res {
			if mailclient.Service(r.Service).Protocol() != p {
				continue
			}
			any = true
			o, ok := observe(r)
			if !ok || !r.Accept {
				continue
			}
			l := mailclient.Latch{}.Raise(o, c.now())
			cp.Endpoint = fmt.Sprintf("%s:%d (%s)", r.Host, r.Port, r.Service)
			cp.Level, cp.Latch, cp.RefuseLater = o.Level().String(), &l, refuseLater(l)
			break
		}
		if !any {
			continue
		}
		sum.Protocols = append(sum.Protocols, cp)
		if cp.Latch == nil {
			fs.add("clients.latch", SeverityWarn, disc.Domain, fmt.Sprintf("%s: no endpoint a client requiring TLS 1.2+ with a validated certificate accepts (RFC 8314 §5.2)", p),
				"fix the endpoint findings above: at least one endpoint per service needs TLS 1.2 or later and a valid certificate")
			continue
		}
		msg := fmt.Sprintf("%s: a client uses %s and remembers %s with a certificate validated by %s; later it refuses %s",
			p, cp.Endpoint, tls.VersionName(cp.Latch.MinTLSVersion), strings.ToUpper(string(cp.Latch.Validation)), strings.Join(cp.RefuseLater, ", "))
		var now []string
		for _, r := range res {
			if mailclient.Service(r.Service).Protocol() == p && r.Level != mailclient.LevelUnknown.String() && !r.Accept {
				now = append(now, fmt.Sprintf("%s:%d (%s)", r.Host, r.Port, r.Service))
			}
		}
		if len(now) > 0 {
			msg += "; already refused: " + strings.Join(now, ", ")
		}
		fs.add("clients.latch", SeverityOK, disc.Domain, msg)
	}
	return sum
}

// refuseLater lists what a latch makes a client refuse.
func refuseLater(l mailclient.Latch) []string {
	var out []string
	if l.TLS {
		out = append(out, "a session without TLS (STARTTLS stripped)")
	}
	if l.Validated {
		out = append(out, "a certificate that does not validate")
	}
	if l.MinTLSVersion > tls.VersionTLS12 {
		out = append(out, "versions older than "+tls.VersionName(l.MinTLSVersion))
	}
	return out
}
