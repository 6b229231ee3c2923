package postfixlog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

type memRecorder struct {
	mu  sync.Mutex
	got []outgoing.Result
}

func (m *memRecorder) Record(_ context.Context, r outgoing.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, r)
	return nil
}

func (m *memRecorder) results() []outgoing.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]outgoing.Result(nil), m.got...)
}

type fakeAnswers map[string]outgoing.Answer

func (f fakeAnswers) AnswerFor(_ context.Context, d string) (outgoing.Answer, bool, error) {
	a, ok := f[d]
	return a, ok, nil
}

var stsPol = outgoing.Policy{Type: "sts", Strings: []string{"version: STSv1", "mode: enforce", "mx: *.sts.example", "max_age: 86400"}, MXHosts: []string{"*.sts.example"}}

func answers() fakeAnswers {
	return fakeAnswers{
		"sts.example":   {Domain: "sts.example", Policy: stsPol},
		"strip.example": {Domain: "strip.example", Policy: stsPol},
		"dane.example":  {Domain: "dane.example", Policy: outgoing.Policy{Type: "tlsa"}},
	}
}

func fixture(t *testing.T) []string {
	f, err := os.Open(filepath.Join("testdata", "smtp-3.7.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// Each kind of smtp(8) line becomes the right result: the fixture is
// written in Postfix 3.x's wording for the cases the end-to-end run does
// not produce (expired and untrusted certificates, IPv6, several
// recipients, syslog's space-padded day); real_test.go has real lines.
func TestFixture(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{}
	f := &Follower{Recorder: rec, Answers: answers(), Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}
	for _, l := range fixture(t) {
		f.HandleLine(context.Background(), l)
	}
	at := func(hms string) time.Time {
		t, _ := time.Parse(time.DateTime, "2026-12-06 "+hms)
		return t
	}
	none := outgoing.Policy{Type: "no-policy-found"}
	fd := func(rt result.Type, host, ip, info string) []outgoing.Failure {
		return []outgoing.Failure{{ResultType: rt, ReceivingMXHostname: host, ReceivingIP: ip, AdditionalInfo: info}}
	}
	want := []outgoing.Result{
		// Verified, two recipients: one session.
		{Time: at("10:00:02"), PolicyDomain: "sts.example", Policy: stsPol},
		// Trusted, Untrusted, Anonymous under no policy: successes.
		{Time: at("10:01:10"), PolicyDomain: "plain.example", Policy: none},
		{Time: at("10:02:20"), PolicyDomain: "self.example", Policy: none},
		{Time: at("10:03:30"), PolicyDomain: "anon.example", Policy: none},
		// Certificate verification failures with their reasons.
		{Time: at("10:04:40"), PolicyDomain: "sts.example", Policy: stsPol, Failures: fd(result.CertificateExpired, "mx2.sts.example", "192.0.2.11", "certificate has expired")},
		{Time: at("10:05:50"), PolicyDomain: "sts.example", Policy: stsPol, Failures: fd(result.CertificateHostMismatch, "mx1.sts.example", "192.0.2.10", "hostname mismatch")},
		{Time: at("10:06:00"), PolicyDomain: "sts.example", Policy: stsPol, Failures: fd(result.CertificateNotTrusted, "mx1.sts.example", "192.0.2.10", "unable to get local issuer certificate")},
		{Time: at("10:06:10"), PolicyDomain: "sts.example", Policy: stsPol, Failures: fd(result.CertificateNotTrusted, "mx1.sts.example", "192.0.2.10", "self-signed certificate")},
		// STARTTLS not offered, two recipients: one attempt.
		{Time: at("10:07:00"), PolicyDomain: "strip.example", Policy: stsPol, Failures: fd(result.STARTTLSNotSupported, "mx.strip.example", "203.0.113.5",
			"TLS is required, but was not offered by host mx.strip.example[203.0.113.5]")},
		// dane.example: DANE without its records cannot be reported (unjoined).
		// IPv6 relay.
		{Time: at("10:09:00"), PolicyDomain: "v6.example", Policy: none},
		// Cleartext delivery and a connect timeout: not TLS sessions.
	}
	got := rec.results()
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w any
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("result %d:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}
	if s := f.Stats(); s.Sessions != uint64(len(want)) || s.Failures != 5 || s.Unjoined != 1 || s.Lines != uint64(len(fixture(t))) {
		t.Errorf("stats = %+v", s)
	}
}

func TestParseTimes(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]time.Time{
		"2026-12-06T10:00:01.123456+01:00 mail postfix/smtp[1]: Anonymous TLS connection established to a.example[192.0.2.1]:25: x": time.Date(2026, 12, 6, 9, 0, 1, 123456000, time.UTC),
		"Dec  6 10:00:01 mail postfix/smtp[1]: Anonymous TLS connection established to a.example[192.0.2.1]:25: x":                  time.Date(2026, 12, 6, 10, 0, 1, 0, time.UTC),
		"Dec 16 10:00:01 mail postfix-out/smtp[1]: Anonymous TLS connection established to a.example[192.0.2.1]:25: x":              time.Date(2026, 12, 16, 10, 0, 1, 0, time.UTC),
	} {
		l, ok := Parse(s, 2026, nil)
		if !ok || !l.Time.Equal(want) || l.Kind != KindTLS {
			t.Errorf("Parse(%q) = %+v %v, want time %v", s, l, ok, want)
		}
	}
	for _, s := range []string{"", "garbage", "Dec  6 10:00:01 mail postfix/smtpd[1]: Anonymous TLS connection established from a[192.0.2.1]", string(make([]byte, MaxLine+1))} {
		if _, ok := Parse(s, 2026, nil); ok {
			t.Errorf("Parse(%.40q) parsed", s)
		}
	}
}

// The follower reads lines appended to the file, across a rename-and-
// create rotation and a copytruncate.
func TestFollowRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	line := func(i int) string {
		return fmt.Sprintf("Dec  6 10:00:%02d mail postfix/smtp[%d]: Verified TLS connection established to mx.a.example[192.0.2.1]:25: x\n"+
			"Dec  6 10:00:%02d mail postfix/smtp[%d]: Q%d: to=<u@a.example>, relay=mx.a.example[192.0.2.1]:25, delay=1, dsn=2.0.0, status=sent (250 OK)\n", i, i, i, i, i)
	}
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	appendTo(line(1)) // before the start: read (FromStart)
	rec := &memRecorder{}
	f := &Follower{Path: path, Recorder: rec, Poll: 5 * time.Millisecond, FromStart: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	wait := func(n int) {
		t.Helper()
		for range 2000 {
			if len(rec.results()) == n {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%d results, want %d (stats %+v)", len(rec.results()), n, f.Stats())
	}
	wait(1)
	appendTo(line(2))
	wait(2)
	// Rename and create: a line written to the old file just before the
	// rotation is still read.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	old, _ := os.OpenFile(path+".1", os.O_APPEND|os.O_WRONLY, 0o600)
	old.WriteString(line(3))
	old.Close()
	appendTo(line(4))
	wait(4)
	// copytruncate.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; f.rotations.Load() < 2; i++ { // seen as truncated before the next line
		if i > 2000 {
			t.Fatal("truncation not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	appendTo(line(5))
	wait(5)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := f.Stats(); s.Rotations != 2 {
		t.Errorf("stats = %+v, want 2 rotations", s)
	}
}

// FuzzParse: no line makes Parse or the joiner panic; a parsed delivery
// names a domain.
func FuzzParse(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join("testdata", "smtp-3.7.log"))
	for _, l := range strings.Split(string(data), "\n") {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, ok := Parse(s, 2026, nil)
		if ok && l.Kind == KindDelivery && l.Domain == "" {
			t.Fatal("delivery without a domain")
		}
		(&Follower{Recorder: &memRecorder{}}).HandleLine(context.Background(), s)
	})
}

// The session that delivers a TLS report by mail is marked as a report
// delivery (the Recorder never counts it: no report-about-report loops);
// other mail to the same domain through the same MX still counts. The
// queue id is known from cleanup(8)'s message-id line, logged before the
// delivery.
// Delivered under an MTA-STS policy (testing mode) over TLS whose
// certificate did not verify is a failure (RFC 8460 §4.3); the same
// sessions without a policy are successes (TestFixture). A Trusted
// session (chain good, name not checked at Postfix's may level) cannot be
// told from a good one and counts as a success.
func TestSTSTestingUnverifiedDeliveries(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{}
	f := &Follower{Recorder: rec, Answers: answers(), Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}
	for _, l := range []string{
		"Dec  6 00:20:02 mail postfix/smtp[301]: Untrusted TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
		"Dec  6 00:20:02 mail postfix/smtp[301]: 5AAA1: to=<a@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
		"Dec  6 00:20:03 mail postfix/smtp[302]: Anonymous TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.2 with cipher ADH-AES256-GCM-SHA384 (256/256 bits)",
		"Dec  6 00:20:03 mail postfix/smtp[302]: 5BBB2: to=<b@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
		"Dec  6 00:20:04 mail postfix/smtp[303]: Trusted TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
		"Dec  6 00:20:04 mail postfix/smtp[303]: 5CCC3: to=<c@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	} {
		f.HandleLine(context.Background(), l)
	}
	got := rec.results()
	if len(got) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(got), got)
	}
	for i, want := range []result.Type{result.CertificateNotTrusted, result.ValidationFailure, ""} {
		var rt result.Type
		if len(got[i].Failures) == 1 {
			rt = got[i].Failures[0].ResultType
			if got[i].Failures[0].ReceivingMXHostname != "mx1.sts.example" {
				t.Errorf("result %d: failure detail %+v", i, got[i].Failures[0])
			}
		}
		if rt != want || len(got[i].Failures) > 1 {
			t.Errorf("result %d: failures %+v, want %q", i, got[i].Failures, want)
		}
	}
}

// policyd writes a new domain's answer as it answers, which may be just
// after the follower read the session's lines: a missing answer is asked
// for again after a second, a found one is kept for a minute.
func TestMissingAnswerAskedAgain(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ans := fakeAnswers{}
	f := &Follower{Recorder: rec, Answers: ans, Now: func() time.Time { return now }}
	session := func(pid int) {
		f.HandleLine(context.Background(), fmt.Sprintf("Dec  6 00:20:02 mail postfix/smtp[%d]: Verified TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3", pid))
		f.HandleLine(context.Background(), fmt.Sprintf("Dec  6 00:20:02 mail postfix/smtp[%d]: 5A%d: to=<a@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)", pid, pid))
	}
	session(1) // no answer yet
	ans["sts.example"] = outgoing.Answer{Domain: "sts.example", Policy: stsPol}
	session(2) // within the second: the miss is still believed
	now = now.Add(1100 * time.Millisecond)
	session(3) // asked again: found
	delete(ans, "sts.example")
	now = now.Add(30 * time.Second)
	session(4) // found answers are kept for a minute
	var types []string
	for _, r := range rec.results() {
		types = append(types, r.Policy.Type)
	}
	if want := []string{"no-policy-found", "no-policy-found", "sts", "sts"}; !reflect.DeepEqual(types, want) {
		t.Errorf("policy types %v, want %v", types, want)
	}
}

func TestReportDeliveriesMarked(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{}
	isReport := func(id string) bool { return strings.HasPrefix(strings.TrimPrefix(id, "<"), "mailsts-tlsrpt.") }
	f := &Follower{Recorder: rec, Answers: answers(), ReportMessageID: isReport,
		Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}
	for _, l := range []string{
		"Dec  6 00:20:01 mail postfix/cleanup[300]: 5AAA1: message-id=<mailsts-tlsrpt.0a1b2c3d@example.net>",
		"Dec  6 00:20:01 mail postfix/cleanup[300]: 5BBB2: message-id=<20261206.abc@example.net>",
		"Dec  6 00:20:02 mail postfix/smtp[301]: Verified TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
		"Dec  6 00:20:02 mail postfix/smtp[301]: 5AAA1: to=<tlsrpt@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
		"Dec  6 00:20:03 mail postfix/smtp[302]: Verified TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
		"Dec  6 00:20:03 mail postfix/smtp[302]: 5BBB2: to=<alice@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	} {
		f.HandleLine(context.Background(), l)
	}
	got := rec.results()
	if len(got) != 2 {
		t.Fatalf("%d results, want 2: %+v", len(got), got)
	}
	if !got[0].ReportDelivery || got[1].ReportDelivery {
		t.Errorf("ReportDelivery = %v, %v; want the report mail's session marked and the other not", got[0].ReportDelivery, got[1].ReportDelivery)
	}

	// Without the hook nothing is marked.
	rec2 := &memRecorder{}
	f2 := &Follower{Recorder: rec2, Answers: answers()}
	f2.HandleLine(context.Background(), "Dec  6 00:20:01 mail postfix/cleanup[300]: 5AAA1: message-id=<mailsts-tlsrpt.0a1b2c3d@example.net>")
	f2.HandleLine(context.Background(), "Dec  6 00:20:02 mail postfix/smtp[301]: Verified TLS connection established to mx1.sts.example[192.0.2.10]:25: TLSv1.3")
	f2.HandleLine(context.Background(), "Dec  6 00:20:02 mail postfix/smtp[301]: 5AAA1: to=<tlsrpt@sts.example>, relay=mx1.sts.example[192.0.2.10]:25, delay=0.4, delays=0/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
	if r := rec2.results(); len(r) != 1 || r[0].ReportDelivery {
		t.Errorf("without ReportMessageID: %+v", r)
	}
}
