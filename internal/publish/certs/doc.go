// Package certs obtains and renews the certificates of MTA-STS policy hosts
// (mta-sts.<domain>) with ACME through github.com/caddyserver/certmagic, and
// decides which names may get one on demand.
//
// A [Manager] wraps one certmagic configuration: [Manager.Manage] obtains
// certificates for the hosted domains' policy hosts up front,
// [Manager.TLSConfig] / [Manager.GetCertificate] serve them (and answer
// TLS-ALPN-01 challenges), [Manager.HTTPHandler] answers HTTP-01 challenges
// in front of the plain-HTTP handler, and [Manager.Status] reports the
// certificate currently served for a name.
//
// # Delegated domains
//
// RFC 8461 §8.2 lets a domain owner delegate its policy to a provider with
// two CNAMEs: mta-sts.<domain> to the provider's policy host and
// _mta-sts.<domain> to the provider's _mta-sts name. With [Delegation]
// configured, a TLS handshake for mta-sts.<domain> that is not hosted here
// starts on-demand issuance only after [Manager.Decide] has seen, through
// the dnsresolve layer, both halves of the delegation:
//
//   - mta-sts.<domain> is a CNAME (chain) ending at Delegation.Host, or has
//     A/AAAA records that are all among Delegation.Addresses;
//   - _mta-sts.<domain> is a CNAME (chain) ending at Delegation.STSName.
//
// Anything else is refused with a logged reason and a sentinel error
// (ErrNotPolicyHost, ErrNotDelegated, ErrDNS, ErrRateLimited). Each name
// gets at most Delegation.Attempts decisions per Delegation.Window, counted
// before any DNS query, so a client repeating handshakes for a name cannot
// make us query DNS, or the CA, faster than that.
//
// # Storage
//
// Certificates, keys and ACME accounts live in a certmagic.Storage: a
// directory on disk by default, or [PostgresStorage] / [RedisStorage] when
// several instances serve the same domains; both implement certmagic's
// distributed lock (a lease renewed while held, taken over once stale).
package certs
