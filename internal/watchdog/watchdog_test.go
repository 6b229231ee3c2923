package watchdog

import (
	"fmt"
	"testing"
	"time"
)

// recorder is a TB whose Fatalf records instead of stopping the test.
type recorder struct{ msg string }

func (*recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func TestWithinReturns(t *testing.T) {
	t.Parallel()
	if got := Within(t, time.Hour, func() int { return 42 }); got != 42 {
		t.Errorf("Within = %d, want 42", got)
	}
}

func TestWithinFails(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	release := make(chan struct{})
	defer close(release)
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Errorf("recovered %v, want the recorder's Fatalf", p)
			}
		}()
		Within(r, time.Millisecond, func() bool { <-release; return true })
	}()
	if r.msg == "" {
		t.Error("Within did not fail a call that outlived its limit")
	}
}
