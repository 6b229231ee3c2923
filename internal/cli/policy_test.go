package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/internal/jsonkeys"
	"github.com/mailsts/mailsts/internal/publish"
	"github.com/mailsts/mailsts/mtasts"
)

// runPolicyCLI runs mailsts with args and returns the exit code and output.
func runPolicyCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

const fourDomains = `
    - domain: hosted.example
      mode: testing
      mx: [mx1.hosted.example, mx2.hosted.example]
      max_age: 86400
    - domain: stale.example
      mode: testing
      mx: "*.stale.example"
    - domain: nolive.example
      mx: auto
    - domain: badmx.example
      mode: enforce
      mx: ["*.badmx.example"]
`

// TestPolicyStatus: each thing a sender would see wrong is a finding,
// and the exit code says so; the good domain passes.
func TestPolicyStatus(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfigDomains(t, n, fourDomains, "")
	port := startPublish(t, cfg)
	net := []string{"--config", cfg, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(port), "--smtp-port", strconv.Itoa(n.SMTPPort())}

	code, out, errs := runPolicyCLI(t, append([]string{"policy", "status"}, append(net, "hosted.example")...)...)
	if code != ExitOK || !strings.Contains(out, "hosted.example: OK") {
		t.Errorf("good domain: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = runPolicyCLI(t, append([]string{"policy", "status", "--json"}, net...)...)
	if code != ExitFailure {
		t.Errorf("exit %d, want 1\n%s%s", code, out, errs)
	}
	var sts []publish.Status
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 4 {
		t.Fatalf("%v: %s", err, out)
	}
	if bad, err := jsonkeys.Check([]byte(out)); err != nil || len(bad) > 0 {
		t.Errorf("policy status --json keys (TestJSONKeysSnakeCase): %v %s", err, jsonkeys.Describe(bad))
	}
	want := map[string][]string{
		"hosted.example": {publish.FindOK},
		"stale.example":  {publish.FindTXTStale, publish.FindCertExpiring},
		"nolive.example": {publish.FindTXTMissing},
		"badmx.example":  {publish.FindTXTStale, publish.FindMXTLS},
	}
	for _, st := range sts {
		var ids []string
		for _, f := range st.Findings {
			ids = append(ids, f.ID)
		}
		for _, w := range want[st.Domain] {
			if !strings.Contains(strings.Join(ids, " "), w) {
				t.Errorf("%s: findings %v lack %s", st.Domain, ids, w)
			}
		}
		if st.ServedID != st.ID {
			t.Errorf("%s: served id %s, configured %s", st.Domain, st.ServedID, st.ID)
		}
	}

	if code, _, errs := runPolicyCLI(t, append([]string{"policy", "status"}, append(net, "unknown.example")...)...); code != ExitUsage {
		t.Errorf("unknown domain: exit %d %s", code, errs)
	}
}

// TestPolicyStatusDiffers: a policy host serving another policy than the
// configured one (serve not reloaded) is found.
func TestPolicyStatusDiffers(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	port := startPublish(t, pubConfig(t, n, "testing", ""))
	cfg := pubConfig(t, n, "enforce", "")
	code, out, _ := runPolicyCLI(t, "policy", "status", "--config", cfg, "--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(port),
		"--smtp-port", strconv.Itoa(n.SMTPPort()), pubDomain)
	if code != ExitFailure || !strings.Contains(out, publish.FindPolicyDiffers) || !strings.Contains(out, publish.FindTXTStale) {
		t.Errorf("exit %d\n%s", code, out)
	}
}

func TestPolicyRecords(t *testing.T) {
	t.Parallel()
	n := pubNet.Net(t)
	cfg := pubConfig(t, n, "testing", `  records:
    cname: policy.provider.example
    rua: mailto:tlsrpt@hosted.example
    caa:
      - issuer: letsencrypt.org
        account_uri: https://acme.example/acct/1
        validation_methods: [http-01, tls-alpn-01]`)
	code, out, errs := runPolicyCLI(t, "policy", "records", "--config", cfg, pubDomain)
	id := pubPolicy(t, mtasts.ModeTesting).ID
	for _, want := range []string{
		"mta-sts.hosted.example. 3600 IN CNAME policy.provider.example.\n",
		`mta-sts.hosted.example. 3600 IN CAA 0 issue "letsencrypt.org; accounturi=https://acme.example/acct/1; validationmethods=http-01,tls-alpn-01"` + "\n",
		`_mta-sts.hosted.example. 3600 IN TXT "v=STSv1; id=` + id + `"` + "\n",
		`_smtp._tls.hosted.example. 3600 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@hosted.example"` + "\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s%s", code, want, out, errs)
		}
	}
	code, out, _ = runPolicyCLI(t, "policy", "records", "--json", "--config", cfg)
	var recs []struct {
		Domain, ID, Policy string
		Records            []publish.DNSRecord
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil || code != 0 || len(recs) != 1 || recs[0].ID != id || len(recs[0].Records) != 4 {
		t.Errorf("json: %v %d %s", err, code, out)
	}
	if bad, err := jsonkeys.Check([]byte(out)); err != nil || len(bad) > 0 {
		t.Errorf("policy records --json keys (TestJSONKeysSnakeCase): %v %s", err, jsonkeys.Describe(bad))
	}
	if code, _, _ := runPolicyCLI(t, "policy", "records", "--config", cfg, "other.example"); code != ExitUsage {
		t.Errorf("unknown domain: exit %d", code)
	}
	if code, _, _ := runPolicyCLI(t, "policy"); code != ExitUsage {
		t.Errorf("no subcommand: exit %d", code)
	}
}
