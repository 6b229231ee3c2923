package buildinfo

import (
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/mailsts/mailsts", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0125c6f0a1b2c3d4e5f60718293a4b5c6d7e8f90"},
			{Key: "vcs.time", Value: "2026-12-06T11:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	for _, tc := range []struct {
		name                string
		bi                  *debug.BuildInfo
		ldV, ldC, ldD       string
		version, commit, dt string
		modified            bool
	}{
		{name: "nothing", version: "devel", commit: "unknown", dt: "unknown"},
		{name: "go build in a checkout", bi: stamped, version: "devel",
			commit: "0125c6f0a1b2c3d4e5f60718293a4b5c6d7e8f90", dt: "2026-12-06T11:00:00Z", modified: true},
		{name: "go install @version", bi: &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}},
			version: "v1.2.0", commit: "unknown", dt: "unknown"},
		{name: "release build", bi: stamped, ldV: "v1.3.0", ldC: "abc", ldD: "2026-12-01T00:00:00Z",
			version: "v1.3.0", commit: "abc", dt: "2026-12-01T00:00:00Z"},
		{name: "release build, dirty tree", bi: stamped, ldV: "v1.3.0-2-gabc-dirty",
			version: "v1.3.0-2-gabc-dirty", commit: "0125c6f0a1b2c3d4e5f60718293a4b5c6d7e8f90", dt: "2026-12-06T11:00:00Z", modified: true},
	} {
		in := From(tc.bi, tc.ldV, tc.ldC, tc.ldD)
		if in.Version != tc.version || in.Commit != tc.commit || in.Date != tc.dt || in.Modified != tc.modified {
			t.Errorf("%s: got %+v, want version %q commit %q date %q modified %v", tc.name, in, tc.version, tc.commit, tc.dt, tc.modified)
		}
		if in.GoVersion == "" || !strings.Contains(in.Platform, "/") {
			t.Errorf("%s: go version %q, platform %q", tc.name, in.GoVersion, in.Platform)
		}
	}
	if got := From(stamped, "", "", "").ShortCommit(); got != "0125c6f0a1b2" {
		t.Errorf("ShortCommit = %q", got)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	in := Info{Version: "v1.3.0", Commit: "abc", Modified: true, Date: "2026-12-01T00:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	want := "mailsts v1.3.0\ncommit: abc (modified)\nbuilt:  2026-12-01T00:00:00Z\ngo:     go1.26.8 linux/amd64\n"
	if got := in.String(); got != want {
		t.Errorf("String:\n%s\nwant:\n%s", got, want)
	}
	// The format of the running test binary: four lines, first "mailsts VERSION".
	re := regexp.MustCompile(`^mailsts \S+\ncommit: \S+( \(modified\))?\nbuilt:  \S+\ngo:     go\S+ \S+/\S+\n$`)
	if got := Get().String(); !re.MatchString(got) {
		t.Errorf("Get().String() = %q, want to match %s", got, re)
	}
}
