// Package httpapi serves TLS reports over HTTP: [Receiver], the HTTPS
// report endpoint of RFC 8460 §5.4 (RPT-HTTP) in front of an
// [ingest.Ingester], with an optional per-client [RateLimiter]; and
// [API], the read-only JSON query API under /api/v1/ over a
// [reports.Store]. Handlers return errors ([HandlerFunc], [HTTPError]):
// the client sees a short message, the log gets the cause.
//
// Conformance (RFC 8460):
//
//   - §5.4 (RPT-HTTP-3, RPT-HTTP-5): 200 (duplicate) or 201 only after
//     the report, or its rejection, is durably stored; 503 with
//     Retry-After when the store failed.
//   - §7 (RPT-RECV-2): a body above the cap is answered 413 and not read
//     to its end.
package httpapi
