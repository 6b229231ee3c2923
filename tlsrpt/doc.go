// Package tlsrpt implements the formats of SMTP TLS Reporting (TLSRPT,
// RFC 8460): the _smtp._tls TXT record that says where reports go, the JSON
// aggregate report, its gzip and e-mail wrappings, and the report file name.
// It is the pure library layer: parsing, validating and building. Storage,
// ingestion and HTTP serving live elsewhere and are built on this package.
//
// Layers, bottom up:
//   - record: [ParseRecord], [SelectRecord], [Record.String], [Record.UsableRUA];
//     network: [LookupRecord] through a [dnsresolve.Resolver];
//   - report: [Report] and its parts mirror the JSON schema of RFC 8460 §4.4;
//     [Parse] is the tolerant receiver-side parser that returns every repair
//     it applied ([Repair]); [ParseStrict] accepts only what needs no repair;
//     [Report.Validate] is the strict check of what we generate;
//     [Report.Problems] flags semantic oddities (future dates, unknown policy
//     types, TLSA policies keyed by the recipient domain, …); [Marshal] writes
//     the RFC Appendix B shape with the erratum 6241 array for mx-host;
//   - wrappings: [Decode] (gzip by magic, zip, size caps), [ParseMessage]
//     (RFC 6522 multipart/report mail, and the shapes real senders use),
//     [CheckConsistency] (Subject, headers and file name against the body),
//     [VerifyDKIM] (RFC 8460 §3 signature and s= service check),
//     [ParseFilename] and [Filename.String] (RFC 8460 §5.1);
//   - generation: [Aggregator] (one policy entry per type, policy-string,
//     domain and mx-host, details merged), [DayRange], [NewReportID],
//     [MarshalGzip], [ComposeMessage] and [SignMessage].
//
// # Tolerance
//
// Reports from the big senders deviate from the RFC in known ways (see
// docs/tlsrpt-quirks.md; every row has a sample under testdata/). Parse
// tolerates each of them and records a [Repair] with a stable short code, so
// that a receiver can keep the list next to the raw bytes and show what was
// normalised. Nothing is silently dropped: unknown members and ignored
// duplicates are listed as repairs too.
//
// Decisions written down here:
//   - RPT-JSON-1 / GO-7 (duplicate members): the FIRST occurrence wins, as
//     for repeated fields of the MTA-STS records (RFC 8461 §3.2); each ignored
//     duplicate is recorded as repair "duplicate-member". encoding/json would
//     silently keep the last one, so Parse reads the document token by token.
//   - Control characters inside strings (F-10a, the RFC's own example is
//     invalid JSON as printed): Parse repairs them like mox does. A raw line
//     break and the indentation after it are removed (the two halves are
//     joined with nothing between them); any other control character is
//     escaped. Repair "control-character-in-string". ParseStrict rejects it.
//   - Counts must be JSON integers in 0..2^53 (I-JSON). An integral number in
//     another form (1e2, 303.0) or a decimal string ("303") is accepted with
//     a repair; a fraction, a negative number or anything larger fails.
//   - Times without a zone are taken as UTC (Microsoft, quirk 1); all times
//     are converted to UTC.
//   - Bounds (RFC 8460 §7): failure details are read one at a time;
//     identical ones (all members but the count) are merged with their
//     counts summed (repair "failure-details-merged", RPT-AGG-9), and at
//     most [MaxFailureDetails] distinct ones per policy and
//     [MaxReportFailureDetails] per report are kept, the rest counted in
//     repair "failure-details-capped". More than [MaxPolicies] policies
//     fail with [ErrTooLarge]. [ParseMessage] decompresses at most
//     Limits.MaxOutput bytes per message, over all parts.
//   - OPEN-7: generated end-datetime is 23:59:59Z of the reported day;
//     receivers accept the next day's 00:00:00Z too.
//   - RPT-TXT-5: a rua URI with an unencoded "!" is not usable (it looks
//     like a DMARC size suffix, which TLSRPT does not have).
//   - STS-ERRATA-2 applied to TLSRPT (RPT-TXT-6): a TXT record is a
//     candidate when it begins with "v=TLSRPTv1", optional WSP, then ";".
//   - RPT-MAIL-6: a DKIM key whose s= tag lists services without "tlsrpt" or
//     "*" (for example s=email) does not authenticate a report
//     ([DKIMResult.Passes]); keys without s= cover all services.
//
// # Conformance (RFC 8460)
//
//   - §3: record syntax, exactly-one-record rule, mailto/https only,
//     percent-decoded URIs, unknown fields kept and ignored (RPT-TXT-*).
//   - §4.4: JSON schema with int64 counts, RFC 3339 times, mx-host as an
//     array (string accepted, erratum 6241), unknown result types kept
//     (RPT-JSON-*, RPT-RES-*).
//   - §4.1, RPT-AGG-9: day windows and policy aggregation for generation.
//   - §5.1–§5.3: file names, gzip, the multipart/report mail with
//     TLS-Report-Domain and TLS-Report-Submitter headers and Subject
//     (RPT-DELIV-2/3/6, RPT-MAIL-*); the body wins over Subject and file name.
//   - §7: size caps before and after decompression, gzip detected by magic,
//     DKIM required on receipt (RPT-RECV-*).
package tlsrpt
