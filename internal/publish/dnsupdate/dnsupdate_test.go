package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// STS-TXT-3, STS-TXT-4, STS-TXT-7: the update replaces the _mta-sts RRset
// with exactly one record carrying the new id, as a query then shows.
func TestUpdateAgainstBIND(t *testing.T) {
	t.Parallel()
	p := startNamed(t)
	u := p.updater(t)
	ctx := bg(t)
	if got := p.txt(t, "_mta-sts.example.test"); !slices.Equal(got, []string{"v=STSv1; id=old1;"}) {
		t.Fatalf("zone before the update: %q", got)
	}
	if err := u.SetSTS(ctx, "example.test", "20261206a"); err != nil {
		t.Fatalf("%v\n%s", err, p.log)
	}
	if got := p.txt(t, "_mta-sts.example.test"); !slices.Equal(got, []string{"v=STSv1; id=20261206a;"}) {
		t.Errorf("after SetSTS: %q", got)
	}
	// A subdomain of the zone, not there before.
	if err := u.SetSTS(ctx, "sub.example.test", "x1"); err != nil {
		t.Fatal(err)
	}
	if got := p.txt(t, "_mta-sts.sub.example.test"); !slices.Equal(got, []string{"v=STSv1; id=x1;"}) {
		t.Errorf("new name: %q", got)
	}
	// RPT-TXT-2, RPT-TXT-3.
	if err := u.SetTLSRPT(ctx, "example.test", "mailto:tlsrpt@example.test", "https://reports.example.test/v1"); err != nil {
		t.Fatal(err)
	}
	if got := p.txt(t, "_smtp._tls.example.test"); !slices.Equal(got, []string{"v=TLSRPTv1; rua=mailto:tlsrpt@example.test,https://reports.example.test/v1"}) {
		t.Errorf("after SetTLSRPT: %q", got)
	}
	// STS-TXT-9: a long record goes out in 255-byte strings and joins back.
	long := "v=TLSRPTv1; rua=mailto:" + strings.Repeat("a", 300) + "@example.test"
	if err := u.SetTXT(ctx, "_smtp._tls.long.example.test", long); err != nil {
		t.Fatal(err)
	}
	if got := p.txt(t, "_smtp._tls.long.example.test"); !slices.Equal(got, []string{long}) {
		t.Errorf("long record: %q", got)
	}
}

// Updates that must not reach the zone: a wrong key is refused by the
// primary; names outside the zone and invalid ids are refused before
// anything is sent.
func TestUpdateRefused(t *testing.T) {
	t.Parallel()
	p := startNamed(t)
	ctx := bg(t)
	before, err := p.serial()
	if err != nil {
		t.Fatal(err)
	}
	wrong := p.updater(t)
	wrong.Key.Secret = "d3Jvbmcgc2VjcmV0IGZvciB0ZXN0aW5nIG9ubHkhIQ=="
	// named answers NOTAUTH with an unsigned reply (RFC 8945 §5.2).
	if err := wrong.SetSTS(ctx, "example.test", "bad1"); !errors.Is(err, ErrRefused) {
		t.Errorf("wrong key: %v, want ErrRefused", err)
	}
	unknown := p.updater(t)
	unknown.Key.Name = "nobody"
	if err := unknown.SetSTS(ctx, "example.test", "bad2"); !errors.Is(err, ErrRefused) {
		t.Errorf("unknown key: %v, want ErrRefused", err)
	}
	u := p.updater(t)
	if err := u.SetSTS(ctx, "example.org", "abc"); !errors.Is(err, ErrConfig) {
		t.Errorf("outside the zone: %v, want ErrConfig", err)
	}
	for _, id := range []string{"", "has space", "dash-ed", strings.Repeat("a", 33)} {
		if err := u.SetSTS(ctx, "example.test", id); !errors.Is(err, ErrRecord) {
			t.Errorf("id %q: %v, want ErrRecord", id, err)
		}
	}
	if err := u.SetTLSRPT(ctx, "example.test"); !errors.Is(err, ErrRecord) {
		t.Errorf("TLSRPT without rua: %v, want ErrRecord", err)
	}
	if got := p.txt(t, "_mta-sts.example.test"); !slices.Equal(got, []string{"v=STSv1; id=old1;"}) {
		t.Errorf("zone changed: %q", got)
	}
	if after, err := p.serial(); err != nil || after != before {
		t.Errorf("serial %d -> %d (%v)", before, after, err)
	}
}

// STS-PUB-4: a failing readiness check leaves the zone unchanged; once
// the checks pass, the record is published.
func TestPublisherOrdering(t *testing.T) {
	t.Parallel()
	p := startNamed(t)
	ctx := bg(t)
	pub := &Publisher{Records: p.updater(t)}
	before, err := p.serial()
	if err != nil {
		t.Fatal(err)
	}
	notServed := errors.New("mta-sts.example.test serves id old1, want new2")
	badMX := errors.New("mx1.example.test: certificate expired")
	ok := func(context.Context) error { return nil }
	fails := func(err error) Ready { return func(context.Context) error { return err } }
	var called []string
	track := func(name string, r Ready) Ready {
		return func(ctx context.Context) error { called = append(called, name); return r(ctx) }
	}
	refusals := []struct {
		name string
		c    Change
		want error
	}{
		{"policy not served", Change{Domain: "example.test", ID: "new2", Mode: "testing",
			PolicyServed: track("policy", fails(notServed)), TLSRPT: []string{"mailto:r@example.test"}}, notServed},
		{"MX not ready", Change{Domain: "example.test", ID: "new2", Mode: "enforce",
			PolicyServed: ok, MXReady: track("mx", fails(badMX))}, badMX},
		{"enforce without MX check", Change{Domain: "example.test", ID: "new2", Mode: "enforce", PolicyServed: ok}, ErrNotReady},
		{"no policy check", Change{Domain: "example.test", ID: "new2", Mode: "testing"}, ErrNotReady},
		{"bad id", Change{Domain: "example.test", ID: "new-2", Mode: "testing", PolicyServed: ok}, ErrRecord},
		{"bad mode", Change{Domain: "example.test", ID: "new2", Mode: "enforcing", PolicyServed: ok}, ErrRecord},
	}
	for _, r := range refusals {
		if err := pub.Publish(ctx, r.c); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	if !slices.Equal(called, []string{"policy", "mx"}) {
		t.Errorf("checks called: %v", called)
	}
	if got := p.txt(t, "_mta-sts.example.test"); !slices.Equal(got, []string{"v=STSv1; id=old1;"}) {
		t.Errorf("zone changed by a refused publication: %q", got)
	}
	if got := p.txt(t, "_smtp._tls.example.test"); len(got) != 0 {
		t.Errorf("TLSRPT record published by a refused publication: %q", got)
	}
	if after, err := p.serial(); err != nil || after != before {
		t.Errorf("serial %d -> %d (%v)", before, after, err)
	}
	// Testing mode needs no MX check; enforce needs both.
	if err := pub.Publish(ctx, Change{Domain: "example.test", ID: "new2", Mode: "testing", PolicyServed: ok,
		TLSRPT: []string{"mailto:r@example.test"}}); err != nil {
		t.Fatal(err)
	}
	if got := p.txt(t, "_mta-sts.example.test"); !slices.Equal(got, []string{"v=STSv1; id=new2;"}) {
		t.Errorf("after publication: %q", got)
	}
	if got := p.txt(t, "_smtp._tls.example.test"); !slices.Equal(got, []string{"v=TLSRPTv1; rua=mailto:r@example.test"}) {
		t.Errorf("TLSRPT after publication: %q", got)
	}
	if err := pub.Publish(ctx, Change{Domain: "example.test", ID: "new3", Mode: "enforce", PolicyServed: ok, MXReady: ok}); err != nil {
		t.Fatal(err)
	}
	if got := p.txt(t, "_mta-sts.example.test"); !slices.Equal(got, []string{"v=STSv1; id=new3;"}) {
		t.Errorf("after enforce publication: %q", got)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	good := map[string]Key{
		"key \"mailsts\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n":               {Name: "mailsts", Algorithm: "hmac-sha256", Secret: "c2VjcmV0"},
		"# tsig-keygen output\nkey \"a.b\" { algorithm hmac-sha512; secret \"eA==\"; }; // end\n": {Name: "a.b", Algorithm: "hmac-sha512", Secret: "eA=="},
		`key k { secret "eA=="; };`: {Name: "k", Secret: "eA=="},
	}
	for text, want := range good {
		got, err := ParseKey(text)
		if err != nil || got != want {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", text, got, err, want)
		}
	}
	bad := []string{
		"",
		`key "k" { algorithm hmac-md5; secret "eA=="; };`,
		`key "k" { algorithm hmac-sha256; };`,
		`key "k" { algorithm hmac-sha256; secret "eA==" };`,
		`key "k" { secret "eA==; };`,
		`zone "k" { };`,
		`key "k" { owner x; secret "eA=="; };`,
		`key "" { secret "eA=="; };`,
		`key "k" { secret "not base64!"; };`,
		`key "k" { secret "eA=="; }`,
		`key "k" { secret "eA=="; }; key "l" { secret "eA=="; };`,
	}
	for _, text := range bad {
		if _, err := ParseKey(text); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseKey(%q): %v, want ErrConfig", text, err)
		}
	}
	path := filepath.Join(t.TempDir(), "big.key")
	if err := os.WriteFile(path, make([]byte, maxKeyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); !errors.Is(err, ErrConfig) {
		t.Errorf("oversized key file: %v", err)
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrConfig) {
		t.Errorf("missing key file: %v", err)
	}
}

// ParseKey never panics, and a key it accepts round-trips through the
// file format tsig-keygen writes.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"key \"mailsts\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n",
		"# tsig-keygen output\nkey \"a.b\" { algorithm hmac-sha512; secret \"eA==\"; }; // end\n",
		`key k { secret "eA=="; };`,
		`key "k" { algorithm hmac-md5; secret "eA=="; };`,
		`key "k" { secret "eA==; };`,
		`key "k" { owner x; secret "eA=="; };`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseKey(text)
		if err != nil {
			return
		}
		if k.Secret == "" || strings.ContainsAny(k.Name+k.Secret+k.Algorithm, "\"\n") {
			return
		}
		again, err := ParseKey(fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", k.Name, orDefault(k.Algorithm), k.Secret))
		if err != nil {
			t.Fatalf("re-parse of %+v: %v", k, err)
		}
		if again.Name != k.Name || again.Secret != k.Secret {
			t.Fatalf("round trip %+v -> %+v", k, again)
		}
	})
}

func orDefault(alg string) string {
	if alg == "" {
		return "hmac-sha256"
	}
	return alg
}
