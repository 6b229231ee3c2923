package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mailsts/mailsts/contrib"
	"github.com/mailsts/mailsts/internal/policyd"
	"github.com/mailsts/mailsts/internal/reports"
)

// TestManPagesCurrent: docs/man holds exactly what `mailsts man` writes
// (run `make man` after changing a command's help or a contrib/*.yml).
func TestManPagesCurrent(t *testing.T) {
	t.Parallel()
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", "man", p.name))
		if err != nil {
			t.Errorf("%v (run make man)", err)
			continue
		}
		if string(b) != p.text {
			t.Errorf("docs/man/%s is out of date: run make man", p.name)
		}
	}
}

// TestManPageContent: mailsts(1) has a section per command and subcommand
// with its own flags, every flag, and the examples and exit codes of each
// command's help; groff renders the pages without warnings.
func TestManPageContent(t *testing.T) {
	t.Parallel()
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	page := pages[0].text
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range commands() {
		if c.hidden {
			continue
		}
		d := docs[i]
		for _, s := range append([]cmdDoc{d}, d.subs...) {
			if s.flags == nil && s.name != d.name {
				continue
			}
			if !strings.Contains(page, ".SS mailsts "+s.name+"\n") {
				t.Errorf("no section for mailsts %s", s.name)
			}
			for _, f := range s.flags {
				if !strings.Contains(page, `.TP`+"\n"+`\fB`+roffFlag(flagName(f))+`\fR`) {
					t.Errorf("mailsts %s: flag %s missing", s.name, flagName(f))
				}
			}
		}
		if strings.Contains(d.help, "Exit codes:") && !strings.Contains(page, "mailsts "+c.name) {
			t.Errorf("%s: exit codes missing", c.name)
		}
	}
	if n := strings.Count(page, ".B Exit codes:") + strings.Count(page, "\nExit codes:\n"); n < 8 {
		t.Errorf("only %d exit code sections in mailsts(1)", n)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed: cannot check that the pages render without warnings")
	}
	for _, p := range pages {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(p.text)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", p.name, err, out)
		}
	}
}

// yamlPaths lists the keys of a configuration struct by their yaml tags:
// "cache.redis.address", "listen[].socketmap"; maps and other leaves end
// the path.
func yamlPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := prefix + name
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(policyd.OverrideConfig{}.Expires):
			out = append(out, yamlPaths(ft, p+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, p)
			out = append(out, yamlPaths(ft.Elem(), p+"[].")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// fileKeys returns the keys of a commented YAML file with their comments,
// and all comment text.
func fileKeys(t *testing.T, file string) (map[string]string, string) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(file), &root); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	var comments strings.Builder
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		comments.WriteString(n.HeadComment + "\n" + n.LineComment + "\n" + n.FootComment + "\n")
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(prefix, c)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(prefix+"[].", c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				comments.WriteString(k.HeadComment + "\n" + k.LineComment + "\n" + k.FootComment + "\n")
				p := strings.TrimSuffix(prefix, ".") + "." + k.Value
				p = strings.TrimPrefix(p, ".")
				if (v.Kind == yaml.MappingNode && len(v.Content) > 0) || (v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Kind == yaml.MappingNode) {
					if v.Kind == yaml.SequenceNode {
						keys[p] = strings.TrimSpace(k.HeadComment + k.LineComment + k.FootComment)
						walk(p, v)
						continue
					}
					walk(p+".", v)
					continue
				}
				keys[p] = strings.TrimSpace(k.HeadComment + k.LineComment + v.LineComment + k.FootComment)
				comments.WriteString(v.LineComment + "\n")
			}
		}
	}
	walk("", &root)
	return keys, comments.String()
}

// TestConfigSamplesDocumentSchema: contrib/policyd.yml and
// contrib/reports.yml, the one description of their keys (installed in
// /etc/mailsts and rendered as section 5 man pages), document every key of
// the configuration structs: present with a comment, or shown in an
// "example:" comment. And every key they hold is in the struct.
func TestConfigSamplesDocumentSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		text string
		typ  reflect.Type
	}{
		{"contrib/policyd.yml", contrib.PolicydYML(), reflect.TypeOf(policyd.Config{})},
		{"contrib/reports.yml", contrib.ReportsYML(), reflect.TypeOf(reports.Config{})},
	} {
		keys, comments := fileKeys(t, tc.text)
		schema := map[string]bool{}
		for _, p := range yamlPaths(tc.typ, "") {
			schema[p] = true
			doc, ok := keys[p]
			if ok && doc == "" {
				// The item keys of a list are described by the list's comment.
				if parent, _, isItem := strings.Cut(p, "[]."); isItem && keys[parent] != "" {
					continue
				}
				t.Errorf("%s: key %s has no comment", tc.file, p)
			}
			if !ok {
				leaf := p[strings.LastIndexAny(p, ".")+1:]
				if !regexp.MustCompile(`(^|[\s{,-])` + regexp.QuoteMeta(leaf) + `:`).MatchString(comments) {
					t.Errorf("%s: key %s is neither set nor shown in an example comment", tc.file, p)
				}
			}
		}
		for k := range keys {
			if !schema[k] {
				t.Errorf("%s: key %s is not in the configuration schema", tc.file, k)
			}
		}
	}
	// Both files load as what they say: policyd's defaults, and a valid
	// reports configuration.
	dir := t.TempDir()
	p := filepath.Join(dir, "reports.yml")
	if err := os.WriteFile(p, []byte(contrib.ReportsYML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reports.LoadConfig(p); err != nil {
		t.Errorf("contrib/reports.yml: %v", err)
	}
	cfg, _, err := policyd.Parse([]byte(contrib.PolicydYML()))
	if err != nil {
		t.Fatalf("contrib/policyd.yml: %v", err)
	}
	a, _ := cfg.YAML()
	b, _ := policyd.Default().YAML()
	if string(a) != string(b) {
		t.Errorf("contrib/policyd.yml is not the defaults:\n%s\nwant\n%s", a, b)
	}
}
