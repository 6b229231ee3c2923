package reports

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayering checks the split of the report packages (DEVELOPING.md):
// the store is usable without the mail code, the HTTP layer without the
// mailbox code, and none of the library packages links testing.
func TestLayering(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to list dependencies:", err)
	}
	const mod = "github.com/mailsts/mailsts/internal/reports"
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	imap, pgx, sqlite := "github.com/emersion/go-imap/v2", "github.com/jackc/pgx/v5", "modernc.org/sqlite"
	forbidden := map[string][]string{
		"":          {mod + "/sqlstore", mod + "/ingest", mod + "/httpapi", mod + "/mailbox", imap, pgx, sqlite, "net/http"},
		"/sqlstore": {mod + "/ingest", mod + "/httpapi", mod + "/mailbox", imap},
		"/ingest":   {mod + "/sqlstore", mod + "/httpapi", mod + "/mailbox", imap, pgx, sqlite},
		"/httpapi":  {mod + "/sqlstore", mod + "/mailbox", imap, pgx, sqlite},
		"/mailbox":  {mod + "/sqlstore", mod + "/httpapi", pgx, sqlite},
	}
	for pkg, bad := range forbidden {
		d, ok := deps[mod+pkg]
		if !ok {
			t.Errorf("go list did not list %s", mod+pkg)
			continue
		}
		for _, b := range append(bad, "testing") {
			if slices.ContainsFunc(d, func(x string) bool { return x == b || strings.HasPrefix(x, b+"/") }) {
				t.Errorf("%s depends on %s", mod+pkg, b)
			}
		}
	}
}
