// Package buildinfo says which mailsts this binary is: the release, the
// commit and the build date. Release builds set them with the linker
// (make build: -ldflags "-X github.com/mailsts/mailsts/internal/buildinfo.version=…");
// otherwise they come from the Go build information (runtime/debug), which
// `go build` in a git checkout stamps with the commit and its time, and
// `go install …@version` with the module version.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker for release builds (see the Makefile's build target).
// They are strings so that -X can set them; nothing else writes them.
var (
	version string // release, from git describe: v1.2.0, v1.2.0-3-gabc1234
	commit  string // full commit hash
	date    string // build date (the commit time), RFC 3339
)

// Info describes a build.
type Info struct {
	Version   string // release ("devel" when unknown)
	Commit    string // commit hash ("unknown" when unknown)
	Modified  bool   // built from a checkout with uncommitted changes
	Date      string // RFC 3339 ("unknown" when unknown)
	GoVersion string // toolchain, e.g. go1.26.8
	Platform  string // GOOS/GOARCH
}

// Get returns the information of the running binary.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(bi, version, commit, date)
}

// From combines build information with linker overrides ("" means not
// set); bi may be nil.
func From(bi *debug.BuildInfo, ldVersion, ldCommit, ldDate string) Info {
	in := Info{Version: "devel", Commit: "unknown", Date: "unknown",
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.Date = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		in.Version = ldVersion
		// git describe marks a dirty tree itself.
		in.Modified = strings.HasSuffix(ldVersion, "-dirty")
	}
	if ldCommit != "" {
		in.Commit = ldCommit
	}
	if ldDate != "" {
		in.Date = ldDate
	}
	return in
}

// ShortCommit is the first 12 characters of the commit hash.
func (in Info) ShortCommit() string {
	if len(in.Commit) > 12 {
		return in.Commit[:12]
	}
	return in.Commit
}

// String is the multi-line form printed by `mailsts version`.
func (in Info) String() string {
	mod := ""
	if in.Modified {
		mod = " (modified)"
	}
	return fmt.Sprintf("mailsts %s\ncommit: %s%s\nbuilt:  %s\ngo:     %s %s\n",
		in.Version, in.Commit, mod, in.Date, in.GoVersion, in.Platform)
}
