package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Usage errors look the same for every command: one line saying what is
// wrong, one line pointing at the help, exit 64 (EX_USAGE). The full help
// is printed only when asked for (--help).
//
//	mailsts tlsrpt summary: flag provided but not defined: -bogus
//	see 'mailsts tlsrpt summary --help'

// usageError writes a usage error of the command cmd ("tlsrpt summary";
// "" for mailsts itself) to w and returns ExitUsage.
func usageError(w io.Writer, cmd, format string, args ...any) int {
	name := strings.TrimSpace("mailsts " + cmd)
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	// One line: a message quoting input (a flag value, a path) cannot
	// break the format or drive the terminal.
	msg = termSafe(strings.Join(strings.Fields(msg), " "))
	fmt.Fprintf(w, "%s: %s\nsee '%s --help'\n", name, msg, name)
	return ExitUsage
}

// parseFlags parses args and returns the exit code to use when parsing
// stopped the command, or -1 to go on: ExitOK after printing the full help
// for -h/--help, ExitUsage after a one-line usage error for a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) int {
	full, out := fs.Usage, fs.Output()
	// The flag package prints its error and the usage itself; silence it
	// and print the error our way.
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = full
	fs.SetOutput(out)
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		full()
		return ExitOK
	default:
		return usageError(out, fs.Name(), "%v", err)
	}
}
