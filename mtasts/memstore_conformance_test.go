package mtasts_test

import (
	"testing"

	"github.com/mailsts/mailsts/internal/stscache"
	"github.com/mailsts/mailsts/mtasts"
)

// MemoryStore passes the Store conformance suite every store must pass.
func TestMemoryStore_Conformance(t *testing.T) {
	t.Parallel()
	stscache.TestStore(t, func(t *testing.T) mtasts.Store { return mtasts.NewMemoryStore() })
}
