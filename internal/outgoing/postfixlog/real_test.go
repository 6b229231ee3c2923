package postfixlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Lines written by the real Postfix 3.7.11 of the end-to-end test (e2e/)
// delivering to the fake Internet's MX hosts: good certificates, a wrong
// name, no STARTTLS, DANE with matching and non-matching TLSA records, a
// self-signed first MX with a good second one. Each delivery attempt
// becomes the result below (domain: outcome, in order).
func TestRealPostfixLines(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "postfix-3.7.11-e2e.log"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	f := &Follower{Recorder: rec, Now: func() time.Time { return time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC) }}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f.HandleLine(context.Background(), l)
	}
	var got []string
	for _, r := range rec.results() {
		s := r.PolicyDomain + ": ok"
		if len(r.Failures) > 0 {
			fd := r.Failures[0]
			s = fmt.Sprintf("%s: %s %s %s (%s)", r.PolicyDomain, fd.ResultType, fd.ReceivingMXHostname, fd.ReceivingIP, fd.AdditionalInfo)
		}
		if r.Time.Format(time.DateOnly) != "2026-12-06" {
			s += " at " + r.Time.String()
		}
		got = append(got, s)
	}
	want := []string{
		// Without a policy (the control run): TLS of any trust level
		// that delivered is a success; the cleartext delivery to
		// nostarttls.example is no TLS session and not counted.
		"dane-selfsigned.example: ok",
		"dane-partial.example: ok",
		"dane-bad.example: ok",
		"dane-wrong.example: ok",
		"badmxcert.example: ok",
		// With the policy daemon's answers.
		"enforce.example: ok",
		"badmxcert.example: certificate-host-mismatch mx1.badmxcert.example 127.145.98.26 (hostname mismatch)",
		"nostarttls.example: starttls-not-supported mx1.nostarttls.example 127.145.98.25 (TLS is required, but was not offered by host mx1.nostarttls.example[127.145.98.25])",
		"mx-mismatch.example: certificate-host-mismatch mx1.mx-mismatch.example 127.145.98.38 (hostname mismatch)",
		"nosts.example: ok",
		"testing-badcert.example: ok",
		"dane-ta.example: ok",
		"dane.example: ok",
		"dane-selfsigned.example: ok",
		"dane-bad.example: tlsa-invalid mx1.dane-bad.example 127.145.98.43 (no matching DANE TLSA records)",
		// The first MX failed (self-signed), the second delivered: two
		// sessions.
		"dane-partial.example: certificate-not-trusted mx1.dane-partial.example 127.145.98.45 (self-signed certificate)",
		"dane-partial.example: ok",
		"dane-wrong.example: tlsa-invalid mx1.dane-wrong.example 127.145.98.30 (no matching DANE TLSA records)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
