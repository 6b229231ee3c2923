// Package watchdog bounds how long a test waits for code that must end on
// its own, without asserting how long it took.
//
// A wall-clock upper bound ("took more than 2 s") fails on a loaded
// machine. A watchdog instead waits for a limit chosen orders of magnitude
// away from both the expected duration and the broken one (set the other
// timeouts to an hour, so that only the bound under test can end the
// call): machine load cannot stretch the first to the limit, and the
// second never comes in under it.
//
// It does not import package testing, so that non-test helpers may use it.
package watchdog

import "time"

// TB is the part of testing.TB that Within uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Within runs fn and returns its result, or fails the test with Fatalf
// (from the calling goroutine) when fn has not returned after limit. fn
// keeps running in the background in that case.
func Within[T any](t TB, limit time.Duration, fn func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v := <-done:
		return v
	case <-timer.C:
		t.Fatalf("still running after %v: the bound under test did not end it", limit)
		panic("unreachable: Fatalf returned")
	}
}
