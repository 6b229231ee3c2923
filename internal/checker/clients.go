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
		phase = imapSTARTTLS
	case ep.Service == ServicePOP3:
		phase = pop3STLS
	default:
		phase = smtpSTARTTLS
	}
	return c.probeWith(ctx, host, pickAddr(addrs), ep.Port, phase).res
}

// errMUAReply is wrapped by errors about malformed IMAP and POP3 replies.
var errMUAReply = errors.New("malformed reply")

// readMUALine reads one IMAP or POP3 response line, bounded like SMTP
// replies (maxReplyLine).
func readMUALine(br *bufio.Reader) (string, error) {
	raw, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line longer than %d bytes", errMUAReply, maxReplyLine)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(raw), "\r\n"), nil
}

// imapTagged sends "tag cmd" and reads up to the tagged response, at most
// maxReplyLines lines; it returns the untagged lines and the tagged
// status text ("OK …", "NO …", "BAD …").
func imapTagged(conn net.Conn, br *bufio.Reader, tag, cmd string) (untagged []string, status string, err error) {
	if _, err := fmt.Fprintf(conn, "%s %s\r\n", tag, cmd); err != nil {
		return nil, "", err
	}
	for range maxReplyLines {
		l, err := readMUALine(br)
		if err != nil {
			return nil, "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest, nil
		}
		untagged = append(untagged, l)
	}
	return nil, "", fmt.Errorf("%w: no tagged response in %d lines", errMUAReply, maxReplyLines)
}

func okStatus(status string) bool {
	kw, _, _ := strings.Cut(status, " ")
	return strings.EqualFold(kw, "OK")
}

// imapSTARTTLS is the cleartext phase of IMAP (RFC 9051 §6.2.1, RFC 2595
// §3.1): greeting, CAPABILITY, STARTTLS.
func imapSTARTTLS(_ *Checker, conn net.Conn, br *bufio.Reader, out *probeOutcome, deadline func()) (string, bool) {
	out.res.Stage = stageBanner
	deadline()
	greeting, err := readMUALine(br)
	if err != nil {
		out.res.Error = describeNetErr("waiting for the greeting", err)
		return "", false
	}
	out.res.Banner = clip(greeting)
	kw := ""
	if f := strings.Fields(greeting); len(f) >= 2 && f[0] == "*" {
		kw = strings.ToUpper(f[1])
	}
	switch kw {
	case "OK":
	case "PREAUTH":
		// RFC 9051 §6.2.1: STARTTLS only in the not-authenticated
		// state; a cleartext PREAUTH session can never be protected.
		out.res.Stage = stageSTARTTLS
		out.res.Error = "the greeting is PREAUTH: the session is authenticated in cleartext and cannot STARTTLS"
		return "", false
	default:
		out.res.Error = fmt.Sprintf("greeting %q; expected * OK", clip(greeting))
		return "", false
	}
	out.res.Stage = stageEHLO
	deadline()
	untagged, status, err := imapTagged(conn, br, "m1", "CAPABILITY")
	if err != nil {
		out.res.Error = describeNetErr("reading the CAPABILITY response", err)
		return "", false
	}
	if !okStatus(status) {
		out.res.Error = fmt.Sprintf("CAPABILITY answered %s", clip(status))
		return "", false
	}
	for _, l := range untagged {
		if caps, ok := cutPrefixFold(l, "* CAPABILITY "); ok {
			for _, c := range strings.Fields(caps) {
				// RFC 9051 §7.2.2: capability names are case-insensitive.
				if strings.EqualFold(c, "STARTTLS") {
					out.res.STARTTLS = true
				}
			}
		}
	}
	out.res.Stage = stageSTARTTLS
	if !out.res.STARTTLS {
		out.res.Error = "STARTTLS is not offered in the CAPABILITY response"
		quit(conn, "m2 LOGOUT\r\n")
		return "", false
	}
	deadline()
	_, status, err = imapTagged(conn, br, "m2", "STARTTLS")
	if err != nil {
		out.res.Error = describeNetErr("reading the STARTTLS response", err)
		return "", false
	}
	if !okStatus(status) {
		out.res.Error = fmt.Sprintf("STARTTLS answered %s", clip(status))
		return "", false
	}
	return "m3 LOGOUT\r\n", true
}

// pop3STLS is the cleartext phase of POP3 (RFC 2595 §4, RFC 2449): greeting,
// CAPA, STLS.
func pop3STLS(_ *Checker, conn net.Conn, br *bufio.Reader, out *probeOutcome, deadline func()) (string, bool) {
	out.res.Stage = stageBanner
	deadline()
	greeting, err := readMUALine(br)
	if err != nil {
		out.res.Error = describeNetErr("waiting for the greeting", err)
		return "", false
	}
	out.res.Banner = clip(greeting)
	if _, ok := cutPrefixFold(greeting+" ", "+OK "); !ok {
		out.res.Error = fmt.Sprintf("greeting %q; expected +OK", clip(greeting))
		return "", false
	}
	out.res.Stage = stageEHLO
	deadline()
	if _, err := conn.Write([]byte("CAPA\r\n")); err != nil {
		out.res.Error = describeNetErr("sending CAPA", err)
		return "", false
	}
	first, err := readMUALine(br)
	if err != nil {
		out.res.Error = describeNetErr("reading the CAPA response", err)
		return "", false
	}
	if _, ok := cutPrefixFold(first+" ", "+OK "); ok {
		// RFC 2449 §5: a multi-line response ending with ".".
		for n := 0; ; n++ {
			if n == maxReplyLines {
				out.res.Error = fmt.Sprintf("reading the CAPA response: %v: more than %d lines", errMUAReply, maxReplyLines)
				return "", false
			}
			l, err := readMUALine(br)
			if err != nil {
				out.res.Error = describeNetErr("reading the CAPA response", err)
				return "", false
			}
			if l == "." {
				break
			}
			if kw, _, _ := strings.Cut(l, " "); strings.EqualFold(kw, "STLS") {
				out.res.STARTTLS = true
			}
		}
	}
	out.res.Stage = stageSTARTTLS
	if !out.res.STARTTLS {
		// RFC 2595 §4: a server offering STLS lists it in CAPA.
		out.res.Error = "STLS is not offered in the CAPA response"
		quit(conn, "QUIT\r\n")
		return "", false
	}
	deadline()
	if _, err := conn.Write([]byte("STLS\r\n")); err != nil {
		out.res.Error = describeNetErr("sending STLS", err)
		return "", false
	}
	l, err := readMUALine(br)
	if err != nil {
		out.res.Error = describeNetErr("reading the STLS response", err)
		return "", false
	}
	if _, ok := cutPrefixFold(l+" ", "+OK "); !ok {
		out.res.Error = fmt.Sprintf("STLS answered %s", clip(l))
		return "", false
	}
	return "QUIT\r\n", true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
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
