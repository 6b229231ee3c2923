//go:build !unix

package mailclient

// lockFile is a no-op where flock is missing: FileStore then serializes
// within the process only.
func lockFile(string) (func(), error) { return func() {}, nil }
