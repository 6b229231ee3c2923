package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mailsts/mailsts/contrib"
)

// manCommand writes the man pages; make man runs it into docs/man/ and a
// test checks the checked-in copies are current.
var manCommand = command{
	name:    "man",
	summary: "write the man pages mailsts(1), mailsts-policyd.yml(5) and mailsts-reports.yml(5) into a directory",
	hidden:  true,
}

func init() { manCommand.run = runMan }

const manHelp = `
Writes mailsts.1 (every command, from the command table: synopsis,
description, flags, examples and exit codes, as --help shows them),
mailsts-policyd.yml.5 and mailsts-reports.yml.5 (from the commented
default configuration files, contrib/policyd.yml and contrib/reports.yml)
into DIR.

Examples:
  mailsts man docs/man
  man -l docs/man/mailsts.1

Exit codes:
  0  written
  2  a page could not be generated or written
  64 usage error
`

func runMan(ctx context.Context, env Env, args []string) int {
	fs := newFlagSet("man", "mailsts man DIR", manHelp, env.Stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(env.Stderr, "man", "one DIR expected (see --help)")
	}
	pages, err := manPages()
	if err != nil {
		fmt.Fprintf(env.Stderr, "mailsts man: %v\n", err)
		return ExitError
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(env.Stderr, "mailsts man: %v\n", err)
		return ExitError
	}
	for _, p := range pages {
		if err := os.WriteFile(filepath.Join(dir, p.name), []byte(p.text), 0o644); err != nil {
			fmt.Fprintf(env.Stderr, "mailsts man: %v\n", err)
			return ExitError
		}
	}
	return ExitOK
}

type manPage struct{ name, text string }

// manPages generates every page. The output depends only on the command
// table and the embedded files (no dates), so make man is reproducible.
func manPages() ([]manPage, error) {
	docs, err := describe()
	if err != nil {
		return nil, err
	}
	var visible []cmdDoc
	for i, c := range commands() {
		if !c.hidden {
			visible = append(visible, docs[i])
		}
	}
	policydPage, err := configPage("mailsts-policyd.yml", "/etc/mailsts/policyd.yml",
		"configuration of the mailsts Postfix policy daemon",
		`\fBmailsts policyd\fR reads this file at start (\fB\-\-config\fR, else /etc/mailsts/policyd.yml when it exists) and again on SIGHUP (zones, overrides and the log level). Omitted keys keep the defaults shown; unknown keys are errors naming their line. \fB\-\-config\fR also accepts postfix-mta-sts-resolver's /etc/mta-sts-daemon.yml. Durations are Go durations (90s, 5m, 24h).`,
		contrib.PolicydYML())
	if err != nil {
		return nil, err
	}
	reportsPage, err := configPage("mailsts-reports.yml", "/etc/mailsts/reports.yml",
		"configuration of the mailsts TLS report receiver and report tools",
		`\fBmailsts serve\fR and \fBmailsts tlsrpt\fR read this file with \fB\-\-config\fR; their flags override it. Every key is optional; unknown keys are errors. Durations are Go durations (90s, 10m).`,
		contrib.ReportsYML())
	if err != nil {
		return nil, err
	}
	return []manPage{
		{"mailsts.1", mainPage(visible)},
		{"mailsts-policyd.yml.5", policydPage},
		{"mailsts-reports.yml.5", reportsPage},
	}, nil
}

// roff escapes text for a roff line; literal is false for filled text.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	// Non-ASCII as groff escapes, so no input encoding is assumed.
	if strings.IndexFunc(s, func(r rune) bool { return r > 0x7e }) >= 0 {
		var b strings.Builder
		for _, r := range s {
			if r > 0x7e {
				fmt.Fprintf(&b, `\[u%04X]`, r)
			} else {
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	return s
}

// roffFlag writes a flag name with real minus signs.
func roffFlag(name string) string { return strings.ReplaceAll(name, "-", `\-`) }

// writeText renders help or comment text: lines indented by at least two
// spaces are literal (examples, exit codes, Postfix snippets), other lines
// are filled paragraphs; a blank line starts a new paragraph.
func writeText(w io.Writer, text string) {
	literal, para := false, true
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			if literal {
				fmt.Fprint(w, ".fi\n.RE\n")
				literal = false
			}
			para = true
		case strings.HasPrefix(line, "  "):
			if !literal {
				fmt.Fprint(w, ".RS 4\n.nf\n")
				literal = true
			}
			fmt.Fprintln(w, roff(strings.TrimPrefix(line, "  ")))
		default:
			if literal {
				fmt.Fprint(w, ".fi\n.RE\n")
				literal = false
			}
			if para {
				fmt.Fprintln(w, ".PP")
				para = false
			}
			fmt.Fprintln(w, roff(line))
		}
	}
	if literal {
		fmt.Fprint(w, ".fi\n.RE\n")
	}
}

func writeFlags(w io.Writer, fl []*flag.Flag) {
	if len(fl) == 0 {
		return
	}
	fmt.Fprint(w, ".PP\n.B Flags:\n")
	for _, f := range fl {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, ".TP\n\\fB%s\\fR", roffFlag(flagName(f)))
		if name != "" {
			fmt.Fprintf(w, " \\fI%s\\fR", roff(name))
		}
		fmt.Fprintln(w)
		fmt.Fprint(w, roff(usage))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
			fmt.Fprintf(w, " (default %s)", roff(d))
		}
		fmt.Fprintln(w)
	}
}

func writeCommand(w io.Writer, d cmdDoc) { writeCommandOnce(w, d, map[string]string{}) }

// writeCommandOnce writes d; a help text already written (subcommands
// sharing one, like tlsrpt summary and failures) is referred to by seen.
func writeCommandOnce(w io.Writer, d cmdDoc, seen map[string]string) {
	fmt.Fprintf(w, ".SS %s\n", roff("mailsts "+d.name))
	if d.summary != "" {
		fmt.Fprintln(w, roff(strings.ToUpper(d.summary[:1])+d.summary[1:]+"."))
	}
	if d.synopsis != "" {
		fmt.Fprintf(w, ".PP\n.B Usage:\n.RS 4\n.nf\n%s\n.fi\n.RE\n", roff(d.synopsis))
	}
	writeFlags(w, d.flags)
	if first, ok := seen[d.help]; ok && d.help != "" {
		fmt.Fprintf(w, ".PP\nDescription, examples and exit codes: see \\fB%s\\fR above.\n", roff("mailsts "+first))
	} else if d.help != "" {
		seen[d.help] = d.name
		writeText(w, d.help)
	}
	for _, s := range d.subs {
		if s.flags != nil || s.help != "" {
			writeCommandOnce(w, s, seen)
		}
	}
}

func mainPage(docs []cmdDoc) string {
	var b strings.Builder
	w := &b
	fmt.Fprint(w, `.\" Generated by 'mailsts man' from the command table; do not edit.
.TH MAILSTS 1 "" "mailsts" "mailsts manual"
.SH NAME
mailsts \- MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460), end to end
.SH SYNOPSIS
.B mailsts
.I command
[\fIflags\fR] [\fIarguments\fR]
.br
.B mailsts
\fB\-\-version\fR | \fB\-\-help\fR
.SH DESCRIPTION
mailsts enforces recipients' MTA-STS policies for Postfix (preferring DANE
where it applies), checks any domain's email transport security, and
receives and queries SMTP TLS reports. Each command below has the same
text under \fBmailsts\fR \fIcommand\fR \fB\-\-help\fR.
Flags are written \fB\-\-name\fR or \fB\-name\fR, and \fB\-\-name=value\fR or \fB\-\-name value\fR.
.SH COMMANDS
`)
	for _, d := range docs {
		fmt.Fprintf(w, ".TP 12\n.B %s\n%s\n", roff(d.name), roff(d.summary))
	}
	for _, d := range docs {
		writeCommand(w, d)
	}
	fmt.Fprint(w, `.SH EXIT STATUS
0 on success, 1 for a command's negative result (no policy, not cached,
some domains failed), 2 when the command could not do its job, 64 for a
usage error; each command above lists its own.
.SH ENVIRONMENT
.TP
.B STATE_DIRECTORY
the state directory (set by systemd's StateDirectory=); else /var/lib/mailsts
as root, else $XDG_STATE_HOME/mailsts or ~/.local/state/mailsts.
.TP
.B SSL_CERT_FILE\fR, \fBSSL_CERT_DIR
override the system's trusted roots.
.TP
.B MAILSTS_IMAP_PASSWORD
the IMAP password of \fBtlsrpt ingest \-\-imap\fR without \fB\-\-imap\-password\-file\fR.
.SH FILES
.TP
.I /etc/mailsts/policyd.yml
policyd configuration, see \fBmailsts-policyd.yml\fR(5).
.TP
.I /etc/mailsts/reports.yml
serve and tlsrpt configuration, see \fBmailsts-reports.yml\fR(5).
.TP
.I /var/lib/mailsts
state directory: the policy cache and the report database.
.SH SEE ALSO
\fBmailsts-policyd.yml\fR(5), \fBmailsts-reports.yml\fR(5), \fBpostconf\fR(5), \fBpostfix-tls\fR(1),
RFC 8461, RFC 8460, RFC 7672
`)
	return b.String()
}

// commentText turns "# a\n# b" into "a\nb"; "example:" lines become
// literal (indented) lines.
func commentText(cs ...string) string {
	var out []string
	for _, c := range cs {
		if c == "" {
			continue
		}
		example := false
		for _, l := range strings.Split(c, "\n") {
			l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
			example = example && l != "" || strings.HasPrefix(l, "example:")
			if example || strings.HasPrefix(l, "  ") {
				l = "  " + l
			}
			out = append(out, l)
		}
		out = append(out, "")
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// scalarText is a value as written in the file.
func scalarText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "" {
			return `""`
		}
		return n.Value
	}
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	for i := range c.Content {
		cc := *c.Content[i]
		cc.HeadComment, cc.LineComment, cc.FootComment = "", "", ""
		c.Content[i] = &cc
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// configPage renders a commented YAML file as a section 5 page: each key
// with its default and its comments, then the whole file.
func configPage(name, path, summary, intro, file string) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(file), &root); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("%s: not a mapping", name)
	}
	var b strings.Builder
	w := &b
	up := strings.ToUpper(name)
	fmt.Fprintf(w, ".\\\" Generated by 'mailsts man' from contrib/%s; do not edit.\n", strings.TrimPrefix(name, "mailsts-"))
	fmt.Fprintf(w, ".TH %s 5 \"\" \"mailsts\" \"mailsts manual\"\n.SH NAME\n%s \\- %s\n", up, name, summary)
	fmt.Fprintf(w, ".SH SYNOPSIS\n.I %s\n.SH DESCRIPTION\n%s\n", path, intro)
	writeText(w, commentText(root.HeadComment))
	fmt.Fprint(w, ".SH KEYS\n")
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				if t := commentText(k.HeadComment, k.LineComment, k.FootComment); t != "" {
					fmt.Fprintf(w, ".TP\n\\fB%s\\fR\n", roff(key))
					writeIndented(w, t)
				}
				walk(key+".", v)
				continue
			}
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR: \\fI%s\\fR\n", roff(key), roff(strings.ReplaceAll(scalarText(v), "\n", " ")))
			if t := commentText(k.HeadComment, k.LineComment, v.LineComment, k.FootComment); t != "" {
				writeIndented(w, t)
			}
		}
	}
	walk("", root.Content[0])
	fmt.Fprintf(w, ".SH EXAMPLE\nThe file as installed, with every default:\n.RS 4\n.nf\n")
	for _, l := range strings.Split(strings.TrimRight(file, "\n"), "\n") {
		fmt.Fprintln(w, roff(l))
	}
	fmt.Fprint(w, ".fi\n.RE\n.SH SEE ALSO\n\\fBmailsts\\fR(1)\n")
	return b.String(), nil
}

// writeIndented renders text inside a .TP body: filled lines, literal
// blocks for examples, without leaving the tagged paragraph.
func writeIndented(w io.Writer, text string) {
	literal := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "  "):
			if !literal {
				fmt.Fprint(w, ".br\n.nf\n")
				literal = true
			}
			fmt.Fprintln(w, roff(strings.TrimPrefix(line, "  ")))
		case strings.TrimSpace(line) == "":
			if literal {
				fmt.Fprint(w, ".fi\n")
				literal = false
			}
			fmt.Fprint(w, ".br\n")
		default:
			if literal {
				fmt.Fprint(w, ".fi\n")
				literal = false
			}
			fmt.Fprintln(w, roff(line))
		}
	}
	if literal {
		fmt.Fprint(w, ".fi\n")
	}
}
