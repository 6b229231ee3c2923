package certs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// Delegation describes where delegated domains must point (RFC 8461 §8.2)
// and how often a name may be checked.
type Delegation struct {
	// Host is our policy host name, the target of customers'
	// mta-sts.<domain> CNAMEs (for example "mta-sts.provider.example").
	Host string
	// STSName is the target of customers' _mta-sts.<domain> CNAMEs (for
	// example "_mta-sts.provider.example"); default "_mta-sts." plus Host
	// without its first label.
	STSName string
	// Addresses are our policy host's public addresses: a customer may
	// point mta-sts.<domain> at them with A/AAAA records instead of a
	// CNAME. Every address it publishes must be one of these.
	Addresses []netip.Addr
	// Attempts decisions per name in each Window (default 3 per hour);
	// further handshakes for the name are refused without a DNS query.
	Attempts int
	Window   time.Duration
	// MaxTracked bounds the names the rate limiter remembers (default
	// 100,000); when full of names still inside their window, new names
	// are refused (hostile SNI floods cost memory, not DNS queries).
	MaxTracked int
	// Timeout bounds the DNS lookups of one decision (default 10 s).
	Timeout time.Duration
}

func (d *Delegation) normalize() (*Delegation, error) {
	c := *d
	h, err := dnsresolve.Normalize(c.Host)
	if err != nil || c.Host == "" {
		return nil, fmt.Errorf("%w: delegation host %q: %v", ErrConfig, c.Host, err)
	}
	c.Host = h
	if c.STSName == "" {
		_, parent, ok := strings.Cut(strings.TrimSuffix(h, "."), ".")
		if !ok || !strings.Contains(parent, ".") {
			return nil, fmt.Errorf("%w: delegation host %q has no parent domain for the default _mta-sts name", ErrConfig, d.Host)
		}
		c.STSName = "_mta-sts." + parent
	}
	if c.STSName, err = dnsresolve.Normalize(c.STSName); err != nil {
		return nil, fmt.Errorf("%w: delegation _mta-sts name %q: %w", ErrConfig, d.STSName, err)
	}
	c.Addresses = nil
	for _, a := range d.Addresses {
		if !a.IsValid() {
			return nil, fmt.Errorf("%w: invalid delegation address", ErrConfig)
		}
		c.Addresses = append(c.Addresses, a.Unmap())
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.Window <= 0 {
		c.Window = time.Hour
	}
	if c.MaxTracked <= 0 {
		c.MaxTracked = 100_000
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	return &c, nil
}

// Decide reports whether a certificate may be obtained (or renewed) for
// name now: nil for the names passed to Manage, and for delegated policy
// hosts whose DNS shows both halves of the delegation; otherwise an error
// wrapping ErrNotPolicyHost, ErrNotDelegated, ErrDNS or ErrRateLimited,
// also logged with the reason. certmagic calls it before every on-demand
// issuance; it is exported for status pages and tests.
func (m *Manager) Decide(ctx context.Context, name string) error {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if m.isManaged(n) {
		return nil
	}
	err := m.decide(ctx, n)
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "certificate refused", slog.String("name", n), slog.String("reason", err.Error()))
	} else {
		m.log.LogAttrs(ctx, slog.LevelInfo, "certificate allowed for delegated domain", slog.String("name", n))
	}
	return err
}

func (m *Manager) decide(ctx context.Context, name string) error {
	if m.deleg == nil {
		return fmt.Errorf("%w: %s is not hosted here and delegation is off", ErrNotDelegated, name)
	}
	domain, ok := strings.CutPrefix(name, "mta-sts.")
	if !ok || domain == "" {
		return fmt.Errorf("%w: %q", ErrNotPolicyHost, name)
	}
	if _, err := dnsresolve.Normalize(domain); err != nil || !strings.Contains(domain, ".") {
		return fmt.Errorf("%w: %q: bad domain", ErrNotPolicyHost, name)
	}
	if !m.limit.allow(name, m.now()) {
		return fmt.Errorf("%w: %s: more than %d checks in %v", ErrRateLimited, name, m.deleg.Attempts, m.deleg.Window)
	}
	ctx, cancel := context.WithTimeout(ctx, m.deleg.Timeout)
	defer cancel()
	d := m.deleg
	// RFC 8461 §8.2: mta-sts.<domain> must reach our policy host.
	addrs, ans, err := m.res.LookupIP(ctx, name)
	switch {
	case errors.Is(err, dnsresolve.ErrNotFound):
		return fmt.Errorf("%w: %s has no address record or CNAME", ErrNotDelegated, name)
	case err != nil:
		return fmt.Errorf("%w: %s: %w", ErrDNS, name, err)
	}
	if !sameName(ans.CanonicalName, d.Host) {
		if len(d.Addresses) == 0 {
			return fmt.Errorf("%w: %s resolves to %s, not a CNAME to %s", ErrNotDelegated, name, strings.TrimSuffix(ans.CanonicalName, "."), strings.TrimSuffix(d.Host, "."))
		}
		for _, a := range addrs {
			if !slices.Contains(d.Addresses, a.Unmap()) {
				return fmt.Errorf("%w: %s has address %s, which is not ours, and is no CNAME to %s", ErrNotDelegated, name, a, strings.TrimSuffix(d.Host, "."))
			}
		}
	}
	// RFC 8461 §8.2: _mta-sts.<domain> must be a CNAME to our _mta-sts
	// name, so that the id senders see follows the policy we serve.
	sts := "_mta-sts." + domain
	_, ans, err = m.res.LookupTXT(ctx, sts)
	switch {
	case errors.Is(err, dnsresolve.ErrNotFound) && sameName(ans.CanonicalName, d.STSName):
		// The CNAME is in place; our own TXT record may simply not be
		// published yet (it waits for the certificate).
		return nil
	case errors.Is(err, dnsresolve.ErrNotFound):
		return fmt.Errorf("%w: %s does not exist (needs a CNAME to %s)", ErrNotDelegated, sts, strings.TrimSuffix(d.STSName, "."))
	case err != nil:
		return fmt.Errorf("%w: %s: %w", ErrDNS, sts, err)
	}
	if !sameName(ans.CanonicalName, d.STSName) {
		return fmt.Errorf("%w: %s is not a CNAME to %s", ErrNotDelegated, sts, strings.TrimSuffix(d.STSName, "."))
	}
	return nil
}

func sameName(a, b string) bool {
	return a != "" && strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// limiter allows each name a number of events per window.
type limiter struct {
	max    int
	window time.Duration
	cap    int

	mu    sync.Mutex
	names map[string][]time.Time
}

func newLimiter(max int, window time.Duration, capacity int) *limiter {
	return &limiter{max: max, window: window, cap: capacity, names: map[string][]time.Time{}}
}

func (l *limiter) allow(name string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := l.names[name]
	keep := ev[:0]
	for _, t := range ev {
		if now.Sub(t) < l.window {
			keep = append(keep, t)
		}
	}
	if len(keep) >= l.max {
		l.names[name] = keep
		return false
	}
	if len(keep) == 0 && len(l.names) >= l.cap {
		l.prune(now)
		if _, ok := l.names[name]; !ok && len(l.names) >= l.cap {
			return false
		}
	}
	l.names[name] = append(keep, now)
	return true
}

// prune forgets names whose events are all outside the window.
func (l *limiter) prune(now time.Time) {
	for n, ev := range l.names {
		if len(ev) == 0 || now.Sub(ev[len(ev)-1]) >= l.window {
			delete(l.names, n)
		}
	}
}
