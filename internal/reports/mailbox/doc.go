// Package mailbox feeds report mails from a [Maildir] or an [IMAP]
// mailbox to an [ingest.Ingester] (RFC 8460 §5.3), moving each message to
// a Processed or Rejected folder once its outcome is stored, and leaving
// it in place when the outcome is temporary (a DKIM key lookup failed).
// It is the only report package that imports go-imap.
package mailbox
