package checker

import (
	"strings"
	"testing"

	"github.com/mailsts/mailsts/mtasts"
)

// The draft JSON policy converter never panics, and what it returns is a
// valid RFC 8461 policy (so the fix it suggests can be published as is).
func FuzzDraftJSONToText(f *testing.F) {
	for _, s := range []string{
		`{"version": "STSv1", "mode": "report", "mx": ["mx1.example"], "max_age": 86400}`,
		`{"version": "STSv1", "mode": "enforce", "mx": "mx.example", "max_age": 1}`,
		`{"version": "STSv1", "mode": "none", "mx": [], "max_age": "x"}`,
		`[]`, `{"mx": [1]}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		text, _, ok := draftJSONToText(body)
		if !ok {
			return
		}
		if _, err := mtasts.ParsePolicy([]byte(text)); err != nil || !strings.HasPrefix(text, "version: STSv1\n") {
			t.Fatalf("%q -> %q: %v", body, text, err)
		}
	})
}

// DraftVersion flags exactly the near-misses of "v=STSv1".
func FuzzDraftVersion(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=1", "v=STS1; id=1", "v=STSV1;id=1", "v=stsv1", "v=TLSRPTv1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		v, ok := DraftVersion(txt)
		if ok && (v == "v=STSv1" || !strings.EqualFold(v[:5], "v=sts")) {
			t.Fatalf("%q -> %q", txt, v)
		}
	})
}
