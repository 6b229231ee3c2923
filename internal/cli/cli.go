// Package cli implements the mailsts command line: a table of subcommands,
// one file each, with usage and examples next to the code. Only Main turns
// errors into exit codes.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes shared by all subcommands. Subcommands may define more
// specific meanings (resolve: 1 = no policy), documented in their help.
const (
	ExitOK      = 0
	ExitFailure = 1 // command-specific "negative" result
	ExitError   = 2 // the command could not do its job
	ExitUsage   = 64
)

// Env is what a command may touch of the outside world, so tests can run
// commands in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable; nil means os.Getenv.
	Getenv func(string) string
	// IsTerminal reports whether a writer is a terminal; nil means
	// golang.org/x/term on *os.File (false for anything else).
	IsTerminal func(io.Writer) bool
}

// getenv reads an environment variable through Env.Getenv.
//
//lint:ignore U1000 used by subcommands that read the environment (state directory, NO_COLOR).
func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	hidden  bool
	run     func(ctx context.Context, env Env, args []string) int
}

// commands is the subcommand table; each entry lives in its own file.
func commands() []command {
	cmds := []command{
		checkCommand,
		cacheCommand,
		completionCommand,
		dashboardCommand,
		manCommand,
		policydCommand,
		policyCommand,
		resolveCommand,
		serveCommand,
		selftestCommand,
		testnetCommand,
		tlsrptCommand,
		versionCommand,
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

// Main runs the mailsts command line and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if len(args) == 0 {
		return usageError(env.Stderr, "", "no command given")
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return Main(ctx, []string{args[1], "--help"}, env)
		}
		usage(env.Stdout)
		return ExitOK
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, env, args[1:])
		}
	}
	return usageError(env.Stderr, "", "unknown command %q", name)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "mailsts: MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460), end to end.\n\nUsage:\n  mailsts <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\nRun `mailsts <command> --help` for a command's flags, examples and exit codes.\n")
}

// newFlagSet returns a FlagSet whose usage prints the synopsis, the flags
// and the help text (examples, exit codes) to w.
func newFlagSet(name, synopsis, help string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	if in, ok := w.(*introspector); ok {
		in.record(synopsis, help, fs) // completion and man pages read the flags
	}
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		if help != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(help))
		}
	}
	return fs
}
