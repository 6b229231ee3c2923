package mtasts_test

import (
	"testing"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
)

// MemoryStore passes the Store conformance suite every store must pass.
func TestMemoryStore_Conformance(t *testing.T) {
	t.Parallel()
	mtaststest.TestStore(t, func(t *testing.T) mtasts.Store { return mtasts.NewMemoryStore() })
}
