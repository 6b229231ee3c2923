package tlsrpt

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
)

// fakeResolver answers TXT lookups from a map; names are compared
// lowercased with the trailing dot removed. Other lookups find nothing.
type fakeResolver struct {
	txt  map[string][]string
	fail map[string]bool
}

func fqdn(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (f *fakeResolver) LookupTXT(_ context.Context, name string) ([]string, dnsresolve.Answer, error) {
	n := fqdn(name)
	if f.fail[n] {
		return nil, dnsresolve.Answer{}, dnsresolve.ErrLookupFailed
	}
	if t, ok := f.txt[n]; ok {
		return t, dnsresolve.Answer{CanonicalName: n + "."}, nil
	}
	return nil, dnsresolve.Answer{}, dnsresolve.ErrNotFound
}

func (f *fakeResolver) LookupMX(context.Context, string) ([]dnsresolve.MX, dnsresolve.Answer, error) {
	return nil, dnsresolve.Answer{}, dnsresolve.ErrNotFound
}

func (f *fakeResolver) LookupIP(context.Context, string) ([]netip.Addr, dnsresolve.Answer, error) {
	return nil, dnsresolve.Answer{}, dnsresolve.ErrNotFound
}

func (f *fakeResolver) LookupTLSA(context.Context, int, string, string) ([]dnsresolve.TLSA, dnsresolve.Answer, error) {
	return nil, dnsresolve.Answer{}, dnsresolve.ErrNotFound
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// repairCodes returns the codes of rs, in order.
func repairCodes(rs []Repair) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

func hasRepair(rs []Repair, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}

func hasProblem(ps []Problem, code string) bool {
	for _, p := range ps {
		if p.Code == code {
			return true
		}
	}
	return false
}
