//go:build !unix

package cli

import "github.com/mailsts/mailsts/internal/sqlitedb"

// canWrite cannot ask the system here: it lets opening the file decide.
func canWrite(string, bool) error { return nil }

// fileOwner: no Unix owners here.
func fileOwner(string) *sqlitedb.Owner { return nil }

// processRunning cannot tell here.
func processRunning(int) bool { return false }
