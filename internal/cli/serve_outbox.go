package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/reports"
)

// openServeOutbox opens the outbox of the delivery: section for the
// dashboard's outgoing-reports page (the page only reads it): the
// database of delivery.db, or the default file in the state directory
// when the section sets other keys or the file exists. Nil when there is
// none; a database that does not open is logged and leaves the page out
// (the report receiver must not stop for it).
func openServeOutbox(ctx context.Context, cfg reports.DeliveryConfig, stateDir string, log *slog.Logger) *outbox.Store {
	spec := cfg.DB
	if spec == "" {
		def := filepath.Join(stateDir, outbox.DefaultFile)
		if _, err := os.Stat(def); err != nil {
			if !errors.Is(err, os.ErrNotExist) || !reflect.ValueOf(cfg).IsZero() {
				log.Warn("mailsts serve: no outbox database; the dashboard has no outgoing-reports page", "file", def, "error", err)
			}
			return nil
		}
		spec = "sqlite:" + def
	}
	if path, ok := strings.CutPrefix(spec, "sqlite:"); ok {
		// Never create a database only to show it empty.
		if _, err := os.Stat(path); err != nil {
			log.Warn("mailsts serve: the outbox database is not there; the dashboard has no outgoing-reports page", "file", path, "error", err)
			return nil
		}
	}
	st, err := outbox.Open(ctx, spec, stateDir)
	if err != nil {
		log.Error("mailsts serve: the outbox database does not open; the dashboard has no outgoing-reports page", "db", redactDB(spec), "error", err)
		return nil
	}
	log.Info("mailsts serve: the dashboard shows the outbox", "db", redactDB(spec))
	return st
}
