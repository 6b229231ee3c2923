package checker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mailsts/mailsts/dnsresolve"
)

// Endpoint is a mail client endpoint of RFC 8314: submission with
// implicit TLS (465) or STARTTLS (587), IMAP (993) or POP3 (995) with
// implicit TLS.
type Endpoint struct {
	Host    string `json:"host"`
	Port    int    `json:"port"`
	Service string `json:"service"`
	// STARTTLS is true for SMTP submission on 587, false for implicit TLS.
	STARTTLS bool `json:"starttls"`
}

// ClientEndpoints returns the four RFC 8314 endpoints of host on their
// standard ports (TLS8314-1, TLS8314-2, TLS8314-3).
func ClientEndpoints(host string) []Endpoint {
	return []Endpoint{
		{Host: host, Port: 465, Service: "submissions"},
		{Host: host, Port: 587, Service: "submission", STARTTLS: true},
		{Host: host, Port: 993, Service: "imaps"},
		{Host: host, Port: 995, Service: "pop3s"},
	}
}

// checkClients probes every configured client endpoint concurrently.
func (c *Checker) checkClients(ctx context.Context) ([]EndpointResult, findings) {
	res := make([]EndpointResult, len(c.Clients))
	var wg sync.WaitGroup
	for i, ep := range c.Clients {
		res[i].Endpoint = ep
		wg.Go(func() { res[i].Probe = c.probeEndpoint(ctx, ep) })
	}
	wg.Wait()
	var fs findings
	for _, r := range res {
		c.endpointFindings(&fs, r)
	}
	return res, fs
}

func (c *Checker) probeEndpoint(ctx context.Context, ep Endpoint) ProbeResult {
	host, err := dnsresolve.Normalize(ep.Host)
	if err != nil {
		return ProbeResult{Stage: stageDNS, Error: err.Error()}
	}
	addrs, _, err := c.dns.LookupIP(ctx, host)
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = errors.New("no address")
		}
		return ProbeResult{Stage: stageDNS, Error: "no address: " + err.Error()}
	}
	return c.probe(ctx, host, pickAddr(addrs), ep.Port, !ep.STARTTLS).res
}

// endpointFindings judges one endpoint (RFC 8314 §3.3, §5).
func (c *Checker) endpointFindings(fs *findings, r EndpointResult) {
	where := fmt.Sprintf("%s:%d", r.Host, r.Port)
	label := where + " (" + r.Service + ")"
	p := r.Probe
	switch p.Stage {
	case stageDNS, stageConnect:
		sev := SeverityWarn
		if strings.Contains(p.Error, "refused") {
			// Not offering a service is a choice, not a weakness.
			sev = SeverityInfo
		}
		fs.add("clients.connect", sev, where, label+": "+p.Error)
	case stageBanner, stageEHLO:
		fs.add("clients.connect", SeverityWarn, where, label+": "+p.Error)
	case stageSTARTTLS:
		// RFC 8314 §3.3: submission data must be protected by TLS.
		fs.add("clients.starttls", SeverityFail, where, label+": "+p.Error)
	case stageHandshake:
		fs.add("clients.tls", SeverityFail, where, label+": "+p.Error)
	default:
		if p.Cert == nil || p.Cert.Problem != "" {
			problem := "invalid"
			if p.Cert != nil {
				problem = p.Cert.Problem
			}
			// RFC 8314 §5 (TLS8314-4): clients must not accept a
			// certificate they cannot validate.
			fs.add("clients.cert", SeverityFail, where, fmt.Sprintf("%s: certificate %s for %s", label, problem, r.Host))
			return
		}
		fs.add("clients.ok", SeverityOK, where, fmt.Sprintf("%s: %s, %s, certificate valid for %d more days", label, p.TLSVersion, p.CipherSuite, p.Cert.DaysLeft))
	}
}
