// Package stscache owns mailsts's MTA-STS policy cache (RFC 8461 §3.3,
// §10.2): the stores that keep cached policies across restarts and share
// them across a fleet, how they are put together, how a purge reaches
// every process using them, and what happens when the back store fails.
//
// [Open] takes a [Config] (kind, SQLite path or Redis options, prefix,
// fall back policy, logger, clock) and returns one [Cache]: the
// [mtasts.Store] policyd's [mtasts.Cache] uses, plus Touch and Flush of
// use times, Warm, Maintain (evict, cap, trim the purge log), Purge (with
// its propagation: the SQLite purge log, or Redis delete, tombstone and
// Pub/Sub announcement), WatchPurges (the daemon's side of it), Watch and
// Check of the back store (degraded mode), Status and Close. Nothing
// outside this package names the concrete stores below.
//
// A Postfix policy daemon answers tens of thousands of queries a second from
// its cache, so no store here may put a disk write or a network round trip
// on the per-query path. The stores are layered:
//
//   - [Memory]: a map; the front, and the only tier a query touches.
//   - [SQLite]: one local file (modernc.org/sqlite, pure Go, WAL mode), so
//     the cache survives restarts.
//   - [Redis]: one hash key per domain with a TTL, so a fleet shares one
//     cache and the cache forgets domains nobody refreshes.
//   - [Tiered]: a Memory front before a SQLite or Redis back: reads from
//     memory, read-through on a miss, write-through on Put, re-read of
//     shared entries after FrontTTL, and use times recorded in memory by
//     [Tiered.Touch] and written back in batch by [Tiered.Flush].
//
// A SQLite [Cache] is a Tiered with a negative FrontTTL (the process is
// the file's only writer): a daemon calls [Cache.Warm] at start
// ([Tiered.Load]), Touch per query, Flush every minute and at shutdown,
// and [Cache.Maintain] ([Tiered.Cap] plus [SQLite.Evict] and [SQLite.Cap])
// now and then.
//
// The SQLite guarantee: a Put returns only after the transaction holding
// its entry committed (WAL mode, synchronous=NORMAL: the entry survives a
// crash or kill -9 of the process; a power loss may lose the last
// commits), so policyd never answers with a policy the file could still
// lose to a crash, and a restart answers every policy from the file.
// Concurrent Puts share a transaction (a group commit). Its context bounds
// a Put's wait for another writer of the file (Tiered's BackTimeout);
// the write itself, which waits for nothing, is not interrupted once
// begun. The log is checkpointed into the file every 10,000 pages
// (SQLite's default is 1,000). The entries table
// has no secondary index (schema version 4 dropped them), so a commit
// writes the table's pages only; Evict and Cap scan the table on a reader
// connection and delete by key, checking each entry again.
//
// mtaststest.TestStore (package mtasts/mtaststest) is the conformance suite
// every store here passes, as must other mtasts.Store implementations.
//
// Conformance (see RFC-CHECKLIST.md):
//   - STS-CACHE-1: an entry is kept per policy domain with its TXT id and
//     fetch time, round-tripped to the millisecond.
//   - STS-CACHE-5: a store never drops a valid policy on its own: a back
//     store outage is answered from memory, and a policy a shared Redis
//     lost is restored from memory (at its next read, and for every entry
//     at once by [Tiered.Watch] after an outage or a [Tiered.Resync]).
//   - STS-CACHE-8: the failed-fetch state (FailedID, FailedAt, Failures) is
//     stored with the entry, and a Redis TTL never ends before the failure
//     back-off plus a grace period.
//   - STS-CACHE-10: a damaged SQLite file does not cost the cache: OpenSQLite
//     sets it aside (path.damaged-TIME) and rebuilds it from every entry
//     still readable, and an entry unreadable at run time is absent (the
//     policy is fetched again), never an error that defers mail.
//   - STS-CACHE-10: the SQLite store survives restarts; Cap and Evict never
//     drop a valid enforce or testing policy (Cap logs a warning and stays
//     over the cap when only such policies remain).
package stscache
