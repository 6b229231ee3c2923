// Package policyd is mailsts's Postfix TLS policy daemon: it answers
// smtp_tls_policy_maps lookups (socketmap or tcp_table, package postfix)
// with what RFC 8461 (MTA-STS) and RFC 7672 (DANE) say about the
// destination, from a cache that survives restarts and can be shared by a
// fleet through Redis.
//
// The pieces, each usable alone:
//   - Responder decides an answer for (map name, key) and explains it in a
//     Decision. It is pure of listeners: tests, `mailsts resolve --explain`
//     and the daemon share it.
//   - Config is the YAML file (mailsts's dialect, or postfix-mta-sts-
//     resolver's mta-sts-daemon.yml mapped key by key); Rules are the parts
//     that SIGHUP reloads.
//   - OpenCache opens the policy cache (SQLite under the state directory by
//     default, memory, or Redis, always behind an in-memory front): it maps
//     the cache section of Config to stscache.Config (StoreConfig) and
//     calls stscache.Open, which owns composition, purge propagation and
//     degraded mode.
//   - Daemon runs listeners, background refresh and maintenance as one
//     errgroup with graceful shutdown, reporting to a DaemonObserver for
//     metrics (internal/metrics implements it and serves them; this
//     package does not import Prometheus).
//
// What Postfix gets (checklist IDs from RFC-CHECKLIST.md):
//   - enforce: "OK secure match=<patterns, policy order, '*.' → '.'>
//     servername=hostname" (PFX-STS-1/2/5, STS-APPLY-7); with the zone's
//     tlsrpt or the map name QUERYwithTLSRPT, also policy_type=sts,
//     policy_domain, mx_host_pattern and policy_string (PFX-STS-3/4),
//     which Postfix 3.9 and older reject, hence off by default;
//   - testing: NOTFOUND unless the zone's strict_testing (STS-APPLY-2,
//     OPEN-8); none or no policy: NOTFOUND (STS-APPLY-3);
//   - parent probes, IP literals, invalid keys: NOTFOUND, no DNS traffic
//     (STS-SEL-3/4, PFX-POL-2, GO-12); "[relay]:port" uses the relay's
//     policy (OPEN-5, STS-SEL-2);
//   - DANE first (RFC 8461 §2; STS-DANE-1..5, DANE-1..6), decided by
//     dane.Decider (RFC 7672 §2.2: MX RRset, address records and TLSA
//     DNSSEC-validated): usable TLSA on every MX → "OK dane-only"; on some
//     → the enforced MTA-STS answer if there is one (Postfix applies one
//     level to every MX host, and "dane" would leave the hosts without
//     TLSA to unauthenticated TLS), else "OK dane"; a failed DNSSEC lookup
//     → TEMP, never a downgrade (STS-DANE-3); DANE is authoritative when
//     it covers every host (OPEN-6). This also avoids the
//     Postfix hazard of a secure answer overriding smtp_tls_security_level
//     = dane (STS-DANE-4, PFX-POL-8);
//   - a transient discovery failure with nothing cached: TEMP during the
//     zone's temp_window (default 10 minutes) from the first failure, then
//     NOTFOUND, logged (OPEN-1); invalid policies and certificate failures
//     with nothing cached: NOTFOUND (STS-FETCH-9); a DNS failure with a
//     cached policy: the cached policy (STS-CACHE-5);
//   - stale-policy recovery: an enforce policy is checked against the live
//     MX set (cached per domain for mx_check_interval); when an MX host
//     matches no pattern the policy is re-fetched even under the same id
//     (mtasts.Cache.Refresh with force, rate-limited) before answering.
//
// A cache hit costs no DNS query, no store write and no allocation for the
// answer text (it is rendered once per policy and zone settings).
//
// Files of the Responder, by concern:
//   - responder.go: the Responder, its Observer and Lookup (postfix.Handler);
//   - decision.go: Decision, the Answer* and DANE* constants;
//   - answer.go: the answer logic: key, overrides, DANE first (daneSome),
//     MTA-STS, the OPEN-1 TEMP window, the per-answer deadline;
//   - dane.go: MX lookups and the DANE decision;
//   - mxcheck.go: the MX check of an enforce policy (stale-policy recovery);
//   - state.go: per-domain state (domainState) and its pruning;
//   - reply.go: rendering the reply (postfix.TLSPolicy, TLSRPT attributes);
//     fit.go: shortening it to the reply size limit;
//   - memo.go: the answer memo and what an answer was derived from.
package policyd
