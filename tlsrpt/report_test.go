package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkF10 asserts every F-10b/F-10c expectation of the checklist.
func checkF10(t *testing.T, r *Report) {
	t.Helper()
	if r.OrganizationName != "Company-X" || r.ContactInfo != "sts-reporting@company-x.example" || r.ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" {
		t.Errorf("top level: %+v", r)
	}
	if got := r.DateRange.Start.Unix(); got != 1459468800 {
		t.Errorf("start = %d, want 1459468800", got)
	}
	if got := r.DateRange.End.Unix(); got != 1459555199 {
		t.Errorf("end = %d, want 1459555199", got)
	}
	if len(r.Policies) != 1 {
		t.Fatalf("policies = %d, want 1", len(r.Policies))
	}
	p := r.Policies[0]
	if p.Policy.Type != PolicyTypeSTS || len(p.Policy.String) != 4 || p.Policy.Domain != "company-y.example" {
		t.Errorf("policy = %+v", p.Policy)
	}
	if !reflect.DeepEqual(p.Policy.MXHost, []string{"*.mail.company-y.example"}) {
		t.Errorf("mx-host = %q", p.Policy.MXHost)
	}
	if p.Summary.TotalSuccessfulSessionCount != 5326 || p.Summary.TotalFailureSessionCount != 303 {
		t.Errorf("summary = %+v", p.Summary)
	}
	if len(p.FailureDetails) != 3 {
		t.Fatalf("failure details = %d, want 3", len(p.FailureDetails))
	}
	var sum int64
	for _, d := range p.FailureDetails {
		sum += d.FailedSessionCount
	}
	if sum != 303 {
		t.Errorf("detail counts sum to %d, want 303", sum)
	}
	d0 := p.FailureDetails[0]
	if d0.SendingMTAIP != "2001:db8:abcd:12::1" {
		t.Errorf("sending-mta-ip = %q, want RFC 5952 form 2001:db8:abcd:12::1", d0.SendingMTAIP)
	}
	if d0.ReceivingIP != "" || d0.ResultType != ResultCertificateExpired {
		t.Errorf("first detail = %+v", d0)
	}
	if got := p.FailureDetails[1].AdditionalInformation; got != "https://reports.company-x.example/report_info ? id = 5065427 c - 23 d3# StarttlsNotSupported " {
		t.Errorf("additional-information = %q", got)
	}
	if got := p.FailureDetails[2].FailureReasonCode; got != "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED" {
		t.Errorf("failure-reason-code = %q", got)
	}
}

func TestF10a(t *testing.T) { // F-10a, RPT-ERRATA-3
	t.Parallel()
	data := readTestdata(t, "f10a.json")
	if json.Valid(data) {
		t.Fatal("F-10a must be rejected by a strict JSON parser")
	}
	if _, err := ParseStrict(data); !errors.Is(err, ErrNotStrict) {
		t.Errorf("ParseStrict(F-10a) = %v, want ErrNotStrict", err)
	}
	// Decision: Parse repairs the raw line break like mox, giving F-10b.
	r, reps, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !hasRepair(reps, "control-character-in-string") {
		t.Errorf("repairs = %v", repairCodes(reps))
	}
	checkF10(t, r)
	rb, _, err := Parse(readTestdata(t, "f10b.json"))
	if err != nil || !reflect.DeepEqual(r, rb) {
		t.Errorf("Parse(F-10a) != Parse(F-10b): %v", err)
	}
}

func TestF10b(t *testing.T) { // F-10b, RPT-ERRATA-1, RPT-RECV-5
	t.Parallel()
	data := readTestdata(t, "f10b.json")
	if !json.Valid(data) {
		t.Fatal("F-10b is valid JSON")
	}
	r, reps, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	checkF10(t, r)
	want := []string{"mx-host-string", "ipv6-noncanonical", "ipv6-noncanonical"}
	if !reflect.DeepEqual(repairCodes(reps), want) {
		t.Errorf("repairs = %v, want %v", repairCodes(reps), want)
	}
}

func TestF10cRoundTrip(t *testing.T) { // F-10c, RPT-JSON-2..5
	t.Parallel()
	data := readTestdata(t, "f10c.json")
	r, reps, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	checkF10(t, r)
	if want := []string{"ipv6-noncanonical", "ipv6-noncanonical"}; !reflect.DeepEqual(repairCodes(reps), want) {
		t.Errorf("repairs = %v, want %v", repairCodes(reps), want)
	}
	out, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// Marshal gives F-10c itself, but for the RFC 5952 addresses.
	canon := strings.NewReplacer("2001:db8:abcd:0012::1", "2001:db8:abcd:12::1", "2001:db8:abcd:0013::1", "2001:db8:abcd:13::1").Replace(string(data))
	var a, b any
	if err := json.Unmarshal([]byte(canon), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Marshal(Parse(F-10c)) differs from F-10c:\n%s", out)
	}
	r2, reps2, err := Parse(out)
	if err != nil || len(reps2) != 0 || !reflect.DeepEqual(r, r2) {
		t.Errorf("re-parse: %v %v equal=%v", err, repairCodes(reps2), reflect.DeepEqual(r, r2))
	}
	if _, err := ParseStrict(out); err != nil {
		t.Errorf("ParseStrict(Marshal): %v", err)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate(F-10c): %v", err)
	}
	// Member order follows Appendix B.
	order := []string{`"organization-name"`, `"date-range"`, `"contact-info"`, `"report-id"`, `"policies"`, `"policy-type"`, `"policy-string"`, `"policy-domain"`, `"mx-host"`, `"summary"`, `"failure-details"`}
	last := -1
	for _, k := range order {
		i := strings.Index(string(out), k)
		if i < last {
			t.Errorf("member %s out of order", k)
		}
		last = i
	}
}

func TestResultTypesRoundTrip(t *testing.T) { // RPT-RES-1..12
	t.Parallel()
	if n := len(ResultTypes()); n != 11 {
		t.Fatalf("%d registry values, want 11", n)
	}
	base := readTestdata(t, "f10c.json")
	for _, rt := range append(ResultTypes(), "some-future-type") {
		data := strings.Replace(string(base), `"certificate-expired"`, `"`+string(rt)+`"`, 1)
		r, _, err := Parse([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", rt, err)
		}
		if got := r.Policies[0].FailureDetails[0].ResultType; got != rt {
			t.Errorf("result-type %q parsed as %q", rt, got)
		}
		out, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, _, err := Parse(out)
		if err != nil || r2.Policies[0].FailureDetails[0].ResultType != rt {
			t.Errorf("%s did not round-trip: %v", rt, err)
		}
		if known := rt.Known(); known == (rt == "some-future-type") {
			t.Errorf("%s: Known() = %v", rt, known)
		}
		if ps := r.Problems(time.Now()); hasProblem(ps, "result-type-unknown") != (rt == "some-future-type") {
			t.Errorf("%s: problems %v", rt, ps)
		}
	}
	if !ResultCertificateNotTrusted.WantsReasonCode() || !ResultValidationFailure.WantsReasonCode() || ResultTLSAInvalid.WantsReasonCode() {
		t.Error("WantsReasonCode: RPT-RES-4/5")
	}
}

const miniReport = `{"organization-name":"o","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"contact-info":"a@b.example","report-id":"r","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],"policy-domain":"b.example","mx-host":["mx.b.example"]},"summary":{"total-successful-session-count":1,"total-failure-session-count":%s},"failure-details":[]}]}`

func TestParseCounts(t *testing.T) { // RPT-JSON-4, RPT-JSON-1 (I-JSON)
	t.Parallel()
	cases := []struct {
		in     string
		want   int64
		repair string
		bad    bool
	}{
		{"303", 303, "", false},
		{`"303"`, 303, "count-string", false},
		{"1e2", 100, "count-not-integer-literal", false},
		{"303.0", 303, "count-not-integer-literal", false},
		{"null", 0, "count-null", false},
		{"9007199254740992", 1 << 53, "", false},
		{"9007199254740993", 0, "", true},
		{"1.5", 0, "", true},
		{"-1", 0, "", true},
		{`"-1"`, 0, "", true},
		{`"abc"`, 0, "", true},
		{`"0x10"`, 0, "", true},
		{`"NaN"`, 0, "", true},
		{"1e400", 0, "", true},
		{"true", 0, "", true},
		{"[]", 0, "", true},
	}
	for _, tc := range cases {
		r, reps, err := Parse([]byte(fmt.Sprintf(miniReport, tc.in)))
		if tc.bad {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("%s: err = %v, want ErrSyntax", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := r.Policies[0].Summary.TotalFailureSessionCount; got != tc.want {
			t.Errorf("%s: got %d want %d", tc.in, got, tc.want)
		}
		if tc.repair == "" && len(reps) != 0 || tc.repair != "" && !hasRepair(reps, tc.repair) {
			t.Errorf("%s: repairs %v, want %q", tc.in, repairCodes(reps), tc.repair)
		}
	}
}

func TestParseDuplicateMembers(t *testing.T) { // RPT-JSON-1, GO-7
	t.Parallel()
	data := `{"report-id":"first","report-id":"second","organization-name":"o","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z","end-datetime":"2017-01-01T00:00:00Z"},"contact-info":"a@b.example","policies":[]}`
	r, reps, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	// Decision: the first occurrence wins.
	if r.ReportID != "first" || r.DateRange.End.Unix() != 1459555199 {
		t.Errorf("got report-id %q end %v", r.ReportID, r.DateRange.End)
	}
	if n := strings.Count(strings.Join(repairCodes(reps), " "), "duplicate-member"); n != 2 {
		t.Errorf("repairs = %v", repairCodes(reps))
	}
	if _, err := ParseStrict([]byte(data)); !errors.Is(err, ErrNotStrict) {
		t.Errorf("ParseStrict: %v", err)
	}
}

func TestParseRejects(t *testing.T) { // invalid JSON and non-reports
	t.Parallel()
	bad := []string{
		"", "null", "[]", `"x"`, "{", `{"policies":[]}`,
		`{"date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"}}`,
		`{"date-range":{"start-datetime":"yesterday","end-datetime":"2016-04-01T23:59:59Z"},"policies":[]}`,
		`{"date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"policies":7}`,
		`{"date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"policies":[{"policy":{}}]}`,
		`{"date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"policies":[]} trailing`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
		`{"a":` + strings.Repeat(`{"a":`, 50) + "1" + strings.Repeat("}", 51),
	}
	for _, s := range bad {
		if _, _, err := Parse([]byte(s)); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.60q) = %v, want ErrSyntax", s, err)
		}
	}
}

func TestParseRepairsMisc(t *testing.T) { // RPT-JSON-12, RPT-JSON-8, I-JSON
	t.Parallel()
	data := "\xef\xbb\xbf" + `{"organization-name":"o\u0000k","extra":1,"date-range":{"start-datetime":"2016-04-01 00:00:00","end-datetime":"2016-04-02"},"contact-info":"a@b.example","report-id":7,"policies":{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],"policy-domain":"b.example","mx-host":["mx.b.example"]},"summary":{"total-successful-session-count":1,"total-failure-session-count":0},"failure-details":{"result-type":"x","failed-session-count":1,"receiving-ip":"not-an-ip"}}}`
	r, reps, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"utf8-bom", "unknown-member", "time-space-separator", "time-without-zone", "time-date-only", "string-type", "policies-not-array", "failure-details-not-array", "ip-invalid", "failure-count-mismatch"} {
		if !hasRepair(reps, code) {
			t.Errorf("missing repair %q in %v", code, repairCodes(reps))
		}
	}
	if r.ReportID != "7" || r.DateRange.End.Unix() != 1459555200 || r.Policies[0].FailureDetails[0].ReceivingIP != "not-an-ip" {
		t.Errorf("report = %+v", r)
	}
	if _, reps, _ := Parse([]byte(strings.Replace(miniReport, `"o"`, "\"o\xff\"", 1))); !hasRepair(reps, "invalid-utf8") {
		t.Errorf("invalid UTF-8: %v", repairCodes(reps))
	}
}

func TestParseTimeZones(t *testing.T) { // RPT-JSON-8, GO-8
	t.Parallel()
	for in, want := range map[string]int64{
		"2016-04-01T02:00:00+02:00":      1459468800,
		"2016-04-01t00:00:00z":           1459468800,
		"2016-04-01T00:00:00.000Z":       1459468800,
		"2016-03-31T19:00:00-05:00":      1459468800,
		"2016-04-01T00:00:00":            1459468800,
		"2016-04-01T00:00:00.5":          1459468800,
		"2016-04-01":                     1459468800,
		"2016-04-01 00:00:00Z":           1459468800,
		"2016-04-01T00:00:00.999999999Z": 1459468800,
	} {
		data := strings.Replace(miniReport, `"2016-04-01T00:00:00Z"`, `"`+in+`"`, 1)
		r, _, err := Parse([]byte(fmt.Sprintf(data, "0")))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.DateRange.Start.Unix() != want || r.DateRange.Start.Location() != time.UTC {
			t.Errorf("%s: got %v", in, r.DateRange.Start)
		}
	}
}

func TestValidate(t *testing.T) { // RPT-JSON-*, F-12, RPT-JSON-11
	t.Parallel()
	good := func() *Report {
		r, _, err := Parse(readTestdata(t, "f10c.json"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("F-10c: %v", err)
	}
	bad := map[string]func(r *Report){
		"no org":             func(r *Report) { r.OrganizationName = "" },
		"no id":              func(r *Report) { r.ReportID = "" },
		"contact":            func(r *Report) { r.ContactInfo = "Company X <x@company-x.example>" },
		"contact no at":      func(r *Report) { r.ContactInfo = "company-x.example" },
		"non-UTC":            func(r *Report) { r.DateRange.Start = r.DateRange.Start.In(time.FixedZone("x", 3600)) },
		"fraction":           func(r *Report) { r.DateRange.End = r.DateRange.End.Add(time.Millisecond) },
		"inverted":           func(r *Report) { r.DateRange.End = r.DateRange.Start.Add(-time.Hour) },
		"no policies":        func(r *Report) { r.Policies = nil },
		"unknown type":       func(r *Report) { r.Policies[0].Policy.Type = "STS" },
		"U-label domain":     func(r *Report) { r.Policies[0].Policy.Domain = "bücher.example" },
		"U-label mx":         func(r *Report) { r.Policies[0].Policy.MXHost = []string{"*.bücher.example"} },
		"empty policy":       func(r *Report) { r.Policies[0].Policy.String = nil },
		"npf with strings":   func(r *Report) { r.Policies[0].Policy.Type = PolicyTypeNoPolicyFound },
		"negative":           func(r *Report) { r.Policies[0].Summary.TotalFailureSessionCount = -1 },
		"huge":               func(r *Report) { r.Policies[0].Summary.TotalSuccessfulSessionCount = MaxCount + 1 },
		"no result type":     func(r *Report) { r.Policies[0].FailureDetails[0].ResultType = "" },
		"F-12 leading zeros": func(r *Report) { r.Policies[0].FailureDetails[1].ReceivingIP = "203.000.113.56" },
		"F-12 256":           func(r *Report) { r.Policies[0].FailureDetails[1].ReceivingIP = "256.1.1.1" },
		"IPv6 not RFC 5952":  func(r *Report) { r.Policies[0].FailureDetails[0].SendingMTAIP = "2001:db8:abcd:0012::1" },
		"IPv6 upper":         func(r *Report) { r.Policies[0].FailureDetails[0].SendingMTAIP = "2001:DB8::1" },
		"mx hostname":        func(r *Report) { r.Policies[0].FailureDetails[0].ReceivingMXHostname = "mx 1.example" },
		"sts line":           func(r *Report) { r.Policies[0].Policy.String[0] = "version STSv1" },
		"tlsa spaces in hex": func(r *Report) {
			r.Policies[0].Policy = f7TLSA()
			r.Policies[0].Policy.String[0] = "3 0 1 1F850A33 7E6D"
		},
		"tlsa field": func(r *Report) { r.Policies[0].Policy = f7TLSA(); r.Policies[0].Policy.String[0] = "3 0 01 1F85" },
		"not UTF-8":  func(r *Report) { r.OrganizationName = "Company\xff" },
	}
	// F-7: both policy-string samples are valid.
	r := good()
	r.Policies[0].Policy = f7TLSA()
	if err := r.Validate(); err != nil {
		t.Errorf("F-7 tlsa: %v", err)
	}
	r.Policies[0].Policy = Policy{Type: PolicyTypeSTS, Domain: "example.com", MXHost: []string{"mx1.example.com", "mx2.example.com", "mx.backup-example.com"},
		String: []string{"version: STSv1", "mode: testing", "mx: mx1.example.com", "mx: mx2.example.com", "mx: mx.backup-example.com", "max_age: 604800"}}
	if err := r.Validate(); err != nil {
		t.Errorf("F-7 sts: %v", err)
	}
	for name, mutate := range bad {
		r := good()
		mutate(r)
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

// f7TLSA is F-7's TLSA policy-string on a tlsa policy (RPT-JSON-6).
func f7TLSA() Policy {
	return Policy{Type: PolicyTypeTLSA, Domain: "mx.example.com", String: []string{
		"3 0 1 1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D",
		"3 0 1 12350A337E6DB9C6123522D136A475638CC43E1ED424F8EEC8513D747D1D1234",
	}}
}

func TestValidReportIP(t *testing.T) { // F-12
	t.Parallel()
	for ip, want := range map[string]bool{
		"203.0.113.56": true, "0.0.0.0": true, "255.255.255.255": true, "10.9.99.199": true,
		"203.000.113.56": false, "256.1.1.1": false, "1.2.3": false, "1.2.3.4.5": false, "01.2.3.4": false,
		"1.2.3.-4": false, "": false, "2001:db8:abcd:12::1": true, "2001:db8:abcd:0012::1": false,
		"::ffff:192.0.2.1": true, "fe80::1%eth0": false, "1.2.3.4 ": false,
	} {
		if got := ValidReportIP(ip); got != want {
			t.Errorf("ValidReportIP(%q) = %v, want %v", ip, got, want)
		}
	}
}

func TestProblemsFutureDate(t *testing.T) { // RPT-RECV-2 (future range not rejected, flagged)
	t.Parallel()
	r, _, err := Parse(readTestdata(t, "f10c.json"))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Date(2016, 3, 31, 12, 0, 0, 0, time.UTC)
	if ps := r.Problems(before); !hasProblem(ps, "date-range-future") {
		t.Errorf("problems at %v: %v", before, ps)
	}
	if ps := r.Problems(time.Date(2016, 4, 2, 3, 0, 0, 0, time.UTC)); len(ps) != 0 {
		t.Errorf("problems after the range: %v", ps)
	}
	r.DateRange.End = r.DateRange.Start.Add(-time.Second)
	if ps := r.Problems(time.Date(2016, 4, 2, 3, 0, 0, 0, time.UTC)); !hasProblem(ps, "date-range-inverted") {
		t.Errorf("inverted: %v", ps)
	}
}

func BenchmarkParse(b *testing.B) {
	data := readTestdata(b, "f10c.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	r, _, err := Parse(readTestdata(b, "f10c.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"f10a.json", "f10b.json", "f10c.json"} {
		f.Add(readTestdata(f, name))
	}
	for _, name := range quirkJSONFiles {
		f.Add(readTestdata(f, "quirks/"+name))
	}
	f.Add([]byte(fmt.Sprintf(miniReport, `"303"`)))
	f.Add([]byte(`{"report-id":"a","report-id":"b"}`))
	// Failure-detail arrays read element by element (bounds_test.go).
	f.Add(bombReport(5, `{}`))
	f.Add(bombReport(3, `{"result-type":"r%d","failed-session-count":2}`))
	f.Add(bombReport(3, `{"result-type":"x","failed-session-count":2}`))
	f.Add(bombReport(2, `7`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error does not wrap ErrSyntax or ErrTooLarge: %v", err)
			}
			return
		}
		out, err := Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		r2, reps2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("Parse(Marshal(Parse(x))) != Parse(x):\n%+v\n%+v\nrepairs %v", r, r2, repairCodes(reps2))
		}
		r.Validate()
		r.Problems(time.Now())
	})
}
