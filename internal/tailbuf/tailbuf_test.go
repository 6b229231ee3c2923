package tailbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	t.Parallel()
	b := New(5)
	fmt.Fprint(b, "abc")
	if b.String() != "abc" {
		t.Errorf("%q", b.String())
	}
	fmt.Fprint(b, "defg")
	if b.String() != "cdefg" {
		t.Errorf("%q, want the last 5 bytes", b.String())
	}
	fmt.Fprint(b, strings.Repeat("x", 100)+"12345")
	if b.String() != "12345" {
		t.Errorf("%q", b.String())
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); fmt.Fprint(b, "zzzzz") }()
	}
	wg.Wait()
	if b.String() != "zzzzz" {
		t.Errorf("%q after concurrent writes", b.String())
	}
}
