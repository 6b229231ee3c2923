package tlsrpt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// signedF10c composes a report mail for F-10c's report from submitter
// company-x.example and signs it with a fresh Ed25519 key as d=domain,
// s=sel. It returns the message and the key record's p= value.
func signedF10c(t *testing.T, domain, sel string) ([]byte, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := Parse(readTestdata(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ComposeMessage(r, MailOptions{To: []string{"tlsrpt@company-y.example"}, Date: time.Date(2016, 4, 2, 1, 0, 0, 0, time.UTC), MessageID: "m1@company-x.example"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignMessage(msg, dkim.SignOptions{Domain: domain, Selector: sel, Signer: priv})
	if err != nil {
		t.Fatal(err)
	}
	return signed, base64.StdEncoding.EncodeToString(pub)
}

func TestVerifyDKIMServices(t *testing.T) { // RPT-MAIL-5, RPT-MAIL-6, RPT-MAIL-7, RPT-RECV-1
	t.Parallel()
	msg, p := signedF10c(t, "company-x.example", "sel")
	// RPT-MAIL-5: no l=, TLS-Report-* signed.
	sigLine := string(msg[:bytes.Index(msg, []byte("\r\n\r\n"))])
	sigLine = strings.ToLower(strings.Join(strings.Fields(sigLine[:strings.Index(sigLine, "\r\nFrom:")+1]), ""))
	if strings.Contains(sigLine, ";l=") || !strings.Contains(sigLine, "tls-report-domain:tls-report-submitter") {
		t.Errorf("signature header %s", sigLine)
	}
	cases := []struct {
		record string
		pass   bool
	}{
		{"v=DKIM1; k=ed25519; s=tlsrpt; p=" + p, true},
		{"v=DKIM1; k=ed25519; s=email:tlsrpt; p=" + p, true},
		{"v=DKIM1; k=ed25519; p=" + p, true},
		{"v=DKIM1; k=ed25519; s=*; p=" + p, true},
		{"v=DKIM1; k=ed25519; s=email; p=" + p, false}, // RPT-MAIL-6: MAY ignore; we do
		{"v=DKIM1; k=ed25519; s=tlsrpt; p=", false},    // revoked
	}
	for _, tc := range cases {
		res := &fakeResolver{txt: map[string][]string{"sel._domainkey.company-x.example": {tc.record}}}
		got, err := VerifyDKIM(context.Background(), msg, res)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Signatures) != 1 {
			t.Fatalf("%d signatures", len(got.Signatures))
		}
		if got.Passes("company-x.example") != tc.pass {
			t.Errorf("%s: Passes = %v, signature %+v", tc.record, !tc.pass, got.Signatures[0])
		}
		if strings.Contains(tc.record, "s=email;") && got.Signatures[0].Err != nil {
			t.Errorf("s=email: the signature itself is valid, got %v", got.Signatures[0].Err)
		}
	}
}

func TestVerifyDKIMFailures(t *testing.T) { // RPT-MAIL-7, RPT-RECV-1, F-6, F-9
	t.Parallel()
	ctx := context.Background()
	msg, p := signedF10c(t, "company-x.example", "sel")
	keys := &fakeResolver{txt: map[string][]string{"sel._domainkey.company-x.example": {"v=DKIM1; k=ed25519; s=tlsrpt; p=" + p}}}

	// F-9 has no signature: it MUST be ignored.
	f9 := readTestdata(t, "f9-with-f10c.eml")
	if got, err := VerifyDKIM(ctx, f9, keys); err != nil || got.Passes("mail.sender.example.com") || len(got.Signatures) != 0 {
		t.Errorf("unsigned F-9: %+v %v", got, err)
	}
	// The same F-9, signed by its submitter, passes.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f9s, err := SignMessage(f9, dkim.SignOptions{Domain: "mail.sender.example.com", Selector: "s1", Signer: priv})
	if err != nil {
		t.Fatal(err)
	}
	f9keys := &fakeResolver{txt: map[string][]string{"s1._domainkey.mail.sender.example.com": {"v=DKIM1;k=ed25519;s=tlsrpt;p=" + base64.StdEncoding.EncodeToString(pub)}}}
	if got, err := VerifyDKIM(ctx, f9s, f9keys); err != nil || !got.Passes("mail.sender.example.com") {
		t.Errorf("signed F-9: %+v %v", got, err)
	}

	// Tampered body.
	bad := bytes.Replace(msg, []byte("This is an aggregate"), []byte("This is a forged"), 1)
	if got, _ := VerifyDKIM(ctx, bad, keys); got.Passes("company-x.example") || got.Signatures[0].Err == nil {
		t.Errorf("tampered: %+v", got)
	}
	// Valid signature, but by another domain than the submitter.
	if got, _ := VerifyDKIM(ctx, msg, keys); got.Passes("other.example") || got.Passes("") || !got.Passes("reports.company-x.example") {
		t.Errorf("alignment: %+v", got)
	}
	// No key, and a DNS failure (temporary: retry later).
	if got, _ := VerifyDKIM(ctx, msg, &fakeResolver{}); got.Passes("company-x.example") || got.Temporary() {
		t.Errorf("no key: %+v", got)
	}
	failing := &fakeResolver{fail: map[string]bool{"sel._domainkey.company-x.example": true}}
	if got, _ := VerifyDKIM(ctx, msg, failing); got.Passes("company-x.example") || !got.Temporary() {
		t.Errorf("servfail: %+v", got)
	}
	// F-6: the sample key record; its s=tlsrpt is read, its p= is no key.
	f6 := &fakeResolver{txt: map[string][]string{"sel._domainkey.company-x.example": {"v=DKIM1;k=rsa;s=tlsrpt;p=Mlf4qwSZfase4fa=="}}}
	got, _ := VerifyDKIM(ctx, msg, f6)
	if s := got.Signatures[0]; !reflect.DeepEqual(s.Services, []string{"tlsrpt"}) || !s.ServiceTLSRPT() || s.Err == nil || got.Passes("company-x.example") {
		t.Errorf("F-6: %+v", s)
	}
	// A message whose header does not parse.
	if _, err := VerifyDKIM(ctx, []byte(" bad\r\n\r\n"), keys); err == nil {
		t.Error("malformed header accepted")
	}
}

func TestSameOrganization(t *testing.T) { // RPT-MAIL-5, RPT-MAIL-7, issue #11.7
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"mail.ru", "mail.ru", true},
		{"corp.mail.ru", "mail.ru", true}, // child
		{"mail.ru", "corp.mail.ru", true}, // parent
		{"a.b.mail.ru", "MAIL.RU.", true},
		{"google.com", "google.com", true},
		{"microsoft.com", "microsoft.com", true},
		{"evil.example", "google.com", false},
		{"notmail.ru", "mail.ru", false}, // a suffix, but not at a dot
		{"mail.ru", "ru", false},         // a bare TLD joins nothing
		{"ru", "mail.ru", false},
		{"ru", "ru", true},
		{"corp.mail.ru", "other.mail.ru", false}, // siblings
		{"", "", false},
		{"mail.ru", "", false},
		{".", "mail.ru", false},
	} {
		if got := SameOrganization(tc.a, tc.b); got != tc.want {
			t.Errorf("SameOrganization(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestOrganizationDomains(t *testing.T) { // RPT-JSON-10, RPT-MAIL-3
	t.Parallel()
	for _, tc := range []struct {
		submitter, contact, from string
		want                     []string
	}{
		{"mail.ru", "mail.ru", "corp.mail.ru", []string{"mail.ru", "corp.mail.ru"}},
		{"google.com", "google.com", "google.com", []string{"google.com"}},
		{"", "Google.COM.", "", []string{"google.com"}},
		// A contact-info or From of another organisation adds nothing.
		{"google.com", "evil.example", "evil.example", []string{"google.com"}},
		{"", "", "google.com", nil},
	} {
		if got := OrganizationDomains(tc.submitter, tc.contact, tc.from); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("OrganizationDomains(%q, %q, %q) = %q, want %q", tc.submitter, tc.contact, tc.from, got, tc.want)
		}
	}
}

// TestAuthenticatesRealSenders: issue #11.7 with the shapes real senders
// use. A valid signature authenticates the report when d= belongs to the
// reporting organisation; a valid signature of another domain does not.
func TestAuthenticatesRealSenders(t *testing.T) { // RPT-MAIL-5, RPT-MAIL-7, RPT-RECV-1
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, d                  string
		submitter, contact, from string
		want                     string // signing domain, "" when not authenticated
	}{
		{"Mail.ru", "corp.mail.ru", "mail.ru", "mail.ru", "tlsrpt@corp.mail.ru", "corp.mail.ru"},
		{"Mail.ru, no submitter header", "corp.mail.ru", "", "mail.ru", "", "corp.mail.ru"},
		{"Google", "google.com", "google.com", "google.com", "noreply-smtp-tls-reporting@google.com", "google.com"},
		{"Microsoft", "microsoft.com", "microsoft.com", "microsoft.com", "tlsrpt-noreply@microsoft.com", "microsoft.com"},
		{"subsidiary signs for parent", "reports.company-x.example", "company-x.example", "company-x.example", "", "reports.company-x.example"},
		{"attacker with own key", "evil.example", "google.com", "google.com", "tlsrpt@google.com", ""},
		{"attacker, matching From", "evil.example", "google.com", "google.com", "x@evil.example", ""},
		{"attacker, matching contact-info", "evil.example", "google.com", "evil.example", "", ""},
		{"TLD key", "ru", "mail.ru", "mail.ru", "", ""},
		{"sibling", "corp.mail.ru", "other.mail.ru", "other.mail.ru", "", ""},
	} {
		msg, p := signedF10c(t, tc.d, "sel")
		keys := &fakeResolver{txt: map[string][]string{"sel._domainkey." + tc.d: {"v=DKIM1; k=ed25519; s=tlsrpt; p=" + p}}}
		res, err := VerifyDKIM(ctx, msg, keys)
		if err != nil || len(res.Signatures) != 1 || res.Signatures[0].Err != nil {
			t.Fatalf("%s: the signature itself must be valid: %+v %v", tc.name, res, err)
		}
		fromDomain := ""
		if _, d, ok := strings.Cut(tc.from, "@"); ok {
			fromDomain = d
		}
		got, ok := res.Authenticates(OrganizationDomains(tc.submitter, tc.contact, fromDomain)...)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: Authenticates = %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}
