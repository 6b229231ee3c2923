package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailsts/mailsts/internal/logging"
)

// Every long-running command (policyd, serve, tlsrpt ingest, and any
// command that runs until stopped) takes the same logging settings and
// the same configuration check:
//
//   - --log-level debug|info|warn|error, overriding log.level of its
//     configuration file; log.format text|json (logging.Config). A bad
//     --log-level is a usage error (64); a bad log: value a configuration
//     error.
//   - --check-config: load the configuration and the flags, validate
//     them without opening a database, a listener or a connection, print
//     one line (configOK) and exit 0; otherwise exit with the code the
//     command would exit with at start for the same fault.

// logFlags is --log-level.
type logFlags struct {
	level string
	// def is the command's level when neither the flag nor log.level
	// gives one.
	def string
}

func (l *logFlags) register(fs *flag.FlagSet, def string) {
	l.def = def
	fs.StringVar(&l.level, "log-level", "", "debug, info, warn or error (default "+def+"; overrides log.level)")
}

// check refuses a --log-level that names no level (a usage error).
func (l *logFlags) check() error {
	if err := logging.CheckLevel(l.level); err != nil {
		return fmt.Errorf("--log-level %w", err)
	}
	return nil
}

// apply returns c with the flag applied and the defaults filled in.
func (l *logFlags) apply(c logging.Config) logging.Config {
	if l.level != "" {
		c.Level = l.level
	}
	if c.Level == "" {
		c.Level = l.def
	}
	if c.Format == "" {
		c.Format = "text"
	}
	return c
}

// newLog returns the logger of c on w and its level (a reload may change it).
func newLog(w io.Writer, c logging.Config) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(logging.ParseLevel(c.Level))
	return logging.New(w, c.Format, level), level
}

// checkConfigFlag registers --check-config.
func checkConfigFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("check-config", false, "validate the configuration and flags, print a one-line summary and exit (opens nothing)")
}

// configOK prints the one line of a successful --check-config.
func configOK(w io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(w, "mailsts %s: configuration OK: %s\n", cmd, fmt.Sprintf(format, args...))
	return ExitOK
}
