package testnet

import (
	"context"
	"fmt"
	"sync"
)

// Shared starts one Net the first time a test asks for it and hands the
// same Net to every later caller, so that the tests of a package share one
// fake Internet instead of each starting its own. Tests must use it read
// only (no [Net.Set] or [Net.Remove]). The Net is never closed: it lives as
// long as the test binary. Declare one per package:
//
//	var shared = testnet.Shared{Start: func() (*testnet.Net, error) {
//		return testnet.Start(context.Background(), testnet.DefaultScenario(), testnet.Options{})
//	}}
//
// The zero value starts the default scenario with default options.
type Shared struct {
	// Start starts the network; nil means [DefaultScenario] with the zero
	// [Options].
	Start func() (*Net, error)

	once sync.Once
	n    *Net
	err  error
}

// Net returns the shared network, starting it on first use, and fails the
// test when it could not start (every caller sees the same error).
func (s *Shared) Net(t TB) *Net {
	t.Helper()
	s.once.Do(func() {
		start := s.Start
		if start == nil {
			start = func() (*Net, error) {
				return Start(context.Background(), DefaultScenario(), Options{})
			}
		}
		s.n, s.err = start()
	})
	if s.err != nil {
		t.Fatal(fmt.Sprintf("testnet: %v", s.err))
	}
	return s.n
}
