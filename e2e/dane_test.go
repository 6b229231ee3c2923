//go:build e2e

package e2e

import (
	"regexp"

	"github.com/mailsts/mailsts/internal/testnet"
)

// scenario is testnet's default scenario plus dane-bad.example: a signed
// domain whose MTA-STS enforce policy would let the mail through (the MX
// host matches the policy and presents a good certificate of the test CA)
// but whose TLSA record matches no key. Only DANE can stop this message,
// and RFC 8461 §2 says it must (STS-DANE-1).
func scenario() *testnet.Scenario {
	sc := testnet.DefaultScenario()
	sc.Domains = append(sc.Domains, testnet.Domain{
		Name:   "dane-bad.example",
		Secure: true,
		STSTXT: [][]string{{"v=STSv1; id=danebad1"}},
		Policy: &testnet.PolicyHost{
			Body: "version: STSv1\nmode: enforce\nmx: mx1.dane-bad.example\nmax_age: 86400\n",
		},
		MX: []testnet.MXHost{{Name: "mx1.dane-bad.example", Pref: 10, Cert: testnet.CertGood, TLSA: testnet.TLSAWrong}},
	}, testnet.Domain{
		// The other way round: a self-signed certificate that only its
		// TLSA record (DANE-EE 3 1 1) vouches for. A "Verified" session
		// with this host can only be DANE's doing.
		Name:   "dane-selfsigned.example",
		Secure: true,
		MX:     []testnet.MXHost{{Name: "mx1.dane-selfsigned.example", Pref: 10, Cert: testnet.CertSelfSigned, TLSA: testnet.TLSADaneEE}},
	}, testnet.Domain{
		// Partial DANE under an enforce policy: mx2 has a TLSA record,
		// mx1 (preferred) has none and a self-signed certificate. Under
		// "dane" Postfix would hand mx1 the mail over unauthenticated TLS,
		// which the policy forbids; the secure answer refuses mx1 and
		// delivers to mx2 over verified TLS.
		Name:   "dane-partial.example",
		Secure: true,
		STSTXT: [][]string{{"v=STSv1; id=danepartial1"}},
		Policy: &testnet.PolicyHost{
			Body: "version: STSv1\nmode: enforce\nmx: *.dane-partial.example\nmax_age: 86400\n",
		},
		MX: []testnet.MXHost{
			{Name: "mx1.dane-partial.example", Pref: 10, Cert: testnet.CertSelfSigned},
			{Name: "mx2.dane-partial.example", Pref: 20, Cert: testnet.CertGood, TLSA: testnet.TLSADaneEE},
		},
	})
	return sc
}

// daneCases are what mailsts policyd must achieve for DNSSEC-signed domains
// whose MX hosts publish TLSA records: it answers dane-only (DANE first,
// RFC 8461 §2), and Postfix, looking up the TLSA records itself
// (smtp_dns_support_level=dnssec), authenticates the MX host by them
// (RFC 7672) or defers.
var daneCases = []mailCase{
	{
		// DANE-EE 3 1 1 of the MX host's key; also an enforce policy,
		// which must not turn the answer into "secure" (STS-DANE-4).
		// Postfix 3.7 logs a DANE match as "Verified" (the CA file plays
		// no part: DANE-7).
		id: "STS-DANE-2 STS-DANE-4 DANE-7", domain: "dane.example", mx: []string{"mx1.dane.example"},
		answer:  "OK dane-only",
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
	},
	{
		// DANE-TA 2 0 1 of the test CA, which the MX host sends in its
		// chain; the certificate names the MX host (DANE-8).
		id: "STS-DANE-2 DANE-8", domain: "dane-ta.example", mx: []string{"mx1.dane-ta.example"},
		answer:  "OK dane-only",
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
	},
	{
		// A self-signed certificate (which the control run shows Postfix
		// does not trust) with a matching DANE-EE record: verified by the
		// TLSA record alone (DANE-7).
		id: "STS-DANE-2 DANE-7", domain: "dane-selfsigned.example", mx: []string{"mx1.dane-selfsigned.example"},
		answer:  "OK dane-only",
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
	},
	{
		// DANE on some MX hosts of an enforce domain: every host must be
		// authenticated (never weaker than the MTA-STS policy), so the
		// answer is the policy's secure one; mx1, whose certificate
		// fails PKIX and which has no TLSA record, gets nothing, and the
		// message reaches mx2 over verified TLS. Under "OK dane" mx1
		// would get it over unauthenticated TLS (the control run shows
		// Postfix does that at level may).
		id: "STS-DANE-1 DANE-2 DANE-4 partial", domain: "dane-partial.example",
		mx:      []string{"mx1.dane-partial.example", "mx2.dane-partial.example"},
		answer:  "OK secure match=.dane-partial.example servername=hostname",
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
		logRE: regexp.MustCompile(`certificate verification failed for mx1\.dane-partial\.example\[`),
	},
	{
		// MTA-STS alone would deliver; the TLSA record matches nothing.
		id: "STS-DANE-1 STS-DANE-2 STS-APPLY-6", domain: "dane-bad.example", mx: []string{"mx1.dane-bad.example"},
		answer: "OK dane-only",
		reason: daneFailure, logRE: daneNoMatch("mx1.dane-bad.example"),
	},
	{
		// No MTA-STS at all; the TLSA record matches nothing.
		id: "STS-DANE-2", domain: "dane-wrong.example", mx: []string{"mx1.dane-wrong.example"},
		answer: "OK dane-only",
		reason: daneFailure, logRE: daneNoMatch("mx1.dane-wrong.example"),
	},
}

// daneFailure is Postfix 3.7's delay reason when no TLSA record matches
// the MX host's certificate chain at level dane-only.
var daneFailure = regexp.MustCompile(`^Server certificate not verified$`)

// daneNoMatch matches the line Postfix 3.7 logs (smtp_tls_loglevel=1) when
// it looked up the TLSA records of mx and none matched the chain the host
// presented; OpenSSL's error number (X509_V_ERR_DANE_NO_MATCH) is left
// open.
func daneNoMatch(mx string) *regexp.Regexp {
	return regexp.MustCompile(`server certificate verification failed for ` + regexp.QuoteMeta(mx) +
		`\[[0-9.]+\]:25: num=[0-9]+:no matching DANE TLSA records$`)
}

// peerDANECases record what postfix-mta-sts-resolver does with the same
// domains. It does no DANE: for a domain with an MTA-STS policy it answers
// "secure", which in Postfix overrides DANE (STS-DANE-4, PFX-POL-8), and
// for one without it answers NOTFOUND. Only its MTA-STS behaviour is
// asserted; what becomes of the mail to the domains whose TLSA records
// fail is logged, not asserted: it is that daemon's documented gap, not a
// contract of this project.
var peerDANECases = []mailCase{
	{
		id: "PFX-STS peer", domain: "dane.example", mx: []string{"mx1.dane.example"},
		answer:  "OK secure ",
		deliver: true, sni: true, logLine: "Verified TLS connection established to ",
	},
	{
		id: "STS-DANE-4 peer", domain: "dane-bad.example", mx: []string{"mx1.dane-bad.example"},
		observe: true,
	},
	{
		id: "STS-DANE-4 peer", domain: "dane-wrong.example", mx: []string{"mx1.dane-wrong.example"},
		observe: true,
	},
}

// controlDANECases: without a policy daemon Postfix's level is may, which
// looks up no TLSA records, so the MX hosts whose TLSA records fail get
// the mail over unauthenticated TLS, and the self-signed certificate is
// not trusted. The deferrals and the DANE verification in the mailsts run
// are therefore the policy's doing.
var controlDANECases = []mailCase{
	{
		// What "OK dane" would let happen to the partial-DANE domain:
		// mx1 has no TLSA record, so the mail goes to it over TLS nobody
		// authenticated.
		id: "control partial DANE", domain: "dane-partial.example",
		mx:      []string{"mx1.dane-partial.example", "mx2.dane-partial.example"},
		answer:  "NOTFOUND",
		deliver: true, logLine: "Untrusted TLS connection established to ",
	},
	{
		id: "control DANE-7", domain: "dane-selfsigned.example", mx: []string{"mx1.dane-selfsigned.example"},
		answer:  "NOTFOUND",
		deliver: true, logLine: "Untrusted TLS connection established to ",
	},
	{
		id: "control STS-DANE-1", domain: "dane-bad.example", mx: []string{"mx1.dane-bad.example"},
		answer:  "NOTFOUND",
		deliver: true, logLine: "Trusted TLS connection established to ",
	},
	{
		id: "control STS-DANE-2", domain: "dane-wrong.example", mx: []string{"mx1.dane-wrong.example"},
		answer:  "NOTFOUND",
		deliver: true, logLine: "Trusted TLS connection established to ",
	},
}
