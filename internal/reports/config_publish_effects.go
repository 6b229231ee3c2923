package reports

import "time"

// PublishACME is publish.acme: certificates for the policy hosts from an
// ACME CA (docs/publish-certs.md). Absent means the static certificates
// (tls_cert, cert_dir) or plain_http.
type PublishACME struct {
	// Directory is the CA's ACME directory URL (default Let's Encrypt's
	// production directory).
	Directory string `yaml:"directory"`
	// Email is the ACME account contact; required with delegation.
	Email string `yaml:"email"`
	// CAFile holds PEM roots for the ACME server's own TLS certificate
	// (a private CA); empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// HTTP01 and TLSALPN01 turn a challenge type on or off (default both
	// on; at least one must stay on).
	HTTP01    *bool `yaml:"http_01"`
	TLSALPN01 *bool `yaml:"tls_alpn_01"`
}

// HTTP01On reports whether HTTP-01 is on (the default).
func (a *PublishACME) HTTP01On() bool { return a != nil && (a.HTTP01 == nil || *a.HTTP01) }

// TLSALPN01On reports whether TLS-ALPN-01 is on (the default).
func (a *PublishACME) TLSALPN01On() bool { return a != nil && (a.TLSALPN01 == nil || *a.TLSALPN01) }

// PublishCerts is publish.certs: where ACME certificates, keys and the
// account are stored.
type PublishCerts struct {
	// Storage is file (default), postgres or redis.
	Storage string `yaml:"storage"`
	// Dir is the directory of storage: file (default
	// /var/lib/mailsts/certs).
	Dir string `yaml:"dir"`
	// Postgres is the DSN of storage: postgres; PostgresSchema its schema
	// (default mailsts_certs).
	Postgres       string `yaml:"postgres"`
	PostgresSchema string `yaml:"postgres_schema"`
	// Redis is the address (host:port) or redis:// URL of storage: redis;
	// RedisPrefix its key prefix (default "mailsts:certs:").
	Redis       string `yaml:"redis"`
	RedisPrefix string `yaml:"redis_prefix"`
	// LockLease is the lease of the shared stores' locks (default 1m).
	LockLease time.Duration `yaml:"lock_lease"`
}

// PublishDelegation is publish.delegation: on-demand certificates for
// customer domains that delegate their policy here (RFC 8461 §8.2).
// Absent means off.
type PublishDelegation struct {
	// Host is the target of customers' mta-sts.<domain> CNAMEs.
	Host string `yaml:"host"`
	// STSName is the target of their _mta-sts.<domain> CNAMEs (default
	// _mta-sts. and Host without its first label); its domain must be
	// hosted: delegated domains are served that domain's policy.
	STSName string `yaml:"sts_name"`
	// Addresses are the policy host's public addresses, for customers
	// publishing A/AAAA records instead of a CNAME.
	Addresses []string `yaml:"addresses"`
	// Attempts checks per name per Window (default 3 per 1h).
	Attempts int           `yaml:"attempts"`
	Window   time.Duration `yaml:"window"`
	// MaxTracked bounds the names the rate limiter remembers (default
	// 100000).
	MaxTracked int `yaml:"max_tracked"`
}

// PublishDNSUpdate is publish.dns_update: publishing the _mta-sts and
// _smtp._tls TXT records with DNS UPDATE (RFC 2136) signed with TSIG.
// Absent means the records are only printed (mailsts policy records).
type PublishDNSUpdate struct {
	// Server is the zone's primary, host:port.
	Server string `yaml:"server"`
	// Zone is the zone holding the records.
	Zone string `yaml:"zone"`
	// KeyFile is the TSIG key in BIND's format (tsig-keygen).
	KeyFile string `yaml:"key_file"`
	// TTL of the records written (default 300).
	TTL uint32 `yaml:"ttl"`
	// Retry is how often serve retries a publication that was refused
	// because the policy was not served yet or an MX failed (default 5m).
	Retry time.Duration `yaml:"retry"`
}
