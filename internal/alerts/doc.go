// Package alerts watches the stored TLS reports and tells the domain
// owner when something changes: a sender that reported on most days goes
// silent (a broken rua, a lost mailbox), a domain's failure rate jumps
// above its baseline (a certificate renewal gone wrong), or a failure
// type never seen before for a domain appears.
//
// Rules (Rule) look at the last complete UTC day and return findings;
// the Engine turns a new finding into a firing alert and a finding that
// is gone into a resolved notice, each sent once to every Notifier
// (Webhook, Mail) with retries and back-off, and counted through an
// Observer (internal/metrics makes Prometheus metrics of it). The open
// alerts and the deliveries still due are kept in a state file, so a
// restart neither fires an alert again nor loses a notice. An optional
// daily digest lists the open alerts.
//
// More rules (a hosted policy's certificate expiring, a live TXT id that
// does not match the served policy) implement Rule and join
// Engine.Rules.
package alerts
