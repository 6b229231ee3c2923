package policyd

import (
	"fmt"

	"github.com/mailsts/mailsts/internal/trustroots"
)

// RootSet builds the roots that verify policy hosts from fetch.roots,
// fetch.ca_file and fetch.zone_roots.
func RootSet(f FetchConfig) (*trustroots.Set, error) {
	def, err := trustroots.BasePool(f.Roots, f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("policyd: fetch.roots/fetch.ca_file: %w", err)
	}
	zones := make([]trustroots.Zone, 0, len(f.ZoneRoots))
	for i, z := range f.ZoneRoots {
		certs, err := trustroots.LoadFile(z.CAFile)
		if err != nil {
			return nil, fmt.Errorf("policyd: fetch.zone_roots[%d].ca_file: %w", i, err)
		}
		zones = append(zones, trustroots.Zone{Domains: z.Domains, Certs: certs, Replace: z.Replace})
	}
	set, err := trustroots.NewSet(def, zones)
	if err != nil {
		return nil, fmt.Errorf("policyd: fetch.zone_roots: %w", err)
	}
	return set, nil
}
