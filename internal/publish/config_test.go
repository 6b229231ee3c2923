package publish

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/mtasts"
)

// TestPolicyIDGolden pins the id derivation: it is documented as stable
// across releases, so a change here breaks every published TXT record
// (STS-PUB-1).
func TestPolicyIDGolden(t *testing.T) {
	t.Parallel()
	sv, err := Render("example.org", mtasts.ModeEnforce, []string{"mx1.example.org", "*.mx.example.org"}, 604800)
	if err != nil {
		t.Fatal(err)
	}
	const wantText = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.mx.example.org\r\nmax_age: 604800\r\n"
	if string(sv.Text) != wantText {
		t.Errorf("text = %q, want %q", sv.Text, wantText)
	}
	// printf 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.mx.example.org\r\nmax_age: 604800\r\n' | sha256sum | cut -c1-32
	const wantID = "cd7b105e854a874dc24ee11273640b6d"
	if sv.ID != wantID {
		t.Errorf("id = %s, want %s", sv.ID, wantID)
	}
	if rec, err := mtasts.ParseRecord(sv.Record()); err != nil || rec.ID != sv.ID {
		t.Errorf("record %q: %v %v", sv.Record(), rec, err)
	}
	if _, err := mtasts.ParsePolicyStrict(sv.Text); err != nil {
		t.Errorf("served text does not parse strictly: %v", err)
	}
	other, _ := Render("example.org", mtasts.ModeTesting, []string{"mx1.example.org", "*.mx.example.org"}, 604800)
	if other.ID == sv.ID {
		t.Error("a changed policy kept its id")
	}
}

func fakeDNS() *dnsresolve.Fake {
	f := &dnsresolve.Fake{}
	f.SetMX("example.org", dnsresolve.MX{Pref: 10, Host: "mx1.example.org"}, dnsresolve.MX{Pref: 20, Host: "mx2.example.org"})
	f.SetMX("other.example", dnsresolve.MX{Pref: 10, Host: "mx.provider.example"})
	f.SetMX("null.example", dnsresolve.MX{Host: "."})
	f.SetMX("deep.example", dnsresolve.MX{Pref: 10, Host: "a.b.deep.example"})
	f.SetError("MX broken.example", errors.New("SERVFAIL"))
	return f
}

func load(t *testing.T, doms ...reports.PublishDomain) (*Set, error) {
	t.Helper()
	return (&Loader{DNS: fakeDNS()}).Load(context.Background(), reports.PublishConfig{Domains: doms})
}

func mx(p ...string) reports.PublishMX { return reports.PublishMX(p) }

func TestLoadGood(t *testing.T) {
	t.Parallel()
	s, err := load(t,
		reports.PublishDomain{Domain: "Example.ORG.", Mode: "enforce", MX: mx("*.example.org")},
		reports.PublishDomain{Domain: "other.example", MX: reports.PublishMX{"auto"}, MaxAge: 86400},
		reports.PublishDomain{Domain: "deep.example", Mode: "testing", MX: mx("a.b.deep.example"), MXPlanned: []string{"*.new.deep.example"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Domain("example.org")
	if d == nil || d.Mode != mtasts.ModeEnforce || d.MaxAge != DefaultMaxAge {
		t.Fatalf("example.org: %+v", d)
	}
	o := s.Domain("OTHER.example")
	if o == nil || o.Mode != mtasts.ModeTesting || strings.Join(o.Patterns, ",") != "mx.provider.example" {
		t.Fatalf("other.example (auto): %+v", o)
	}
	if got := string(s.Domain("deep.example").Policy().Text); !strings.Contains(got, "mx: *.new.deep.example\r\n") {
		t.Errorf("planned pattern not served: %q", got)
	}
}

// TestLoadProblems: each bad entry gets its own clear line, and all are
// reported at once.
func TestLoadProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d    reports.PublishDomain
		want string
	}{
		{reports.PublishDomain{Domain: "example.org", Mode: "strict", MX: mx("*.example.org")}, `mode "strict" is not enforce, testing or none`},
		{reports.PublishDomain{Domain: "example.org", MX: mx("*.*.example.org")}, "a wildcard covers exactly one left-most label"},
		{reports.PublishDomain{Domain: "example.org", MX: mx("*.example.org"), MaxAge: 31557601}, "max_age 31557601 is above the maximum 31557600"},
		{reports.PublishDomain{Domain: "example.org", MX: mx("mx1.example.org", "mx9.example.org")}, `mx "mx9.example.org" matches no live MX host`},
		{reports.PublishDomain{Domain: "other.example", MX: mx("*.other.example")}, "no live MX host matches the mx patterns *.other.example: the domain's mail goes to mx.provider.example"},
		{reports.PublishDomain{Domain: "example.org", Mode: "enforce", MX: mx("mx1.example.org")}, "enforce would make senders refuse live MX host mx2.example.org"},
		{reports.PublishDomain{Domain: "deep.example", MX: mx("*.deep.example")}, "no live MX host matches"},
		{reports.PublishDomain{Domain: "null.example", MX: reports.PublishMX{"auto"}}, "null MX"},
		{reports.PublishDomain{Domain: "broken.example", MX: reports.PublishMX{"auto"}}, "mx auto: MX lookup failed"},
		{reports.PublishDomain{Domain: "example.org"}, "no mx patterns"},
		{reports.PublishDomain{Domain: "bad_name!.example", MX: mx("x.example")}, "not a valid domain name"},
	}
	for _, c := range cases {
		_, err := load(t, c.d)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v, want %q", c.d, err, c.want)
		}
	}
	// Every problem at once, one line each.
	var ce *ConfigError
	_, err := (&Loader{DNS: fakeDNS()}).Load(context.Background(), reports.PublishConfig{Domains: []reports.PublishDomain{
		{Domain: "example.org", Mode: "strict", MX: mx("*.*.example.org"), MaxAge: 40000000},
		{Domain: "other.example", MX: mx("*.other.example")},
	}})
	if !errors.As(err, &ce) || len(ce.Problems) != 4 || strings.Count(err.Error(), "\n") != 3 {
		t.Errorf("want 4 problems on 4 lines, got %v", err)
	}
}

// TestLoadLookupFailureWarns: explicit patterns are served unchecked when
// the MX lookup fails (a resolver outage must not stop the policy host).
func TestLoadLookupFailureWarns(t *testing.T) {
	t.Parallel()
	s, err := load(t, reports.PublishDomain{Domain: "broken.example", MX: mx("mx.broken.example")})
	if err != nil || s.Domain("broken.example") == nil {
		t.Fatalf("%v", err)
	}
}

func TestParseAge(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"14d": "336h0m0s", "1h": "1h0m0s", "0d": "0s"} {
		if d, err := ParseAge(in); err != nil || d.String() != want {
			t.Errorf("ParseAge(%q) = %v, %v", in, d, err)
		}
	}
	for _, in := range []string{"x", "-1d", "1.5d", "-3h", ""} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) accepted", in)
		}
	}
}
