package tlsrpt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestF9Message(t *testing.T) { // F-9, RPT-MAIL-1/2/3, RPT-DELIV-6, RPT-ERRATA-3
	t.Parallel()
	m, err := ParseMessage(bytes.NewReader(readTestdata(t, "f9-with-f10c.eml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.ReportDomain != "example.net" || m.Submitter != "mail.sender.example.com" {
		t.Errorf("headers %q %q", m.ReportDomain, m.Submitter)
	}
	want := Subject{Domain: "example.net", Submitter: "mail.sender.example.com", ReportID: "735ff.e317+bf22029@example.net"}
	if m.SubjectInfo == nil || *m.SubjectInfo != want {
		t.Errorf("subject %+v %v", m.SubjectInfo, m.SubjectErr)
	}
	if len(m.Attachments) != 1 {
		t.Fatalf("%d attachments", len(m.Attachments))
	}
	a := m.Attachments[0]
	// The file name is folded inside the quoted string in F-9.
	if a.Filename != "mail.sender.example!example.com!1013662812!1013749130.json.gz" || a.FilenameInfo == nil || !hasRepair(a.Repairs, "filename-whitespace") {
		t.Errorf("file name %q %+v %v", a.Filename, a.FilenameInfo, repairCodes(a.Repairs))
	}
	if !bytes.Equal(a.JSON, readTestdata(t, "f10c.json")) {
		t.Error("the attachment is not F-10c")
	}
	r, _, err := a.Parse()
	if err != nil {
		t.Fatal(err)
	}
	checkF10(t, r)
	// RPT-DELIV-6: the body wins; the disagreements are listed.
	ps := CheckConsistency(m, &a, r)
	for _, code := range []string{"submitter-contact-mismatch", "header-domain-mismatch", "subject-domain-mismatch", "subject-report-id-mismatch", "filename-domain-mismatch", "filename-sender-mismatch"} {
		if !hasProblem(ps, code) {
			t.Errorf("consistency %v lacks %q", ps, code)
		}
	}
	if r.Policies[0].Policy.Domain != "company-y.example" {
		t.Errorf("body domain %q", r.Policies[0].Policy.Domain)
	}
}

func TestParseSubject(t *testing.T) { // RPT-MAIL-4, F-8, quirks 19-21
	t.Parallel()
	good := []struct {
		in      string
		want    Subject
		repairs []string
	}{
		// F-8, unfolded by the header reader (folding whitespace kept as spaces).
		{"Report Domain: example.net\r\n    Submitter: mail.sender.example.com\r\n    Report-ID: <735ff.e317+bf22029@mailexample.net>",
			Subject{"example.net", "mail.sender.example.com", "735ff.e317+bf22029@mailexample.net"}, nil},
		{"Report Domain: example.net Submitter: mail.sender.example.com Report-ID: <735ff.e317+bf22029@mailexample.net>",
			Subject{"example.net", "mail.sender.example.com", "735ff.e317+bf22029@mailexample.net"}, nil},
		{"Report Domain: a.example Submitter: b.example Report-ID: <x@y> (comment)", Subject{"a.example", "b.example", "x@y"}, nil},
		{"Report\n Domain: a.example Submitter: b.example Report-ID: <x@y>", Subject{"a.example", "b.example", "x@y"}, nil},
		{"Report Domain: a.example Submitter: b.example Report-ID: 133+a.example@b.example", Subject{"a.example", "b.example", "133+a.example@b.example"}, []string{"subject-report-id-no-brackets"}},
		{"Report Domain: a.example Submitter: b.example Report-ID: <133+a.example@\r\n b.example>", Subject{"a.example", "b.example", "133+a.example@b.example"}, []string{"subject-report-id-whitespace"}},
		{"Fwd: Report Domain: a.example Submitter: b.example Report-ID: <x@y>", Subject{"a.example", "b.example", "x@y"}, []string{"subject-prefix"}},
		{"report domain: a.example submitter: b.example report-id: <x@y>", Subject{"a.example", "b.example", "x@y"}, []string{"subject-literal-case"}},
	}
	for _, tc := range good {
		s, reps, err := ParseSubject(tc.in)
		if err != nil || s != tc.want || strings.Join(repairCodes(reps), ",") != strings.Join(tc.repairs, ",") {
			t.Errorf("ParseSubject(%q) = %+v %v %v", tc.in, s, repairCodes(reps), err)
		}
		if err == nil {
			if s2, _, err := ParseSubject(s.String()); err != nil || s2 != s {
				t.Errorf("round trip %q: %+v %v", s.String(), s2, err)
			}
		}
	}
	bad := []string{
		"", "Hello", "Report Domain: a.example", "Report Domain: a Submitter: b Report-ID:",
		"Report Domain: a Submitter: b Report-ID: <x@y", "Report Domain: a Sender: b Report-ID: <x@y>",
		"Report Domain: a Submitter: b Report-ID: <>",
	}
	for _, in := range bad {
		if s, _, err := ParseSubject(in); !errors.Is(err, ErrSubject) {
			t.Errorf("ParseSubject(%q) = %+v %v, want ErrSubject", in, s, err)
		}
	}
}

func TestParseMessageNoReport(t *testing.T) { // RPT-MAIL-10
	t.Parallel()
	cases := map[string]string{
		"plain text":                        "From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n",
		"no content type, not JSON":         "From: a@b.example\r\n\r\nhello\r\n",
		"only human parts":                  "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--x--\r\n",
		"octet-stream that is not a report": "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--x--\r\n",
	}
	for name, msg := range cases {
		_, err := ParseMessage(strings.NewReader(msg), Limits{})
		if name == "octet-stream that is not a report" {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("%s: %v, want ErrSyntax", name, err)
			}
			continue
		}
		if !errors.Is(err, ErrNoReport) {
			t.Errorf("%s: %v, want ErrNoReport", name, err)
		}
	}
	broken := map[string]string{
		"no boundary":    "Content-Type: multipart/report\r\n\r\n--x\r\n",
		"bad header":     " leading space\r\n\r\n",
		"bad tlsrpt":     "Content-Type: application/tlsrpt+json\r\n\r\nnot json\r\n",
		"bad base64":     "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
		"unterminated":   "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi",
		"deeply nested":  strings.Repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", 8),
		"too many parts": "Content-Type: multipart/mixed; boundary=x\r\n\r\n" + strings.Repeat("--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n", 100) + "--x--\r\n",
	}
	for name, msg := range broken {
		if _, err := ParseMessage(strings.NewReader(msg), Limits{}); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v, want ErrSyntax", name, err)
		}
	}
}

func TestParseMessageFilenameFromContentType(t *testing.T) { // quirk 18 (the other way round)
	t.Parallel()
	js := readTestdata(t, "quirks/q02-mx-host-array.json")
	msg := "Content-Type: multipart/report; report-type=tlsrpt; boundary=x\r\n\r\n--x\r\n" +
		"Content-Type: application/tlsrpt+json; name=\"google.com!example.org!1726358400!1726444799.json\"\r\n\r\n" +
		string(js) + "\r\n--x--\r\n"
	m, err := ParseMessage(strings.NewReader(msg), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Attachments[0]
	if a.Filename != "google.com!example.org!1726358400!1726444799.json" || !hasRepair(a.Repairs, "filename-from-content-type") {
		t.Errorf("%q %v", a.Filename, repairCodes(a.Repairs))
	}
	if !hasRepair(m.Repairs, "header-missing") {
		t.Errorf("missing TLS-Report-* headers not noted: %v", repairCodes(m.Repairs))
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add(readTestdata(f, "f9-with-f10c.eml"))
	for _, name := range quirkMailFiles {
		f.Add(readTestdata(f, "quirks/"+name))
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/zip\r\n\r\nPK\x03\x04\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(bytes.NewReader(data), Limits{MaxInput: 1 << 20, MaxOutput: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrNoReport) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(m.Attachments) == 0 {
			t.Fatal("no error and no attachment")
		}
		for i := range m.Attachments {
			if r, _, err := m.Attachments[i].Parse(); err == nil {
				CheckConsistency(m, &m.Attachments[i], r)
			}
		}
	})
}

// TestCheckConsistencySameOrganization: issue #11.7. Domains of one
// organisation (Mail.ru's mail.ru submitter and corp.mail.ru contact) are
// not a mismatch; another organisation's domain still is. RPT-JSON-10.
func TestCheckConsistencySameOrganization(t *testing.T) {
	t.Parallel()
	r, _, err := Parse(readTestdata(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		submitter, contact string
		mismatch           bool
	}{
		{"mail.ru", "tlsrpt@corp.mail.ru", false},
		{"corp.mail.ru", "tlsrpt@mail.ru", false},
		{"MAIL.RU", "tlsrpt@mail.ru", false},
		{"mail.ru", "tlsrpt@evil.example", true},
		{"mail.ru", "tlsrpt@ru", true},
	} {
		rr := *r
		rr.ContactInfo = tc.contact
		_, cd, _ := strings.Cut(tc.contact, "@")
		m := &Message{Submitter: tc.submitter, SubjectInfo: &Subject{Domain: "company-y.example", Submitter: tc.submitter, ReportID: rr.ReportID}}
		a := &Attachment{FilenameInfo: &Filename{Sender: tc.submitter, PolicyDomain: "company-y.example"}}
		ps := CheckConsistency(m, a, &rr)
		for _, code := range []string{"submitter-contact-mismatch", "subject-submitter-mismatch", "filename-sender-mismatch"} {
			if hasProblem(ps, code) != tc.mismatch {
				t.Errorf("submitter %q, contact domain %q: %s flagged=%v, want %v (%v)", tc.submitter, cd, code, !tc.mismatch, tc.mismatch, ps)
			}
		}
	}
}
