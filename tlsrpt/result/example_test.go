package result_test

import (
	"fmt"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// A failure-details "result-type" read from a report: registry values are
// Known, the local classes mailsts uses for discovery outcomes are not, and
// future registry values are kept as they are (RPT-RES-12).
func ExampleType() {
	for _, t := range []result.Type{result.CertificateNotTrusted, result.NoPolicy, "some-future-type"} {
		fmt.Println(t, t.Known(), t.Local(), t.WantsReasonCode())
	}
	// Output:
	// certificate-not-trusted true false true
	// no-policy false true false
	// some-future-type false false false
}
