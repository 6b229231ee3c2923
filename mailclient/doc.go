// Package mailclient implements transport security for mail user agents
// (RFC 8314, "Cleartext Considered Obsolete"), with the latching of the
// DEEP drafts that preceded it: where a mail client finds its submission,
// IMAP and POP3 servers, which connections it may accept, what it remembers
// about each account, and what to show the user.
//
// # Using it
//
// A [Discoverer] finds an account's endpoints from RFC 6186 SRV records
// (_submissions._tcp, _submission._tcp, _imaps._tcp, _imap._tcp,
// _pop3s._tcp, _pop3._tcp), or from well-known host names (smtp., imap.,
// pop3., mail. and the domain itself) when a domain publishes none. A
// [Dialer] connects to them in order, implicit TLS first, does STARTTLS
// itself when it must, validates the certificate by DANE or PKIX, judges
// the connection with [Decide] against the account's [Policy] and
// [Latch], and returns a connection that a protocol client starts on as
// usual (github.com/emersion/go-imap/v2's imapclient.New, net/smtp's
// NewClient, a POP3 client):
//
//	d := &mailclient.Dialer{Store: &mailclient.FileStore{Path: path}}
//	disc, err := d.Discover(ctx, "user@example.org")
//	s, err := d.DialProtocol(ctx, "user@example.org", disc, mailclient.IMAP)
//	if errors.Is(err, mailclient.ErrRefused) { … tell the user; offer Reset … }
//	c := imapclient.New(s.Conn, nil)
//
// # Latching
//
// Each accepted connection raises the account's latch for its protocol:
// TLS was used, the highest TLS version seen, the certificate was
// validated (and how). A later connection below it is refused with
// [ErrRefused] even when the account's policy would allow it: a stripped
// STARTTLS or a certificate that no longer validates is what an attacker
// on the path produces. Only [Dialer.Reset], on the user's explicit
// request, forgets a latch; it is logged. [AccountLevel] gives the level
// to show in a user interface: cleartext, TLS without validation, or
// validated TLS (by PKIX or DANE).
//
// Conformance notes:
//   - RFC 8314 §3, §5.1 (TLS8314-1, TLS8314-3): implicit TLS (465, 993,
//     995) is tried before STARTTLS (587, 143, 110); SRV priority orders
//     endpoints within a service, and Dialer.DialProtocol tries targets
//     of equal priority in RFC 2782's weighted random order (Discovery
//     lists them heaviest first); "." means not offered (RFC 6186 §4).
//   - RFC 8314 §5.2, §5.3 (TLS8314-4): by default only TLS with a
//     validated certificate is accepted, TLS 1.2 at least (RFC 8997);
//     a Policy may lower this per account, never below the latch.
//   - RFC 6186 §6, RFC 7817 §3: a host from an SRV record outside the
//     account's domain is used only when the record was DNSSEC-signed or
//     the user confirmed it ([Endpoint.Confirm], [Dialer.ConfirmHost]).
//   - RFC 3207 §4.2, RFC 2595 §3.1, RFC 9051 §6.2.1: what the server said
//     before TLS is discarded; bytes after the STARTTLS go-ahead are
//     refused as an injection; a PREAUTH IMAP greeting cannot be upgraded.
//   - Replies before TLS are bounded (2 KiB lines, 64 lines per reply) and
//     every attempt has a deadline.
package mailclient
