package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"bufio"
	"github.com/emersion/go-message/textproto"
)

var stsPolicy = Policy{Type: PolicyTypeSTS, Domain: "example.net",
	String: []string{"version: STSv1", "mode: enforce", "mx: mx.example.net", "max_age: 86400"},
	MXHost: []string{"mx.example.net"}}

func TestAggregator(t *testing.T) { // RPT-AGG-3, RPT-AGG-4, RPT-AGG-5, RPT-AGG-9
	t.Parallel()
	var a Aggregator
	tlsa := Policy{Type: PolicyTypeTLSA, Domain: "mx.example.net", String: []string{"3 1 1 ABCD"}}
	a.AddSuccess(stsPolicy, 10)
	a.AddSuccess(tlsa, 3)
	// RPT-AGG-4: one session, expired and mismatched → two details of 1, total 1.
	exp := FailureDetails{ResultType: ResultCertificateExpired, ReceivingMXHostname: "mx.example.net", ReceivingIP: "192.0.2.1", SendingMTAIP: "198.51.100.1"}
	mis := exp
	mis.ResultType = ResultCertificateHostMismatch
	a.AddFailure(stsPolicy, exp, mis)
	// RPT-AGG-9: identical details merge; a different IP does not.
	a.AddFailure(stsPolicy, exp)
	other := exp
	other.ReceivingIP = "192.0.2.2"
	a.AddFailure(stsPolicy, other)
	// A policy equal in content is the same entry even as a new value.
	same := stsPolicy
	same.String = append([]string(nil), stsPolicy.String...)
	a.AddSuccess(same, 1)

	ps := a.Policies()
	if len(ps) != 2 {
		t.Fatalf("%d policy entries, want 2 (sts and tlsa, RPT-AGG-5)", len(ps))
	}
	s := ps[0]
	if s.Summary.TotalSuccessfulSessionCount != 11 || s.Summary.TotalFailureSessionCount != 3 {
		t.Errorf("summary %+v", s.Summary)
	}
	want := []FailureDetails{exp, mis, other}
	want[0].FailedSessionCount, want[1].FailedSessionCount, want[2].FailedSessionCount = 2, 1, 1
	if !reflect.DeepEqual(s.FailureDetails, want) {
		t.Errorf("details %+v", s.FailureDetails)
	}
	if ps[1].Summary.TotalSuccessfulSessionCount != 3 || ps[1].Policy.Type != PolicyTypeTLSA {
		t.Errorf("tlsa %+v", ps[1])
	}
	// Policies returns a copy.
	ps[0].FailureDetails[0].FailedSessionCount = 99
	if a.Policies()[0].FailureDetails[0].FailedSessionCount != 2 {
		t.Error("Policies does not copy")
	}

	day := time.Date(2016, 4, 1, 17, 3, 0, 0, time.FixedZone("x", -5*3600))
	r := a.Report(ReportParams{OrganizationName: "Sender", ContactInfo: "tlsrpt@mail.sender.example.com", PolicyDomain: "example.net", Day: day})
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	// OPEN-7 day window; RPT-JSON-9 report-id in msg-id form.
	if r.DateRange.Start != time.Date(2016, 4, 1, 22, 0, 0, 0, time.UTC).Truncate(24*time.Hour) || FormatTime(r.DateRange.End) != "2016-04-01T23:59:59Z" {
		t.Errorf("range %v", r.DateRange)
	}
	if r.ReportID != "20160401.example.net@mail.sender.example.com" {
		t.Errorf("report-id %q", r.ReportID)
	}
	// RPT-AGG-4: such a report parses with an informational note only.
	js, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := ParseStrict(js); err != nil || !reflect.DeepEqual(r, r2) {
		t.Errorf("ParseStrict: %v", err)
	}
}

func TestDayRange(t *testing.T) { // RPT-JSON-8, OPEN-7
	t.Parallel()
	dr := DayRange(time.Date(2024, 2, 29, 23, 59, 59, 999, time.UTC))
	if FormatTime(dr.Start) != "2024-02-29T00:00:00Z" || FormatTime(dr.End) != "2024-02-29T23:59:59Z" {
		t.Errorf("%v", dr)
	}
}

func TestMarshalNoPolicyFound(t *testing.T) { // RPT-JSON-7
	t.Parallel()
	var a Aggregator
	a.AddSuccess(Policy{Type: PolicyTypeNoPolicyFound, Domain: "example.net"}, 2)
	r := a.Report(ReportParams{OrganizationName: "o", ContactInfo: "r@s.example", PolicyDomain: "example.net", Day: time.Unix(0, 0)})
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	js, _ := Marshal(r)
	if !bytes.Contains(js, []byte(`"policy-string": []`)) || !bytes.Contains(js, []byte(`"mx-host": []`)) || !bytes.Contains(js, []byte(`"failure-details": []`)) {
		t.Errorf("%s", js)
	}
}

func TestComposeMessage(t *testing.T) { // RPT-MAIL-1..4, RPT-DELIV-2/3, RPT-JSON-10
	t.Parallel()
	r, _, err := Parse(readTestdata(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []bool{false, true} {
		msg, err := ComposeMessage(r, MailOptions{To: []string{"tlsrpt@company-y.example"}, Date: time.Date(2016, 4, 2, 1, 0, 0, 0, time.UTC), UniqueID: "001", Uncompressed: plain})
		if err != nil {
			t.Fatal(err)
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
		if err != nil {
			t.Fatal(err)
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/report") || !strings.Contains(ct, `report-type=tlsrpt`) {
			t.Errorf("RPT-MAIL-1: Content-Type %q", ct)
		}
		if h.Get("TLS-Report-Domain") != "company-y.example" || h.Get("TLS-Report-Submitter") != "company-x.example" {
			t.Errorf("RPT-MAIL-3: %q %q", h.Get("TLS-Report-Domain"), h.Get("TLS-Report-Submitter"))
		}
		wantSubj := "Report Domain: company-y.example Submitter: company-x.example Report-ID: <5065427c-23d3-47ca-b6e0-946ea0e8c4be@company-x.example>"
		if h.Get("Subject") != wantSubj {
			t.Errorf("RPT-MAIL-4: %q", h.Get("Subject"))
		}
		m, err := ParseMessage(bytes.NewReader(msg), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		a := m.Attachments[0]
		wantType, wantName := MediaTypeGzip, "company-x.example!company-y.example!1459468800!1459555199!001.json.gz"
		if plain {
			wantType, wantName = MediaTypeJSON, strings.TrimSuffix(wantName, ".gz")
		}
		if a.ContentType != wantType || a.Filename != wantName || len(a.Repairs) != 0 || len(m.Repairs) != 0 {
			t.Errorf("RPT-MAIL-2: %q %q %v %v", a.ContentType, a.Filename, repairCodes(a.Repairs), repairCodes(m.Repairs))
		}
		r2, err := ParseStrict(a.JSON)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Errorf("report round trip: %v", err)
		}
		if ps := CheckConsistency(m, &a, r2); len(ps) != 0 {
			t.Errorf("our own mail is inconsistent: %v", ps)
		}
		if !bytes.Contains(msg, []byte("Content-Transfer-Encoding: base64")) {
			t.Error("attachment not base64")
		}
	}
	// Invalid reports and options are refused.
	bad := *r
	bad.ContactInfo = ""
	if _, err := ComposeMessage(&bad, MailOptions{To: []string{"a@b.example"}, Date: time.Now()}); err == nil {
		t.Error("invalid report accepted")
	}
	if _, err := ComposeMessage(r, MailOptions{Date: time.Now()}); err == nil {
		t.Error("no recipient accepted")
	}
	if _, err := ComposeMessage(r, MailOptions{To: []string{"a@b.example"}}); err == nil {
		t.Error("no date accepted")
	}
}

func TestMarshalGzip(t *testing.T) { // RPT-DELIV-4
	t.Parallel()
	r, _, _ := Parse(readTestdata(t, "f10c.json"))
	gz, err := MarshalGzip(r)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	plain, _ := Marshal(r)
	if !bytes.Equal(js, plain) {
		t.Error("gzip content differs from Marshal")
	}
}

// TestMarshalGzipReused checks that the reused compressors give, in
// concurrent calls, the bytes of a new gzip.Writer for each report:
// no state of an earlier report leaks into the next one's stream.
func TestMarshalGzipReused(t *testing.T) { // RPT-DELIV-4
	t.Parallel()
	base, _, _ := Parse(readTestdata(t, "f10c.json"))
	const workers, each = 4, 25
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				for i := range each {
					r := *base
					r.ReportID = fmt.Sprintf("%s.%d.%d", base.ReportID, w, i)
					r.ContactInfo = strings.Repeat("x", i*37) + "@example.org"
					gz, err := MarshalGzip(&r)
					if err != nil {
						return err
					}
					plain, _ := Marshal(&r)
					var want bytes.Buffer
					zw := gzip.NewWriter(&want)
					zw.Write(plain)
					zw.Close()
					if !bytes.Equal(gz, want.Bytes()) {
						return fmt.Errorf("report %d.%d: %d bytes, a new gzip.Writer gives %d", w, i, len(gz), want.Len())
					}
					zr, err := gzip.NewReader(bytes.NewReader(gz))
					if err != nil {
						return err
					}
					js, err := io.ReadAll(zr)
					if err != nil {
						return err
					}
					if !bytes.Equal(js, plain) {
						return fmt.Errorf("report %d.%d: content differs from Marshal", w, i)
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
