// Package e2e is the end-to-end test of mailsts against a real Postfix, the
// threat model of MTA-STS (RFC 8461) played out on a fake Internet. It holds
// no library code; run it as root with
//
//	go test -tags e2e ./e2e/
//
// The test creates a network namespace with only a loopback interface, then
// runs itself again inside it (ip netns exec). There it starts
// internal/testnet with DNS on 127.0.0.1:53, policy hosts on :443 and MX
// hosts on their own loopback addresses at port 25; `mailsts policyd` on
// 127.0.0.1:8461; and a throw-away Postfix instance (its own
// config_directory and queue_directory under a temporary directory, no
// smtpd, mail injected with sendmail -C) whose smtp_tls_policy_maps is
// socketmap:inet:127.0.0.1:8461:postfix and whose resolv.conf, bind-mounted
// by ip netns exec from /etc/netns/<name>/resolv.conf, names the testnet DNS
// server. When Debian's postfix-mta-sts-resolver is installed, the same
// cases run against its mta-sts-daemon too, as the reference peer. A third,
// control run gives Postfix a socketmap server that answers NOTFOUND to
// everything and asserts that the broken MX hosts then do get the mail (in
// clear text, or over unverified TLS): the attack MTA-STS stops is real in
// this set-up, so the deferrals seen with a policy daemon are its doing.
//
// What is asserted, per policy daemon (checklist IDs from RFC-CHECKLIST.md):
//   - PFX-STS, STS-CERT-3: mail to an enforce domain whose MX has a good
//     certificate is delivered over verified TLS: the fake MX host saw
//     STARTTLS with SNI equal to its name, and Postfix logged "Verified TLS
//     connection established".
//   - STS-CERT-1: an enforce domain whose MX offers no STARTTLS gets
//     nothing, in clear text or otherwise; the message stays deferred with
//     Postfix's "TLS is required, but was not offered" reason.
//   - STS-CERT-3: likewise for an MX presenting a certificate for another
//     name ("Server certificate not verified").
//   - STS-MX: an enforce policy whose mx patterns do not cover the MX
//     keeps the message deferred.
//   - STS-CERT-2 (testing mode): a testing domain whose MX certificate has
//     expired still gets the message, over TLS.
//   - PFX-POL (NOTFOUND): a domain without MTA-STS gets the message with
//     opportunistic TLS.
//
// DANE first (RFC 8461 §2, RFC 7672), mailsts only. Postfix runs with
// smtp_dns_support_level=dnssec, so that it looks up TLSA records itself
// and sees the AD bit the testnet DNS server sets for Secure domains.
//   - STS-DANE-2, STS-DANE-4: for signed domains whose MX host publishes
//     a matching TLSA record (DANE-EE 3 1 1, DANE-TA 2 0 1, and DANE-EE
//     for a self-signed certificate that only its TLSA record vouches
//     for, DANE-7) policyd answers "dane-only", even with an MTA-STS
//     enforce policy, and Postfix logs "Verified TLS connection
//     established".
//   - STS-DANE-1: for dane-bad.example, whose MTA-STS enforce policy and
//     CA-issued certificate would let the mail through but whose TLSA
//     record matches nothing, and for dane-wrong.example (no MTA-STS),
//     policyd answers "dane-only" and the message stays deferred
//     ("Server certificate not verified"), after Postfix logged
//     "server certificate verification failed for <mx>[…]:25:
//     num=…:no matching DANE TLSA records". The control run delivers both
//     and does not trust the self-signed host.
//   - Partial DANE, never weaker than MTA-STS: dane-partial.example has an
//     enforce policy and two MX hosts, a TLSA record on mx2 only, and a
//     self-signed certificate on mx1 (preferred). policyd answers the
//     policy's "secure" (not "dane", under which mx1 would get the mail
//     over unauthenticated TLS, as the control run shows): Postfix logs
//     the certificate failure of mx1 and delivers to mx2 over verified
//     TLS.
//   - The peer does no DANE: it answers "secure" for the domains with an
//     MTA-STS policy, which in Postfix overrides DANE (STS-DANE-4). Its
//     dane.example delivery is asserted; what it does with the failing
//     TLSA domains is only logged.
//
// Cache store down, mailsts only: a fourth run starts
// policyd with cache.type redis pointed at a port of the namespace where
// nothing listens (a refused port; policyd on 127.0.0.1:8464). Mail to
// enforce.example (cached in memory by the readiness lookup) is delivered
// over verified TLS, and mail to nosts.example is delivered with the
// policy answer NOTFOUND: neither is deferred by a TEMP answer.
//
// Sending TLS reports (RFC 8460), TestTLSRPTSend, in a namespace of its
// own: a Postfix under `mailsts policyd` (tlsrpt_results on) sends one
// message each to enforce.example (delivered, verified), nostarttls.example
// (STARTTLS stripped), badmxcert.example (wrong-name certificate),
// testing-badcert.example (testing mode, expired certificate, delivered),
// nosts.example (no policy), dane-partial.example (two MX hosts, the
// preferred one self-signed) and expired.example (the policy host's
// certificate expired: policyd's own sts-webpki-invalid), with retries an hour away so that every
// message makes one session, while `mailsts tlsrpt collect --postfix-log`
// follows Postfix's maillog_file. The day's reports are then built by
// outgoing.Builder with its clock a day ahead (as the node that builds
// after midnight UTC would) and delivered by the outbox configured from a
// reports.yml: by HTTPS to `mailsts serve` and, DKIM-signed, through the
// same Postfix (sendmail) to a mailbox whose mail `mailsts tlsrpt ingest`
// stores, the DKIM key published in the fake DNS. Asserted: one report per
// domain, whose policy type, session totals and failure details (result
// type, receiving MX host, count) are exactly those of the Postfix log, held
// once by both receivers (the mail one authenticated by the submitter's
// DKIM signature), with policy-domain set; and the report mail's own
// Postfix sessions are not counted (the mailbox domain publishes a TLSRPT
// record, yet has no results).
//
// Prerequisites: root, iproute2 (ip netns), Postfix (postfix, postconf,
// postqueue, sendmail) and the go command. Missing ones skip the test with
// the reason, unless MAILSTS_REQUIRE_E2E=1, which makes them a failure
// (CI sets it). Postfix 3.7 has no TLSRPT attributes, so none are checked.
//
// TestPublishPeer is the domain owner's side: `mailsts serve` hosts the
// policy of hosted.example on 127.0.0.2:443 in its own namespace, the
// testnet DNS on port 53 points mta-sts.hosted.example there and carries
// the derived id, and postfix-mta-sts-resolver's mta-sts-query (trusting
// the testnet CA through SSL_CERT_FILE) must report that id and the
// configured mode, mx and max_age as a VALID policy. It needs root,
// iproute2, go and mta-sts-query (Debian postfix-mta-sts-resolver).
package e2e
