//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postfixInstance is a throw-away Postfix: its own config_directory,
// queue_directory, data_directory and log file under one temporary
// directory, no smtpd (mail comes in through sendmail and pickup), no local
// delivery, and the TLS policy table given to startPostfix.
type postfixInstance struct {
	dir      string // root of everything below
	conf     string // config_directory
	maillog  string
	postfix  string // paths of the Postfix commands
	queue    string
	sendmail string
}

// masterCF lists the services a sending-only Postfix needs, none chrooted
// (a chroot would need copies of resolv.conf and the CA file inside the
// queue directory) and no smtpd listener.
const masterCF = `# mailsts e2e: sending only, nothing chrooted, no smtpd.
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// startPostfix configures and starts a Postfix instance that asks the
// socketmap server at policyAddr for TLS policy and trusts caFile; extra
// main.cf settings (name=value) override the defaults. It is stopped and
// removed when the test ends.
func startPostfix(t *testing.T, ctx context.Context, name, policyAddr, caFile string, extra ...string) *postfixInstance {
	t.Helper()
	// Not t.TempDir: the postfix user must be able to reach the queue, so
	// every directory on the path needs o+x.
	dir, err := os.MkdirTemp("", "mailsts-e2e-postfix-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &postfixInstance{
		dir:      dir,
		conf:     filepath.Join(dir, "etc"),
		maillog:  filepath.Join(dir, "log", "maillog"),
		postfix:  mustTool(t, "postfix"),
		queue:    mustTool(t, "postqueue"),
		sendmail: mustTool(t, "sendmail"),
	}
	for _, d := range []string{"etc", "spool", "data", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// data_directory must belong to mail_owner (master.lock, caches).
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("Postfix's mail_owner: %v", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(masterCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	settings := []string{
		"compatibility_level=3.6",
		"queue_directory=" + filepath.Join(dir, "spool"),
		"data_directory=" + filepath.Join(dir, "data"),
		"maillog_file=" + p.maillog,
		"maillog_file_prefixes=" + dir,
		"myhostname=sender.mailsts.test",
		"mydomain=mailsts.test",
		"myorigin=$myhostname",
		// Nothing is local and nothing is relayed: every recipient goes
		// to its domain's MX hosts, found in the testnet DNS.
		"mydestination=",
		"relayhost=",
		"local_recipient_maps=",
		"alias_maps=",
		"alias_database=",
		"inet_interfaces=loopback-only",
		"inet_protocols=ipv4",
		"mynetworks=127.0.0.0/8",
		"smtp_host_lookup=dns",
		// DNSSEC-aware lookups, so that a dane or dane-only answer from
		// the policy daemon makes Postfix look up and check TLSA records
		// itself (RFC 7672); without them Postfix defers such mail with
		// "dane-only configured with dnssec lookups disabled". Postfix
		// sets RES_TRUSTAD on these queries, so glibc passes the AD bit
		// of the testnet server through without "options trust-ad" in
		// resolv.conf. No DNSSEC probe: its default query (NS of the
		// root) gets no AD bit from the testnet, and the probe only logs
		// "DNSSEC validation may be unavailable".
		"smtp_dns_support_level=dnssec",
		"dnssec_probe=",
		// The policy daemon under test decides; without an answer
		// Postfix falls back to opportunistic TLS, as in production.
		"smtp_tls_security_level=may",
		"smtp_tls_policy_maps=socketmap:inet:" + policyAddr + ":postfix",
		"smtp_tls_CAfile=" + caFile,
		"smtp_tls_loglevel=1",
		"smtp_tls_session_cache_database=",
		"smtputf8_enable=no",
		// Short timers so that the test sees deferrals and retries fast.
		"queue_run_delay=2s",
		"minimal_backoff_time=2s",
		"maximal_backoff_time=4s",
		"smtp_connect_timeout=5s",
		"smtp_helo_timeout=10s",
		"smtp_starttls_timeout=10s",
		"maximal_queue_lifetime=1h",
		"bounce_queue_lifetime=1h",
	}
	settings = append(settings, extra...)
	run(t, ctx, mustTool(t, "postconf"), append([]string{"-c", p.conf, "-e"}, settings...)...)
	run(t, ctx, p.postfix, "-c", p.conf, "start")
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop stops the instance and waits, bounded, for the master to exit.
func (p *postfixInstance) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, p.postfix, "-c", p.conf, "stop").CombinedOutput(); err != nil {
		t.Logf("postfix stop: %v\n%s", err, out)
		_, _ = exec.CommandContext(ctx, p.postfix, "-c", p.conf, "abort").CombinedOutput()
	}
	// postfix stop returns once the master is signalled; its children may
	// still hold the queue for a moment.
	err := poll(ctx, 20*time.Second, 100*time.Millisecond, func() error {
		out, err := exec.CommandContext(ctx, p.postfix, "-c", p.conf, "status").CombinedOutput()
		if err == nil {
			return fmt.Errorf("still running: %s", bytes.TrimSpace(out))
		}
		return nil
	})
	if err != nil {
		t.Errorf("Postfix in %s did not stop: %v", p.dir, err)
	}
	if t.Failed() {
		if b, err := os.ReadFile(p.maillog); err == nil {
			t.Logf("Postfix log %s:\n%s", p.maillog, b)
		}
	}
}

// send injects a message through sendmail (postdrop, then pickup).
func (p *postfixInstance) send(t *testing.T, ctx context.Context, rcpt, token string) {
	t.Helper()
	msg := fmt.Sprintf("From: <e2e@sender.mailsts.test>\r\nTo: <%s>\r\nSubject: mailsts e2e %s\r\nMessage-ID: <%s@sender.mailsts.test>\r\n\r\n%s\r\n", rcpt, token, token, token)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.sendmail, "-C", p.conf, "-f", "e2e@sender.mailsts.test", "-i", "--", rcpt)
	cmd.Stdin = strings.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail to %s: %v\n%s", rcpt, err, out)
	}
}

// queueEntry is one message in `postqueue -j` output (postqueue(1)).
type queueEntry struct {
	QueueName  string `json:"queue_name"`
	QueueID    string `json:"queue_id"`
	Recipients []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// queued returns the queue as `postqueue -j` shows it.
func (p *postfixInstance) queued(ctx context.Context) ([]queueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.queue, "-c", p.conf, "-j").Output()
	if err != nil {
		return nil, fmt.Errorf("postqueue -j: %w", err)
	}
	var entries []queueEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e queueEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("postqueue -j line %q: %w", sc.Text(), err)
		}
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// deferredReason returns the delay reason of rcpt when its message is in
// the deferred queue, and whether it is there.
func deferredReason(entries []queueEntry, rcpt string) (string, bool) {
	for _, e := range entries {
		for _, r := range e.Recipients {
			if strings.EqualFold(r.Address, rcpt) && e.QueueName == "deferred" {
				return r.DelayReason, true
			}
		}
	}
	return "", false
}

// logLines returns the lines of the Postfix log containing substr.
func (p *postfixInstance) logLines(substr string) []string {
	lines, _ := grepFile(p.maillog, func(line string) bool { return strings.Contains(line, substr) })
	return lines
}

// logMatches returns the lines of the Postfix log that re matches.
func (p *postfixInstance) logMatches(re *regexp.Regexp) []string {
	lines, _ := grepFile(p.maillog, re.MatchString)
	return lines
}
