// Package mtaststest is a test kit for code built on package mtasts, in
// the manner of net/http/httptest:
//
//   - [PolicyServer] plays the HTTPS policy hosts mta-sts.<domain> of any
//     number of policy domains on loopback, with the fake DNS
//     ([dnsresolve.Fake]) that publishes their _mta-sts TXT records and
//     addresses, and [PolicyServer.Client] returns an [mtasts.Client] wired
//     to it.
//   - [CA] is a throw-away certificate authority: the policy server's, or
//     one for a test's own TLS servers.
//   - [TestStore] is the conformance suite every [mtasts.Store] must pass,
//     with [EntryDiff] and [SampleEntries] for a store's own tests.
//
// A store's test runs the suite with a constructor for empty stores:
//
//	func TestMyStore(t *testing.T) {
//		mtaststest.TestStore(t, func(t *testing.T) mtasts.Store {
//			s := openMyStore(t) // empty, closed by t.Cleanup
//			return s
//		})
//	}
//
// Conformance, with checklist IDs:
//   - STS-POL-1: the policy server answers
//     https://mta-sts.<domain>/.well-known/mta-sts.txt as text/plain.
//   - STS-FETCH-2: its certificates name the policy host and chain to CA.
//   - STS-CACHE-1: TestStore checks that an entry round-trips with its TXT
//     id and fetch time, to the millisecond.
package mtaststest
