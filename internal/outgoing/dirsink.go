package outgoing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailsts/mailsts/internal/atomicfile"
)

// DirSink is a Sink that writes each report as its RFC 8460 §5.1 file
// name (a .json.gz file) into Dir: for inspection, or for a delivery
// tool of one's own. A report already there is left as it is, so Enqueue
// is idempotent (the builder's rebuilds are byte-identical anyway).
type DirSink struct {
	Dir string
}

// Enqueue writes r to Dir atomically (a temporary file renamed).
func (d DirSink) Enqueue(_ context.Context, r BuiltReport) error {
	if r.Filename == "" || strings.ContainsAny(r.Filename, `/\`) || strings.HasPrefix(r.Filename, ".") {
		return fmt.Errorf("outgoing: report file name %q is not a plain name", clip(r.Filename))
	}
	path := filepath.Join(d.Dir, r.Filename)
	if _, err := os.Lstat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := atomicfile.Write(path, r.Body, 0o600); err != nil {
		return fmt.Errorf("outgoing: write report: %w", err)
	}
	return nil
}
