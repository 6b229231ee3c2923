package cli

import (
	"bufio"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// The sending chain in one process, without Postfix or waiting: results
// of a finished day in the store, `tlsrpt collect --once` builds the
// report into the outbox, and the running `tlsrpt collect` delivers it on
// its first pass to the https rua that the domain's _smtp._tls record (in
// the fake DNS) names: mailsts's own HTTPS receiver, which stores it as
// built. --metrics counts the delivery (mailsts_tlsrpt_outbox_*).
func TestTLSRPTCollectDeliversToReceiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	state := t.TempDir()

	recvStore := sqlstoretest.OpenSQLite(t)
	recv := httptest.NewTLSServer(&httpapi.Receiver{Ingester: &ingest.Ingester{Store: recvStore, DKIM: ingest.DKIMOff}})
	t.Cleanup(recv.Close)
	caFile := filepath.Join(state, "receiver-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: []testnet.Domain{
		{Name: "policy.example", TLSRPTTXT: [][]string{{"v=TLSRPTv1; rua=" + recv.URL + "/tlsrpt"}}},
	}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)

	// A finished day's results: two sessions, one of them failed.
	st, err := outgoing.Open(ctx, "", state, outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := time.Now().AddDate(0, 0, -2)
	pol := outgoing.Policy{Type: "no-policy-found"}
	if err := st.Add(ctx,
		outgoing.Result{Time: old, PolicyDomain: "policy.example", Policy: pol},
		outgoing.Result{Time: old, PolicyDomain: "policy.example", Policy: pol,
			Failures: []outgoing.Failure{{ResultType: result.STARTTLSNotSupported, ReceivingMXHostname: "mx.policy.example"}}},
	); err != nil {
		t.Fatal(err)
	}

	cfg := filepath.Join(state, "reports.yml")
	yml := fmt.Sprintf(`send:
  organization_name: Example Sender
  contact_info: tlsrpt@sender.example
delivery:
  dns: [%q]
  spread: 1s
  ca_file: %s
  https_verify: require
  https_allow_private: true
`, n.DNSAddr(), caFile)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runStdin(t, nil, state, "tlsrpt", "collect", "--config", cfg, "--once"); code != ExitOK || !strings.Contains(out, "built 1,") {
		t.Fatalf("--once: %d %s %s", code, out, errOut)
	}

	// The running collector delivers on its first outbox pass.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		env := Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(k string) string {
			if k == "STATE_DIRECTORY" {
				return state
			}
			return ""
		}}
		done <- Main(cctx, []string{"tlsrpt", "collect", "--config", cfg, "--no-socket", "--no-build",
			"--stats-interval", "0", "--metrics", metricsAddr}, env)
	}()
	reportID := tlsrpt.DayRange(old).Start.Format("20060102") + ".policy.example@sender.example"
	var got []reports.StoredReport
	for i := 0; ; i++ {
		got, err = recvStore.Show(ctx, reportID)
		if err == nil && len(got) == 1 {
			break
		}
		if i > 1000 {
			t.Fatalf("report %s not received: %v\n%s", reportID, err, errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := got[0].Report
	if got[0].Source != reports.SourceHTTP || len(r.Policies) != 1 || r.Policies[0].Policy.Domain != "policy.example" ||
		r.Policies[0].Summary.TotalSuccessfulSessionCount != 1 || r.Policies[0].Summary.TotalFailureSessionCount != 1 ||
		len(r.Policies[0].FailureDetails) != 1 || r.Policies[0].FailureDetails[0].ResultType != result.STARTTLSNotSupported {
		t.Errorf("received %+v from %s", r, got[0].Source)
	}

	// The attempt is counted (the observer hears it before the outcome
	// is stored, so it is there by now).
	var sent string
	for i := 0; ; i++ {
		sent = metricLine(t, "http://"+metricsAddr+"/metrics", `mailsts_tlsrpt_outbox_deliveries_total{outcome="sent",scheme="https"}`)
		if sent == "1" {
			break
		}
		if i > 200 {
			t.Fatalf("sent deliveries = %q, want 1\n%s", sent, errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := metricLine(t, "http://"+metricsAddr+"/metrics", `mailsts_tlsrpt_outbox_deliveries_total{outcome="failed",scheme="mailto"}`); v != "0" {
		t.Errorf("failed mailto deliveries = %q, want 0 (present from the start)", v)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("collect exit %d: %s", code, errb.String())
	}
	// The outbox lists it as sent.
	code, out, errOut := runStdin(t, nil, state, "tlsrpt", "outbox", "--config", cfg)
	if code != ExitOK || !strings.Contains(out, "sent") || !strings.Contains(out, recv.URL) {
		t.Errorf("outbox listing: %d\n%s%s", code, out, errOut)
	}
}

// metricLine returns the value of one series in a Prometheus text
// exposition ("" when absent).
func metricLine(t *testing.T, url, series string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v
		}
	}
	return ""
}
