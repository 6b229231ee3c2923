package testnet

import (
	_ "embed"
	"fmt"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultScenarioYAML returns the text of the embedded default scenario, with
// a comment on every domain saying what it tests.
func DefaultScenarioYAML() []byte { return append([]byte(nil), defaultYAML...) }

// DefaultScenario returns a fresh copy of the embedded default scenario:
// one .example domain per behaviour (good enforce and testing policies,
// multi-string and duplicate TXT records, CNAMEs, DNS faults, redirects, bad
// certificates, MX hosts without STARTTLS, DANE, …). See default.yaml.
func DefaultScenario() *Scenario {
	sc, err := LoadScenario(defaultYAML)
	if err != nil {
		// default.yaml is compiled in and checked by TestDefaultScenario.
		panic(fmt.Sprintf("testnet: embedded default.yaml is invalid: %v", err))
	}
	return sc
}
