package reports

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mailsts/mailsts/internal/logging"
)

// Config is the YAML configuration shared by `mailsts tlsrpt` and
// `mailsts serve`. Every field is optional.
type Config struct {
	// DB is sqlite:PATH or a postgres:// URL.
	DB string `yaml:"db"`
	// DKIM is "require" (default) or "off".
	DKIM string `yaml:"dkim"`
	// DNS servers for DKIM key lookups (default: /etc/resolv.conf).
	DNS       []string `yaml:"dns"`
	MaxInput  int64    `yaml:"max_input"`
	MaxOutput int64    `yaml:"max_output"`
	// Retention is how long reports and rejected input are kept (for
	// example 400d); empty keeps them forever. `mailsts serve` prunes
	// daily.
	Retention string `yaml:"retention"`
	// RejectedBudget caps the bytes kept of rejected input (0: 256 MiB,
	// negative: no cap).
	RejectedBudget int64 `yaml:"rejected_budget"`
	Maildir        struct {
		Dir       string `yaml:"dir"`
		Processed string `yaml:"processed"`
		Rejected  string `yaml:"rejected"`
	} `yaml:"maildir"`
	IMAP struct {
		URL          string        `yaml:"url"`
		Username     string        `yaml:"username"`
		PasswordFile string        `yaml:"password_file"`
		Processed    string        `yaml:"processed"`
		Rejected     string        `yaml:"rejected"`
		Poll         time.Duration `yaml:"poll"`
		CAFile       string        `yaml:"ca_file"`
	} `yaml:"imap"`
	// Log is the logging of `mailsts serve` and of `mailsts tlsrpt
	// ingest` (level and format; --log-level overrides the level).
	Log   logging.Config `yaml:"log"`
	Serve struct {
		Listen  string `yaml:"listen"`
		Path    string `yaml:"path"`
		TLSCert string `yaml:"tls_cert"`
		TLSKey  string `yaml:"tls_key"`
		API     *bool  `yaml:"api"`
		// APIListen is the query API's listener ("same": the report
		// listener); APITokenFile its bearer token, required unless the
		// API listens on loopback.
		APIListen    string `yaml:"api_listen"`
		APITokenFile string `yaml:"api_token_file"`
		// RateLimit is the POSTs per minute per client address (IPv6:
		// per /64), RateBurst the POSTs at once; 0 means the defaults,
		// a negative RateLimit turns limiting off.
		RateLimit float64 `yaml:"rate_limit"`
		RateBurst int     `yaml:"rate_burst"`
	} `yaml:"serve"`
	// Send is the sending side: `mailsts tlsrpt collect` (config_send.go).
	Send SendConfig `yaml:"send"`
	// Dashboard is the web dashboard of `mailsts serve`
	// (config_dashboard.go).
	Dashboard DashboardConfig `yaml:"dashboard"`
	// Publish is the hosted MTA-STS policies (config_publish.go).
	Publish PublishConfig `yaml:"publish"`
	// Delivery is how the reports this site sends are delivered.
	Delivery DeliveryConfig `yaml:"delivery"`
}

// LoadConfig reads the YAML file at path; unknown keys are errors. An
// empty path gives the zero Config (every field is optional).
func LoadConfig(path string) (*Config, error) {
	c := &Config{}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
