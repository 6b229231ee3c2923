// Package contrib holds the commented default configuration files that the
// Debian package installs under /etc/mailsts/ and that the man pages
// mailsts-policyd.yml(5) and mailsts-reports.yml(5) are generated from:
// each file's comments are the one description of its keys.
package contrib

import _ "embed"

//go:embed policyd.yml
var policydYML string

//go:embed reports.yml
var reportsYML string

// PolicydYML returns policyd.yml, the commented defaults of `mailsts policyd`.
func PolicydYML() string { return policydYML }

// ReportsYML returns reports.yml, the commented defaults of `mailsts serve`
// and `mailsts tlsrpt`.
func ReportsYML() string { return reportsYML }
