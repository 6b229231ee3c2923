// Package postfix implements the two protocols Postfix uses to ask an
// external daemon for table lookups, and the syntax of the answers its TLS
// policy table (smtp_tls_policy_maps) understands. It knows Postfix, not
// MTA-STS: a policy daemon plugs its logic in as a [Handler].
//
// Socketmap (socketmap_table(5)) sends one netstring per lookup holding
// "<map name> <key>" and expects one netstring back, "OK <data>",
// "NOTFOUND ", "TEMP <reason>", "TIMEOUT <reason>" or "PERM <reason>".
// tcp_table (tcp_table(5)) sends "get <%XX-encoded key>\n" and expects
// "200 <data>\n", "500 <text>\n" or "400 <text>\n". Prefer socketmap on a
// unix socket for TLS policy: neither protocol authenticates or encrypts.
//
// Layers, bottom up:
//   - pure formats, no I/O, fuzzed: [NetstringReader] and
//     [NetstringWriter], [QuoteTCP] and [UnquoteTCP], [ParseNextHop] for
//     policy keys, [TLSPolicy] with [ParseTLSPolicy], [MatchFromSTS];
//   - servers shaped like net/http: [SocketmapServer] and [TCPTableServer]
//     with Serve, ListenAndServe, Shutdown, Close and [ErrServerClosed];
//   - clients for tests, load generation and health checks:
//     [SocketmapClient] (with pipelining) and [TCPTableClient].
//
// A minimal TLS policy daemon:
//
//	h := postfix.HandlerFunc(func(ctx context.Context, name, key string) postfix.Reply {
//		hop := postfix.ParseNextHop(key)
//		domain, ok := hop.PolicyDomain()
//		if !ok {
//			return postfix.NotFound() // parent probe, IP literal, junk
//		}
//		return lookUpPolicy(ctx, domain) // e.g. Found("secure match=.example.net servername=hostname")
//	})
//	srv := &postfix.SocketmapServer{Handler: h}
//	go srv.ListenAndServe("tcp", "127.0.0.1:8461")
//	…
//	srv.Shutdown(ctx)
//
// Conformance (IDs from the project's RFC checklist):
//   - PFX-SOCKETMAP-2, GO-11: netstring lengths are 1-10 digits with no
//     sign, space or leading zero, capped before the payload is read; the
//     ',' is required. Framing errors close the connection.
//   - PFX-SOCKETMAP-3/4: requests split at the first space; status words
//     are exact and case-sensitive; NOTFOUND is sent as "NOTFOUND ", and an
//     OK reply always carries data.
//   - PFX-SOCKETMAP-6/7/8: requests are capped at 10000 bytes and replies
//     at 100000; connections are persistent and pipelined requests are
//     answered in order, batched into one write.
//   - PFX-SOCKETMAP-9: keys are passed to the handler unfolded and must be
//     UTF-8; [ParseNextHop] lowercases and strips one trailing dot.
//   - PFX-TCP-1..4: %XX decoding accepts both hex cases; replies are three
//     digits, a space and text, at most 4096 bytes, with '%' and control
//     characters encoded. See [TCPTableServer] for the 400/500 choices.
//   - PFX-POL-1/2, STS-SEL-2..4, OPEN-5: bracketed and port keys yield the
//     host's domain; parent probes and IP literals have no policy domain.
//   - PFX-POL-3..6, PFX-STS-3..5: [TLSPolicy.String] writes the level, then
//     match, servername and the TLSRPT attributes, bracing values with
//     whitespace; [TLSPolicy.Validate] rejects what Postfix would reject.
//   - PFX-POL-7: [MatchFromSTS] documents how "*.x" → ".x" widens a
//     wildcard.
package postfix
