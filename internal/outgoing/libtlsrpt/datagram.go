// Package libtlsrpt reads the datagrams that sys4's libtlsrpt (the C
// library Postfix 3.10+ calls when built with TLSRPT support) sends to a
// collector over a Unix datagram socket, and turns them into
// outgoing.Results: `mailsts tlsrpt collect` is a drop-in for sys4's
// tlsrpt-collectd.
//
// The protocol (datagram protocol version "1"), as libtlsrpt writes it:
// one JSON object per delivery request (one SMTP delivery attempt to one
// next-hop domain), sent whole in one datagram:
//
//	{"dpv": "1", "d": DOMAIN, "pr": TLSRPT-RECORD,
//	 "policies": [POLICY, ...]}
//
// dpv is the version, a string; d the next-hop domain the result is about;
// pr the domain's _smtp._tls TXT record as the MTA saw it. Each POLICY is
// one session result under that policy:
//
//	{"policy-type": 1|2|9, "policy-domain": DOMAIN,
//	 "policy-string": [LINE, ...], "mx-host": [PATTERN, ...],
//	 "failure-details": [FAILURE, ...], "t": N, "f": 0|1}
//
// policy-type is a number (1 tlsa, 2 sts, 9 no-policy-found);
// policy-domain, policy-string, mx-host and failure-details are left out
// when the MTA gave none; t is the number of failure details and f the
// final result (0 success, 1 failure). Each FAILURE has short keys:
//
//	{"c": CODE, "s": sending-mta-ip, "n": receiving-mx-hostname,
//	 "h": receiving-mx-helo, "r": receiving-ip,
//	 "a": additional-information, "f": failure-reason-code}
//
// where only c, a number, is always there: 201..205 are the negotiation
// failures (starttls-not-supported, certificate-host-mismatch,
// certificate-not-trusted, certificate-expired, validation-failure),
// 301..303 the MTA-STS ones (sts-policy-fetch-error, sts-policy-invalid,
// sts-webpki-invalid) and 304..306 the DANE ones (tlsa-invalid,
// dnssec-invalid, dane-required). libtlsrpt also defines 901 for a policy
// left unfinished by the MTA.
//
// What this package does with hostile or odd input is in docs
// (tlsrpt-send.md); in short: a datagram that is not this JSON is counted
// as malformed and dropped; one with another version is counted and
// dropped (its format may differ); an unknown failure code drops that
// detail, the session still counts as failed; the final result f decides
// success or failure.
package libtlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Version is the datagram protocol version this package reads.
const Version = "1"

// MaxPolicies caps the policies taken from one datagram: a delivery
// request has one per policy the MTA considered (in practice one or two).
const MaxPolicies = 16

// Errors of Parse.
var (
	// ErrMalformed: not a datagram of the protocol (not a JSON object,
	// members of the wrong type, no domain or policies, an unknown
	// policy type, over a cap).
	ErrMalformed = errors.New("libtlsrpt: malformed datagram")
	// ErrVersion: a datagram protocol version other than Version.
	ErrVersion = errors.New("libtlsrpt: unsupported datagram protocol version")
)

// Datagram is one parsed delivery request.
type Datagram struct {
	// Version is dpv; empty when the datagram had none (taken as "1",
	// as tlsrpt-collectd does).
	Version string
	// Domain is d, the next-hop domain.
	Domain string
	// Record is pr, the TLSRPT record the MTA saw (not used: the outbox
	// looks the record up again when it delivers).
	Record   string
	Policies []Policy
}

// Policy is one element of policies: one session under one policy.
type Policy struct {
	// Type is the policy type name (tlsrpt.PolicyType*).
	Type     string
	Domain   string // policy-domain, may be empty
	Strings  []string
	MXHosts  []string
	Failures []Failure
	// Count is t, the failure count the MTA gave (-1 when absent).
	Count int
	// Failed is f == 1.
	Failed bool
}

// Failure is one failure detail with its numeric code.
type Failure struct {
	Code int
	outgoing.Failure
}

type wireDatagram struct {
	DPV      *string       `json:"dpv"`
	D        *string       `json:"d"`
	PR       *string       `json:"pr"`
	Policies *[]wirePolicy `json:"policies"`
}

type wirePolicy struct {
	Type     *int          `json:"policy-type"`
	Domain   *string       `json:"policy-domain"`
	Strings  []string      `json:"policy-string"`
	MX       []string      `json:"mx-host"`
	Failures []wireFailure `json:"failure-details"`
	T        *int          `json:"t"`
	F        *int          `json:"f"`
}

type wireFailure struct {
	C *int   `json:"c"`
	S string `json:"s"`
	N string `json:"n"`
	H string `json:"h"`
	R string `json:"r"`
	A string `json:"a"`
	F string `json:"f"`
}

// policyType maps libtlsrpt's numeric policy types to RFC 8460's names.
func policyType(n int) (string, bool) {
	switch n {
	case 1:
		return tlsrpt.PolicyTypeTLSA, true
	case 2:
		return tlsrpt.PolicyTypeSTS, true
	case 9:
		return tlsrpt.PolicyTypeNoPolicyFound, true
	}
	return "", false
}

// resultTypes maps libtlsrpt's failure codes to RFC 8460 result types.
var resultTypes = map[int]result.Type{
	201: result.STARTTLSNotSupported,
	202: result.CertificateHostMismatch,
	203: result.CertificateNotTrusted,
	204: result.CertificateExpired,
	205: result.ValidationFailure,
	301: result.STSPolicyFetchError,
	302: result.STSPolicyInvalid,
	303: result.STSWebPKIInvalid,
	304: result.TLSAInvalid,
	305: result.DNSSECInvalid,
	306: result.DANERequired,
}

// ResultType returns the RFC 8460 result type of a libtlsrpt failure code;
// ok is false for codes it does not know (901, future ones).
func ResultType(code int) (result.Type, bool) {
	t, ok := resultTypes[code]
	return t, ok
}

// Parse parses one datagram. Errors wrap ErrMalformed or ErrVersion; the
// version is checked before anything else, so a future version's
// datagram is told apart from a broken one.
//
// Datagrams in the form libtlsrpt writes (no escapes in strings, known
// members once each, small integers) are decoded by a scanner without
// reflection (decodeFast); anything else goes through encoding/json, the
// reference. Both fill the same rawDatagram, checked by one function, so
// the result never depends on which decoder ran (FuzzParseEquivalence).
func Parse(b []byte) (*Datagram, error) {
	var raw rawDatagram
	if !decodeFast(b, &raw) {
		return parseReference(b)
	}
	return raw.datagram()
}

// parseReference decodes b with encoding/json.
func parseReference(b []byte) (*Datagram, error) {
	var w wireDatagram
	if err := json.Unmarshal(b, &w); err != nil {
		var vw struct {
			DPV any `json:"dpv"`
		}
		if json.Unmarshal(b, &vw) == nil && vw.DPV != nil && vw.DPV != Version {
			// A version that is not the string "1" (a number, say) is
			// another version, not a broken datagram of this one.
			return nil, fmt.Errorf("%w %s", ErrVersion, clip(fmt.Sprint(vw.DPV)))
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	raw := w.raw()
	return raw.datagram()
}

// rawDatagram is a decoded datagram before its checks, what both
// decoders produce: members with their presence, as the JSON had them.
type rawDatagram struct {
	hasDPV, hasD, hasPR, hasPolicies bool
	dpv, d, pr                       string
	policies                         []rawPolicy
}

type rawPolicy struct {
	hasType, hasDomain, hasT, hasF bool
	typ, t, f                      int
	domain                         string
	strs, mx                       []string
	failures                       []rawFailure
}

type rawFailure struct {
	hasC          bool
	c             int
	s, n, h, r, a string
	f             string
}

// raw converts encoding/json's decoding.
func (w *wireDatagram) raw() rawDatagram {
	var r rawDatagram
	r.hasDPV, r.dpv = deref(w.DPV)
	r.hasD, r.d = deref(w.D)
	r.hasPR, r.pr = deref(w.PR)
	if w.Policies != nil {
		r.hasPolicies = true
		r.policies = make([]rawPolicy, len(*w.Policies))
		for i, wp := range *w.Policies {
			p := &r.policies[i]
			p.hasType, p.typ = deref(wp.Type)
			p.hasDomain, p.domain = deref(wp.Domain)
			p.hasT, p.t = deref(wp.T)
			p.hasF, p.f = deref(wp.F)
			p.strs, p.mx = wp.Strings, wp.MX
			if wp.Failures != nil {
				p.failures = make([]rawFailure, len(wp.Failures))
				for j, wf := range wp.Failures {
					f := &p.failures[j]
					f.hasC, f.c = deref(wf.C)
					f.s, f.n, f.h, f.r, f.a, f.f = wf.S, wf.N, wf.H, wf.R, wf.A, wf.F
				}
			}
		}
	}
	return r
}

func deref[T any](p *T) (bool, T) {
	if p == nil {
		var zero T
		return false, zero
	}
	return true, *p
}

// datagram checks a decoded datagram and returns it.
func (w *rawDatagram) datagram() (*Datagram, error) {
	d := &Datagram{}
	if w.hasDPV {
		if w.dpv != Version {
			return nil, fmt.Errorf("%w %q", ErrVersion, clip(w.dpv))
		}
		d.Version = w.dpv
	}
	if !w.hasD || w.d == "" {
		return nil, fmt.Errorf("%w: no domain (d)", ErrMalformed)
	}
	d.Domain = w.d
	d.Record = w.pr
	if !w.hasPolicies || len(w.policies) == 0 {
		return nil, fmt.Errorf("%w: no policies", ErrMalformed)
	}
	if len(w.policies) > MaxPolicies {
		return nil, fmt.Errorf("%w: %d policies, more than %d", ErrMalformed, len(w.policies), MaxPolicies)
	}
	d.Policies = make([]Policy, 0, len(w.policies))
	for i := range w.policies {
		wp := &w.policies[i]
		if !wp.hasType {
			return nil, fmt.Errorf("%w: policies[%d] has no policy-type", ErrMalformed, i)
		}
		pt, ok := policyType(wp.typ)
		if !ok {
			return nil, fmt.Errorf("%w: policies[%d] has unknown policy-type %d", ErrMalformed, i, wp.typ)
		}
		if !wp.hasF || (wp.f != 0 && wp.f != 1) {
			return nil, fmt.Errorf("%w: policies[%d] has no final result f of 0 or 1", ErrMalformed, i)
		}
		p := Policy{Type: pt, Domain: wp.domain, Strings: wp.strs, MXHosts: wp.mx, Count: -1, Failed: wp.f == 1}
		if wp.hasT {
			p.Count = wp.t
		}
		if len(wp.failures) > 0 {
			p.Failures = make([]Failure, 0, len(wp.failures))
		}
		for j, wf := range wp.failures {
			if !wf.hasC {
				return nil, fmt.Errorf("%w: policies[%d].failure-details[%d] has no code c", ErrMalformed, i, j)
			}
			f := Failure{Code: wf.c, Failure: outgoing.Failure{
				SendingMTAIP: wf.s, ReceivingMXHostname: wf.n, ReceivingMXHelo: wf.h,
				ReceivingIP: wf.r, AdditionalInfo: wf.a, FailureReasonCode: wf.f,
			}}
			f.ResultType, _ = ResultType(f.Code)
			p.Failures = append(p.Failures, f)
		}
		d.Policies = append(d.Policies, p)
	}
	return d, nil
}

// Notes count what Results left out or found odd in a datagram.
type Notes struct {
	// UnknownCodes: failure details with a code that is no RFC 8460
	// result type (libtlsrpt's 901, future codes); dropped, the session
	// still counts as failed.
	UnknownCodes int
	// DetailsOnSuccess: failure details of a policy whose final result
	// was success (libtlsrpt allows it); dropped, the session counts as
	// successful.
	DetailsOnSuccess int
	// CountMismatch: policies whose t differs from their details.
	CountMismatch int
}

// Results turns the datagram into one outgoing.Result per policy, all at
// time t, each about the datagram's domain (d): that is the domain the
// report goes to, and every policy in it carries it as policy-domain.
func (d *Datagram) Results(t time.Time) ([]outgoing.Result, Notes) {
	var n Notes
	out := make([]outgoing.Result, 0, len(d.Policies))
	for _, p := range d.Policies {
		r := outgoing.Result{Time: t, PolicyDomain: d.Domain, Failed: p.Failed,
			Policy: outgoing.Policy{Type: p.Type, Strings: p.Strings, MXHosts: p.MXHosts}}
		if p.Count >= 0 && p.Count != len(p.Failures) {
			n.CountMismatch++
		}
		for _, f := range p.Failures {
			switch {
			case !p.Failed:
				n.DetailsOnSuccess++
			case f.ResultType == "":
				n.UnknownCodes++
			default:
				r.Failures = append(r.Failures, f.Failure)
			}
		}
		out = append(out, r)
	}
	return out, n
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
