package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mailsts/mailsts/internal/dashboard"
)

var dashboardCommand = command{
	name:    "dashboard",
	summary: "credentials for the web dashboard of mailsts serve (password hashes, tokens)",
	run:     runDashboard,
}

const dashboardHelp = `
Subcommands:
  hash-password  read a password, print its bcrypt hash for dashboard.users[].password_hash
  new-token      print a new random token and its hash for dashboard.users[].token_hash

The dashboard of 'mailsts serve' (on the API listener, 127.0.0.1:8462 by
default) signs in the users listed under dashboard.users in the YAML
configuration; only hashes are stored there. See docs/dashboard.md.

Run 'mailsts dashboard <subcommand> --help' for its flags and examples.
`

func runDashboard(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 {
		return usageError(env.Stderr, "dashboard", "missing subcommand: hash-password or new-token")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(env.Stdout, "Usage: mailsts dashboard <subcommand> [flags]\n%s", dashboardHelp)
		return ExitOK
	}
	switch args[0] {
	case "hash-password":
		return runDashboardHashPassword(env, args[1:])
	case "new-token":
		return runDashboardNewToken(env, args[1:])
	}
	return usageError(env.Stderr, "dashboard", "unknown subcommand %q", args[0])
}

const hashPasswordHelp = `
Reads a password (at least 8 characters, at most 72 bytes) from the
terminal without echo, or the first line of standard input, and prints
its bcrypt hash (cost 12 by default) for the configuration:

  dashboard:
    users:
      - name: alice
        password_hash: "$2a$12$..."

Examples:
  mailsts dashboard hash-password
  printf '%s\n' "$PASSWORD" | mailsts dashboard hash-password

Exit codes:
  0  printed the hash
  2  could not read the password, or it is too short or too long
  64 usage error
`

func runDashboardHashPassword(env Env, args []string) int {
	fs := newFlagSet("dashboard hash-password", "mailsts dashboard hash-password [--cost N]", hashPasswordHelp, env.Stderr)
	cost := fs.Int("cost", dashboard.PasswordCost, "bcrypt `cost` (4 to 31; each step doubles the work)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 || *cost < 4 || *cost > 31 {
		fs.Usage()
		return ExitUsage
	}
	var pw string
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(env.Stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mailsts dashboard hash-password: %v\n", err)
			return ExitError
		}
		pw = string(b)
	} else {
		if env.Stdin == nil {
			env.Stdin = strings.NewReader("")
		}
		line, err := bufio.NewReader(io.LimitReader(env.Stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(env.Stderr, "mailsts dashboard hash-password: %v\n", err)
			return ExitError
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	h, err := dashboard.HashPassword(pw, *cost)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts dashboard hash-password: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(env.Stdout, h)
	return ExitOK
}

const newTokenHelp = `
Prints a new random token (64 hex digits) and, on the next line, the hash
to put in the configuration as token_hash. The token signs in to the
dashboard and is a bearer token of the JSON API for scripts
(Authorization: Bearer TOKEN), limited to the user's domains. Keep the
token; mailsts stores only its hash.

Examples:
  mailsts dashboard new-token
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8462/api/v1/summary

Exit codes:
  0  printed a token and its hash
  64 usage error
`

func runDashboardNewToken(env Env, args []string) int {
	fs := newFlagSet("dashboard new-token", "mailsts dashboard new-token", newTokenHelp, env.Stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	tok := dashboard.NewToken()
	fmt.Fprintf(env.Stdout, "token: %s\ntoken_hash: %s\n", tok, dashboard.HashToken(tok))
	return ExitOK
}
