package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The binary links no test code: packages it imports never import
// "testing" (fakes and kits that need it live in test-only packages such as
// mtasts/mtaststest).
func TestNoTestingInBinary(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH: cannot list the binary's dependencies")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps printed %d packages; expected the whole dependency tree", len(deps))
	}
	if slices.Contains(deps, "testing") {
		// Name the importers so the culprit is obvious.
		out, _ := exec.Command(goTool, "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}}{{if eq . "testing"}} imports testing{{end}}{{end}}`, ".").Output()
		var culprits []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(l, " imports testing") {
				culprits = append(culprits, strings.TrimSuffix(l, " imports testing"))
			}
		}
		t.Errorf("the mailsts binary links the testing package, through %v", culprits)
	}
}
