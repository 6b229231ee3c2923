package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/mailsts/mailsts/dnsresolve"
)

// What policyd knows of whether its resolver validates DNSSEC (the
// Responder's ResolverValidates, the status file, the
// mailsts_policyd_resolver_validates_dnssec gauge).
const (
	ValidatesUnknown = "unknown" // not asked yet, or the probe got no answer
	ValidatesYes     = "yes"     // an answer carried the AD bit
	ValidatesNo      = "no"      // every server answered the root without the AD bit
)

// validation is the resolver's DNSSEC validation as last seen: one of the
// Validates* strings, as an index into validationStates.
type validation uint32

const (
	validationUnknown validation = iota
	validationYes
	validationNo
)

var validationStates = [...]string{ValidatesUnknown, ValidatesYes, ValidatesNo}

func (v validation) String() string { return validationStates[v] }

// ValidationObserver is an optional method of a Responder's Observer: it
// hears whether the resolver validates DNSSEC (the Validates* strings),
// at the first probe and whenever that changes.
type ValidationObserver interface {
	ResolverValidates(state string)
}

// ResolverValidates returns what the Responder knows of whether its
// resolver validates DNSSEC: ValidatesYes, ValidatesNo or ValidatesUnknown.
func (r *Responder) ResolverValidates() string {
	return validation(r.dnssec.Load()).String()
}

// ProbeValidation asks the resolver whether it validates DNSSEC
// (dnsresolve.DNSSECProber: its answer for the signed root zone) and
// records the result; it returns the new state. An answer with the AD bit
// says yes, answers from every server without it say no, anything else
// (no reply, SERVFAIL, a resolver that cannot be asked) unknown. The
// daemon calls it at start and every DANETTL.
//
// While the state is no, zones with dane: auto skip the DANE lookups:
// DANE applies only to DNSSEC-validated MX, address and TLSA answers
// (RFC 7672 §2.1, DANE-1), which a resolver that does not
// validate never gives, so the decision is DANEInsecure without the MX
// query. Any answer with the AD bit (seen by the resolver the daemon wraps
// with WatchAD, or an MX answer) turns the lookups back on at once; unknown
// keeps them, as before the probe.
func (r *Responder) ProbeValidation(ctx context.Context) string {
	p, ok := r.DNS.(dnsresolve.DNSSECProber)
	if !ok {
		r.setValidation(ctx, validationUnknown, nil)
		return ValidatesUnknown
	}
	yes, err := p.ValidatesDNSSEC(ctx)
	v := validationNo
	switch {
	case err != nil:
		v = validationUnknown
	case yes:
		v = validationYes
	}
	r.setValidation(ctx, v, err)
	return v.String()
}

// sawAD records an answer with the AD bit: the resolver validates.
func (r *Responder) sawAD() {
	r.validating.Store(true)
	if validation(r.dnssec.Load()) != validationYes {
		r.setValidation(context.Background(), validationYes, nil)
	}
}

// setValidation records v, and logs and reports it at the first call and
// when it changes.
func (r *Responder) setValidation(ctx context.Context, v validation, err error) {
	if v == validationYes {
		r.validating.Store(true)
	}
	old := validation(r.dnssec.Swap(uint32(v)))
	if old == v && r.probed.Swap(true) {
		return
	}
	r.probed.Store(true)
	var msg string
	switch v {
	case validationYes:
		msg = "resolver validates DNSSEC: yes (an answer with the AD bit): dane: auto zones look for DANE (MX, TLSA)"
	case validationNo:
		msg = "resolver validates DNSSEC: no (its answer for the signed root zone has no AD bit): DANE cannot apply (RFC 7672 §2.1), so dane: auto zones skip the MX query for it; point dns.servers at a validating resolver for DANE"
	default:
		msg = "resolver validates DNSSEC: unknown (no usable answer for the root zone): dane: auto zones keep looking up MX for DANE"
	}
	attrs := []slog.Attr{slog.String("resolver_validates_dnssec", v.String())}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	r.logger().LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
	if r.onValidation != nil {
		r.onValidation(v.String())
	}
	if o, ok := r.Observer.(ValidationObserver); ok {
		o.ResolverValidates(v.String())
	}
}

// skipDANE reports whether a zone in mode may skip the DANE lookups: auto,
// and the resolver is known not to validate.
func (r *Responder) skipDANE(mode DANEMode) bool {
	return mode == DANEAuto && validation(r.dnssec.Load()) == validationNo
}

// WatchAD returns res wrapped so that every answer with the AD bit tells
// the Responder that the resolver validates (see ProbeValidation). The
// wrapper keeps res's optional interfaces (dnsresolve.IPv4Resolver,
// dnsresolve.DNSSECProber).
func (r *Responder) WatchAD(res dnsresolve.Resolver) dnsresolve.Resolver {
	w := adWatch{res: res, r: r}
	if _, ok := res.(dnsresolve.IPv4Resolver); ok {
		return adWatch4{w}
	}
	return w
}

type adWatch struct {
	res dnsresolve.Resolver
	r   *Responder
}

func (w adWatch) seen(ans dnsresolve.Answer) {
	if ans.Authenticated {
		w.r.sawAD()
	}
}

func (w adWatch) LookupTXT(ctx context.Context, name string) ([]string, dnsresolve.Answer, error) {
	v, ans, err := w.res.LookupTXT(ctx, name)
	w.seen(ans)
	return v, ans, err
}

func (w adWatch) LookupMX(ctx context.Context, name string) ([]dnsresolve.MX, dnsresolve.Answer, error) {
	v, ans, err := w.res.LookupMX(ctx, name)
	w.seen(ans)
	return v, ans, err
}

func (w adWatch) LookupIP(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	v, ans, err := w.res.LookupIP(ctx, host)
	w.seen(ans)
	return v, ans, err
}

func (w adWatch) LookupTLSA(ctx context.Context, port int, proto, host string) ([]dnsresolve.TLSA, dnsresolve.Answer, error) {
	v, ans, err := w.res.LookupTLSA(ctx, port, proto, host)
	w.seen(ans)
	return v, ans, err
}

// ValidatesDNSSEC implements dnsresolve.DNSSECProber when res does;
// otherwise it cannot tell.
func (w adWatch) ValidatesDNSSEC(ctx context.Context) (bool, error) {
	if p, ok := w.res.(dnsresolve.DNSSECProber); ok {
		return p.ValidatesDNSSEC(ctx)
	}
	return false, errNoProbe
}

var errNoProbe = fmt.Errorf("the resolver cannot be asked whether it validates DNSSEC: %w", dnsresolve.ErrLookupFailed)

// adWatch4 is adWatch for a resolver that can ask A records alone.
type adWatch4 struct{ adWatch }

func (w adWatch4) LookupIPv4(ctx context.Context, host string) ([]netip.Addr, dnsresolve.Answer, error) {
	v, ans, err := w.res.(dnsresolve.IPv4Resolver).LookupIPv4(ctx, host)
	w.seen(ans)
	return v, ans, err
}
