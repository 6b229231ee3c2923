package checker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/plural"
	"github.com/mailsts/mailsts/mailclient"
)

// Endpoint is a mail client endpoint of RFC 8314: submission with
// implicit TLS (465) or STARTTLS (587), IMAP with implicit TLS (993) or
// STARTTLS (143), POP3 with implicit TLS (995) or STLS (110).
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// Service is the IANA service name: submissions, submission, imaps,
	// imap, pop3s or pop3. With STARTTLS it selects the protocol spoken
	// before TLS (SMTP for any other name).
	Service string `json:"service"`
	// STARTTLS is true for submission, imap and pop3 (the session starts
	// in cleartext and upgrades), false for implicit TLS.
	STARTTLS bool `json:"starttls"`
	// Source is how the endpoint was found with ClientAccount: "srv",
	// "well-known" ("" for Clients given explicitly).
	Source string `json:"source,omitempty"`
	// Priority and Weight are the SRV record's.
	Priority uint16 `json:"priority,omitempty"`
	Weight   uint16 `json:"weight,omitempty"`
	// Confirm: an unsigned SRV target outside the domain (RFC 6186 §6).
	Confirm bool `json:"confirm,omitempty"`
}

// Client services (IANA names) of ClientEndpoints.
const (
	ServiceSubmissions = "submissions"
	ServiceSubmission  = "submission"
	ServiceIMAPS       = "imaps"
	ServiceIMAP        = "imap"
	ServicePOP3S       = "pop3s"
	ServicePOP3        = "pop3"
)

// ClientEndpoints returns the six RFC 8314 endpoints of host on their
// standard ports, each implicit-TLS service before its STARTTLS sibling
// (TLS8314-1, TLS8314-2, TLS8314-3). RFC 8314 §3 prefers implicit TLS;
// a STARTTLS port that is not served is fine, one that is served must
// offer STARTTLS.
func ClientEndpoints(host string) []Endpoint {
	return []Endpoint{
		{Host: host, Port: 465, Service: ServiceSubmissions},
		{Host: host, Port: 587, Service: ServiceSubmission, STARTTLS: true},
		{Host: host, Port: 993, Service: ServiceIMAPS},
		{Host: host, Port: 143, Service: ServiceIMAP, STARTTLS: true},
		{Host: host, Port: 995, Service: ServicePOP3S},
		{Host: host, Port: 110, Service: ServicePOP3, STARTTLS: true},
	}
}

// maxClientEndpoints caps the endpoints probed: SRV records are Internet
// input.
const maxClientEndpoints = 24

// checkClients probes every configured client endpoint and those
// discovered for ClientAccount, concurrently, and judges them as a
// mailclient.Dialer would.
func (c *Checker) checkClients(ctx context.Context) ([]EndpointResult, *ClientSummary, findings) {
	var fs findings
	eps := c.Clients
	var disc *mailclient.Discovery
	if c.ClientAccount != "" {
		found, d, err := c.discoverClients(ctx)
		if err != nil {
			fs.add("clients.discovery", SeverityFail, c.ClientAccount, err.Error(), "give an address (user@example.org), a domain or a host name")
		}
		eps, disc = append(slices.Clone(eps), found...), d
	}
	if len(eps) > maxClientEndpoints {
		eps = eps[:maxClientEndpoints]
	}
	res := make([]EndpointResult, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		res[i].Endpoint = ep
		wg.Go(func() { res[i].Probe = c.probeEndpoint(ctx, ep) })
	}
	wg.Wait()
	for _, r := range res {
		c.endpointFindings(&fs, r)
	}
	sum := c.judgeClients(&fs, res, disc)
	return res, sum, fs
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
	var phase starttlsPhase
	switch {
	case !ep.STARTTLS:
	case ep.Service == ServiceIMAP:
		phase = muaSTARTTLS(mailclient.IMAP, "a3 LOGOUT\r\n")
	case ep.Service == ServicePOP3:
		phase = muaSTARTTLS(mailclient.POP3, "QUIT\r\n")
	default:
		phase = smtpSTARTTLS
	}
	return c.probeWith(ctx, host, pickAddr(addrs), ep.Port, phase).res
}

// muaStages are the probe's stages of mailclient's cleartext steps.
var muaStages = map[mailclient.Step]string{
	mailclient.StepGreeting:     stageBanner,
	mailclient.StepCapabilities: stageEHLO,
	mailclient.StepUpgrade:      stageSTARTTLS,
}

// muaDoing says what each cleartext step was doing, for timeouts.
var muaDoing = map[mailclient.Step]string{
	mailclient.StepGreeting:     "waiting for the greeting",
	mailclient.StepCapabilities: "reading the capabilities",
	mailclient.StepUpgrade:      "upgrading",
}

// muaSTARTTLS returns the cleartext phase of IMAP or POP3: mailclient's,
// the one a mail client speaks (RFC 9051 §6.2.1, RFC 2595), with the
// stage and error recorded for the findings.
func muaSTARTTLS(p mailclient.Protocol, bye string) starttlsPhase {
	return func(_ *Checker, conn net.Conn, br *bufio.Reader, out *probeOutcome, deadline func()) (string, bool) {
		ct, err := mailclient.StartTLS(conn, br, p, "", func(st mailclient.Step) {
			out.res.Stage = muaStages[st]
			deadline()
		})
		if ct.Greeting != "" {
			out.res.Banner = clip(ct.Greeting)
		}
		out.res.STARTTLS = ct.Offered
		out.res.Stage = muaStages[ct.Step]
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				out.res.Error = describeNetErr(muaDoing[ct.Step], err)
			} else {
				out.res.Error = err.Error()
			}
			return "", false
		}
		return bye, true
	}
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
		// RFC 8314 §3.3: submission data must be protected by TLS; §4.1:
		// cleartext access is deprecated. A STARTTLS port that is served
		// must upgrade (not serving it is fine: clients.connect, info).
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
		how := "implicit TLS"
		if r.STARTTLS {
			how = "STARTTLS"
		}
		fs.add("clients.ok", SeverityOK, where, fmt.Sprintf("%s: %s with %s, %s, certificate valid for %s", label, how, p.TLSVersion, p.CipherSuite, plural.Count(p.Cert.DaysLeft, "more day", "more days")))
	}
}
