package publish

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
)

// The acme, certs, delegation, http_listen and dns_update keys are
// checked on load, one clear line per problem.
func TestCheckEffects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "tsig.key")
	os.WriteFile(key, []byte("key \"mailsts\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0\";\n};\n"), 0o600)
	badKey := filepath.Join(dir, "bad.key")
	os.WriteFile(badKey, []byte("key mailsts"), 0o600)
	off := false
	hosted := map[string]bool{"example.org": true}
	acme := func() *reports.PublishACME { return &reports.PublishACME{Email: "hostmaster@example.org"} }
	good := []reports.PublishConfig{
		{},
		{ACME: acme()},
		{ACME: acme(), HTTPListen: "127.0.0.1:8080", Certs: reports.PublishCerts{Storage: "postgres", Postgres: "postgres://db/x"}},
		{ACME: acme(), Delegation: &reports.PublishDelegation{Host: "mta-sts.example.org", Addresses: []string{"192.0.2.1"}}},
		{DNSUpdate: &reports.PublishDNSUpdate{Server: "127.0.0.1:53", Zone: "example.org", KeyFile: key}},
	}
	for i, c := range good {
		if p := checkEffects(c, hosted); len(p) != 0 {
			t.Errorf("good %d: %v", i, p)
		}
	}
	bad := map[string]reports.PublishConfig{
		"certs: only used with acme":                  {Certs: reports.PublishCerts{Storage: "redis"}},
		"delegation: needs acme":                      {Delegation: &reports.PublishDelegation{Host: "mta-sts.example.org"}},
		"acme: excludes plain_http":                   {ACME: acme(), PlainHTTP: true},
		"acme: excludes tls_cert and cert_dir":        {ACME: acme(), CertDir: dir},
		`acme.directory "http://ca/dir": want`:        {ACME: &reports.PublishACME{Directory: "http://ca/dir"}},
		"at least one challenge type must stay on":    {ACME: &reports.PublishACME{HTTP01: &off, TLSALPN01: &off}},
		"http_listen: only used with acme.http_01 on": {ACME: &reports.PublishACME{HTTP01: &off}, HTTPListen: ":80"},
		"acme.ca_file":                                {ACME: &reports.PublishACME{CAFile: filepath.Join(dir, "none.pem")}},
		`certs.storage "s3" is not file`:              {ACME: acme(), Certs: reports.PublishCerts{Storage: "s3"}},
		"certs.storage postgres needs certs.postgres": {ACME: acme(), Certs: reports.PublishCerts{Storage: "postgres"}},
		"certs.lock_lease -1s is negative":            {ACME: acme(), Certs: reports.PublishCerts{LockLease: -time.Second}},
		"delegation: needs acme.email":                {ACME: &reports.PublishACME{}, Delegation: &reports.PublishDelegation{Host: "mta-sts.example.org"}},
		"policy of other.example":                     {ACME: acme(), Delegation: &reports.PublishDelegation{Host: "mta-sts.other.example"}},
		`delegation.addresses: "x" is not`:            {ACME: acme(), Delegation: &reports.PublishDelegation{Host: "mta-sts.example.org", Addresses: []string{"x"}}},
		`dns_update.server "ns1": want`:               {DNSUpdate: &reports.PublishDNSUpdate{Server: "ns1", Zone: "example.org", KeyFile: key}},
		"dns_update.zone other.example does not hold": {DNSUpdate: &reports.PublishDNSUpdate{Server: "ns1:53", Zone: "other.example", KeyFile: key}},
		"dns_update.key_file: give":                   {DNSUpdate: &reports.PublishDNSUpdate{Server: "ns1:53", Zone: "example.org"}},
		"dns_update.key_file: dnsupdate":              {DNSUpdate: &reports.PublishDNSUpdate{Server: "ns1:53", Zone: "example.org", KeyFile: badKey}},
	}
	for want, c := range bad {
		probs := checkEffects(c, hosted)
		var lines []string
		for _, p := range probs {
			lines = append(lines, p.String())
		}
		all := strings.Join(lines, "\n")
		if !strings.Contains(all, want) {
			t.Errorf("%s: got %q", want, all)
		}
	}
}
