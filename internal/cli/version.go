package cli

import (
	"context"
	"fmt"

	"github.com/mailsts/mailsts/internal/buildinfo"
)

var versionCommand = command{
	name:    "version",
	summary: "print the release, commit and build date of this binary",
	run:     runVersion,
}

const versionHelp = `
Prints the release (git describe for builds from make build, the module
version for go install), the commit and its date, and the Go toolchain.
The same values label the mailsts_build_info metric of policyd.
mailsts --version is the same command.

Examples:
  mailsts version
  mailsts --version

Exit codes:
  0  printed
  64 usage error
`

func runVersion(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("version", "mailsts version", versionHelp, env.Stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(env.Stderr, "version", "no arguments expected")
	}
	fmt.Fprint(env.Stdout, buildinfo.Get().String())
	return ExitOK
}

// Version is the mailsts release of this binary ("devel" when unknown).
func Version() string { return buildinfo.Get().Version }
