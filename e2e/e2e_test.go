//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

// mailCase is one message sent through Postfix and what must become of it.
// Domains and MX hosts are those of testnet's default scenario.
type mailCase struct {
	id     string // checklist IDs
	domain string
	mx     []string // the domain's MX hosts
	// deliver: the message must reach one of mx, over TLS unless clear.
	deliver bool
	// clear: the message must arrive without TLS (control run only).
	clear bool
	// sni: the MX host must have seen its own name as SNI (servername=hostname).
	sni bool
	// logLine must appear in the Postfix log with the MX host name after it.
	logLine string
	// reason matches the delay reason of a message that must stay deferred.
	reason *regexp.Regexp
	// logRE, when set, must match a whole line of the Postfix log.
	logRE *regexp.Regexp
	// answer, when set, is how the policy daemon's socketmap reply for
	// the domain must begin: its status word, a space and the data.
	answer string
	// observe: whatever becomes of the message (delivered or deferred)
	// is logged, not asserted.
	observe bool
}

// mtaSTSCases are what an MTA-STS policy daemon must achieve.
var mtaSTSCases = []mailCase{
	{
		id: "PFX-STS STS-CERT-3", domain: "enforce.example",
		mx:      []string{"mx1.enforce.example", "mx2.enforce.example"},
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
	},
	{
		id: "STS-CERT-1", domain: "nostarttls.example", mx: []string{"mx1.nostarttls.example"},
		reason: regexp.MustCompile(`TLS is required, but was not offered by host mx1\.nostarttls\.example`),
	},
	{
		id: "STS-CERT-3", domain: "badmxcert.example", mx: []string{"mx1.badmxcert.example"},
		reason: regexp.MustCompile(`Server certificate not verified`),
	},
	{
		// The policy lists mail.other.example only: Postfix's secure
		// level then rejects the MX certificate, whatever a daemon does
		// to re-check the policy first.
		id: "STS-MX", domain: "mx-mismatch.example", mx: []string{"mx1.mx-mismatch.example"},
		reason: regexp.MustCompile(`Server certificate not verified|TLS policy`),
	},
	{
		id: "STS-CERT-2 testing", domain: "testing-badcert.example", mx: []string{"mx1.testing-badcert.example"},
		deliver: true, logLine: "Untrusted TLS connection established to ",
	},
	{
		id: "PFX-POL NOTFOUND", domain: "nosts.example", mx: []string{"mx1.nosts.example"},
		deliver: true,
	},
}

// controlCases are what happens without any policy: the MX without
// STARTTLS gets the message in clear text and the one with a wrong-name
// certificate gets it over unverified TLS. This is the attack MTA-STS
// exists to stop; if it did not happen here, the other runs would prove
// nothing.
var controlCases = []mailCase{
	{
		id: "control STS-CERT-1", domain: "nostarttls.example", mx: []string{"mx1.nostarttls.example"},
		deliver: true, clear: true,
	},
	{
		id: "control STS-CERT-3", domain: "badmxcert.example", mx: []string{"mx1.badmxcert.example"},
		// At level may the chain is checked (it is the test CA's) but
		// not the name, hence "Trusted", not "Verified".
		deliver: true, logLine: "Trusted TLS connection established to ",
	},
}

// TestPostfix sends mail through a real Postfix whose TLS policy comes from
// a policy daemon, on the testnet, inside a network namespace. See the
// package documentation.
func TestPostfix(t *testing.T) {
	if ns := os.Getenv(envInside); ns != "" {
		testInside(t, ns)
		return
	}
	t.Parallel()
	requirePrereqs(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	bin := buildMailsts(t, ctx, t.TempDir())
	ns := newNamespace(t, ctx)
	reexecInside(t, ctx, ns, "TestPostfix", envBinary+"="+bin)
}

// testInside is TestPostfix inside the namespace: the fake Internet on the
// well-known ports, then one policy daemon and one Postfix per subtest.
func testInside(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	t.Cleanup(cancel) // not defer: the parallel subtests outlive this function
	n, err := testnet.Start(ctx, scenario(), testnet.Options{
		IP:        netip.MustParseAddr("127.0.0.1"),
		DNSPort:   53,
		HTTPSPort: 443,
		SMTPPort:  25,
	})
	if err != nil {
		t.Fatalf("testnet in namespace %s: %v", ns, err)
	}
	t.Cleanup(n.Close)
	t.Logf("namespace %s: DNS %s, policy hosts on :%d, MX hosts in %s port %d",
		ns, n.DNSAddr(), n.HTTPSPort(), n.MXPrefix(), n.SMTPPort())
	for _, d := range daemons {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			p := d.start(t, n, d.addr)
			waitReady(t, ctx, d, p)
			pf := startPostfix(t, ctx, d.name, d.addr, n.CAFile())
			runMailCases(t, ctx, n, pf, d)
		})
	}
}

// runMailCases sends one message per case, waits (bounded) until every one
// is delivered or deferred, then checks each against its expectations.
func runMailCases(t *testing.T, ctx context.Context, n *testnet.Net, pf *postfixInstance, d policyDaemon) {
	daemon, mailCases := d.name, d.cases
	var tok [4]byte
	if _, err := rand.Read(tok[:]); err != nil {
		t.Fatal(err)
	}
	rcpt := func(c mailCase) string {
		return daemon + "-" + hex.EncodeToString(tok[:]) + "@" + c.domain
	}
	for _, c := range mailCases {
		pf.send(t, ctx, rcpt(c), "token-"+daemon+"-"+c.domain)
	}

	// received returns what the case's MX hosts accepted for its
	// recipient, with the MX host name.
	type arrival struct {
		mx  string
		msg testnet.Message
	}
	received := func(c mailCase) []arrival {
		var out []arrival
		for _, mx := range c.mx {
			for _, m := range n.Received(mx) {
				if slices.ContainsFunc(m.To, func(to string) bool { return strings.EqualFold(to, rcpt(c)) }) {
					out = append(out, arrival{mx, m})
				}
			}
		}
		return out
	}
	settled := func(c mailCase, q []queueEntry) error {
		if c.observe {
			if len(received(c)) == 0 {
				if reason, ok := deferredReason(q, rcpt(c)); !ok || reason == "" {
					return fmt.Errorf("%s: neither delivered nor deferred yet", c.domain)
				}
			}
			return nil
		}
		if c.deliver {
			if len(received(c)) == 0 {
				return fmt.Errorf("%s: not delivered yet", c.domain)
			}
			return nil
		}
		reason, ok := deferredReason(q, rcpt(c))
		if !ok || reason == "" {
			return fmt.Errorf("%s: not deferred yet", c.domain)
		}
		return nil
	}
	err := poll(ctx, 90*time.Second, 250*time.Millisecond, func() error {
		q, err := pf.queued(ctx)
		if err != nil {
			return err
		}
		var pending []string
		for _, c := range mailCases {
			if err := settled(c, q); err != nil {
				pending = append(pending, err.Error())
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("%s", strings.Join(pending, "; "))
		}
		return nil
	})
	if err != nil {
		q, _ := pf.queued(ctx)
		t.Fatalf("mail did not settle: %v\nqueue: %+v", err, q)
	}

	q, err := pf.queued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range mailCases {
		t.Run(c.domain, func(t *testing.T) {
			// Not parallel: the cases share the Postfix instance and
			// only read.
			got := received(c)
			if c.logRE != nil && len(pf.logMatches(c.logRE)) == 0 {
				t.Errorf("%s: Postfix log has no line matching %q", c.id, c.logRE)
			}
			if c.answer != "" || c.observe {
				reply := lookupPolicy(t, ctx, d.addr, c.domain)
				if c.observe {
					t.Logf("%s: %s answered %q", c.id, daemon, reply)
				} else if !strings.HasPrefix(reply, c.answer) {
					t.Errorf("%s: %s answered %q, want %q…", c.id, daemon, reply, c.answer)
				}
			}
			if c.observe {
				for _, a := range got {
					t.Logf("%s: delivered to %s (TLS %v, SNI %q)", c.id, a.mx, a.msg.TLS, a.msg.ServerName)
				}
				if reason, ok := deferredReason(q, rcpt(c)); ok {
					t.Logf("%s: deferred: %s", c.id, reason)
				}
				return
			}
			if !c.deliver {
				// Nothing at all, hence nothing in clear text.
				for _, a := range got {
					t.Errorf("%s: %s accepted the message (TLS %v), want none", c.id, a.mx, a.msg.TLS)
				}
				reason, _ := deferredReason(q, rcpt(c))
				if !c.reason.MatchString(reason) {
					t.Errorf("%s: deferred with %q, want a reason matching %q", c.id, reason, c.reason)
				}
				return
			}
			if reason, ok := deferredReason(q, rcpt(c)); ok {
				t.Errorf("%s: still deferred (%q) after delivery", c.id, reason)
			}
			for _, a := range got {
				if a.msg.TLS == c.clear {
					t.Errorf("%s: %s received the message with TLS %v, want %v", c.id, a.mx, a.msg.TLS, !c.clear)
				}
				token := "token-" + daemon + "-" + c.domain
				if !strings.Contains(string(a.msg.Data), token) {
					t.Errorf("%s: %s received a message without %q", c.id, a.mx, token)
				}
				if c.sni && a.msg.ServerName != a.mx {
					t.Errorf("%s: %s saw SNI %q, want its own name", c.id, a.mx, a.msg.ServerName)
				}
				if c.logLine != "" && len(pf.logLines(c.logLine+a.mx)) == 0 {
					t.Errorf("%s: Postfix log has no %q", c.id, c.logLine+a.mx)
				}
			}
		})
	}
}
