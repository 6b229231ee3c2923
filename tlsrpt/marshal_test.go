package tlsrpt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// marshalReference is the encoding that Marshal writes without
// reflection (appendReport): the report's wire form through
// encoding/json's Encoder, as Marshal was written before. Marshal's
// output must stay byte for byte what this gives, for the report store
// keeps a hash of it per report (a changed form would make a re-sent
// report look different from its stored copy).
func marshalReference(r *Report) ([]byte, error) {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	w := wireReport{
		OrganizationName: r.OrganizationName,
		DateRange:        wireRange{Start: FormatTime(r.DateRange.Start), End: FormatTime(r.DateRange.End)},
		ContactInfo:      r.ContactInfo,
		ReportID:         r.ReportID,
		Policies:         make([]wirePolicy, len(r.Policies)),
	}
	for i, p := range r.Policies {
		wp := &w.Policies[i]
		wp.Policy.Type = p.Policy.Type
		wp.Policy.String = nonNil(p.Policy.String)
		wp.Policy.Domain = p.Policy.Domain
		wp.Policy.MXHost = nonNil(p.Policy.MXHost)
		wp.Summary.Success = p.Summary.TotalSuccessfulSessionCount
		wp.Summary.Failure = p.Summary.TotalFailureSessionCount
		wp.FailureDetails = make([]wireDetail, len(p.FailureDetails))
		for j, d := range p.FailureDetails {
			wp.FailureDetails[j] = wireDetail(d)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type wireReport struct {
	OrganizationName string       `json:"organization-name"`
	DateRange        wireRange    `json:"date-range"`
	ContactInfo      string       `json:"contact-info"`
	ReportID         string       `json:"report-id"`
	Policies         []wirePolicy `json:"policies"`
}

type wireRange struct {
	Start string `json:"start-datetime"`
	End   string `json:"end-datetime"`
}

type wirePolicy struct {
	Policy struct {
		Type   string   `json:"policy-type"`
		String []string `json:"policy-string"`
		Domain string   `json:"policy-domain"`
		MXHost []string `json:"mx-host"`
	} `json:"policy"`
	Summary struct {
		Success int64 `json:"total-successful-session-count"`
		Failure int64 `json:"total-failure-session-count"`
	} `json:"summary"`
	FailureDetails []wireDetail `json:"failure-details"`
}

type wireDetail struct {
	ResultType            ResultType `json:"result-type"`
	SendingMTAIP          string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname   string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo       string     `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string     `json:"receiving-ip,omitempty"`
	FailedSessionCount    int64      `json:"failed-session-count"`
	AdditionalInformation string     `json:"additional-information,omitempty"`
	FailureReasonCode     string     `json:"failure-reason-code,omitempty"`
}

// checkMarshal fails t when Marshal(r) differs from marshalReference(r).
func checkMarshal(t *testing.T, r *Report) {
	t.Helper()
	got, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want, err := marshalReference(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal differs from encoding/json's form:\n got %q\nwant %q", got, want)
	}
}

// Marshal writes what encoding/json wrote, for every test report and for
// the strings JSON escapes: quotes, backslashes, each control character,
// DEL, invalid UTF-8, U+2028 and U+2029, HTML's characters (not escaped),
// non-ASCII; empty and nil arrays; empty optional members; fractional
// seconds and other zones; extreme counts.
func TestMarshalMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, name := range append([]string{"f10a.json", "f10b.json", "f10c.json"}, quirksPaths()...) {
		r, _, err := Parse(readTestdata(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Run(name, func(t *testing.T) { checkMarshal(t, r) })
	}
	var odd []string
	for c := range 0x80 {
		odd = append(odd, fmt.Sprintf("a%cb", c))
	}
	odd = append(odd, "", "\xff", "a\xc3", "\xed\xa0\x80", "x\u2028y\u2029z", "<a href='x'>&amp;</a>", "é中🙂", "\u00a0\ufeff", `\"`)
	zone := time.FixedZone("X", 5*3600+1800)
	r := &Report{
		OrganizationName: odd[0],
		DateRange:        DateRange{Start: time.Date(2026, 1, 2, 3, 4, 5, 600, zone), End: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)},
		ContactInfo:      "ops@example.com",
		ReportID:         odd[len(odd)-1],
		Policies: []PolicyResult{
			{Policy: Policy{Type: PolicyTypeSTS, String: odd, Domain: "example.com", MXHost: odd},
				Summary: Summary{TotalSuccessfulSessionCount: math.MaxInt64, TotalFailureSessionCount: math.MinInt64}},
			{Policy: Policy{Type: PolicyTypeNoPolicyFound, String: []string{}, MXHost: nil}},
		},
	}
	for i, s := range odd {
		r.Policies[0].FailureDetails = append(r.Policies[0].FailureDetails, FailureDetails{
			ResultType: result.Type(s), SendingMTAIP: s, ReceivingMXHostname: odd[(i+1)%len(odd)], ReceivingMXHelo: s,
			ReceivingIP: s, FailedSessionCount: int64(i) - 3, AdditionalInformation: s, FailureReasonCode: odd[(i+7)%len(odd)],
		})
	}
	checkMarshal(t, r)
	r.Policies[0].FailureDetails = append(r.Policies[0].FailureDetails, FailureDetails{})
	checkMarshal(t, r)
	checkMarshal(t, &Report{})
	checkMarshal(t, &Report{Policies: []PolicyResult{}})
}

// quirksPaths are the quirk samples' names under testdata.
func quirksPaths() []string {
	var out []string
	for _, n := range quirkJSONFiles {
		out = append(out, "quirks/"+n)
	}
	return out
}

// Any report Parse returns, and any strings in every member, encode as
// encoding/json encoded them.
func FuzzMarshalMatchesEncodingJSON(f *testing.F) {
	f.Add(readTestdata(f, "f10c.json"), "a\"b\\\x01\u2028", int64(7))
	f.Add([]byte("{}"), "\xff\xfe<&>", int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, s string, n int64) {
		if r, _, err := Parse(data); err == nil {
			checkMarshal(t, r)
		}
		checkMarshal(t, &Report{
			OrganizationName: s, ContactInfo: s, ReportID: s,
			DateRange: DateRange{Start: time.Unix(n%(1<<40), n%1e9).UTC(), End: time.Unix(n%(1<<35), 0)},
			Policies: []PolicyResult{{
				Policy:         Policy{Type: s, String: []string{s, s}, Domain: s, MXHost: []string{s}},
				Summary:        Summary{TotalSuccessfulSessionCount: n, TotalFailureSessionCount: -n},
				FailureDetails: []FailureDetails{{ResultType: result.Type(s), SendingMTAIP: s, FailedSessionCount: n, FailureReasonCode: s}},
			}},
		})
	})
}
