package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// The shell completions and the man pages are generated from the command
// table itself, so they cannot drift from it: each command is run with
// --help against an introspector, which newFlagSet recognises as its
// output and hands the FlagSet to (with the synopsis and help text). The
// subcommands of a command (cache list, tlsrpt ingest, …) are those listed
// in the "Subcommands:" section of its help; each is run with --help too.

// introspector is the output of a command run for introspection.
type introspector struct {
	bytes.Buffer
	sets []flagSetInfo
}

type flagSetInfo struct {
	synopsis, help string
	fs             *flag.FlagSet
}

func (in *introspector) record(synopsis, help string, fs *flag.FlagSet) {
	in.sets = append(in.sets, flagSetInfo{synopsis, help, fs})
}

// cmdDoc describes a command or subcommand as --help shows it.
type cmdDoc struct {
	name     string // "cache", "tlsrpt ingest"
	summary  string // one line (subcommands: from the parent's list)
	synopsis string // "mailsts cache [--config F] …"
	help     string // the help text after the flags: description, examples, exit codes
	flags    []*flag.Flag
	subs     []cmdDoc // subcommands with their own flags, or sharing ours (flags nil)
}

// describe returns the documentation of every command in the table,
// hidden ones included (check c.hidden).
func describe() ([]cmdDoc, error) {
	var docs []cmdDoc
	for _, c := range commands() {
		d, err := describeCommand(c)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// helpOf runs c with args (ending in --help) and returns what it printed
// and the FlagSet it made, if any.
func helpOf(c command, args ...string) (*introspector, int) {
	in := &introspector{}
	// A cancelled context: nothing may start for --help, and whatever did
	// would stop at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code := c.run(ctx, Env{Stdin: strings.NewReader(""), Stdout: in, Stderr: in,
		Getenv: func(string) string { return "" }}, args)
	return in, code
}

func describeCommand(c command) (cmdDoc, error) {
	d := cmdDoc{name: c.name, summary: c.summary}
	in, code := helpOf(c, "--help")
	if code != ExitOK {
		return d, fmt.Errorf("mailsts %s --help: exit %d", c.name, code)
	}
	if len(in.sets) > 0 {
		s := in.sets[len(in.sets)-1]
		d.synopsis, d.help, d.flags = s.synopsis, strings.TrimSpace(s.help), flagsOf(s.fs)
	} else {
		// No FlagSet (tlsrpt): the help is what it printed.
		text := in.String()
		first, rest, _ := strings.Cut(text, "\n")
		d.synopsis = strings.TrimSpace(strings.TrimPrefix(first, "Usage:"))
		d.help = strings.TrimSpace(rest)
	}
	for _, sub := range listedSubcommands(d.help) {
		sin, code := helpOf(c, sub.name, "--help")
		if code != ExitOK {
			return d, fmt.Errorf("mailsts %s %s --help: exit %d", c.name, sub.name, code)
		}
		sd := cmdDoc{name: c.name + " " + sub.name, summary: sub.summary}
		if n := len(sin.sets); n > 0 && sin.sets[n-1].fs.Name() != c.name {
			s := sin.sets[n-1]
			sd.synopsis, sd.help, sd.flags = s.synopsis, strings.TrimSpace(s.help), flagsOf(s.fs)
		}
		d.subs = append(d.subs, sd)
	}
	return d, nil
}

func flagsOf(fs *flag.FlagSet) []*flag.Flag {
	var fl []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { fl = append(fl, f) })
	return fl
}

type listed struct{ name, summary string }

// listedSubcommands reads the "Subcommands:" section of a help text: lines
// indented by two spaces whose first word is the name, up to a blank line.
func listedSubcommands(help string) []listed {
	var subs []listed
	in := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.TrimSpace(line) == "Subcommands:":
			in = true
		case !in:
		case strings.TrimSpace(line) == "":
			if len(subs) > 0 {
				return subs
			}
		case strings.HasPrefix(line, "  ") && len(line) > 2 && line[2] >= 'a' && line[2] <= 'z':
			f := strings.Fields(line)
			// The summary follows the arguments after a run of spaces.
			summary := ""
			if i := strings.Index(strings.TrimSpace(line), "  "); i >= 0 {
				summary = strings.TrimSpace(strings.TrimSpace(line)[i:])
			}
			subs = append(subs, listed{f[0], summary})
		case strings.HasPrefix(line, "   ") && len(subs) > 0:
			// continuation of the previous summary
			s := &subs[len(subs)-1]
			s.summary = strings.TrimSpace(s.summary + " " + strings.TrimSpace(line))
		}
	}
	return subs
}

// isBoolFlag reports whether f takes no value.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagName is the spelling shown to users: -v, --config.
func flagName(f *flag.Flag) string {
	if len(f.Name) == 1 {
		return "-" + f.Name
	}
	return "--" + f.Name
}

// takesFile reports whether f's value names a file or directory (per the
// `name` in its usage), for completion.
func takesFile(f *flag.Flag) bool {
	name, _ := flag.UnquoteUsage(f)
	switch strings.ToLower(name) {
	case "file", "directory", "dir", "path":
		return true
	}
	return false
}

var _ io.Writer = (*introspector)(nil)
