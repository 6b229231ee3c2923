// Package testnet is a fake Internet on loopback for testing MTA-STS
// (RFC 8461), SMTP TLS Reporting (RFC 8460) and DANE (RFC 7672) clients: an
// authoritative DNS server, HTTPS policy hosts and SMTP MX hosts, all driven
// by a [Scenario] written in YAML or Go, with certificates from a throw-away
// [CA].
//
// A test starts a network, points its resolver at [Net.DNSAddr], trusts
// [Net.RootCAs] and dials policy hosts on [Net.HTTPSPort] and MX hosts on
// [Net.SMTPPort] at the addresses the DNS server hands out:
//
//	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
//	if err != nil { … }
//	defer n.Close()
//	// _mta-sts.enforce.example TXT, mta-sts.enforce.example A 127.0.0.1,
//	// enforce.example MX mx1.enforce.example (A 127.x.y.2), …
//
// Every MX host gets its own address in [Options.MXPrefix] (a random
// 127.x.y.0/24 by default) and all of them listen on the same port, so a
// client connects to "<A record of the MX>:<SMTPPort>". Policy hosts share
// one HTTPS listener and pick their certificate by SNI. [Net.Set] and
// [Net.Remove] change a domain while the network serves, for tests of
// policy updates and caching.
//
// Client hosts ([ClientHost], a domain's "clients") serve the RFC 8314
// mail-client endpoints: submission, IMAP and POP3, each with implicit TLS
// and with STARTTLS, on their own address like MX hosts and on ports picked
// at Start ([Net.ClientPort]; "mailsts testnet" prints them as
// --client-ports for "mailsts check --clients").
//
// Policies are raw text here: this package does not parse them, so it can
// serve every broken policy a sender must reject.
//
// Conformance of the simulated servers, with checklist IDs:
//   - STS-FETCH-2, STS-CERT-2/3: certificates are good, expired,
//     not-yet-valid, for the wrong name, self-signed or CN-only (no SAN).
//   - STS-FETCH-4/5/8: scripted status codes, Location headers, Delay,
//     Drip (a body trickled over time) and PadTo (bodies above 64 KiB).
//   - STS-FETCH-13: policy hosts choose the certificate by SNI, and an
//     unknown or missing SNI gets a certificate for [FallbackName].
//   - STS-FETCH-14, STS-CERT-7: MaxTLS simulates servers stuck at TLS 1.0
//     or 1.1.
//   - STS-CERT-1/6: MX hosts may hide STARTTLS, abort the handshake, hang
//     or refuse connections; without SNI they still present their own
//     certificate.
//   - STS-PUB-*: the default scenario's good domains publish as RFC 8461
//     §3 and §8 ask (text/plain, 200, no redirect, small bodies).
//   - DANE-6/7: TLSA records "3 1 1" (DANE-EE) and "2 0 1" (DANE-TA, the
//     CA in the served chain) and the DNSSEC AD bit for Secure domains.
//   - RFC 1035/2308: NXDOMAIN and NODATA are kept apart, with an SOA in
//     the authority section; empty non-terminals exist.
//   - RFC 6604: the RCODE of a CNAME chain describes its last name.
//   - RFC 7505: null MX.
//   - RFC 3207 §4.2: state learned before STARTTLS is discarded.
//   - TLS8314-1/2/3: client hosts greet, advertise and run STARTTLS (STLS
//     for POP3), or start TLS at once on the implicit-TLS services; each
//     endpoint has its own certificate kind and may strip STARTTLS, cap
//     the TLS version or refuse connections. Lines are bounded and a
//     session of errors is closed.
//   - RFC 6186 (with RFC 8314 §5.1's _submissions): a client host with
//     SRV publishes _submissions._tcp, _submission._tcp, _imaps._tcp,
//     _imap._tcp, _pop3s._tcp and _pop3._tcp at its domain with the
//     testnet's ports, priority and weight; a service may publish the
//     target "." (not offered) or nothing.
//   - Draft forms still in the wild: raw records (Domain.Records) for
//     _smtp_sts and _smtp-tlsrpt, and PolicyHost.JSONBody served at
//     /.well-known/mta-sts.json, as the early MTA-STS drafts had it.
//
// DNS faults ([Fault]) break single names: SERVFAIL, REFUSED, NXDOMAIN,
// NODATA, no reply at all, or a truncated UDP reply that forces a retry over
// TCP.
package testnet
