package testnet

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"
	"golang.org/x/net/idna"
)

// Scenario is the whole fake Internet as data: every domain with its DNS
// records, policy host and MX hosts. The zero Scenario is an empty network.
type Scenario struct {
	Domains []Domain `yaml:"domains"`
}

// Domain describes one policy domain and everything hanging off it.
//
// Names derived from Name that the DNS server answers for:
//
//	_mta-sts.<name>     TXT   STSTXT (or CNAME STSCNAME), fault STSFault
//	mta-sts.<name>      A     the HTTPS address when Policy != nil, fault Policy.Fault
//	<name>              MX    MX (or "0 ." when NullMX), fault MXFault
//	<mx>                A     the MX host's own loopback address, fault MXHost.Fault
//	_25._tcp.<mx>       TLSA  MXHost.TLSA
//	_smtp._tls.<name>   TXT   TLSRPTTXT
//	<client host>       A     the host's own loopback address, fault ClientHost.Fault
//	_<service>._tcp.<name> SRV  client hosts with SRV (RFC 6186), ports of Net.ClientPort
//
// plus every record in Records.
type Domain struct {
	// Name is the policy domain. U-labels are converted to A-labels and
	// the name is lowercased; a trailing dot is removed.
	Name string `yaml:"name"`
	// STSTXT is the TXT RRset at _mta-sts.<name>: one entry per RR, each
	// RR given as its character-strings (at most 255 bytes each), so that
	// a record split into several strings is expressible (STS-TXT-9).
	// nil (and no STSCNAME) means the name does not exist (NXDOMAIN).
	STSTXT [][]string `yaml:"sts_txt,omitempty"`
	// STSCNAME, when set, makes _mta-sts.<name> a CNAME to this full
	// name (for example "_mta-sts.provider.example"); the TXT records are
	// the target's (STS-TXT-10). STSTXT must then be empty.
	STSCNAME string `yaml:"sts_cname,omitempty"`
	// STSFault breaks every query for _mta-sts.<name>.
	STSFault Fault `yaml:"sts_fault,omitempty"`
	// Policy is the HTTPS policy host mta-sts.<name>; nil means the host
	// name does not exist (NXDOMAIN).
	Policy *PolicyHost `yaml:"policy,omitempty"`
	// MX lists the MX hosts of the domain; nil means no MX RRset (NODATA).
	MX []MXHost `yaml:"mx,omitempty"`
	// NullMX publishes the RFC 7505 null MX "0 ." instead of MX.
	NullMX bool `yaml:"null_mx,omitempty"`
	// MXFault breaks every query for <name> itself (MX lookups).
	MXFault Fault `yaml:"mx_fault,omitempty"`
	// TLSRPTTXT is the TXT RRset at _smtp._tls.<name> (RFC 8460), shaped
	// like STSTXT; nil means the name does not exist.
	TLSRPTTXT [][]string `yaml:"tlsrpt_txt,omitempty"`
	// Secure sets the DNSSEC AD bit on every answer about this domain and
	// its MX hosts, simulating a validating resolver on a signed zone.
	Secure bool `yaml:"secure,omitempty"`
	// Clients are hosts serving the RFC 8314 mail-client endpoints
	// (submission, IMAP, POP3, each with implicit TLS and STARTTLS) on
	// the ports of Net.ClientPort. In YAML:
	//
	//	clients:
	//	  - name: mail.example.org          # all six endpoints, good certificates
	//	  - name: mail2.example.org
	//	    cert: wrong-name                # the default of every endpoint
	//	    imaps: {cert: expired}
	//	    submission: {no_starttls: true} # STARTTLS stripped
	//	    pop3: {down: true}              # connections refused
	Clients []ClientHost `yaml:"clients,omitempty"`
	// Records are extra resource records in zone-file presentation form,
	// for example `alias.example. 300 IN CNAME _mta-sts.provider.example.`.
	// Owner names are taken as absolute. They share Secure with the domain.
	Records []string `yaml:"records,omitempty"`
}

// PolicyHost scripts the HTTPS server at mta-sts.<domain>.
type PolicyHost struct {
	// Body is served at /.well-known/mta-sts.txt, byte for byte.
	Body string `yaml:"body"`
	// Status is the HTTP status code; 0 means 200.
	Status int `yaml:"status,omitempty"`
	// ContentType is the Content-Type header; "" means "text/plain" and
	// "-" means no Content-Type header at all.
	ContentType string `yaml:"content_type,omitempty"`
	// Location sets the Location header (for 3xx tests).
	Location string `yaml:"location,omitempty"`
	// Headers are extra response headers.
	Headers map[string]string `yaml:"headers,omitempty"`
	// Delay waits this long before sending the response headers.
	Delay time.Duration `yaml:"delay,omitempty"`
	// Drip sends the body one byte at a time spread over this long.
	Drip time.Duration `yaml:"drip,omitempty"`
	// PadTo, when > 0, appends an extension line "pad: aaa…" so that the
	// body is exactly PadTo bytes (for the 64 KiB cap, STS-FETCH-8).
	PadTo int `yaml:"pad_to,omitempty"`
	// Cert is the certificate the host presents.
	Cert CertKind `yaml:"cert,omitempty"`
	// MaxTLS caps the TLS version the host accepts: "1.0", "1.1", "1.2",
	// "1.3" or "" (no cap).
	MaxTLS string `yaml:"max_tls,omitempty"`
	// Fault breaks the A record of mta-sts.<domain>.
	Fault Fault `yaml:"fault,omitempty"`
	// JSONBody, when set, is served at DraftJSONPolicyPath
	// (/.well-known/mta-sts.json) as application/json: the policy form of
	// the early MTA-STS drafts, which no current sender fetches.
	JSONBody string `yaml:"json_body,omitempty"`
}

// DraftJSONPolicyPath is where the early MTA-STS drafts put a JSON policy.
const DraftJSONPolicyPath = "/.well-known/mta-sts.json"

// MXHost scripts one MX host: its DNS records and its SMTP server.
type MXHost struct {
	// Name is the MX host name (A-label form after normalization).
	Name string `yaml:"name"`
	// Pref is the MX preference.
	Pref uint16 `yaml:"pref,omitempty"`
	// NoSTARTTLS hides STARTTLS from the EHLO reply and refuses the verb.
	NoSTARTTLS bool `yaml:"no_starttls,omitempty"`
	// Cert is the certificate presented after STARTTLS; names are checked
	// against the MX host name.
	Cert CertKind `yaml:"cert,omitempty"`
	// MaxTLS caps the TLS version, as for PolicyHost.
	MaxTLS string `yaml:"max_tls,omitempty"`
	// TLSA selects the TLSA record at _25._tcp.<name>.
	TLSA TLSAKind `yaml:"tlsa,omitempty"`
	// Down refuses TCP connections (nothing listens on the host's address).
	Down bool `yaml:"down,omitempty"`
	// Hang accepts connections but never sends the banner.
	Hang bool `yaml:"hang,omitempty"`
	// HandshakeFail advertises STARTTLS, then aborts the TLS handshake.
	HandshakeFail bool `yaml:"handshake_fail,omitempty"`
	// Fault breaks the A record of the host.
	Fault Fault `yaml:"fault,omitempty"`
}

// Fault is a scripted DNS failure for one name.
type Fault string

// Faults. Every fault applies to all query types at the name, over UDP and
// TCP, except FaultTruncate.
const (
	FaultNone     Fault = ""
	FaultServFail Fault = "servfail" // RCODE SERVFAIL
	FaultTimeout  Fault = "timeout"  // no reply at all
	FaultRefused  Fault = "refused"  // RCODE REFUSED
	FaultNXDomain Fault = "nxdomain" // RCODE NXDOMAIN although records exist
	FaultNoData   Fault = "nodata"   // NOERROR with an empty answer
	// FaultTruncate answers over UDP with TC set and no records; over TCP
	// the real answer is served, so clients must retry over TCP.
	FaultTruncate Fault = "truncate"
)

// CertKind selects the certificate a TLS server presents.
type CertKind string

// Certificate kinds. All but CertSelfSigned are issued by the test CA.
const (
	CertGood        CertKind = "good"          // valid SAN for the host, chains to the CA
	CertExpiring    CertKind = "expiring"      // good, but expires in ExpiringCertValidity (7 days)
	CertExpired     CertKind = "expired"       // NotAfter in the past
	CertNotYetValid CertKind = "not-yet-valid" // NotBefore in the future
	CertWrongName   CertKind = "wrong-name"    // SAN for WrongName only
	CertSelfSigned  CertKind = "self-signed"   // right name, not issued by the CA
	CertCNOnly      CertKind = "cn-only"       // right name in the CN, no SAN
)

// WrongName is the only name in CertWrongName certificates.
const WrongName = "wrong-name.invalid"

// TLSAKind selects the TLSA record published for an MX host.
type TLSAKind string

// TLSA kinds.
const (
	TLSANone   TLSAKind = ""        // no TLSA record (NXDOMAIN at _25._tcp.<mx>)
	TLSADaneEE TLSAKind = "dane-ee" // 3 1 1: SHA-256 of the host certificate's SPKI
	TLSADaneTA TLSAKind = "dane-ta" // 2 0 1: SHA-256 of the test CA certificate
	TLSAWrong  TLSAKind = "wrong"   // 3 1 1 of a key nobody uses
)

// Limits for hostile or mistaken scenarios.
const (
	// MaxScenarioSize caps the YAML accepted by LoadScenario.
	MaxScenarioSize = 64 << 20
	// MaxPadTo caps PolicyHost.PadTo.
	MaxPadTo = 16 << 20
)

// ErrScenario is wrapped by every validation error from LoadScenario,
// Start and Set: the scenario data is wrong and must be fixed by its author.
var ErrScenario = errors.New("testnet: invalid scenario")

// LoadScenario parses and validates a YAML scenario. Unknown keys are errors
// (reported with their line numbers), as are invalid names, faults and kinds.
// Names are normalized to lowercase A-labels.
func LoadScenario(data []byte) (*Scenario, error) {
	if len(data) > MaxScenarioSize {
		return nil, fmt.Errorf("%w: %d bytes is more than %d", ErrScenario, len(data), MaxScenarioSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrScenario)
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// LoadScenarioFile reads and parses a YAML scenario file.
func LoadScenarioFile(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxScenarioSize+1))
	if err != nil {
		return nil, fmt.Errorf("testnet: reading %s: %w", path, err)
	}
	sc, err := LoadScenario(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// Marshal renders the scenario as YAML that LoadScenario reads back.
func (sc *Scenario) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(sc); err != nil {
		return nil, fmt.Errorf("testnet: encoding scenario: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("testnet: encoding scenario: %w", err)
	}
	return buf.Bytes(), nil
}

// Validate normalizes every name in place and checks the scenario: valid
// names, no duplicate domains, known faults and kinds, and MX hosts shared by
// several domains defined identically.
func (sc *Scenario) Validate() error {
	seen := make(map[string]bool, len(sc.Domains))
	mx := make(map[string]MXHost)
	clients := make(map[string]ClientHost)
	for i := range sc.Domains {
		d := &sc.Domains[i]
		if err := d.normalize(); err != nil {
			return err
		}
		if seen[d.Name] {
			return fmt.Errorf("%w: domain %q listed twice", ErrScenario, d.Name)
		}
		seen[d.Name] = true
		for _, h := range d.MX {
			h.Pref = 0
			if prev, ok := mx[h.Name]; ok && !prev.equal(h) {
				return fmt.Errorf("%w: MX host %q defined differently by two domains", ErrScenario, h.Name)
			}
			mx[h.Name] = h
		}
		for _, h := range d.Clients {
			if prev, ok := clients[h.Name]; ok && prev != h {
				return fmt.Errorf("%w: client host %q defined differently by two domains", ErrScenario, h.Name)
			}
			clients[h.Name] = h
		}
	}
	return nil
}

// hostNames returns the names of the MX and client hosts of d, which get
// addresses of their own.
func (d *Domain) hostNames() []string {
	names := make([]string, 0, len(d.MX)+len(d.Clients))
	for _, h := range d.MX {
		names = append(names, h.Name)
	}
	for _, h := range d.Clients {
		names = append(names, h.Name)
	}
	return names
}

func (h MXHost) equal(o MXHost) bool {
	return h == o
}

// normalize validates d and rewrites its names to canonical form.
func (d *Domain) normalize() error {
	name, err := canonicalName(d.Name)
	if err != nil {
		return fmt.Errorf("%w: domain %q: %w", ErrScenario, d.Name, err)
	}
	d.Name = name
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: domain %s: %s", ErrScenario, name, fmt.Sprintf(format, args...))
	}
	if err := checkTXT(d.STSTXT); err != nil {
		return bad("sts_txt: %v", err)
	}
	if err := checkTXT(d.TLSRPTTXT); err != nil {
		return bad("tlsrpt_txt: %v", err)
	}
	if d.STSCNAME != "" {
		if len(d.STSTXT) > 0 {
			return bad("sts_cname and sts_txt are exclusive (a CNAME owner has no other data)")
		}
		if d.STSCNAME, err = canonicalName(d.STSCNAME); err != nil {
			return bad("sts_cname: %v", err)
		}
	}
	for _, f := range []Fault{d.STSFault, d.MXFault} {
		if !f.valid() {
			return bad("unknown fault %q", f)
		}
	}
	if d.NullMX && len(d.MX) > 0 {
		return bad("null_mx and mx are exclusive")
	}
	hosts := make(map[string]bool, len(d.MX))
	for i := range d.MX {
		h := &d.MX[i]
		if h.Name, err = canonicalName(h.Name); err != nil {
			return bad("mx %q: %v", h.Name, err)
		}
		if hosts[h.Name] {
			return bad("mx %q listed twice", h.Name)
		}
		hosts[h.Name] = true
		if !h.Cert.valid() || !h.TLSA.valid() || !h.Fault.valid() || !validMaxTLS(h.MaxTLS) {
			return bad("mx %s: unknown cert %q, tlsa %q, fault %q or max_tls %q", h.Name, h.Cert, h.TLSA, h.Fault, h.MaxTLS)
		}
		if h.Down && h.Hang {
			return bad("mx %s: down and hang are exclusive", h.Name)
		}
	}
	clients := make(map[string]bool, len(d.Clients))
	for i := range d.Clients {
		h := &d.Clients[i]
		if err := h.normalize(); err != nil {
			return bad("%v", err)
		}
		if clients[h.Name] {
			return bad("client host %q listed twice", h.Name)
		}
		clients[h.Name] = true
	}
	if p := d.Policy; p != nil {
		if !p.Cert.valid() || !p.Fault.valid() || !validMaxTLS(p.MaxTLS) {
			return bad("policy: unknown cert %q, fault %q or max_tls %q", p.Cert, p.Fault, p.MaxTLS)
		}
		if p.Status != 0 && (p.Status < 100 || p.Status > 999) {
			return bad("policy: status %d out of range", p.Status)
		}
		if p.Delay < 0 || p.Drip < 0 {
			return bad("policy: negative delay or drip")
		}
		if p.PadTo < 0 || p.PadTo > MaxPadTo {
			return bad("policy: pad_to %d out of range 0..%d", p.PadTo, MaxPadTo)
		}
		if p.PadTo > 0 {
			if _, _, _, err := padding(p.Body, p.PadTo); err != nil {
				return bad("policy: %v", err)
			}
		}
		for k, v := range p.Headers {
			if strings.ContainsAny(k+v, "\r\n") || k == "" {
				return bad("policy: bad header %q", k)
			}
		}
	}
	for _, r := range d.Records {
		if _, err := dns.NewRR(r); err != nil {
			return bad("record %q: %v", r, err)
		}
	}
	return nil
}

func checkTXT(rrs [][]string) error {
	for _, rr := range rrs {
		if len(rr) == 0 {
			return errors.New("a TXT RR needs at least one character-string")
		}
		for _, s := range rr {
			// RFC 1035 §3.3: a character-string is at most 255 octets.
			if len(s) > 255 {
				return fmt.Errorf("character-string of %d bytes is longer than 255", len(s))
			}
		}
	}
	return nil
}

func (f Fault) valid() bool {
	switch f {
	case FaultNone, FaultServFail, FaultTimeout, FaultRefused, FaultNXDomain, FaultNoData, FaultTruncate:
		return true
	}
	return false
}

func (k CertKind) valid() bool {
	switch k {
	case "", CertGood, CertExpiring, CertExpired, CertNotYetValid, CertWrongName, CertSelfSigned, CertCNOnly:
		return true
	}
	return false
}

func (k TLSAKind) valid() bool {
	switch k {
	case TLSANone, TLSADaneEE, TLSADaneTA, TLSAWrong:
		return true
	}
	return false
}

func validMaxTLS(s string) bool {
	_, ok := maxTLSVersion(s)
	return ok
}

// maxTLSVersion maps a MaxTLS value to a crypto/tls version; 0 means no cap.
func maxTLSVersion(s string) (uint16, bool) {
	switch s {
	case "":
		return 0, true
	case "1.0":
		return tls.VersionTLS10, true
	case "1.1":
		return tls.VersionTLS11, true
	case "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

// canonicalName returns name as lowercase A-labels without a trailing dot.
// Underscore labels (_mta-sts, _tcp) are allowed, as DNS allows them.
func canonicalName(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", errors.New("empty name")
	}
	if len(name) > 253 {
		return "", errors.New("name longer than 253 bytes")
	}
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("IDNA: %w", err)
		}
		name = a
	}
	name = strings.ToLower(name)
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("bad label in %q", name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("bad character %q in %q", c, name)
			}
		}
	}
	return name, nil
}

// paddedBody applies PolicyHost.PadTo: it appends "pad: aaa…" plus the
// body's line ending so that the result is exactly padTo bytes.
func paddedBody(body string, padTo int) (string, error) {
	if padTo == 0 {
		return body, nil
	}
	body, eol, n, err := padding(body, padTo)
	if err != nil {
		return "", err
	}
	return body + padKey + strings.Repeat("a", n) + eol, nil
}

const padKey = "pad: "

// padding computes what paddedBody appends without building it: the body
// with its last line terminated, the line ending and the pad value length.
func padding(body string, padTo int) (string, string, int, error) {
	eol := "\n"
	if strings.Contains(body, "\r\n") {
		eol = "\r\n"
	}
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += eol
	}
	n := padTo - len(body) - len(padKey) - len(eol)
	if n < 1 {
		return "", "", 0, fmt.Errorf("pad_to %d is too small for a body of %d bytes", padTo, len(body))
	}
	return body, eol, n, nil
}

// LogValue summarizes a domain for structured logs.
func (d Domain) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", d.Name), slog.Int("sts_txt", len(d.STSTXT)), slog.Int("mx", len(d.MX))}
	if len(d.Clients) > 0 {
		attrs = append(attrs, slog.Int("clients", len(d.Clients)))
	}
	if d.STSFault != FaultNone {
		attrs = append(attrs, slog.String("sts_fault", string(d.STSFault)))
	}
	if d.Policy != nil {
		attrs = append(attrs, slog.Any("policy", *d.Policy))
	}
	if d.Secure {
		attrs = append(attrs, slog.Bool("secure", true))
	}
	return slog.GroupValue(attrs...)
}

// LogValue summarizes a policy host for structured logs (without the body).
func (p PolicyHost) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Int("body_bytes", len(p.Body))}
	if p.Status != 0 {
		attrs = append(attrs, slog.Int("status", p.Status))
	}
	if p.Cert != "" {
		attrs = append(attrs, slog.String("cert", string(p.Cert)))
	}
	if p.Fault != FaultNone {
		attrs = append(attrs, slog.String("fault", string(p.Fault)))
	}
	return slog.GroupValue(attrs...)
}
