package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checklistID matches the requirement IDs of docs/rfc-checklist.md as code,
// tests, docs and output cite them (STS-POL-7, RPT-RECV-2, OPEN-1,
// TLS8314-4, PFX-STS-6, GO-5).
// Numbers have no leading zero, which keeps ACME's TLS-ALPN-01 out.
var checklistID = regexp.MustCompile(`\b(?:(?:STS|RPT|PFX|TLS)-[A-Z]+-[1-9][0-9]*|DANE-[1-9][0-9]*|GO-[1-9][0-9]*|OPEN-[1-9][0-9]*|TLS8314-[1-9][0-9]*|VERIFY-[1-9][0-9]*)\b`)

// TestChecklistIDsDefined: every checklist ID cited anywhere in the
// repository's Go files and docs is defined in docs/rfc-checklist.md, so a
// reader can always look it up (the repository stands on its own).
func TestChecklistIDsDefined(t *testing.T) {
	root := filepath.Join("..", "..")
	checklist, err := os.ReadFile(filepath.Join(root, "docs", "rfc-checklist.md"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, id := range checklistID.FindAllString(string(checklist), -1) {
		defined[id] = true
	}
	if len(defined) < 100 {
		t.Fatalf("only %d IDs found in the checklist: the pattern no longer matches its IDs", len(defined))
	}
	cited := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "man", "node_modules", "dist", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, ".md") {
			return nil
		}
		if filepath.Base(path) == "rfc-checklist.md" || filepath.Base(path) == "checklist_test.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, id := range checklistID.FindAllString(string(b), -1) {
			cited++
			if !defined[id] {
				t.Errorf("%s cites %s, which docs/rfc-checklist.md does not define", path, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cited < 100 {
		t.Errorf("only %d citations found: the walk no longer reaches the sources", cited)
	}
}
