// Package outgoing is the sending side of SMTP TLS Reporting (RFC 8460)
// up to the outbox: the results store that collectors write per-session
// results into, and the daily builder that turns each finished UTC day of
// one policy domain into one report and hands it to a Sink.
//
// The pipeline is: collectors (libtlsrpt datagrams, policyd's own
// failures, the Go API [Recorder]) → [Store] → [Builder] → [Sink] (the
// outbox, which delivers by mail and HTTPS).
package outgoing
