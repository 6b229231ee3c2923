package testnet

// TB is the part of testing.TB the test helpers here need (this package is
// also linked into the mailsts binary, so it does not import testing).
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// RefusedPortFor returns a port that refuses connections until the test
// ends (see RefusedPort).
func RefusedPortFor(t TB) int {
	t.Helper()
	port, release, err := RefusedPort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return port
}
