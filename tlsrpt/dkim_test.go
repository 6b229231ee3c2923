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
