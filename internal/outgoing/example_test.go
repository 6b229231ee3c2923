package outgoing_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// A Go MTA records each delivery attempt's TLS outcome; Record returns at
// once (the write happens in the background) and never blocks for long.
func ExampleRecorder() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := outgoing.OpenSQLite(ctx, filepath.Join(dir, "tlsrpt-send.db"), outgoing.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{})

	policy := outgoing.Policy{
		Type:    "sts",
		Strings: []string{"version: STSv1", "mode: enforce", "mx: mx.example.net", "max_age: 604800"},
		MXHosts: []string{"mx.example.net"},
	}
	day := time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)
	// A session that negotiated TLS as the policy demands.
	_ = rec.Record(ctx, outgoing.Result{Time: day, PolicyDomain: "example.net", Policy: policy})
	// A session that met an expired certificate.
	_ = rec.Record(ctx, outgoing.Result{Time: day, PolicyDomain: "example.net", Policy: policy,
		Failures: []outgoing.Failure{{ResultType: result.CertificateExpired,
			ReceivingMXHostname: "mx.example.net", ReceivingIP: "192.0.2.25"}}})
	// The session that delivered a TLS report is not counted.
	_ = rec.Record(ctx, outgoing.Result{Time: day, PolicyDomain: "example.net", Policy: policy, ReportDelivery: true})

	_ = rec.Close(ctx) // writes what is buffered
	fmt.Printf("%+v\n", rec.Stats())

	ps, _ := st.Policies(ctx, outgoing.DomainDay{Domain: "example.net", Day: day.Truncate(24 * time.Hour)})
	for _, p := range ps {
		fmt.Println(p.Policy.Type, p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount, p.FailureDetails[0].ResultType)
	}
	// Output:
	// {Recorded:2 Written:2 Dropped:0 Excluded:1 Invalid:0 Lost:0}
	// sts 1 1 certificate-expired
}
