// Package dnsupdatetest runs a real DNS primary for tests of DNS UPDATE
// (RFC 2136) clients: BIND 9's named in the foreground on a loopback
// port, serving one zone from a temporary directory, with updates
// allowed for one TSIG key written as a BIND key file. Tests that use it
// are skipped when named is not installed (Debian package bind9), and
// fail instead under MAILSTS_REQUIRE_E2E=1. Imported by tests only.
package dnsupdatetest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsts/mailsts/internal/tailbuf"
)

// Primary is a BIND 9 named serving one zone on a loopback port, with
// updates allowed for one TSIG key.
type Primary struct {
	// Addr is the server's 127.0.0.1:port (UDP and TCP).
	Addr string
	// Zone is the zone served.
	Zone string
	// KeyFile is the TSIG key in BIND's format; KeyName, KeyAlgorithm
	// and KeySecret are its parts.
	KeyFile                          string
	KeyName, KeyAlgorithm, KeySecret string
	// Log holds the tail of named's output.
	Log *tailbuf.Buffer
}

// Options configure Start.
type Options struct {
	// Zone is the zone to serve (default "example.test").
	Zone string
	// Records are zone-file lines added after the SOA and NS records,
	// relative to the zone (for example `_mta-sts IN TXT "v=STSv1; id=old1;"`).
	Records string
}

// findNamed returns the path of named, or skips the test (fails it under
// MAILSTS_REQUIRE_E2E=1) when BIND is not installed.
func findNamed(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("named"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/named"); err == nil {
		return "/usr/sbin/named"
	}
	msg := "named not found: install the Debian package bind9 to run the DNS UPDATE tests against a real primary"
	if os.Getenv("MAILSTS_REQUIRE_E2E") == "1" {
		t.Fatal(msg + " (required: MAILSTS_REQUIRE_E2E=1)")
	}
	t.Skip(msg)
	return ""
}

// freePort returns a loopback port free for both UDP and TCP right now.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		tl.Close()
		if err == nil {
			ul.Close()
			return port
		}
	}
	t.Fatal("no free loopback port for both UDP and TCP")
	return 0
}

// Start runs named in the foreground as the current user, with its
// configuration, zone, journal and key in a temporary directory; the
// process is killed at cleanup.
func Start(t testing.TB, o Options) *Primary {
	t.Helper()
	named := findNamed(t)
	testZone := o.Zone
	if testZone == "" {
		testZone = "example.test"
	}
	dir := t.TempDir()
	// named may run as an unprivileged user that must read and write here.
	os.Chmod(dir, 0o777)
	var secret [32]byte
	rand.Read(secret[:])
	p := &Primary{Zone: testZone, KeyName: "mailsts-test", KeyAlgorithm: "hmac-sha256", KeySecret: base64.StdEncoding.EncodeToString(secret[:])}
	p.KeyFile = filepath.Join(dir, "mailsts-test.key")
	keyText := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", p.KeyName, p.KeyAlgorithm, p.KeySecret)
	zoneText := "$TTL 300\n@\tIN SOA ns1 hostmaster 1 3600 600 86400 300\n@\tIN NS ns1\nns1\tIN A 127.0.0.1\n" + o.Records + "\n"
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	write("mailsts-test.key", keyText)
	write(testZone+".zone", zoneText)
	var lastErr error
	for attempt := range 3 {
		port := freePort(t)
		conf := fmt.Sprintf(`options {
	directory %[1]q;
	pid-file none;
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	session-keyfile %[8]q;
	managed-keys-directory %[1]q;
};
controls { };
include %[3]q;
zone %[4]q {
	type primary;
	file %[5]q;
	journal %[6]q;
	allow-update { key %[7]q; };
};
`, dir, port, p.KeyFile, testZone, filepath.Join(dir, testZone+".zone"), filepath.Join(dir, testZone+".jnl"), p.KeyName, filepath.Join(dir, "session.key"))
		write("named.conf", conf)
		p.Log = tailbuf.New(16 << 10)
		// -g: foreground, logs to stderr; -n 1: one worker thread.
		cmd := exec.Command(named, "-g", "-4", "-n", "1", "-c", filepath.Join(dir, "named.conf"))
		cmd.Stdout, cmd.Stderr = p.Log, p.Log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start named: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = p.waitReady(exited); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return p
		}
		cmd.Process.Kill()
		<-exited
		t.Logf("named attempt %d: %v\n%s", attempt+1, lastErr, p.Log)
	}
	t.Fatalf("named did not start: %v", lastErr)
	return nil
}

// waitReady polls the SOA over TCP until named answers (bounded).
func (p *Primary) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("named exited: %v", err)
		default:
		}
		if _, err := p.Serial(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s in 20 s", p.Addr)
}

// Query asks the primary over TCP.
func (p *Primary) Query(name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, p.Addr)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

// Serial returns the zone's SOA serial (it changes with every update
// applied).
func (p *Primary) Serial() (uint32, error) {
	r, err := p.Query(p.Zone, dns.TypeSOA)
	if err != nil {
		return 0, err
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("no SOA in answer")
}

// TXT returns the TXT records at name, each joined as senders join them.
func (p *Primary) TXT(t testing.TB, name string) []string {
	t.Helper()
	r, err := p.Query(name, dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}
