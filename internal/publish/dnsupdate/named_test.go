package dnsupdate

import (
	"context"
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

// primary is a BIND 9 named serving one zone on a loopback port, with
// updates allowed for one TSIG key.
type primary struct {
	addr    string
	zone    string
	key     Key
	keyFile string
	log     *tailbuf.Buffer
}

const testZone = "example.test"

// findNamed returns the path of named, or skips the test (fails it under
// MAILSTS_REQUIRE_E2E=1) when BIND is not installed.
func findNamed(t *testing.T) string {
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
func freePort(t *testing.T) int {
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

// startNamed runs named in the foreground as the current user, with its
// configuration, zone, journal and key in a temporary directory; the
// process is killed at cleanup.
func startNamed(t *testing.T) *primary {
	t.Helper()
	named := findNamed(t)
	dir := t.TempDir()
	// named may run as an unprivileged user that must read and write here.
	os.Chmod(dir, 0o777)
	var secret [32]byte
	rand.Read(secret[:])
	p := &primary{zone: testZone, key: Key{Name: "mailsts-test", Algorithm: "hmac-sha256", Secret: base64.StdEncoding.EncodeToString(secret[:])}}
	p.keyFile = filepath.Join(dir, "mailsts-test.key")
	keyText := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", p.key.Name, p.key.Algorithm, p.key.Secret)
	zoneText := `$TTL 300
@	IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@	IN NS ns1.example.test.
ns1	IN A 127.0.0.1
_mta-sts IN TXT "v=STSv1; id=old1;"
`
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
`, dir, port, p.keyFile, testZone, filepath.Join(dir, testZone+".zone"), filepath.Join(dir, testZone+".jnl"), p.key.Name, filepath.Join(dir, "session.key"))
		write("named.conf", conf)
		p.log = tailbuf.New(16 << 10)
		// -g: foreground, logs to stderr; -n 1: one worker thread.
		cmd := exec.Command(named, "-g", "-4", "-n", "1", "-c", filepath.Join(dir, "named.conf"))
		cmd.Stdout, cmd.Stderr = p.log, p.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start named: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p.addr = fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = p.waitReady(exited); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return p
		}
		cmd.Process.Kill()
		<-exited
		t.Logf("named attempt %d: %v\n%s", attempt+1, lastErr, p.log)
	}
	t.Fatalf("named did not start: %v", lastErr)
	return nil
}

// waitReady polls the SOA over TCP until named answers (bounded).
func (p *primary) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("named exited: %v", err)
		default:
		}
		if _, err := p.serial(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s in 20 s", p.addr)
}

func (p *primary) query(name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, p.addr)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

// serial returns the zone's SOA serial.
func (p *primary) serial() (uint32, error) {
	r, err := p.query(p.zone, dns.TypeSOA)
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

// txt returns the TXT records at name, each joined as senders join them.
func (p *primary) txt(t *testing.T, name string) []string {
	t.Helper()
	r, err := p.query(name, dns.TypeTXT)
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

func (p *primary) updater(t *testing.T) *Updater {
	t.Helper()
	k, err := LoadKey(p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &Updater{Server: p.addr, Zone: p.zone, Key: k, TTL: 60}
}

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
