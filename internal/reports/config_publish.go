package reports

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// PublishConfig is the `publish:` section of the serve configuration: the
// MTA-STS policies this deployment hosts (RFC 8461 §3) and how the policy
// host listens. It is data only; package publish validates it against
// live DNS and serves it. Every field is optional; without Domains serve
// hosts no policy.
type PublishConfig struct {
	// Listen is the policy host's listener (default ":443" when Domains
	// are configured, ":80" with PlainHTTP).
	Listen string `yaml:"listen"`
	// PlainHTTP serves plain HTTP, for running behind a proxy that
	// terminates TLS for mta-sts.<domain>.
	PlainHTTP bool `yaml:"plain_http"`
	// TLSCert and TLSKey are one certificate (with every mta-sts.<domain>
	// name) and its key, PEM files.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// CertDir holds one certificate per host: mta-sts.<domain>.crt and
	// mta-sts.<domain>.key (PEM).
	CertDir string `yaml:"cert_dir"`
	// StateFile records when each domain's mode started and the policies
	// served before (default publish-state.json in the state directory).
	StateFile string `yaml:"state_file"`
	// TestingPeriod is how long a domain must be in testing before
	// `mailsts policy promote` (default 14d).
	TestingPeriod string `yaml:"testing_period"`
	// CheckInterval is how often serve checks every hosted domain as
	// senders see it (default 1h; negative: never).
	CheckInterval time.Duration `yaml:"check_interval"`
	// MXRefresh is how often serve re-reads the live MX of `mx: auto`
	// domains (default 1h).
	MXRefresh time.Duration `yaml:"mx_refresh"`
	// MetricsListen serves the findings of the periodic checks as
	// Prometheus metrics at /metrics (default: off).
	MetricsListen string `yaml:"metrics_listen"`
	// Records describe the DNS records `mailsts policy records` prints
	// for every domain (each domain may override them).
	Records PublishRecords `yaml:"records"`
	// Domains are the hosted policy domains.
	Domains []PublishDomain `yaml:"domains"`
	// HTTPListen is the plain-HTTP listener answering ACME HTTP-01
	// challenges (default ":80" when acme.http_01 is on); every other
	// request gets 404.
	HTTPListen string `yaml:"http_listen"`
	// ACME, Certs, Delegation and DNSUpdate: see config_publish_effects.go.
	ACME       *PublishACME       `yaml:"acme"`
	Certs      PublishCerts       `yaml:"certs"`
	Delegation *PublishDelegation `yaml:"delegation"`
	DNSUpdate  *PublishDNSUpdate  `yaml:"dns_update"`
}

// PublishRecords say where mta-sts.<domain> points and what else to
// publish next to the _mta-sts TXT record.
type PublishRecords struct {
	// CNAME points mta-sts.<domain> at this host (RFC 8461 §8.2); else
	// IPv4 and IPv6 give A and AAAA records.
	CNAME string   `yaml:"cname"`
	IPv4  []string `yaml:"ipv4"`
	IPv6  []string `yaml:"ipv6"`
	// RUA is the TLSRPT report address for _smtp._tls.<domain> (RFC 8460
	// §3), "mailto:…" or "https://…"; empty prints no TLSRPT record.
	RUA string `yaml:"rua"`
	// CAA lists the certificate authorities allowed to issue for
	// mta-sts.<domain> (CAA issue records, RFC 8659), each optionally
	// restricted by RFC 8657 parameters.
	CAA []PublishCAA `yaml:"caa"`
}

// PublishCAA is one CAA issue record.
type PublishCAA struct {
	// Issuer is the CA's domain, for example letsencrypt.org.
	Issuer string `yaml:"issuer"`
	// AccountURI and ValidationMethods are the RFC 8657 parameters.
	AccountURI        string   `yaml:"account_uri"`
	ValidationMethods []string `yaml:"validation_methods"`
}

// PublishDomain is one hosted policy domain.
type PublishDomain struct {
	// Domain is the policy domain (the host served is mta-sts.<domain>).
	Domain string `yaml:"domain"`
	// Mode is enforce, testing (default) or none.
	Mode string `yaml:"mode"`
	// MX lists the policy's mx patterns, or is the word auto: the live MX
	// host names of the domain, re-read every MXRefresh.
	MX PublishMX `yaml:"mx"`
	// MXPlanned are extra patterns for MX hosts not in DNS yet (moving
	// MX safely: publish them, wait max_age, then change the MX records);
	// they are exempt from the "matches no live MX" check.
	MXPlanned []string `yaml:"mx_planned"`
	// MaxAge is the policy's max_age in seconds (default 604800, at most
	// 31557600).
	MaxAge int64 `yaml:"max_age"`
	// Records override the section's Records for this domain (fields
	// left empty inherit).
	Records PublishRecords `yaml:"records"`
}

// PublishMX is the mx key of a hosted domain: a list of patterns, or the
// word auto (one element "auto").
type PublishMX []string

// Auto reports whether the list is the word auto.
func (m PublishMX) Auto() bool { return len(m) == 1 && m[0] == "auto" }

// UnmarshalYAML accepts a sequence of patterns or one scalar (a pattern,
// or auto).
func (m *PublishMX) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*m = PublishMX{n.Value}
		return nil
	case yaml.SequenceNode:
		var p []string
		if err := n.Decode(&p); err != nil {
			return err
		}
		*m = p
		return nil
	}
	return fmt.Errorf("line %d: mx must be a list of patterns or auto", n.Line)
}
