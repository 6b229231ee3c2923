package reports

import "time"

// DeliveryConfig is the `delivery:` section: how `mailsts tlsrpt outbox`
// (and a daemon running the outbox) delivers the TLS reports this site
// sends. Every field is optional; zero values mean the documented
// defaults (contrib/reports.yml).
type DeliveryConfig struct {
	// DB is the outbox database: sqlite:PATH or a postgres:// URL shared
	// by several nodes; empty means tlsrpt-outbox.db in the state directory.
	DB string `yaml:"db"`
	// DNS servers for _smtp._tls and HTTPS host lookups; empty means the
	// top-level dns, else /etc/resolv.conf.
	DNS []string `yaml:"dns"`
	// Spread: reports leave within this long after midnight UTC.
	Spread time.Duration `yaml:"spread"`
	// RetryBase is the first wait after a failure, doubling up to
	// RetryMax; MaxAge gives up on a delivery failing this long.
	RetryBase time.Duration `yaml:"retry_base"`
	RetryMax  time.Duration `yaml:"retry_max"`
	MaxAge    time.Duration `yaml:"max_age"`
	// Lease is how long a worker holds a delivery it attempts.
	Lease time.Duration `yaml:"lease"`
	// MaxSize in bytes of a report's gzip body; negative: no limit.
	MaxSize int64 `yaml:"max_size"`
	// SuppressAfterDays: consecutive failing days before a destination is
	// suppressed; negative: never.
	SuppressAfterDays int `yaml:"suppress_after_days"`
	// Workers deliver in parallel.
	Workers int `yaml:"workers"`
	// Keep is how long finished reports stay listed; negative: forever.
	Keep time.Duration `yaml:"keep"`
	// HTTPTimeout bounds one HTTPS POST; CAFile adds trusted roots.
	HTTPTimeout time.Duration `yaml:"http_timeout"`
	CAFile      string        `yaml:"ca_file"`
	// HTTPSVerify is "log" (default: a certificate that does not verify
	// is logged and the report posted anyway, RFC 8460 §3) or "require".
	HTTPSVerify string `yaml:"https_verify"`
	// HTTPSAllowPrivate lets https rua reach loopback and private
	// addresses (off: a published record cannot aim at this network).
	HTTPSAllowPrivate bool `yaml:"https_allow_private"`
	Mail              struct {
		From         string        `yaml:"from"`
		Relay        string        `yaml:"relay"`
		StartTLS     string        `yaml:"starttls"`
		Username     string        `yaml:"username"`
		PasswordFile string        `yaml:"password_file"`
		HelloName    string        `yaml:"hello_name"`
		Sendmail     string        `yaml:"sendmail"`
		Timeout      time.Duration `yaml:"timeout"`
		DKIM         struct {
			Domain   string `yaml:"domain"`
			Selector string `yaml:"selector"`
			KeyFile  string `yaml:"key_file"`
		} `yaml:"dkim"`
	} `yaml:"mail"`
}
