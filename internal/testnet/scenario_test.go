package testnet

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultScenario(t *testing.T) {
	t.Parallel()
	sc := DefaultScenario()
	byName := make(map[string]Domain)
	for _, d := range sc.Domains {
		byName[d.Name] = d
	}
	required := []string{
		"enforce.example", "testing.example", "none.example", "crlf.example",
		"multistring.example", "two-records.example", "cname.example", "provider.example",
		"servfail.example", "timeout.example", "redirect.example", "notfound.example",
		"html.example", "huge.example", "drip.example", "expired.example",
		"wrong-name.example", "self-signed.example", "nostarttls.example",
		"badmxcert.example", "testing-badcert.example", "dane.example", "nosts.example",
	}
	for _, name := range required {
		if _, ok := byName[name]; !ok {
			t.Errorf("default scenario lacks %s", name)
		}
	}
	for _, d := range sc.Domains {
		if !strings.HasSuffix(d.Name, ".example") {
			t.Errorf("%s is not under the reserved .example", d.Name)
		}
	}
	if got := byName["enforce.example"]; len(got.MX) != 2 || !strings.Contains(got.Policy.Body, "mx: *.enforce.example") {
		t.Errorf("enforce.example = %+v, want 2 MX and a wildcard pattern", got)
	}
	if got := byName["multistring.example"].STSTXT; len(got) != 1 || len(got[0]) != 2 {
		t.Errorf("multistring.example TXT = %q, want one RR of two strings (STS-TXT-9)", got)
	}
	if got := byName["crlf.example"].Policy.Body; !strings.Contains(got, "\r\n") {
		t.Errorf("crlf.example body %q has no CRLF (STS-POL-4)", got)
	}
	if got := byName["huge.example"].Policy.PadTo; got != 65*1024 {
		t.Errorf("huge.example pad_to = %d, want 66560", got)
	}
	if got := byName["drip.example"].Policy.Drip; got != 30*time.Second {
		t.Errorf("drip.example drip = %v, want 30s", got)
	}
	if d := byName["dane.example"]; !d.Secure || d.MX[0].TLSA != TLSADaneEE || d.Policy == nil {
		t.Errorf("dane.example = %+v, want Secure, dane-ee and a policy", d)
	}
	if d := byName["nosts.example"]; d.Policy != nil || d.STSTXT != nil || len(d.MX) == 0 {
		t.Errorf("nosts.example = %+v, want MX only", d)
	}
	// Each call returns a fresh copy.
	sc.Domains[0].Name = "changed.example"
	if DefaultScenario().Domains[0].Name == "changed.example" {
		t.Error("DefaultScenario shares state between calls")
	}
}

func TestScenarioRoundTrip(t *testing.T) {
	t.Parallel()
	for name, sc := range map[string]*Scenario{
		"default":  DefaultScenario(),
		"generate": Generate(300, 7),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := sc.Validate(); err != nil {
				t.Fatal(err)
			}
			data, err := sc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := LoadScenario(data)
			if err != nil {
				t.Fatalf("LoadScenario(Marshal()): %v\n%s", err, data)
			}
			if !reflect.DeepEqual(sc, back) {
				t.Errorf("round trip changed the scenario")
			}
		})
	}
}

func TestLoadScenarioFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(path, DefaultScenarioYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := LoadScenarioFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sc, DefaultScenario()) {
		t.Error("LoadScenarioFile differs from DefaultScenario")
	}
	if _, err := LoadScenarioFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}

// scenarioCases are table cases for LoadScenario; the fuzzer starts from them.
var scenarioCases = []struct {
	name, yaml string
	err        string // substring of the error; "" means valid
}{
	{"empty", "", ""},
	{"minimal", "domains:\n  - name: a.example\n", ""},
	{"unknown key", "domains:\n  - name: a.example\n    polcy: {}\n", "line 3: field polcy not found"},
	{"unknown top key", "domain: []\n", "line 1: field domain not found"},
	{"unknown policy key", "domains:\n  - name: a.example\n    policy:\n      body: x\n      stauts: 200\n", "line 5"},
	{"bad fault", "domains:\n  - name: a.example\n    sts_fault: broken\n", "unknown fault"},
	{"bad cert", "domains:\n  - name: a.example\n    policy: {body: x, cert: fancy}\n", "unknown cert"},
	{"bad tlsa", "domains:\n  - name: a.example\n    mx: [{name: mx.a.example, tlsa: dane-pkix}]\n", "unknown cert"},
	{"bad max_tls", "domains:\n  - name: a.example\n    policy: {body: x, max_tls: \"0.9\"}\n", "max_tls"},
	{"duplicate domain", "domains:\n  - name: a.example\n  - name: A.example.\n", "listed twice"},
	{"bad name", "domains:\n  - name: a..example\n", "bad label"},
	{"bad char", "domains:\n  - name: a b.example\n", "bad character"},
	{"idn", "domains:\n  - name: bücher.example\n", ""},
	{"long txt string", "domains:\n  - name: a.example\n    sts_txt: [[\"" + strings.Repeat("a", 256) + "\"]]\n", "longer than 255"},
	{"empty txt rr", "domains:\n  - name: a.example\n    sts_txt: [[]]\n", "at least one"},
	{"cname and txt", "domains:\n  - name: a.example\n    sts_cname: b.example\n    sts_txt: [[x]]\n", "exclusive"},
	{"null mx and mx", "domains:\n  - name: a.example\n    null_mx: true\n    mx: [{name: m.a.example}]\n", "exclusive"},
	{"pad too small", "domains:\n  - name: a.example\n    policy: {body: \"version: STSv1\\n\", pad_to: 10}\n", "too small"},
	{"bad duration", "domains:\n  - name: a.example\n    policy: {body: x, drip: soon}\n", "cannot unmarshal"},
	{"duration", "domains:\n  - name: a.example\n    policy: {body: x, drip: 1m30s, delay: 2s}\n", ""},
	{"bad record", "domains:\n  - name: a.example\n    records: [\"x.example. IN BOGUS 1\"]\n", "record"},
	{"record", "domains:\n  - name: a.example\n    records: [\"x.a.example. 300 IN TXT \\\"hello\\\"\"]\n", ""},
	{"mx conflict", "domains:\n  - name: a.example\n    mx: [{name: m.example}]\n  - name: b.example\n    mx: [{name: m.example, no_starttls: true}]\n", "defined differently"},
	{"mx shared", "domains:\n  - name: a.example\n    mx: [{name: m.example, pref: 1}]\n  - name: b.example\n    mx: [{name: m.example, pref: 5}]\n", ""},
	{"two documents", "domains: []\n---\ndomains: []\n", "more than one"},
	{"not yaml", "domains: [\n", "did not find"},
	{"status", "domains:\n  - name: a.example\n    policy: {body: x, status: 42}\n", "out of range"},
}

func TestLoadScenario(t *testing.T) {
	t.Parallel()
	for _, tc := range scenarioCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc, err := LoadScenario([]byte(tc.yaml))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if sc == nil {
					t.Fatal("nil scenario")
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.err)
			}
			if !errors.Is(err, ErrScenario) {
				t.Errorf("error %v does not wrap ErrScenario", err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not contain %q", err, tc.err)
			}
		})
	}
}

func TestLoadScenarioNormalizes(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario([]byte("domains:\n  - name: Bücher.Example.\n    sts_cname: _MTA-STS.Provider.Example.\n    mx: [{name: MX1.Bücher.example}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := sc.Domains[0]
	if d.Name != "xn--bcher-kva.example" || d.STSCNAME != "_mta-sts.provider.example" || d.MX[0].Name != "mx1.xn--bcher-kva.example" {
		t.Errorf("names not normalized to lowercase A-labels: %+v", d)
	}
}

func TestLoadScenarioSizeCap(t *testing.T) {
	t.Parallel()
	_, err := LoadScenario(make([]byte, MaxScenarioSize+1))
	if !errors.Is(err, ErrScenario) {
		t.Errorf("oversized scenario: err = %v, want ErrScenario", err)
	}
}

func TestPaddedBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		pad  int
	}{
		{"version: STSv1\nmode: none\nmax_age: 1\n", 100},
		{"version: STSv1\r\nmode: none\r\nmax_age: 1", 200},
		{"", 66560},
	} {
		got, err := paddedBody(tc.body, tc.pad)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.pad {
			t.Errorf("len = %d, want %d", len(got), tc.pad)
		}
		if !strings.HasPrefix(got, strings.TrimRight(tc.body, "\r\n")) || !strings.Contains(got, "pad: a") {
			t.Errorf("padded body %.60q lost the original or the pad line", got)
		}
	}
}

func FuzzLoadScenario(f *testing.F) {
	f.Add(DefaultScenarioYAML())
	for _, tc := range scenarioCases {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := LoadScenario(data)
		if err != nil {
			return
		}
		// Round trip: what loads, marshals and loads back the same.
		out, err := sc.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := LoadScenario(out)
		if err != nil {
			t.Fatalf("LoadScenario(Marshal()): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalizeEmpty(sc), normalizeEmpty(back)) {
			t.Fatalf("round trip changed the scenario:\n%s", out)
		}
	})
}

// normalizeEmpty maps empty slices and maps to nil: YAML cannot tell them
// apart from absent ones after omitempty.
func normalizeEmpty(sc *Scenario) *Scenario {
	c := &Scenario{}
	for _, d := range sc.Domains {
		d = d.clone()
		if len(d.STSTXT) == 0 {
			d.STSTXT = nil
		}
		if len(d.TLSRPTTXT) == 0 {
			d.TLSRPTTXT = nil
		}
		if len(d.MX) == 0 {
			d.MX = nil
		}
		if len(d.Records) == 0 {
			d.Records = nil
		}
		if d.Policy != nil && len(d.Policy.Headers) == 0 {
			d.Policy.Headers = nil
		}
		c.Domains = append(c.Domains, d)
	}
	if len(c.Domains) == 0 {
		c.Domains = nil
	}
	return c
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	a, b := Generate(2000, 42), Generate(2000, 42)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Generate is not deterministic")
	}
	if reflect.DeepEqual(a, Generate(2000, 43)) {
		t.Error("different seeds give the same scenario")
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	var enforce, testing_, nosts, failing int
	mx := make(map[string]bool)
	for _, d := range a.Domains {
		switch {
		case d.STSTXT == nil:
			nosts++
		case d.Policy != nil && strings.Contains(d.Policy.Body, "mode: enforce") && d.Policy.Status == 0 && d.Policy.Cert == "":
			enforce++
		case d.Policy != nil && strings.Contains(d.Policy.Body, "mode: testing"):
			testing_++
		default:
			failing++
		}
		for _, h := range d.MX {
			mx[h.Name] = true
		}
	}
	if enforce < 1000 || testing_ < 200 || nosts < 40 || failing < 100 {
		t.Errorf("mix: enforce %d, testing %d, no STS %d, other %d", enforce, testing_, nosts, failing)
	}
	if len(mx) > 253 {
		t.Errorf("%d MX hosts do not fit a /24", len(mx))
	}
	if len(Generate(0, 1).Domains) != 0 || len(Generate(-1, 1).Domains) != 0 {
		t.Error("Generate(<=0) is not empty")
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		Generate(100_000, 1)
	}
}

func TestDomainLogValue(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	d := DefaultScenario().Domains[0]
	d.Policy.Cert = CertExpired
	log.Info("x", "domain", d)
	got := buf.String()
	for _, want := range []string{"domain.name=enforce.example", "domain.mx=2", "domain.policy.cert=expired", "domain.policy.body_bytes="} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "max_age") {
		t.Errorf("log %q contains the policy body", got)
	}
}
