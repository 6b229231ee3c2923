package cli

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing/outbox"
	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/tlsrpt"
)

// TestTLSRPTOutboxCLI: send delivers a due report to the https rua the
// fake DNS publishes, and list, retry, suppress and unsuppress show and
// change the outbox, with JSON in snake_case and the documented exit
// codes.
func TestTLSRPTOutboxCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var posts atomic.Int32
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") == tlsrpt.MediaTypeGzip {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(recv.Close)
	dest := recv.URL + "/tlsrpt"
	n, err := testnet.Start(ctx, &testnet.Scenario{Domains: []testnet.Domain{
		{Name: "policy.example", TLSRPTTXT: [][]string{{"v=TLSRPTv1; rua=" + dest}}},
	}}, testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "reports.yml")
	if err := os.WriteFile(cfg, []byte("delivery:\n  dns: ["+n.DNSAddr()+"]\n  ca_file: "+ca+"\n  https_allow_private: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The builder's side: one report of a finished day.
	st, err := outbox.Open(ctx, "", state)
	if err != nil {
		t.Fatal(err)
	}
	var a tlsrpt.Aggregator
	a.AddSuccess(tlsrpt.Policy{Type: "no-policy-found", Domain: "policy.example"}, 3)
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	rep := a.Report(tlsrpt.ReportParams{OrganizationName: "Sender", ContactInfo: "tlsrpt@sender.example", PolicyDomain: "policy.example", Day: day})
	body, err := tlsrpt.MarshalGzip(rep)
	if err != nil {
		t.Fatal(err)
	}
	fn := tlsrpt.Filename{Sender: "sender.example", PolicyDomain: "policy.example", Begin: rep.DateRange.Start, End: rep.DateRange.End, Gzip: true}
	if err := (&outbox.Outbox{Store: st}).Enqueue(ctx, outbox.Report{PolicyDomain: "policy.example", Day: day, ReportID: rep.ReportID,
		Filename: fn.String(), Body: body, Submitter: "sender.example"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errs := runStdin(t, nil, state, "tlsrpt", "outbox", "--config", cfg)
	if code != ExitOK || !strings.Contains(out, "(record lookup)") || !strings.Contains(out, "pending") {
		t.Fatalf("list before send: %d\n%s%s", code, out, errs)
	}
	code, out, errs = runStdin(t, nil, state, "tlsrpt", "outbox", "send", "--config", cfg)
	if code != ExitOK || !strings.Contains(out, "sent 1") || posts.Load() != 1 {
		t.Fatalf("send: %d, %d posts\n%s%s", code, posts.Load(), out, errs)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "outbox", "--json", "--state", "sent", "--config", cfg)
	var es []map[string]any
	if err := json.Unmarshal([]byte(out), &es); code != ExitOK || err != nil || len(es) != 1 {
		t.Fatalf("list --json: %d %v\n%s", code, err, out)
	}
	if es[0]["state"] != "sent" || es[0]["destination"] != dest || es[0]["policy_domain"] != "policy.example" || es[0]["sent_at"] == nil {
		t.Errorf("entry %v", es[0])
	}
	id := es[0]["id"].(string)
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "outbox", "--json", "--state", "failed", "--config", cfg)
	if code != ExitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("--state failed: %d %s", code, out)
	}
	if code, _, _ := runStdin(t, nil, state, "tlsrpt", "outbox", "retry", id, "--config", cfg); code != ExitFailure {
		t.Errorf("retry of a sent delivery: exit %d, want 1", code)
	}
	if code, _, _ := runStdin(t, nil, state, "tlsrpt", "outbox", "retry", "d999", "--config", cfg); code != ExitFailure {
		t.Errorf("retry of an unknown delivery: exit %d, want 1", code)
	}
	if code, out, _ := runStdin(t, nil, state, "tlsrpt", "outbox", "suppress", dest, "--reason", "test reason", "--config", cfg); code != ExitOK {
		t.Errorf("suppress: %d %s", code, out)
	}
	code, out, _ = runStdin(t, nil, state, "tlsrpt", "outbox", "suppressed", "--json", "--config", cfg)
	var ds []map[string]any
	if err := json.Unmarshal([]byte(out), &ds); code != ExitOK || err != nil || len(ds) != 1 || ds[0]["suppressed_reason"] != "test reason" {
		t.Fatalf("suppressed --json: %d %v\n%s", code, err, out)
	}
	if code, _, _ := runStdin(t, nil, state, "tlsrpt", "outbox", "unsuppress", dest, "--config", cfg); code != ExitOK {
		t.Errorf("unsuppress: %d", code)
	}
	if code, _, _ := runStdin(t, nil, state, "tlsrpt", "outbox", "unsuppress", dest, "--config", cfg); code != ExitFailure {
		t.Errorf("second unsuppress: %d, want 1", code)
	}
	for _, args := range [][]string{{"frob"}, {"--state", "bogus"}, {"retry"}, {"send", "extra"}, {"--db", "mysql://x"}} {
		if code, _, _ := runStdin(t, nil, state, append([]string{"tlsrpt", "outbox"}, args...)...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 64", args, code)
		}
	}
}
