// Package publish is the domain owner's side of MTA-STS (RFC 8461 §3,
// §8): hosted policies as data, the policy host that serves them, and the
// checks and rollout guard around them.
//
// A [Set] is built from the `publish:` section of the serve configuration
// ([reports.PublishConfig]) by [Load], which validates every domain
// against its live MX records and reports each problem on its own line
// ([ConfigError]). Each hosted [Domain] has one canonical policy text
// ([Domain.Policy]): the lines version, mode, each mx, max_age, each ended
// by CRLF, which mtasts.ParsePolicyStrict accepts. The TXT id is derived
// from those exact bytes ([PolicyID]): the first 32 hex digits of their
// SHA-256, so it changes exactly when the served policy does and is the
// same in every release.
//
// [Host] serves https://mta-sts.<domain>/.well-known/mta-sts.txt for every
// hosted domain as RFC 8461 §3.3 asks (STS-PUB-*): status 200, text/plain,
// CRLF line endings, no redirect, no compression; 404 for other hosts and
// paths and 405 for methods other than GET and HEAD.
//
// [Checker] looks at each domain as a sender does (live TXT id, served
// policy, certificate of the policy host, every MX through the project's
// checker) and [Promoter] decides whether a testing domain may be switched
// to enforce. [State] records when a domain's mode started and which
// policies were served before, in a small JSON file.
package publish
