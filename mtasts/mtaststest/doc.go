// Package mtaststest is a test kit for code built on package mtasts, in
// the manner of net/http/httptest:
//
//   - [TestStore] is the conformance suite every [mtasts.Store] must pass,
//     with [EntryDiff] and [SampleEntries] for a store's own tests.
//
// STS-CACHE-1: TestStore checks that an entry round-trips with its TXT id
// and fetch time, to the millisecond.
package mtaststest
