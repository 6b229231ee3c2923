package mailclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/mailsts/mailsts/dnsresolve"
)

// Source says where an endpoint came from.
type Source string

// Sources.
const (
	FromSRV        Source = "srv"        // an RFC 6186 SRV record
	FromWellKnown  Source = "well-known" // a conventional host name that resolves (no SRV records)
	FromConfigured Source = "configured" // given by the user or the application
)

// Endpoint is one place to reach a service.
type Endpoint struct {
	Service Service `json:"service"`
	Host    string  `json:"host"`
	Port    int     `json:"port"`
	// Priority and Weight are the SRV record's (0 for other sources).
	Priority uint16 `json:"priority"`
	Weight   uint16 `json:"weight"`
	Source   Source `json:"source"`
	// DNSSEC is true when the SRV answer was DNSSEC-authenticated.
	DNSSEC bool `json:"dnssec,omitempty"`
	// Confirm is true when the host came from an SRV record that was not
	// DNSSEC-authenticated and lies outside the account's domain: RFC 6186
	// §6 and RFC 7817 §3 let a client trust such a host only once the user
	// confirmed it (an attacker who spoofs DNS could otherwise send the
	// client to a host of theirs with a valid certificate).
	Confirm bool `json:"confirm,omitempty"`
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s %s:%d", e.Service, e.Host, e.Port)
}

// LogValue implements slog.LogValuer.
func (e Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("service", string(e.Service)), slog.String("host", e.Host),
		slog.Int("port", e.Port), slog.String("source", string(e.Source)))
}

// Discovery is what [Discoverer.Discover] found for a domain.
type Discovery struct {
	// Domain is the account's domain (lowercase A-labels).
	Domain string `json:"domain"`
	// Endpoints are the candidates, SMTP first, then IMAP, then POP3;
	// within a protocol in the order a client should try them (see
	// [Discovery.For]).
	Endpoints []Endpoint `json:"endpoints"`
	// NotOffered lists the services whose SRV record has the target "."
	// (RFC 6186 §4: decidedly not available).
	NotOffered []Service `json:"not_offered,omitempty"`
	// Notes say what went wrong or was assumed, for logs and UIs: failed
	// SRV lookups, fallbacks to well-known names.
	Notes []string `json:"notes,omitempty"`
}

// For returns the endpoints of p in the order to try them: implicit TLS
// before STARTTLS (RFC 8314 §3, §5.1), and within a service by SRV
// priority, heaviest weight first (RFC 2782). DialProtocol tries targets
// of equal priority in RFC 2782's weighted random order instead, so that
// clients spread over them as the weights ask.
func (d *Discovery) For(p Protocol) []Endpoint {
	var out []Endpoint
	for _, e := range d.Endpoints {
		if e.Service.Protocol() == p {
			out = append(out, e)
		}
	}
	return out
}

// Offered reports whether the discovery has an endpoint for p.
func (d *Discovery) Offered(p Protocol) bool { return len(d.For(p)) > 0 }

// sortEndpoints orders by protocol, implicit TLS first, then priority and
// weight, keeping the given order otherwise.
func sortEndpoints(eps []Endpoint) {
	rank := func(s Service) int { return slices.Index(Services(), s) }
	slices.SortStableFunc(eps, func(a, b Endpoint) int {
		if ra, rb := rank(a.Service), rank(b.Service); ra != rb {
			return ra - rb
		}
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		return int(b.Weight) - int(a.Weight)
	})
}

// ErrAccount is returned for an account that is neither "user@domain"
// nor a domain name.
var ErrAccount = errors.New("mailclient: invalid account")

// AccountDomain returns the domain of an account: the part after the last
// "@" of "user@example.org", or the whole string when it has no "@";
// lowercase A-labels.
func AccountDomain(account string) (string, error) {
	d := account
	if i := strings.LastIndexByte(account, '@'); i >= 0 {
		d = account[i+1:]
	}
	n, err := dnsresolve.Normalize(d)
	if err != nil || n == "" || !strings.Contains(n, ".") {
		return "", fmt.Errorf("%w: %q", ErrAccount, account)
	}
	return n, nil
}

// Configured returns the six endpoints of one host the user configured,
// on the standard ports, implicit TLS first.
func Configured(host string) []Endpoint {
	out := make([]Endpoint, 0, 6)
	for _, s := range Services() {
		out = append(out, Endpoint{Service: s, Host: strings.ToLower(strings.TrimSuffix(host, ".")), Port: s.StandardPort(), Source: FromConfigured})
	}
	return out
}

// NewDiscovery returns a Discovery of configured endpoints: no DNS is
// consulted to find them.
func NewDiscovery(domain string, eps ...Endpoint) *Discovery {
	d := &Discovery{Domain: domain, Endpoints: slices.Clone(eps)}
	sortEndpoints(d.Endpoints)
	return d
}

// wellKnown lists the conventional host names tried, in order, when a
// domain publishes no SRV records for a protocol. RFC 6186 defines none;
// these are what mail client autoconfiguration commonly guesses.
func wellKnown(p Protocol, domain string) []string {
	var pre []string
	switch p {
	case SMTP:
		pre = []string{"smtp.", "submission.", "mail."}
	case IMAP:
		pre = []string{"imap.", "mail."}
	case POP3:
		pre = []string{"pop3.", "pop.", "mail."}
	}
	out := make([]string, 0, len(pre)+1)
	for _, p := range pre {
		out = append(out, p+domain)
	}
	return append(out, domain)
}

// Discoverer finds an account's submission, IMAP and POP3 endpoints: RFC
// 6186 SRV records (with RFC 8314 §5.1's _submissions), and the well-known
// host names when a domain publishes none for a protocol. The zero value
// uses a [dnsresolve.Client] on the system's resolvers.
type Discoverer struct {
	// Resolver looks up SRV and address records; nil means a
	// dnsresolve.Client on /etc/resolv.conf's servers.
	Resolver interface {
		dnsresolve.Resolver
		dnsresolve.SRVResolver
	}
	// Ports replaces the standard port of a service for well-known host
	// names (for test networks and odd deployments); SRV records carry
	// their own ports.
	Ports map[Service]int
	// NoFallback disables the well-known host names.
	NoFallback bool
	// Logger receives debug records of lookups; nil discards.
	Logger *slog.Logger
}

func (d *Discoverer) resolver() interface {
	dnsresolve.Resolver
	dnsresolve.SRVResolver
} {
	if d.Resolver != nil {
		return d.Resolver
	}
	return &dnsresolve.Client{}
}

func (d *Discoverer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Discoverer) port(s Service) int {
	if p := d.Ports[s]; p > 0 {
		return p
	}
	return s.StandardPort()
}

// maxSRVPerService caps the records used per service: hostile zones may
// publish many.
const maxSRVPerService = 16

// Discover finds the endpoints of account ("user@example.org" or
// "example.org"). It fails only for an invalid account; lookups that fail
// are noted in Discovery.Notes and the protocol falls back to well-known
// names. A Discovery may have no endpoint at all.
func (d *Discoverer) Discover(ctx context.Context, account string) (*Discovery, error) {
	domain, err := AccountDomain(account)
	if err != nil {
		return nil, err
	}
	r, log := d.resolver(), d.logger()
	type srvResult struct {
		srvs []dnsresolve.SRV
		ans  dnsresolve.Answer
		err  error
	}
	results := make([]srvResult, len(Services()))
	var wg sync.WaitGroup
	for i, s := range Services() {
		wg.Go(func() {
			srvs, ans, err := r.LookupSRV(ctx, string(s), "tcp", domain)
			results[i] = srvResult{srvs, ans, err}
		})
	}
	wg.Wait()

	disc := &Discovery{Domain: domain}
	published := map[Protocol]bool{}
	for i, s := range Services() {
		res := results[i]
		switch {
		case errors.Is(res.err, dnsresolve.ErrNotFound):
			continue
		case res.err != nil:
			disc.Notes = append(disc.Notes, fmt.Sprintf("_%s._tcp.%s: %v", s, domain, res.err))
			continue
		}
		published[s.Protocol()] = true
		if len(res.srvs) == 1 && res.srvs[0].Target == "." {
			// RFC 6186 §4 (RFC 2782): "." means not offered.
			disc.NotOffered = append(disc.NotOffered, s)
			continue
		}
		for j, srv := range res.srvs {
			if j == maxSRVPerService {
				disc.Notes = append(disc.Notes, fmt.Sprintf("_%s._tcp.%s: only the first %d of %d records used", s, domain, maxSRVPerService, len(res.srvs)))
				break
			}
			if srv.Target == "." || srv.Port == 0 {
				continue
			}
			inDomain := srv.Target == domain || strings.HasSuffix(srv.Target, "."+domain)
			disc.Endpoints = append(disc.Endpoints, Endpoint{
				Service: s, Host: srv.Target, Port: int(srv.Port), Priority: srv.Priority, Weight: srv.Weight,
				Source: FromSRV, DNSSEC: res.ans.Authenticated, Confirm: !inDomain && !res.ans.Authenticated,
			})
		}
	}
	if !d.NoFallback {
		exists := map[string]bool{}
		for _, p := range Protocols() {
			if published[p] {
				continue
			}
			for _, host := range wellKnown(p, domain) {
				ok, seen := exists[host]
				if !seen {
					addrs, _, err := r.LookupIP(ctx, host)
					ok = err == nil && slices.ContainsFunc(addrs, netip.Addr.IsValid)
					exists[host] = ok
				}
				if !ok {
					continue
				}
				for _, s := range ServicesFor(p) {
					disc.Endpoints = append(disc.Endpoints, Endpoint{Service: s, Host: host, Port: d.port(s), Source: FromWellKnown})
				}
				disc.Notes = append(disc.Notes, fmt.Sprintf("no SRV records for %s: using the well-known name %s", p, host))
				break
			}
		}
	}
	sortEndpoints(disc.Endpoints)
	log.Debug("mailclient: discovered", "domain", domain, "endpoints", len(disc.Endpoints), "not_offered", disc.NotOffered, "notes", disc.Notes)
	return disc, nil
}
