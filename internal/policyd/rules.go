package policyd

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/mtasts"
)

// DANEMode is a zone's DANE setting.
type DANEMode string

// DANE settings of a zone.
const (
	// DANEAuto looks for DANE once the resolver has shown it validates
	// DNSSEC (an answer with the AD bit); until then MTA-STS alone decides.
	DANEAuto DANEMode = "auto"
	// DANEOn always looks for DANE first; a failed MX lookup is TEMP,
	// since nothing proves that no DANE policy exists (STS-DANE-3).
	DANEOn DANEMode = "on"
	// DANEOff never looks for DANE: answers come from MTA-STS only. Use
	// it when Postfix does DANE itself through a map listed first.
	DANEOff DANEMode = "off"
)

// Defaults of a Zone.
const (
	DefaultTempWindow = 10 * time.Minute
	DefaultServerName = "hostname"
)

// Zone is the answer settings of one socketmap map name (or tcp_table
// listener). The zero value is the safe default: testing policies are not
// enforced, no TLSRPT attributes (Postfix 3.9 and older reject them), DANE
// auto, a 10-minute TEMP window and SNI set to the MX host name.
type Zone struct {
	// StrictTesting enforces testing policies as if they were enforce
	// (PFX-STS-1); off by default, as RFC 8461 §5 says testing must not
	// stop delivery.
	StrictTesting bool
	// TLSRPT adds the Postfix 3.10+ attributes policy_type=sts,
	// policy_domain, mx_host_pattern and policy_string (PFX-STS-3). They
	// are also sent for the map name QUERYwithTLSRPT (PFX-STS-2).
	TLSRPT bool
	// DANE is the DANE setting; "" means DANEAuto.
	DANE DANEMode
	// TempWindow bounds how long a transient discovery failure with
	// nothing cached is answered TEMP before NOTFOUND (OPEN-1); 0 means
	// DefaultTempWindow, a negative value answers NOTFOUND at once.
	TempWindow time.Duration
	// NoSNI leaves servername= out of secure answers (require_sni: false).
	NoSNI bool
	// ServerName is the servername= value; "" means "hostname" (PFX-POL-6).
	ServerName string
}

func (z Zone) daneMode() DANEMode {
	if z.DANE == "" {
		return DANEAuto
	}
	return z.DANE
}

func (z Zone) tempWindow() time.Duration {
	if z.TempWindow == 0 {
		return DefaultTempWindow
	}
	return z.TempWindow
}

func (z Zone) serverName() string {
	if z.NoSNI {
		return ""
	}
	if z.ServerName == "" {
		return DefaultServerName
	}
	return z.ServerName
}

// Validate checks the zone's values.
func (z Zone) Validate() error {
	switch z.DANE {
	case "", DANEAuto, DANEOn, DANEOff:
	default:
		return fmt.Errorf("dane: %q is not auto, on or off", z.DANE)
	}
	if z.ServerName != "" && z.ServerName != "hostname" && z.ServerName != "nexthop" {
		if _, err := dnsresolve.Normalize(z.ServerName); err != nil || strings.ContainsAny(z.ServerName, "_ ") {
			return fmt.Errorf("servername: %q is not hostname, nexthop or a host name (PFX-POL-6)", z.ServerName)
		}
	}
	return nil
}

// Action is what an override answers.
type Action string

// Override actions.
const (
	// ActionNone turns MTA-STS and DANE off for the domain: "OK may"
	// (opportunistic TLS), which also keeps Postfix from applying later
	// maps or smtp_tls_security_level. For receivers whose policy is broken
	// and who cannot fix it quickly.
	ActionNone Action = "none"
	// ActionEnforce answers "secure" with the override's own mx patterns,
	// whatever the domain publishes.
	ActionEnforce Action = "enforce"
	// ActionDANE answers "OK dane" (opportunistic DANE).
	ActionDANE Action = "dane"
	// ActionDANEOnly answers "OK dane-only" (mandatory DANE).
	ActionDANEOnly Action = "dane-only"
	// ActionNotFound answers NOTFOUND: Postfix's next map or its default
	// security level decides.
	ActionNotFound Action = "notfound"
)

// Override forces the answer for one policy domain.
type Override struct {
	// Domain is the policy domain (normalized by Validate).
	Domain string
	Action Action
	// MX holds the mx patterns for ActionEnforce, in MTA-STS syntax
	// ("mx1.example.com", "*.example.net").
	MX []string
	// Reason is logged and shown in explanations.
	Reason string
	// Expires, when not zero, ends the override: after it the override is
	// ignored (and that is logged).
	Expires time.Time
}

// Validate checks and normalizes the override.
func (o *Override) Validate() error {
	d, err := dnsresolve.Normalize(o.Domain)
	if err != nil {
		return fmt.Errorf("override domain %q: %w", o.Domain, err)
	}
	o.Domain = d
	switch o.Action {
	case ActionNone, ActionDANE, ActionDANEOnly, ActionNotFound:
		if len(o.MX) > 0 {
			return fmt.Errorf("override %s: mx is only used with action enforce", d)
		}
	case ActionEnforce:
		if len(o.MX) == 0 {
			return fmt.Errorf("override %s: action enforce needs mx patterns", d)
		}
		for i, p := range o.MX {
			p = strings.ToLower(strings.TrimSuffix(p, "."))
			if err := mtasts.ValidPattern(p); err != nil {
				return fmt.Errorf("override %s: mx %q: %w", d, o.MX[i], err)
			}
			o.MX[i] = p
		}
	default:
		return fmt.Errorf("override %s: action %q is not none, enforce, dane, dane-only or notfound", d, o.Action)
	}
	return nil
}

// Rules are the settings a Responder answers by, swapped as a whole on
// reload (SIGHUP).
type Rules struct {
	// Default applies to map names not listed in Zones.
	Default Zone
	// Zones maps socketmap map names (tcp_table listener zones) to
	// settings.
	Zones map[string]Zone
	// Overrides force answers per policy domain; later entries for the
	// same domain win.
	Overrides []Override
}

// compiled is Rules prepared for the hot path.
type compiled struct {
	def       Zone
	zones     map[string]Zone
	overrides map[string]*override
}

type override struct {
	Override
	match  string      // Postfix match list for ActionEnforce
	logged atomic.Bool // expiry logged
}

func compile(r *Rules) (*compiled, error) {
	c := &compiled{zones: map[string]Zone{}, overrides: map[string]*override{}}
	if r == nil {
		return c, nil
	}
	if err := r.Default.Validate(); err != nil {
		return nil, fmt.Errorf("default zone: %w", err)
	}
	c.def = r.Default
	for name, z := range r.Zones {
		if err := z.Validate(); err != nil {
			return nil, fmt.Errorf("zone %s: %w", name, err)
		}
		c.zones[name] = z
	}
	for _, o := range r.Overrides {
		o.MX = append([]string(nil), o.MX...)
		if err := o.Validate(); err != nil {
			return nil, err
		}
		ov := &override{Override: o}
		if o.Action == ActionEnforce {
			ov.match = matchList(o.MX)
		}
		c.overrides[o.Domain] = ov
	}
	return c, nil
}
