package mtasts

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// STS-TXT-7, STS-TXT-13, STS-TXT-1: record selection and error classes
// through the DNS layer.
func TestLookupRecord_STS_TXT_7_13(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		txt     []string // nil: no TXT at all (NXDOMAIN)
		fault   error
		wantID  string
		wantErr error
	}{
		{"single", []string{"v=STSv1; id=20160831085700Z;"}, nil, "20160831085700Z", nil},
		{"spf and sts", []string{"v=spf1 -all", "v=STSv1; id=1"}, nil, "1", nil},
		{"two sts", []string{"v=STSv1; id=1", "v=STSv1; id=2"}, nil, "", ErrMultipleRecords},
		{"sts and garbage sts", []string{"v=STSv1; id=1", "v=STSv1;garbage"}, nil, "", ErrMultipleRecords},
		{"only other", []string{"v=spf1 -all"}, nil, "", ErrNoRecord},
		{"bad syntax", []string{"v=STSv1; id="}, nil, "", ErrRecordSyntax},
		{"nxdomain", nil, nil, "", ErrNoRecord},
		{"servfail", nil, dnsresolve.ErrLookupFailed, "", ErrDNS},
		{"explicit not found", nil, dnsresolve.ErrNotFound, "", ErrNoRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := &dnsresolve.Fake{}
			if tt.txt != nil {
				fake.SetTXT("_mta-sts.example.com", tt.txt...)
			}
			if tt.fault != nil {
				fake.SetError("TXT _mta-sts.example.com", tt.fault)
			}
			c := &Client{DNS: fake}
			rec, _, err := c.LookupRecord(t.Context(), "example.com")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.fault != nil && !errors.Is(err, tt.fault) {
					t.Errorf("err = %v does not wrap the DNS error", err)
				}
				return
			}
			if err != nil || rec.ID != tt.wantID {
				t.Fatalf("LookupRecord = %+v, %v; want id %q", rec, err, tt.wantID)
			}
		})
	}
}

// STS-TXT-1, STS-SEL-6: the TXT name is built from the normalized A-label
// domain.
func TestLookupRecord_STS_SEL_6_Normalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"example.com":    "TXT _mta-sts.example.com",
		"Example.COM.":   "TXT _mta-sts.example.com",
		"bücher.example": "TXT _mta-sts.xn--bcher-kva.example",
	} {
		fake := &dnsresolve.Fake{}
		c := &Client{DNS: fake}
		_, _, _ = c.LookupRecord(t.Context(), in)
		if q := fake.Queries(); !slices.Equal(q, []string{want}) {
			t.Errorf("LookupRecord(%q) queried %q, want %q", in, q, want)
		}
	}
}

// STS-TXT-10, STS-SEL-5, F-4: the TXT record may come through a CNAME; the
// policy is still fetched from mta-sts.<original domain>, with a
// certificate for that name.
func TestGet_STS_TXT_10_CNAMEDelegation(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	host := startHost(t, ca.issue(certOpts{dnsNames: []string{"mta-sts.user.example"}}), policyHandler(policyF2), nil)
	fake := &dnsresolve.Fake{}
	fake.SetCNAME("_mta-sts.user.example", "_mta-sts.provider.example")
	fake.SetTXT("_mta-sts.provider.example", "v=STSv1; id=provider1")
	// The policy host itself is delegated by CNAME too (RFC 8461 §8.2).
	fake.SetCNAME("mta-sts.user.example", "mta-sts.provider.example")
	fake.SetIP("mta-sts.provider.example", loopback)
	c := &Client{DNS: fake, RootCAs: ca.pool, HTTPSPort: host.port()}

	rec, ans, err := c.LookupRecord(t.Context(), "user.example")
	if err != nil || rec.ID != "provider1" || ans.CanonicalName != "_mta-sts.provider.example." {
		t.Fatalf("LookupRecord = %+v, %+v, %v", rec, ans, err)
	}
	rec, p, err := c.Get(t.Context(), "user.example")
	if err != nil || rec.ID != "provider1" || p.Mode != ModeEnforce {
		t.Fatalf("Get = %+v, %+v, %v", rec, p, err)
	}
	reqs := host.requests()
	if len(reqs) != 1 || reqs[0].Host != "mta-sts.user.example" {
		t.Fatalf("requests %v", reqs)
	}
	if sni := host.snis(); len(sni) != 1 || sni[0] != "mta-sts.user.example" {
		t.Errorf("SNI %q, want mta-sts.user.example", sni)
	}
}

// Client.Get: a TXT failure stops before the fetch; a fetch failure still
// returns the record.
func TestClientGet(t *testing.T) {
	t.Parallel()
	env := newNetEnv(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	rec, p, err := env.client.Get(t.Context(), testDomain)
	if !errors.Is(err, ErrPolicyFetch) || rec == nil || rec.ID != "1" || p != nil {
		t.Fatalf("Get = %+v, %+v, %v", rec, p, err)
	}
	env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=1", "v=STSv1; id=2")
	rec, p, err = env.client.Get(t.Context(), testDomain)
	if !errors.Is(err, ErrMultipleRecords) || rec != nil || p != nil {
		t.Fatalf("Get = %+v, %+v, %v", rec, p, err)
	}
	if n := len(env.host.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (none after the TXT failure)", n)
	}
}

// ResultType maps every error the network layer produces (RFC 8460 §4.3).
func TestResultType_NetworkErrors(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	good := ca.issue(certOpts{dnsNames: []string{"mta-sts." + testDomain}})
	cases := []struct {
		name string
		prep func(env *netEnv)
		want result.Type
	}{
		{"ok", func(*netEnv) {}, ""},
		{"no record", func(env *netEnv) { env.dns.SetTXT("_mta-sts." + testDomain) }, "no-policy"},
		{"multiple", func(env *netEnv) { env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=1", "v=STSv1; id=2") }, "no-policy"},
		{"record syntax", func(env *netEnv) { env.dns.SetTXT("_mta-sts."+testDomain, "v=STSv1; id=a-b") }, "no-policy"},
		{"dns", func(env *netEnv) { env.dns.SetError("_mta-sts."+testDomain, dnsresolve.ErrLookupFailed) }, "dns-error"},
		{"policy host dns", func(env *netEnv) { env.dns.SetIP("mta-sts." + testDomain) }, ResultFetchError},
		{"certificate", func(env *netEnv) { env.client.RootCAs = nil }, ResultWebPKIInvalid},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newNetEnvWith(t, ca, startHost(t, good, policyHandler(policyF2), nil))
			tt.prep(env)
			_, _, err := env.client.Get(t.Context(), testDomain)
			if got := ResultType(err); got != tt.want {
				t.Errorf("ResultType(%v) = %q, want %q", err, got, tt.want)
			}
		})
	}
}
