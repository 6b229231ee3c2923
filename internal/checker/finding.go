package checker

import (
	"fmt"
	"log/slog"
	"sort"
)

// Severity grades a Finding. The order matters: a Report's verdict is its
// worst finding.
type Severity int

// Severities, from best to worst.
const (
	SeverityOK Severity = iota
	SeverityInfo
	SeverityWarn
	SeverityFail
)

var severityNames = [...]string{"ok", "info", "warn", "fail"}

// String returns "ok", "info", "warn" or "fail".
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText implements encoding.TextMarshaler: severities are strings in
// JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("checker: unknown severity %q", b)
}

// Groups of findings, in report order.
const (
	GroupSTSRecord = "sts-record"
	GroupSTSPolicy = "sts-policy"
	GroupSTSMX     = "sts-mx"
	GroupMX        = "mx"
	GroupDANE      = "dane"
	GroupTLSRPT    = "tlsrpt"
	GroupClients   = "clients"
)

// GroupOrder lists the groups in the order reports show them.
var groupOrder = []string{GroupSTSRecord, GroupSTSPolicy, GroupSTSMX, GroupMX, GroupDANE, GroupTLSRPT, GroupClients}

// Groups returns the finding groups in report order.
func Groups() []string { return append([]string(nil), groupOrder...) }

// Finding is one observation about a domain. ID is stable (part of the
// JSON contract): tools may match on it. Message and Fix are for people
// and may change between versions.
type Finding struct {
	// ID is a stable dotted identifier such as "sts.record.multiple".
	ID string `json:"id"`
	// Group is the part of the check the finding belongs to (GroupSTSRecord, …).
	Group string `json:"group"`
	// Severity is ok, info, warn or fail.
	Severity Severity `json:"severity"`
	// Ref is the checklist ID or RFC section the finding rests on.
	Ref string `json:"ref"`
	// Message says what was seen, in one line.
	Message string `json:"message"`
	// Fix is a concrete hint for the domain owner; empty for ok findings.
	Fix string `json:"fix,omitempty"`
	// Host is the MX or client host a per-host finding is about.
	Host string `json:"host,omitempty"`
}

// LogValue implements slog.LogValuer.
func (f Finding) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", f.ID), slog.String("severity", f.Severity.String()),
		slog.String("host", f.Host), slog.String("message", f.Message))
}

// kind is the catalog entry of a finding ID: its group, reference and
// default fix hint.
type kind struct {
	group string
	ref   string
	fix   string
}

// catalog lists every finding ID the checker emits. The IDs are part of
// the JSON contract (docs/check.md lists them; a test keeps both in sync).
var catalog = map[string]kind{
	// _mta-sts TXT record (RFC 8461 §3.1).
	"sts.record.ok":        {GroupSTSRecord, "STS-TXT-3", ""},
	"sts.record.missing":   {GroupSTSRecord, "RFC 8461 §3.1", "publish _mta-sts.<domain> TXT \"v=STSv1; id=<timestamp>\" once the policy host serves a policy"},
	"sts.record.dns-error": {GroupSTSRecord, "STS-TXT-13", "make the authoritative servers answer TXT queries for _mta-sts.<domain> (SERVFAIL or timeout now)"},
	"sts.record.multiple":  {GroupSTSRecord, "STS-TXT-7", "keep exactly one TXT record beginning with v=STSv1 at _mta-sts.<domain>"},
	"sts.record.syntax":    {GroupSTSRecord, "STS-TXT-8", "write the record as \"v=STSv1; id=<1-32 letters and digits>\""},
	"sts.record.cname":     {GroupSTSRecord, "STS-TXT-10", ""},
	"sts.record.other":     {GroupSTSRecord, "STS-TXT-7", "move unrelated TXT records away from _mta-sts.<domain>; they are ignored"},
	// Policy host and policy (RFC 8461 §3.2, §3.3).
	"sts.policy.ok":             {GroupSTSPolicy, "STS-POL-3", ""},
	"sts.policy.host-dns":       {GroupSTSPolicy, "STS-POL-1", "publish A or AAAA records for mta-sts.<domain>"},
	"sts.policy.connect":        {GroupSTSPolicy, "STS-FETCH-1", "serve HTTPS on port 443 of mta-sts.<domain> with TLS 1.2 or later, answering within a minute"},
	"sts.policy.cert-ok":        {GroupSTSPolicy, "STS-FETCH-2", ""},
	"sts.policy.cert-expired":   {GroupSTSPolicy, "STS-FETCH-2", "renew the certificate of mta-sts.<domain>"},
	"sts.policy.cert-name":      {GroupSTSPolicy, "STS-FETCH-2", "install a certificate whose subjectAltName lists mta-sts.<domain> (the CN is not used)"},
	"sts.policy.cert-untrusted": {GroupSTSPolicy, "STS-FETCH-2", "use a certificate from a publicly trusted CA and serve the intermediate certificates"},
	"sts.policy.cert-expiring":  {GroupSTSPolicy, "STS-PUB-3", "renew the certificate of mta-sts.<domain> now; automate renewal"},
	"sts.policy.status":         {GroupSTSPolicy, "STS-FETCH-4", "serve the policy at /.well-known/mta-sts.txt with status 200"},
	"sts.policy.redirect":       {GroupSTSPolicy, "STS-FETCH-5", "serve the policy directly; senders never follow redirects"},
	"sts.policy.content-type":   {GroupSTSPolicy, "STS-POL-2", "serve the policy with Content-Type: text/plain"},
	"sts.policy.size":           {GroupSTSPolicy, "STS-POL-13", "keep the policy under 64 KiB"},
	"sts.policy.line-endings":   {GroupSTSPolicy, "STS-POL-4", ""},
	"sts.policy.syntax":         {GroupSTSPolicy, "STS-POL-3", "fix the policy text at the line shown (RFC 8461 §3.2 grammar)"},
	"sts.policy.lenient":        {GroupSTSPolicy, "OPEN-3", "make the policy follow the RFC 8461 §3.2 grammar exactly; strict senders reject it"},
	"sts.policy.max-age-short":  {GroupSTSPolicy, "STS-POL-7", "raise max_age to at least 604800 (one week); RFC 8461 suggests weeks"},
	"sts.policy.max-age-long":   {GroupSTSPolicy, "STS-ERRATA-3", "lower max_age to at most 31557600 (the RFC maximum)"},
	"sts.policy.mode":           {GroupSTSPolicy, "RFC 8461 §5", ""},
	// Policy against the live MX set (RFC 8461 §4.1).
	"sts.mx.match":          {GroupSTSMX, "STS-MX-1", ""},
	"sts.mx.nomatch":        {GroupSTSMX, "STS-MX-1", "add an mx line covering this host (exact name, or *. for exactly one label) and change the TXT id"},
	"sts.mx.unused-pattern": {GroupSTSMX, "STS-MX-8", "remove mx patterns no MX host uses, or add the missing MX"},
	"sts.mx.lookup-error":   {GroupSTSMX, "RFC 5321 §5.1", "make the authoritative servers answer MX queries for the domain"},
	"sts.mx.implicit":       {GroupSTSMX, "STS-MX-6", "publish an MX record; with none, mail goes to the domain's own address"},
	"sts.mx.nxdomain":       {GroupSTSMX, "RFC 5321 §5.1", "check the name: it does not exist in DNS (NXDOMAIN), so no mail can be sent to it"},
	"sts.mx.null":           {GroupSTSMX, "STS-MX-7", ""},
	"sts.mx.truncated":      {GroupSTSMX, "RFC 5321 §5.1", "publish fewer MX records"},
	// Every MX host (RFC 8461 §4.2, RFC 3207).
	"mx.address":        {GroupMX, "RFC 5321 §5.1", "publish A or AAAA records for the MX host"},
	"mx.connect":        {GroupMX, "STS-CERT-1", "accept SMTP connections on port 25"},
	"mx.banner":         {GroupMX, "RFC 5321 §4.3.1", "make the server send its 220 greeting promptly"},
	"mx.ehlo":           {GroupMX, "RFC 5321 §4.1.1.1", "answer EHLO with 250"},
	"mx.starttls":       {GroupMX, "STS-CERT-1", "offer STARTTLS in the EHLO reply (RFC 3207)"},
	"mx.tls":            {GroupMX, "STS-CERT-7", "complete TLS 1.2 or 1.3 handshakes with SNI set to the MX host name"},
	"mx.tls-ok":         {GroupMX, "STS-CERT-7", ""},
	"mx.cert-ok":        {GroupMX, "STS-CERT-2", ""},
	"mx.cert-expired":   {GroupMX, "STS-CERT-2", "renew the MX certificate"},
	"mx.cert-name":      {GroupMX, "STS-CERT-3", "install a certificate whose subjectAltName lists the MX host name (the CN is not used)"},
	"mx.cert-untrusted": {GroupMX, "STS-CERT-2", "use a certificate from a publicly trusted CA and send the intermediate certificates"},
	"mx.cert-expiring":  {GroupMX, "STS-CERT-2", "renew the MX certificate now; automate renewal"},
	"mx.sts-deliver":    {GroupMX, "STS-MX-1", ""},
	"mx.sts-refuse":     {GroupMX, "STS-MX-1", "fix the findings above for this host before relying on mode enforce"},
	// DANE (RFC 7672).
	"dane.none":         {GroupDANE, "DANE-4", ""},
	"dane.insecure":     {GroupDANE, "DANE-1", "sign the zone with DNSSEC, or remove the TLSA records: senders ignore them"},
	"dane.lookup-error": {GroupDANE, "DANE-5", "make the TLSA lookup at _25._tcp.<mx> answer (or prove its absence) with DNSSEC"},
	"dane.unusable":     {GroupDANE, "DANE-6", "publish TLSA records with usage 2 (DANE-TA) or 3 (DANE-EE)"},
	"dane.match":        {GroupDANE, "DANE-7", ""},
	"dane.nomatch":      {GroupDANE, "DANE-2", "update the TLSA records to the certificate the host presents (publish the new one before rolling the key)"},
	// TLSRPT (RFC 8460 §3).
	"tlsrpt.ok":          {GroupTLSRPT, "RPT-TXT-3", ""},
	"tlsrpt.missing":     {GroupTLSRPT, "RPT-TXT-1", "publish _smtp._tls.<domain> TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@<domain>\" to learn about failures"},
	"tlsrpt.dns-error":   {GroupTLSRPT, "RPT-TXT-1", "make the authoritative servers answer TXT queries for _smtp._tls.<domain>"},
	"tlsrpt.multiple":    {GroupTLSRPT, "RPT-TXT-6", "keep exactly one TXT record beginning with v=TLSRPTv1 at _smtp._tls.<domain>"},
	"tlsrpt.syntax":      {GroupTLSRPT, "RPT-TXT-2", "write the record as \"v=TLSRPTv1; rua=mailto:…\" (RFC 8460 §3)"},
	"tlsrpt.rua-ignored": {GroupTLSRPT, "RPT-TXT-4", "use only mailto: and https: report URIs"},
	"tlsrpt.no-rua":      {GroupTLSRPT, "RPT-TXT-4", "add at least one mailto: or https: rua URI"},
	// Forms of the early drafts that no current sender reads.
	"sts.record.draft-name":    {GroupSTSRecord, "RFC 8461 §3.1", "publish _mta-sts.<domain> TXT \"v=STSv1; id=…\""},
	"sts.record.draft-version": {GroupSTSRecord, "STS-TXT-3", "publish _mta-sts.<domain> TXT \"v=STSv1; id=…\""},
	"sts.policy.draft-json":    {GroupSTSPolicy, "RFC 8461 §3.2", "publish the policy as text at /.well-known/mta-sts.txt"},
	"sts.policy.draft-mode":    {GroupSTSPolicy, "STS-POL-3", "use mode testing"},
	"sts.policy.root":          {GroupSTSPolicy, "STS-FETCH-2", ""},
	"tlsrpt.draft-name":        {GroupTLSRPT, "RPT-TXT-1", "publish _smtp._tls.<domain> TXT \"v=TLSRPTv1; rua=…\""},
	// RFC 8314 mail client endpoints (--clients).
	"clients.ok":          {GroupClients, "TLS8314-1", ""},
	"clients.connect":     {GroupClients, "TLS8314-2", "serve the endpoint, or stop advertising it to clients"},
	"clients.starttls":    {GroupClients, "TLS8314-2", "offer STARTTLS (STLS for POP3) on the port, or stop serving it and use implicit TLS (465, 993, 995)"},
	"clients.tls":         {GroupClients, "TLS8314-5", "complete TLS 1.2 or later handshakes on the endpoint"},
	"clients.cert":        {GroupClients, "TLS8314-4", "install a publicly trusted certificate valid for the host name clients use"},
	"clients.discovery":   {GroupClients, "TLS8314-4", "publish RFC 6186 SRV records for the services offered"},
	"clients.srv-confirm": {GroupClients, "TLS8314-4", "point the SRV record at a host inside the domain, or sign the zone with DNSSEC"},
	"clients.latch":       {GroupClients, "TLS8314-4", ""},
}

// IDs returns every finding ID the checker can emit, sorted.
func IDs() []string {
	ids := make([]string, 0, len(catalog))
	for id := range catalog {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// findings accumulates the findings of one part of a check.
type findings []Finding

// add appends a finding of catalog entry id. fix, when not "", replaces the
// catalog's hint.
func (fs *findings) add(id string, sev Severity, host, msg string, fix ...string) {
	k, ok := catalog[id]
	if !ok {
		// A programming error: every ID must be in the catalog. Keep the
		// finding visible rather than panicking on Internet input paths.
		k = kind{group: "internal", ref: "-"}
	}
	f := Finding{ID: id, Group: k.group, Severity: sev, Ref: k.ref, Message: msg, Host: host}
	if sev >= SeverityWarn {
		f.Fix = k.fix
		if len(fix) > 0 && fix[0] != "" {
			f.Fix = fix[0]
		}
	}
	*fs = append(*fs, f)
}
