package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// resolve notes the draft forms when it finds no usable policy, in text
// and as "notes" in --json, and says nothing for a domain without any.
func TestResolveDraftNotes(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	for domain, want := range map[string]string{
		"draft-sts.example":     `publish instead: _mta-sts.draft-sts.example TXT "v=STSv1; id=2016draft1"`,
		"draft-version.example": `has the version "v=STS1"`,
		"draft-report.example":  `publish instead: "mode: testing"`,
	} {
		_, stdout, _ := run(t, append(append([]string{"resolve"}, netArgs(n)...), domain)...)
		if !strings.Contains(stdout, "  Note: ") || !strings.Contains(stdout, want) {
			t.Errorf("%s: %s", domain, stdout)
		}
	}
	_, stdout, _ := run(t, append(append([]string{"resolve", "--json"}, netArgs(n)...), "draft-sts.example")...)
	var out resolveOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || len(out.Notes) != 2 || !strings.Contains(out.Notes[1], "mode: testing") {
		t.Errorf("json: %v %q", err, out.Notes)
	}
	if _, stdout, _ := run(t, append(append([]string{"resolve"}, netArgs(n)...), "nosts.example")...); strings.Contains(stdout, "Note:") {
		t.Errorf("nosts.example: %s", stdout)
	}
}
