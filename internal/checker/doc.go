// Package checker audits a domain's email transport security the way a
// strict sender sees it, and explains every observation: the MTA-STS TXT
// record and policy (RFC 8461), the live MX hosts against the policy's mx
// patterns, an SMTP STARTTLS probe of every MX host with certificate
// checks, DANE TLSA records (RFC 7672), the TLSRPT record (RFC 8460) and,
// optionally, the mail client endpoints of RFC 8314.
//
// A Checker is configured once and shared; Check returns a Report whose
// Findings each carry a stable ID ("sts.record.multiple"), a severity (ok,
// info, warn, fail), the checklist ID or RFC section it rests on, a
// one-line message and a fix hint. The Report's JSON form is the stable
// schema of `mailsts check --json` (SchemaVersion, docs/check.md). Bulk
// runs many checks with bounded concurrency, streaming JSON Lines, and can
// resume an interrupted run.
//
//	c := &checker.Checker{Strict: true}
//	r := c.Check(ctx, "example.com")
//	for _, f := range r.Findings {
//		fmt.Println(f.Severity, f.ID, f.Message)
//	}
//
// How a check proceeds: the TXT record, the MX hosts and the TLSRPT record
// are looked up concurrently; the policy is fetched (even when the record
// is unusable, so that all problems show at once); every MX host (at most
// MaxMX) is resolved and probed concurrently: greeting, EHLO, STARTTLS, a
// TLS handshake with SNI set to the MX name and TLS 1.2 at least, then the
// presented chain is verified against RootCAs for the MX name, separately,
// so that expired, wrong-name and untrusted certificates are told apart.
// Every probe step has a deadline (ProbeTimeout) and the whole check one
// more (Timeout): a hanging host cannot stall a bulk run.
//
// Severity follows what senders do. By default the checker judges as a
// conforming, lenient sender (mailsts's own): problems of MX hosts fail when
// the domain's policy is in mode enforce (senders refuse the host) and warn
// otherwise (testing mode, or no usable policy: senders deliver anyway), and
// a policy valid only under the lenient grammar (OPEN-3) is applied, with a
// warning. With Strict the checker judges as the strictest sender: every MX
// problem fails, and a policy valid only leniently fails and is not applied
// (STSSummary.Result "sts-policy-invalid", MXResult.STSDecision "n/a").
//
// Conformance (IDs from the project's RFC checklist):
//   - RFC 8461 §3.1 TXT record: NXDOMAIN/NODATA versus lookup failure
//     (STS-TXT-13), exactly one v=STSv1 record (STS-TXT-7), strict syntax
//     (STS-TXT-8), CNAMEs followed without changing the policy host
//     (STS-TXT-10), IDN domains in A-label form (STS-TXT-1).
//   - RFC 8461 §3.2, §3.3 policy: HTTPS with a valid certificate for
//     mta-sts.<domain> (STS-FETCH-2), status 200 only (STS-FETCH-4), no
//     redirects (STS-FETCH-5), text/plain (STS-POL-2), 64 KiB cap
//     (STS-POL-13), LF or CRLF (STS-POL-4), the grammar both strictly and
//     leniently with line numbers (STS-POL-3..12, OPEN-3), max_age advice
//     (STS-POL-7, STS-ERRATA-3).
//   - RFC 8461 §4 MX: patterns against the live MX set with one-label
//     wildcards (STS-MX-1..3, STS-MX-6, STS-MX-7), STARTTLS and TLS 1.2+
//     (STS-CERT-1, STS-CERT-7), SNI set to the MX name (STS-CERT-5), chain,
//     expiry and SAN name, never the CN (STS-CERT-2, STS-CERT-3,
//     TLS-NAME-4).
//   - RFC 7672 DANE, decided by dane.Decide as policyd decides it: TLSA
//     records count only when MX, address and TLSA answers are
//     DNSSEC-validated (DANE-1); a failed lookup under a signed MX RRset
//     is a lookup error (DANE-5); usages 2 and 3 only (DANE-6); a mismatch
//     means no delivery (DANE-2).
//   - RFC 8460 §3 TLSRPT: exactly one v=TLSRPTv1 record (RPT-TXT-6), its
//     syntax (RPT-TXT-2, RPT-TXT-3), mailto/https rua only (RPT-TXT-4).
//   - RFC 8314: implicit TLS on 465/993/995 and STARTTLS on 587, with
//     certificates valid for the host name clients use (TLS8314-1..4).
package checker
