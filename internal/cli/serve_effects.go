package cli

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/checker"
	"github.com/mailsts/mailsts/internal/metrics"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/internal/publish/dnsupdate"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

// Effects on the world happen in one loop of the policy host, in the
// order RFC 8461 §8.1 asks: serve the policy, get its certificate, then
// announce its id in DNS. A round runs at start, after every reload, and
// again every effectsRetry while something is left to do.

// effectsRetry is how soon a failed round (a certificate not obtained)
// is tried again.
const effectsRetry = 5 * time.Minute

// prepareACME opens the plain-HTTP challenge listener (when HTTP-01 is
// on) and builds the certificate manager for the policy host listening
// on ln.
func (pr *publishRun) prepareACME(ctx context.Context, sr *serveRun, pc reports.PublishConfig, dns dnsresolve.Resolver, ln net.Listener) error {
	host, tlsPort := listenHostPort(ln)
	ports := certPorts{host: host, tlsPort: tlsPort}
	var httpLn net.Listener
	if pc.ACME.HTTP01On() {
		var err error
		if httpLn, err = net.Listen("tcp", cmpOr(pc.HTTPListen, ":80")); err != nil {
			return fmt.Errorf("http_listen: %w", err)
		}
		_, ports.httpPort = listenHostPort(httpLn)
	}
	m, closeFn, err := newCertManager(ctx, pc, dns, ports, pr.log)
	if err != nil {
		if httpLn != nil {
			httpLn.Close()
		}
		return err
	}
	pr.certs, pr.certsClose = m, closeFn
	if httpLn != nil {
		sr.servers = append(sr.servers, servedListener{name: "ACME HTTP-01", srv: newHTTPServer(challengeHandler(m), pr.log), ln: httpLn})
		pr.log.Info("mailsts serve: answering ACME HTTP-01 challenges", "url", "http://"+httpLn.Addr().String()+"/.well-known/acme-challenge/")
	}
	return nil
}

// delegatedPolicyHost returns the policy host whose policy delegated
// domains are served, "" when delegation is off or that domain is not
// served now.
func (pr *publishRun) delegatedPolicyHost() string {
	pr.mu.Lock()
	dom := publish.DelegatedDomain(pr.cfg)
	set := pr.set
	pr.mu.Unlock()
	if dom == "" || set.Domain(dom) == nil {
		return ""
	}
	return "mta-sts." + dom
}

// kickEffects asks the effects loop for a round (rounds asked for while
// one runs coalesce into one).
func (pr *publishRun) kickEffects() {
	select {
	case pr.kick <- struct{}{}:
	default:
	}
}

// effects runs rounds until ctx ends, then closes effectsDone.
func (pr *publishRun) effects(ctx context.Context) {
	defer close(pr.effectsDone)
	first := true
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-pr.kick:
		case <-retry:
		}
		again := pr.effectsRound(ctx)
		if first {
			close(pr.firstRound)
			first = false
		}
		retry = nil
		if again > 0 {
			retry = time.After(again)
		}
	}
}

// effectsRound manages the certificates of the served set, then
// publishes in DNS the ids not published yet; it returns when to try
// again (0: nothing left to do).
func (pr *publishRun) effectsRound(ctx context.Context) time.Duration {
	set := pr.current()
	var again time.Duration
	if pr.certs != nil {
		hosts := policyHosts(set)
		// Manage returns once every name has a certificate (from storage,
		// or newly issued); renewals then run in the background.
		mctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err := pr.certs.Manage(mctx, hosts)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			pr.log.Error("mailsts serve: policy host certificates not obtained; retrying", "hosts", hosts, "in", effectsRetry, "error", err)
			// Without a certificate the policy is not served: nothing to
			// announce yet.
			return effectsRetry
		}
		pr.log.Info("mailsts serve: policy host certificates ready", "hosts", hosts)
	}
	if pr.announcer != nil {
		for _, d := range set.Domains {
			if ctx.Err() != nil {
				return 0
			}
			id := d.Policy().ID
			if pr.announced[d.Name] == id {
				continue
			}
			an := pr.announcer.Announce(ctx, d)
			pr.noteAnnouncement(an, time.Now())
			if an.Outcome == publish.AnnouncePublished {
				pr.announced[d.Name] = id
				continue
			}
			// The Publisher logged the reason; try again later.
			again = pr.dnsRetry
		}
	}
	return again
}

// prepareDNSUpdate builds the announcer of publish.dns_update (nothing
// without it): ids are published through the primary once the policy is
// fetched as a sender fetches it and, for enforce, once every MX passes
// the strict checks of `policy status`.
func (pr *publishRun) prepareDNSUpdate(pc reports.PublishConfig, dns dnsresolve.Resolver) error {
	u := pc.DNSUpdate
	if u == nil {
		return nil
	}
	key, err := dnsupdate.LoadKey(u.KeyFile)
	if err != nil {
		return err
	}
	roots, err := mtasts.LoadRootCAs("")
	if err != nil {
		return err
	}
	pr.announcer = &publish.Announcer{
		Records: &dnsupdate.Updater{Server: u.Server, Zone: u.Zone, Key: key, TTL: u.TTL, Logger: pr.log},
		Checker: statusChecker(&mtasts.Client{DNS: dns, RootCAs: roots, Timeout: time.Minute, UserAgent: userAgent()}, checker.DefaultSMTPPort),
		Logger:  pr.log,
	}
	if pr.registry != nil {
		m, err := metrics.NewPublishDNS(pr.registry)
		if err != nil {
			return err
		}
		pr.announcer.Observer = m
	}
	pr.announced = map[string]string{}
	pr.dnsRetry = u.Retry
	if pr.dnsRetry <= 0 {
		pr.dnsRetry = effectsRetry
	}
	return nil
}

// sameEffects reports whether a and b agree on the settings a reload
// does not apply (listeners, certificates, DNS publishing).
func sameEffects(a, b reports.PublishConfig) bool {
	return a.Listen == b.Listen && a.HTTPListen == b.HTTPListen && a.PlainHTTP == b.PlainHTTP &&
		reflect.DeepEqual(a.ACME, b.ACME) && a.Certs == b.Certs && reflect.DeepEqual(a.Delegation, b.Delegation) &&
		reflect.DeepEqual(a.DNSUpdate, b.DNSUpdate)
}
