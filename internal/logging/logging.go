// Package logging is the one logging setup of mailsts's long-running
// commands (policyd, serve, tlsrpt ingest): the `log:` section of their
// configuration files (level, format) and the slog logger built from it,
// with long values clipped.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Config is the `log:` section of a configuration file. Empty fields take
// the command's default.
type Config struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Validate reports a level or format that is not one of the above.
func (c Config) Validate() error {
	if err := CheckLevel(c.Level); err != nil {
		return fmt.Errorf("log.level %w", err)
	}
	switch c.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("log.format %q is not text or json", c.Format)
	}
	return nil
}

// CheckLevel reports whether s names a level ("" means the default).
func CheckLevel(s string) error {
	switch strings.ToLower(s) {
	case "", "debug", "info", "warn", "warning", "error":
		return nil
	}
	return fmt.Errorf("%q is not debug, info, warn or error", s)
}

// ParseLevel turns a level name into a slog level (info when empty or
// unknown; Validate refuses unknown names first).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// MaxValue bounds one logged value: values can carry text from hostile
// input (error details, origins), and one 20 MB log line was seen.
const MaxValue = 2048

// clip truncates long string and error values.
func clip(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		err, ok := a.Value.Any().(error)
		if !ok {
			return a
		}
		s = err.Error()
		if len(s) <= MaxValue {
			return a
		}
	default:
		return a
	}
	if len(s) > MaxValue {
		cut := MaxValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		a.Value = slog.StringValue(s[:cut] + fmt.Sprintf("…(%d bytes)", len(s)))
	}
	return a
}

// New returns a logger writing text, or JSON when format is "json", to w
// at level (a LevelVar, so that a reload can change it).
func New(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: clip}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
