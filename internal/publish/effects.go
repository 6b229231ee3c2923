package publish

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/publish/dnsupdate"
	"github.com/mailsts/mailsts/internal/reports"
)

// DelegatedDomain returns the hosted domain whose policy delegated
// domains are served (RFC 8461 §8.2): their _mta-sts CNAME points at
// delegation.sts_name, which carries that domain's id. "" without
// delegation.
func DelegatedDomain(cfg reports.PublishConfig) string {
	d := cfg.Delegation
	if d == nil {
		return ""
	}
	sts := d.STSName
	if sts == "" {
		_, parent, _ := strings.Cut(strings.TrimSuffix(d.Host, "."), ".")
		sts = "_mta-sts." + parent
	}
	n, err := dnsresolve.Normalize(sts)
	if err != nil {
		return ""
	}
	dom, _ := strings.CutPrefix(n, "_mta-sts.")
	return dom
}

// checkEffects validates the keys that act on the world: acme, certs,
// delegation, http_listen and dns_update. hosted holds the hosted domain
// names. Only local files are read (the ACME CA file, the TSIG key);
// nothing is contacted.
func checkEffects(cfg reports.PublishConfig, hosted map[string]bool) []Problem {
	var probs []Problem
	bad := func(format string, args ...any) {
		probs = append(probs, Problem{Msg: fmt.Sprintf(format, args...)})
	}
	a := cfg.ACME
	if a == nil {
		if cfg.Certs != (reports.PublishCerts{}) {
			bad("certs: only used with acme: (certificates from an ACME CA)")
		}
		if cfg.Delegation != nil {
			bad("delegation: needs acme: (certificates are issued on demand for delegated domains)")
		}
		if cfg.HTTPListen != "" {
			bad("http_listen: only used with acme: (it answers ACME HTTP-01 challenges)")
		}
	} else {
		if cfg.PlainHTTP {
			bad("acme: excludes plain_http (behind a TLS proxy, the proxy gets the certificates)")
		}
		if cfg.TLSCert != "" || cfg.CertDir != "" {
			bad("acme: excludes tls_cert and cert_dir: choose certificates from ACME or from files")
		}
		if a.Directory != "" {
			if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("acme.directory %q: want the https:// URL of an ACME directory", a.Directory)
			}
		}
		if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t<>")) {
			bad("acme.email %q is not an email address", a.Email)
		}
		if a.CAFile != "" {
			if pem, err := os.ReadFile(a.CAFile); err != nil {
				bad("acme.ca_file: %v", err)
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				bad("acme.ca_file %s: no PEM certificate in it", a.CAFile)
			}
		}
		if !a.HTTP01On() && !a.TLSALPN01On() {
			bad("acme: http_01 and tls_alpn_01 are both off: at least one challenge type must stay on")
		}
		if cfg.HTTPListen != "" && !a.HTTP01On() {
			bad("http_listen: only used with acme.http_01 on")
		}
		if cfg.HTTPListen != "" {
			if _, _, err := net.SplitHostPort(cfg.HTTPListen); err != nil {
				bad("http_listen %q: want host:port (for example :80)", cfg.HTTPListen)
			}
		}
		c := cfg.Certs
		switch c.Storage {
		case "", "file":
			if c.Postgres != "" || c.Redis != "" {
				bad("certs: postgres and redis are only used with storage: postgres or redis")
			}
		case "postgres":
			if c.Postgres == "" {
				bad("certs.storage postgres needs certs.postgres (a DSN such as postgres://mailsts@db/mailsts)")
			}
		case "redis":
			if c.Redis == "" {
				bad("certs.storage redis needs certs.redis (host:port or a redis:// URL)")
			}
		default:
			bad("certs.storage %q is not file, postgres or redis", c.Storage)
		}
		if c.LockLease < 0 {
			bad("certs.lock_lease %s is negative", c.LockLease)
		}
	}
	if d := cfg.Delegation; d != nil && a != nil {
		if a.Email == "" {
			bad("delegation: needs acme.email (the CA's contact for certificates of customer domains)")
		}
		if _, err := dnsresolve.Normalize(d.Host); err != nil || d.Host == "" || !strings.Contains(strings.Trim(d.Host, "."), ".") {
			bad("delegation.host %q: want the policy host customers' mta-sts CNAMEs point at, such as mta-sts.provider.example", d.Host)
		} else if dom := DelegatedDomain(cfg); dom == "" || !hosted[dom] {
			bad("delegation: delegated domains are served the policy of %s (the domain of sts_name _mta-sts.%s), which is not a hosted domain: list it under domains", orNone(dom), orNone(dom))
		}
		if d.STSName != "" && !strings.HasPrefix(strings.ToLower(d.STSName), "_mta-sts.") {
			bad("delegation.sts_name %q: want _mta-sts.<a hosted domain>", d.STSName)
		}
		for _, s := range d.Addresses {
			if _, err := netip.ParseAddr(s); err != nil {
				bad("delegation.addresses: %q is not an IP address", s)
			}
		}
		if d.Attempts < 0 || d.Window < 0 || d.MaxTracked < 0 {
			bad("delegation: attempts, window and max_tracked must not be negative")
		}
	}
	if u := cfg.DNSUpdate; u != nil {
		if _, _, err := net.SplitHostPort(u.Server); err != nil {
			bad("dns_update.server %q: want the primary's host:port, such as 192.0.2.53:53", u.Server)
		}
		zone, err := dnsresolve.Normalize(u.Zone)
		if err != nil || u.Zone == "" {
			bad("dns_update.zone %q is not a zone name", u.Zone)
		} else {
			for name := range hosted {
				if !dns.IsSubDomain(zone+".", "_mta-sts."+name+".") {
					bad("dns_update.zone %s does not hold _mta-sts.%s: publish that domain's records by hand, or run one serve per zone", zone, name)
				}
			}
		}
		if u.KeyFile == "" {
			bad("dns_update.key_file: give the TSIG key file (tsig-keygen -a hmac-sha256 mailsts)")
		} else if _, err := dnsupdate.LoadKey(u.KeyFile); err != nil {
			bad("dns_update.key_file: %v", err)
		}
		if u.Retry < 0 {
			bad("dns_update.retry %s is negative", u.Retry)
		}
	}
	return probs
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
