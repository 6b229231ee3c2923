package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// helpFlags returns the flags `mailsts ARGS --help` lists, read from its
// text, independently of the introspection the generators use.
func helpFlags(t *testing.T, args ...string) []string {
	t.Helper()
	var out bytes.Buffer
	code := Main(context.Background(), append(args, "--help"), Env{Stdout: &out, Stderr: &out})
	if code != ExitOK {
		t.Fatalf("mailsts %v --help: exit %d\n%s", args, code, out.String())
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	return names
}

// TestDescribeMatchesHelp: the introspection finds every command, every
// subcommand listed in a help text, and every flag --help prints.
func TestDescribeMatchesHelp(t *testing.T) {
	t.Parallel()
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != len(commands()) {
		t.Fatalf("%d docs for %d commands", len(docs), len(commands()))
	}
	check := func(d cmdDoc) {
		var got []string
		for _, f := range d.flags {
			got = append(got, f.Name)
		}
		want := helpFlags(t, strings.Fields(d.name)...)
		if len(d.flags) == 0 && strings.Contains(d.name, " ") {
			return // shares its parent's flags (cache list)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("mailsts %s: introspected flags %v, --help lists %v", d.name, got, want)
		}
	}
	subs := map[string][]string{}
	for _, d := range docs {
		check(d)
		for _, s := range d.subs {
			check(s)
			subs[d.name] = append(subs[d.name], strings.TrimPrefix(s.name, d.name+" "))
		}
	}
	// Commands known to have subcommands must have been found to have them.
	for cmd, want := range map[string][]string{
		"cache":      {"list", "show", "purge", "warm", "export"},
		"tlsrpt":     {"ingest", "summary", "failures", "show", "rejected"},
		"completion": {"bash", "zsh", "fish"},
	} {
		for _, w := range want {
			if !slices.Contains(subs[cmd], w) {
				t.Errorf("mailsts %s: subcommand %s not found (got %v)", cmd, w, subs[cmd])
			}
		}
	}
	var tlsrptIngest bool
	for _, d := range docs {
		for _, s := range d.subs {
			if s.name == "tlsrpt ingest" {
				tlsrptIngest = slices.ContainsFunc(s.flags, func(f *flag.Flag) bool { return f.Name == "maildir" })
			}
		}
	}
	if !tlsrptIngest {
		t.Error("tlsrpt ingest: its own flags (--maildir) were not found")
	}
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"completion", shell}, Env{Stdout: &out, Stderr: &errb}); code != ExitOK {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errb.String())
	}
	return out.String()
}

// TestCompletionCoversTable: every visible command, subcommand and flag of
// every command appears in each shell's script.
func TestCompletionCoversTable(t *testing.T) {
	t.Parallel()
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		script := completionScript(t, shell)
		has := func(word string) bool {
			return regexp.MustCompile(`(^|[\s'"(=])` + regexp.QuoteMeta(word) + `($|[\s'":)])`).MatchString(script)
		}
		for i, c := range commands() {
			d := docs[i]
			if c.hidden {
				if has(c.name) {
					t.Errorf("%s: hidden command %s is completed", shell, c.name)
				}
				continue
			}
			if !has(c.name) {
				t.Errorf("%s: command %s missing", shell, c.name)
			}
			all := append([]cmdDoc{d}, d.subs...)
			for _, s := range all {
				if s.name != d.name && !has(strings.TrimPrefix(s.name, d.name+" ")) {
					t.Errorf("%s: subcommand %s missing", shell, s.name)
				}
				for _, f := range s.flags {
					spell := flagName(f)
					if shell == "fish" {
						spell = "-l " + f.Name
						if len(f.Name) == 1 {
							spell = "-s " + f.Name
						}
						if !strings.Contains(script, "__fish_seen_subcommand_from "+strings.Fields(s.name)[len(strings.Fields(s.name))-1]+"' "+spell+" ") {
							t.Errorf("fish: flag %s of %s missing", spell, s.name)
						}
						continue
					}
					if !has(spell) {
						t.Errorf("%s: flag %s of %s missing", shell, spell, s.name)
					}
				}
			}
		}
	}
	var errb bytes.Buffer
	if code := Main(context.Background(), []string{"completion", "tcsh"}, Env{Stderr: &errb}); code != ExitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, ExitUsage)
	}
}

func writeScript(t *testing.T, shell string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mailsts."+shell)
	if err := os.WriteFile(p, []byte(completionScript(t, shell)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBashCompletionRuns checks the bash script's syntax and what it
// completes.
func TestBashCompletionRuns(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed: cannot check the bash completion script")
	}
	p := writeScript(t, "bash")
	if out, err := exec.Command(bash, "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		line string // words typed, the last one being completed
		want []string
		not  []string
	}{
		{"mailsts ca", []string{"cache"}, []string{"check"}},
		{"mailsts cache ", []string{"list", "show", "purge", "warm", "export"}, nil},
		{"mailsts cache --config /etc/x.yml ", []string{"list", "purge"}, nil},
		{"mailsts cache --st", []string{"--state-dir"}, nil},
		{"mailsts cache list --a", []string{"--all"}, nil},
		{"mailsts tlsrpt ", []string{"ingest", "summary", "failures", "show", "rejected"}, nil},
		{"mailsts tlsrpt ingest --mai", []string{"--maildir"}, nil},
		{"mailsts tlsrpt summary --group", []string{"--group-by"}, []string{"--maildir"}},
		{"mailsts policyd --li", []string{"--listen"}, nil},
		{"mailsts selftest -", []string{"-v"}, nil},
		{"mailsts completion ", []string{"bash", "zsh", "fish"}, nil},
		{"mailsts help ", []string{"policyd", "tlsrpt"}, nil},
	} {
		words := strings.Split(tc.line, " ")
		script := `source "$1"; COMP_WORDS=(` + strings.Join(quoteAll(words), " ") + `); COMP_CWORD=` +
			itoa(len(words)-1) + `; _mailsts; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, "-c", script, "bash", p).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q completes %v, want %s among them", tc.line, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("%q completes %v, want no %s", tc.line, got, w)
			}
		}
	}
}

func quoteAll(ws []string) []string {
	var q []string
	for _, w := range ws {
		q = append(q, shQuote(w))
	}
	return q
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestZshFishCompletionSyntax(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			bin, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed: cannot check the %s completion script's syntax (the coverage test still checks its content)", shell, shell)
			}
			p := writeScript(t, shell)
			if out, err := exec.Command(bin, "-n", p).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
			if shell != "fish" {
				return
			}
			// fish completes a command line on request: check what it offers.
			for line, want := range map[string]string{
				"mailsts ca":                  "cache",
				"mailsts cache ":              "purge",
				"mailsts tlsrpt ingest --mai": "--maildir",
				"mailsts policyd --check":     "--check-config",
				"mailsts completion ":         "zsh",
				// a FILE argument: files are offered
				"mailsts tlsrpt ingest " + filepath.Join(filepath.Dir(p), "mailsts.f"): p,
			} {
				out, err := exec.Command(bin, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, p, line).CombinedOutput()
				if err != nil {
					t.Fatalf("fish complete -C %q: %v\n%s", line, err, out)
				}
				var got []string
				for _, l := range strings.Split(string(out), "\n") {
					got = append(got, strings.SplitN(l, "\t", 2)[0])
				}
				if !slices.Contains(got, want) {
					t.Errorf("fish completes %q with %v, want %s among them", line, got, want)
				}
			}
		})
	}
}
