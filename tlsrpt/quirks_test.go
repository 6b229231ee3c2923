package tlsrpt

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every row of docs/tlsrpt-quirks.md has a sample under testdata/quirks,
// written here in the shape the row describes, and a test below.

var quirkJSONFiles = []string{
	"q01-time-without-zone.json", "q02-mx-host-array.json", "q03-mx-host-omitted.json",
	"q04-mx-host-string.json", "q05-mx-host-prefix.json", "q06-contact-info-null.json",
	"q07-end-next-midnight.json", "q08-failure-count-mismatch.json", "q09-failure-reason-free-text.json",
	"q10-details-without-ip.json", "q11-tlsa-nested-json.json", "q12-tlsa-domain-recipient.json",
	"q13-no-policy-found-no-domain.json", "q14-unknown-policy-type.json", "q15-summary-one-counter.json",
	"q16-multi-day.json", "q30-no-sessions.json", "q31-mox-mx-host-report.json",
	"i11-10-failures-only-in-details.json",
}

var quirkMailFiles = []string{
	"q17-q18-microsoft.eml", "q19-subject-no-brackets.eml", "q20-mailru-folded-subject.eml",
	"q21-google-report-id.eml", "q23-bare-tlsrpt.eml", "q24-whole-message.eml",
	"q25-gzip-declared-plain.eml", "q26-base64-lenient.eml", "q27-contenttype-misspelt.eml",
	"q28-octet-stream.eml", "q28-gzip.eml", "q28-zip.eml", "q29-submitter-org-name.eml",
	"q32-halon-policy-string.eml", "i11-8-no-closing-boundary.eml", "i11-9-no-policy-domain.eml",
}

// after is a "now" later than every sample.
var after = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func parseQuirk(t *testing.T, name string) (*Report, []Repair) {
	t.Helper()
	r, reps, err := Parse(readTestdata(t, "quirks/"+name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// Whatever was repaired, our own output must re-parse to the same
	// report without repairs.
	out, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ParseStrict(out)
	if err != nil || !reflect.DeepEqual(r, r2) {
		t.Errorf("%s: Marshal/ParseStrict: %v", name, err)
	}
	return r, reps
}

func TestQuirkJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file     string
		repairs  []string // exactly these, in order
		problems []string // at least these
		check    func(t *testing.T, r *Report)
	}{
		{"q01-time-without-zone.json", []string{"time-without-zone", "time-without-zone"}, nil, func(t *testing.T, r *Report) {
			if r.DateRange.Start != time.Date(2023, 1, 10, 0, 0, 0, 0, time.UTC) || r.DateRange.End.Unix()-r.DateRange.Start.Unix() != 86399 {
				t.Errorf("range %v", r.DateRange)
			}
		}},
		{"q02-mx-host-array.json", nil, nil, func(t *testing.T, r *Report) {
			if !reflect.DeepEqual(r.Policies[0].Policy.MXHost, []string{"mx1.example.org", "mx2.example.org"}) {
				t.Errorf("mx-host %q", r.Policies[0].Policy.MXHost)
			}
		}},
		{"q03-mx-host-omitted.json", []string{"mx-host-missing"}, nil, func(t *testing.T, r *Report) {
			if r.Policies[0].Policy.MXHost != nil {
				t.Errorf("mx-host %q", r.Policies[0].Policy.MXHost)
			}
		}},
		{"q04-mx-host-string.json", []string{"mx-host-string"}, nil, func(t *testing.T, r *Report) {
			// Accepted as a string; emitted as an array (RPT-ERRATA-1).
			out, _ := Marshal(r)
			if !bytes.Contains(out, []byte(`"mx-host": [`)) {
				t.Errorf("Marshal must emit an array:\n%s", out)
			}
		}},
		{"q05-mx-host-prefix.json", []string{"mx-host-prefix", "mx-host-prefix"}, nil, func(t *testing.T, r *Report) {
			if !reflect.DeepEqual(r.Policies[0].Policy.MXHost, []string{"mx1.example.org", "mx2.example.org"}) {
				t.Errorf("mx-host %q", r.Policies[0].Policy.MXHost)
			}
		}},
		{"q06-contact-info-null.json", []string{"contact-info-null"}, nil, func(t *testing.T, r *Report) {
			if r.ContactInfo != "" {
				t.Errorf("contact-info %q", r.ContactInfo)
			}
		}},
		{"q07-end-next-midnight.json", nil, nil, func(t *testing.T, r *Report) {
			if r.DateRange.End.Sub(r.DateRange.Start) != 24*time.Hour {
				t.Errorf("range %v", r.DateRange)
			}
			// The file name's end is start+86400 (quirk 22 sample).
			f, err := ParseFilename("corp.mail.ru!example.org!1626134400!1626220800!1337.json.gz")
			if err != nil || !f.Begin.Equal(r.DateRange.Start) || !f.End.Equal(r.DateRange.End) {
				t.Errorf("file name %+v %v", f, err)
			}
		}},
		{"q08-failure-count-mismatch.json", []string{"failure-count-mismatch"}, nil, func(t *testing.T, r *Report) {
			p := r.Policies[0]
			if p.Summary.TotalFailureSessionCount != 1 || p.FailureDetails[0].FailedSessionCount != 2 {
				t.Errorf("counts must be kept as sent: %+v", p)
			}
		}},
		{"q09-failure-reason-free-text.json", nil, nil, func(t *testing.T, r *Report) {
			d := r.Policies[0].FailureDetails
			if d[0].FailureReasonCode != "bad https response code: 404" || !strings.HasPrefix(d[1].FailureReasonCode, `Get "https://mta-sts.example.org/`) {
				t.Errorf("reason codes %q %q", d[0].FailureReasonCode, d[1].FailureReasonCode)
			}
		}},
		{"q10-details-without-ip.json", []string{"mx-host-missing"}, nil, func(t *testing.T, r *Report) {
			d := r.Policies[0].FailureDetails[0]
			if d.SendingMTAIP != "" || d.ReceivingIP != "" || d.ReceivingMXHostname != "" || d.FailedSessionCount != 5 {
				t.Errorf("detail %+v", d)
			}
		}},
		{"q11-tlsa-nested-json.json", []string{"tlsa-policy-string-nested-json", "mx-host-missing"}, nil, func(t *testing.T, r *Report) {
			ps := r.Policies[0].Policy.String
			if len(ps) != 2 || !strings.HasPrefix(ps[0], "3 1 1 1F850A33") || !strings.HasPrefix(ps[1], "3 1 1 12350A33") {
				t.Errorf("policy-string %q", ps)
			}
		}},
		{"q12-tlsa-domain-recipient.json", []string{"mx-host-missing", "mx-host-missing"}, []string{"tlsa-policy-domain-not-mx"}, nil},
		{"q13-no-policy-found-no-domain.json", []string{"policy-string-missing", "mx-host-missing"}, []string{"policy-domain-missing"}, func(t *testing.T, r *Report) {
			if r.Policies[0].Policy.Type != PolicyTypeNoPolicyFound || r.Policies[0].Summary.TotalSuccessfulSessionCount != 10 {
				t.Errorf("policy %+v", r.Policies[0])
			}
		}},
		{"q14-unknown-policy-type.json", nil, []string{"policy-type-unknown"}, func(t *testing.T, r *Report) {
			if r.Policies[0].Policy.Type != "future-policy" {
				t.Errorf("type %q", r.Policies[0].Policy.Type)
			}
		}},
		{"q15-summary-one-counter.json", []string{"summary-counter-missing"}, nil, func(t *testing.T, r *Report) {
			if s := r.Policies[0].Summary; s.TotalSuccessfulSessionCount != 0 || s.TotalFailureSessionCount != 1 {
				t.Errorf("summary %+v", s)
			}
		}},
		{"q16-multi-day.json", nil, []string{"date-range-multi-day"}, func(t *testing.T, r *Report) {
			if d := r.DateRange.End.Sub(r.DateRange.Start); d != 7*24*time.Hour-time.Second {
				t.Errorf("range %v", d)
			}
		}},
		{"q30-no-sessions.json", nil, []string{"no-sessions"}, nil},
		{"q31-mox-mx-host-report.json", nil, []string{"tlsa-policy-domain-not-mx"}, func(t *testing.T, r *Report) {
			if p := r.Policies[0].Policy; p.Domain != "example.org" || p.MXHost[0] != "mx.example.org" {
				t.Errorf("policy %+v", p)
			}
		}},
		// Issue 11 item 10: failures only in the details must not read as
		// 100% success (RPT-AGG-4: the details' sum stands in for the total).
		{"i11-10-failures-only-in-details.json", []string{"summary-counter-missing", "failure-count-from-details"}, nil, func(t *testing.T, r *Report) {
			if s := r.Policies[0].Summary; s.TotalSuccessfulSessionCount != 97 || s.TotalFailureSessionCount != 303 {
				t.Errorf("summary %+v, want 97 successful and 303 failed", s)
			}
		}},
	}
	if len(cases) != len(quirkJSONFiles) {
		t.Fatalf("%d cases for %d JSON samples", len(cases), len(quirkJSONFiles))
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			r, reps := parseQuirk(t, tc.file)
			if got := repairCodes(reps); !reflect.DeepEqual(got, tc.repairs) {
				t.Errorf("repairs = %v, want %v", got, tc.repairs)
			}
			ps := r.Problems(after)
			for _, code := range tc.problems {
				if !hasProblem(ps, code) {
					t.Errorf("problems %v lack %q", ps, code)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestQuirk22Filenames(t *testing.T) { // quirk 22, RPT-DELIV-2
	t.Parallel()
	names := strings.Fields(string(readTestdata(t, "quirks/q22-filenames.txt")))
	wantIDs := []string{"001", "1337", "133178592000000000", "01HZ3Y"}
	if len(names) != len(wantIDs) {
		t.Fatalf("%d names", len(names))
	}
	for i, n := range names {
		f, err := ParseFilename(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if f.UniqueID != wantIDs[i] || !f.Gzip || f.PolicyDomain != "example.org" || f.String() != n {
			t.Errorf("%s: %+v", n, f)
		}
	}
}

func TestQuirkMail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file     string
		ctype    string
		filename string
		subject  *Subject // nil: the Subject must not parse
		repairs  []string // message and attachment repairs that must be present
		check    func(t *testing.T, m *Message, r *Report)
	}{
		{"q17-q18-microsoft.eml", MediaTypeGzip, "microsoft.com!example.org!1672704000!1672790399!133178592000000000.json.gz",
			&Subject{"example.org", "microsoft.com", "133178592000000000+example.org@microsoft.com"}, nil, nil},
		{"q19-subject-no-brackets.eml", MediaTypeGzip, "microsoft.com!example.org!1672704000!1672790399!133178592000000000.json.gz",
			&Subject{"example.org", "microsoft.com", "133178592000000000+example.org@microsoft.com"}, []string{"subject-report-id-no-brackets"}, nil},
		{"q20-mailru-folded-subject.eml", MediaTypeGzip, "corp.mail.ru!example.org!1626134400!1626220800!1337.json.gz",
			&Subject{"example.org", "corp.mail.ru", "1626134400_example.org@corp.mail.ru"}, nil, func(t *testing.T, m *Message, r *Report) {
				if len(m.Attachments) != 1 {
					t.Errorf("the trailing text/plain part is not a report: %d attachments", len(m.Attachments))
				}
			}},
		{"q21-google-report-id.eml", MediaTypeGzip, "google.com!example.org!1726358400!1726444799!001.json.gz",
			&Subject{"example.org", "google.com", "2024.09.15T00.00.00Z+example.org@google.com"}, nil, func(t *testing.T, m *Message, r *Report) {
				// RPT-DELIV-6: the body's report-id wins; the mismatch is shown.
				if r.ReportID != "2024-09-15T00:00:00Z_example.org" {
					t.Errorf("report-id %q", r.ReportID)
				}
				if ps := CheckConsistency(m, &m.Attachments[0], r); len(ps) != 1 || ps[0].Code != "subject-report-id-mismatch" {
					t.Errorf("consistency %v", ps)
				}
			}},
		{"q23-bare-tlsrpt.eml", "application/tlsrpt", "fixture.example!example.org!1643673600!1643759999.json",
			&Subject{"example.org", "fixture.example", "fixture-23@fixture.example"}, []string{"media-type-bare-tlsrpt"}, nil},
		{"q24-whole-message.eml", MediaTypeJSON, "",
			&Subject{"example.org", "mox.example", "20220201.example.org@mox.example"}, nil, nil},
		{"q25-gzip-declared-plain.eml", MediaTypeGzip, "fixture.example!example.org!1643673600!1643759999.json.gz",
			&Subject{"example.org", "fixture.example", "fixture-23@fixture.example"}, []string{"gzip-declared-plain-json"}, nil},
		{"q26-base64-lenient.eml", MediaTypeGzip, "google.com!example.org!1726358400!1726444799!001.json.gz",
			&Subject{"example.org", "google.com", "2024.09.15T00.00.00Z+example.org@google.com"}, []string{"base64-lenient"}, nil},
		{"q27-contenttype-misspelt.eml", MediaTypeGzip, "fixture.example!example.org!1643673600!1643759999.json.gz",
			&Subject{"example.org", "fixture.example", "fixture-23@fixture.example"}, []string{"content-type-misspelt"}, nil},
		{"q28-octet-stream.eml", "application/octet-stream", "fixture.example!example.org!1643673600!1643759999.json.gz",
			&Subject{"example.org", "fixture.example", "fixture-23@fixture.example"}, nil, nil},
		{"q28-gzip.eml", "application/gzip", "fixture.example!example.org!1643673600!1643759999.json.gz",
			&Subject{"example.org", "fixture.example", "fixture-23@fixture.example"}, nil, nil},
		{"q28-zip.eml", "application/zip", "fixture.example!example.org!1643673600!1643759999.zip",
			&Subject{"example.org", "fixture.example", "fixture-23@fixture.example"}, []string{"zip-archive"}, nil},
		{"q29-submitter-org-name.eml", MediaTypeGzip, "reporter.example!example.org!1717286400!1717372799.json.gz",
			nil, []string{"submitter-not-domain"}, func(t *testing.T, m *Message, r *Report) {
				if m.Submitter != "sys4 AG" || m.SubjectErr == nil {
					t.Errorf("submitter %q subject err %v", m.Submitter, m.SubjectErr)
				}
				if ps := CheckConsistency(m, &m.Attachments[0], r); !hasProblem(ps, "submitter-contact-mismatch") {
					t.Errorf("consistency %v", ps)
				}
			}},
		{"q32-halon-policy-string.eml", MediaTypeJSON, "halon.example!example.org!1646092800!1646179199.json",
			&Subject{"example.org", "halon.example", "halon-2022-03-01-example.org@halon.example"}, nil, func(t *testing.T, m *Message, r *Report) {
				want := []string{"version: STSv1", "mode: enforce", "mx: mx.example.org", "max_age: 86400"}
				if !reflect.DeepEqual(r.Policies[0].Policy.String, want) {
					t.Errorf("policy-string %q", r.Policies[0].Policy.String)
				}
			}},
		// Issue 11 item 8: the last part is complete, the closing boundary
		// is missing; the part is kept and decodes (RPT-MAIL-1).
		{"i11-8-no-closing-boundary.eml", MediaTypeGzip, "google.com!example.org!1726358400!1726444799!001.json.gz",
			&Subject{"example.org", "google.com", "2024.09.15T00.00.00Z+example.org@google.com"}, []string{"multipart-unterminated"}, nil},
		// Issue 11 item 9 (quirk 13 by mail): no policy-domain; the header,
		// Subject and file name agree on example.org.
		{"i11-9-no-policy-domain.eml", MediaTypeGzip, "reporter.example!example.org!1717200000!1717286399!001.json.gz",
			&Subject{"example.org", "reporter.example", "2024-06-01_example.org@reporter.example"}, []string{"policy-domain-from-mail"}, func(t *testing.T, m *Message, r *Report) {
				if ps := r.Problems(after); hasProblem(ps, "policy-domain-missing") {
					t.Errorf("problems %v after the fill", ps)
				}
			}},
	}
	if len(cases) != len(quirkMailFiles) {
		t.Fatalf("%d cases for %d mail samples", len(cases), len(quirkMailFiles))
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMessage(bytes.NewReader(readTestdata(t, "quirks/"+tc.file)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Attachments) != 1 {
				t.Fatalf("%d attachments", len(m.Attachments))
			}
			a := m.Attachments[0]
			if a.ContentType != tc.ctype || a.Filename != tc.filename {
				t.Errorf("attachment %q %q, want %q %q", a.ContentType, a.Filename, tc.ctype, tc.filename)
			}
			if strings.HasSuffix(tc.filename, ".json.gz") || strings.HasSuffix(tc.filename, ".json") {
				if a.FilenameInfo == nil {
					t.Errorf("file name %q did not parse", a.Filename)
				}
			}
			if tc.subject == nil && m.SubjectInfo != nil || tc.subject != nil && (m.SubjectInfo == nil || *m.SubjectInfo != *tc.subject) {
				t.Errorf("subject %+v (%v), want %+v", m.SubjectInfo, m.SubjectErr, tc.subject)
			}
			r, _, err := a.Parse()
			if err != nil {
				t.Fatalf("report: %v", err)
			}
			all := append(append([]Repair(nil), m.Repairs...), a.Repairs...)
			all = append(all, FillPolicyDomain(m, &a, r)...)
			for _, code := range tc.repairs {
				if !hasRepair(all, code) {
					t.Errorf("repairs %v lack %q", repairCodes(all), code)
				}
			}
			if r.Policies[0].Policy.Domain != "example.org" {
				t.Errorf("policy-domain %q", r.Policies[0].Policy.Domain)
			}
			if tc.check != nil {
				tc.check(t, m, r)
			}
		})
	}
}

// TestFillPolicyDomain: the mail wrapping names the domain of a policy
// without policy-domain (quirk 13) only when its sources agree.
func TestFillPolicyDomain(t *testing.T) { // RPT-DELIV-6, RPT-MAIL-3
	t.Parallel()
	fn := func(d string) *Attachment { return &Attachment{FilenameInfo: &Filename{PolicyDomain: d}} }
	cases := []struct {
		name   string
		m      *Message
		a      *Attachment
		domain string // "" when nothing may be filled
	}{
		{"all three agree", &Message{ReportDomain: "example.org", SubjectInfo: &Subject{Domain: "Example.ORG"}}, fn("example.org."), "example.org"},
		{"header only", &Message{ReportDomain: "example.org"}, nil, "example.org"},
		{"file name only", nil, fn("example.org"), "example.org"},
		{"header and file name disagree", &Message{ReportDomain: "example.org"}, fn("example.net"), ""},
		{"subject disagrees", &Message{ReportDomain: "example.org", SubjectInfo: &Subject{Domain: "example.net"}}, nil, ""},
		{"header not a domain", &Message{ReportDomain: "sys4 AG"}, nil, ""},
		{"no source", &Message{}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &Report{Policies: []PolicyResult{
				{Policy: Policy{Type: PolicyTypeNoPolicyFound}},
				{Policy: Policy{Type: PolicyTypeSTS, Domain: "kept.example"}},
			}}
			reps := FillPolicyDomain(tc.m, tc.a, r)
			if r.Policies[0].Policy.Domain != tc.domain || r.Policies[1].Policy.Domain != "kept.example" {
				t.Errorf("domains %q %q, want %q", r.Policies[0].Policy.Domain, r.Policies[1].Policy.Domain, tc.domain)
			}
			if want := tc.domain != ""; (len(reps) == 1 && reps[0].Code == "policy-domain-from-mail") != want {
				t.Errorf("repairs %v", reps)
			}
		})
	}
}
