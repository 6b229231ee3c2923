package libtlsrpt

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt/libtlsrpttest"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// libtlsrpt's byte form of the delivery request of its documentation's
// example 3 (an MTA-STS policy with two failures), written the way its
// fprintf calls write it: `"key": "value"` for strings, `"key":N` for
// numbers, no other spaces.
const stsExample = `{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example",` +
	`"policies":[{"policy-type":2,"policy-domain": "company-y.example",` +
	`"policy-string":["version: STSv1","mode: testing","mx: *.mail.company-y.example","max_age: 86400"],` +
	`"mx-host":["*.mail.company-y.example","*.mail2.company-y.example"],` +
	`"failure-details":[{"c":302,"s": "192.0.2.4","n": "mailin.example.com","h": "test-ehlo.example.com","r": "198.51.100.44","a": "This is additional information","f": "999 TEST ERROR"},` +
	`{"c":303,"s": "192.0.2.5","n": "mailin.example.com","h": "test-ehlo.example.com","r": "198.51.100.55","a": "This is additional information","f": "999 TEST ERROR"}],` +
	`"t":2,"f":1}]}`

// The TLSA and no-policy-found forms, and two policies in one request.
const (
	tlsaSuccess = `{"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1; rua=mailto:r@company-y.example","policies":[{"policy-type":1,"policy-domain": "company-y.example","policy-string":["3 0 1 1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D"],"t":0,"f":0}]}`
	noPolicy    = `{"dpv": "1","d": "plain.example","pr": "v=TLSRPTv1; rua=mailto:r@plain.example","policies":[{"policy-type":9,"t":0,"f":0}]}`
	twoPolicies = `{"dpv": "1","d": "company-y.example","pr": "x","policies":[{"policy-type":2,"policy-string":["version: STSv1","mode: enforce","mx: mx.company-y.example","max_age: 86400"],"mx-host":["mx.company-y.example"],"t":0,"f":0},{"policy-type":1,"policy-string":["3 1 1 AB"],"failure-details":[{"c":304,"n": "mx.company-y.example"}],"t":1,"f":1}]}`
)

func mustParse(t *testing.T, s string) *Datagram {
	t.Helper()
	d, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return d
}

// One test per field of the protocol: each member lands where it should.
func TestParseFields(t *testing.T) {
	t.Parallel()
	d := mustParse(t, stsExample)
	p := d.Policies[0]
	f0 := p.Failures[0]
	for name, c := range map[string]struct{ got, want any }{
		"dpv":                   {d.Version, "1"},
		"d":                     {d.Domain, "company-y.example"},
		"pr":                    {d.Record, "v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example"},
		"policy-type sts (2)":   {p.Type, "sts"},
		"policy-domain":         {p.Domain, "company-y.example"},
		"policy-string":         {p.Strings, []string{"version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"}},
		"mx-host":               {p.MXHosts, []string{"*.mail.company-y.example", "*.mail2.company-y.example"}},
		"failure-details count": {len(p.Failures), 2},
		"c":                     {f0.Code, 302},
		"c as result type":      {f0.ResultType, result.STSPolicyInvalid},
		"s":                     {f0.SendingMTAIP, "192.0.2.4"},
		"n":                     {f0.ReceivingMXHostname, "mailin.example.com"},
		"h":                     {f0.ReceivingMXHelo, "test-ehlo.example.com"},
		"r":                     {f0.ReceivingIP, "198.51.100.44"},
		"a":                     {f0.AdditionalInfo, "This is additional information"},
		"failure f":             {f0.FailureReasonCode, "999 TEST ERROR"},
		"t":                     {p.Count, 2},
		"f":                     {p.Failed, true},
		"policy-type tlsa (1)":  {mustParse(t, tlsaSuccess).Policies[0].Type, "tlsa"},
		"policy-type none (9)":  {mustParse(t, noPolicy).Policies[0].Type, "no-policy-found"},
		"f success":             {mustParse(t, tlsaSuccess).Policies[0].Failed, false},
		"optional members absent": {mustParse(t, noPolicy).Policies[0],
			Policy{Type: "no-policy-found", Count: 0}},
		"t absent":                {mustParse(t, `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"f":0}]}`).Policies[0].Count, -1},
		"dpv absent (taken as 1)": {mustParse(t, `{"d": "x.example","policies":[{"policy-type":9,"f":0}]}`).Version, ""},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", name, c.got, c.want)
		}
	}
}

// Every libtlsrpt failure code maps to its RFC 8460 result type
// (RPT-RES-1..11); 901 and unknown codes map to none.
func TestResultTypeCodes(t *testing.T) {
	t.Parallel()
	want := map[int]result.Type{201: "starttls-not-supported", 202: "certificate-host-mismatch", 203: "certificate-not-trusted",
		204: "certificate-expired", 205: "validation-failure", 301: "sts-policy-fetch-error", 302: "sts-policy-invalid",
		303: "sts-webpki-invalid", 304: "tlsa-invalid", 305: "dnssec-invalid", 306: "dane-required"}
	seen := map[result.Type]bool{}
	for code, rt := range want {
		got, ok := ResultType(code)
		if !ok || got != rt || !got.Known() {
			t.Errorf("code %d = %q %v, want %q", code, got, ok, rt)
		}
		seen[got] = true
	}
	if len(seen) != len(result.Types()) {
		t.Errorf("codes cover %d of %d result types", len(seen), len(result.Types()))
	}
	for _, c := range []int{0, 200, 206, 901, -1} {
		if _, ok := ResultType(c); ok {
			t.Errorf("code %d mapped", c)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for name, s := range malformedCases() {
		if _, err := Parse([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse(%q) = %v, want ErrMalformed", name, s, err)
		}
	}
}

func malformedCases() map[string]string {
	return map[string]string{
		"empty":                  ``,
		"not json":               `hello`,
		"array":                  `[1,2]`,
		"truncated":              stsExample[:len(stsExample)/2],
		"no domain":              `{"dpv": "1","policies":[{"policy-type":9,"f":0}]}`,
		"empty domain":           `{"dpv": "1","d": "","policies":[{"policy-type":9,"f":0}]}`,
		"domain not a string":    `{"dpv": "1","d": 5,"policies":[{"policy-type":9,"f":0}]}`,
		"no policies":            `{"dpv": "1","d": "x.example"}`,
		"empty policies":         `{"dpv": "1","d": "x.example","policies":[]}`,
		"policies not array":     `{"dpv": "1","d": "x.example","policies":{}}`,
		"no policy-type":         `{"dpv": "1","d": "x.example","policies":[{"f":0}]}`,
		"unknown policy-type":    `{"dpv": "1","d": "x.example","policies":[{"policy-type":3,"f":0}]}`,
		"policy-type as string":  `{"dpv": "1","d": "x.example","policies":[{"policy-type":"sts","f":0}]}`,
		"no final result":        `{"dpv": "1","d": "x.example","policies":[{"policy-type":9}]}`,
		"final result 2":         `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"f":2}]}`,
		"failure without code":   `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"failure-details":[{"s": "192.0.2.1"}],"f":1}]}`,
		"code as string":         `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"failure-details":[{"c":"201"}],"f":1}]}`,
		"policy-string not list": `{"dpv": "1","d": "x.example","policies":[{"policy-type":2,"policy-string":"version: STSv1","f":0}]}`,
		"too many policies":      `{"dpv": "1","d": "x.example","policies":[` + strings.Repeat(`{"policy-type":9,"f":0},`, MaxPolicies) + `{"policy-type":9,"f":0}]}`,
	}
}

// Another protocol version is told apart from a broken datagram, whatever
// else it holds.
func TestParseOtherVersion(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`{"dpv": "2","d": "x.example","policies":[{"policy-type":9,"f":0}]}`,
		`{"dpv": "2","entirely":"new","format":[1]}`,
		`{"dpv": 2,"d": "x.example","policies":[{"policy-type":9,"f":0}]}`,
		`{"dpv": "", "d": "x.example","policies":[{"policy-type":9,"f":0}]}`,
	} {
		if _, err := Parse([]byte(s)); !errors.Is(err, ErrVersion) {
			t.Errorf("Parse(%s) = %v, want ErrVersion", s, err)
		}
	}
}

func TestResults(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	rs, n := mustParse(t, twoPolicies).Results(now)
	want := []outgoing.Result{
		{Time: now, PolicyDomain: "company-y.example", Policy: outgoing.Policy{Type: "sts",
			Strings: []string{"version: STSv1", "mode: enforce", "mx: mx.company-y.example", "max_age: 86400"}, MXHosts: []string{"mx.company-y.example"}}},
		{Time: now, PolicyDomain: "company-y.example", Failed: true, Policy: outgoing.Policy{Type: "tlsa", Strings: []string{"3 1 1 AB"}},
			Failures: []outgoing.Failure{{ResultType: result.TLSAInvalid, ReceivingMXHostname: "mx.company-y.example"}}},
	}
	if !reflect.DeepEqual(rs, want) || n != (Notes{}) {
		t.Errorf("Results = %+v %+v", rs, n)
	}
	// 901 (unfinished policy) and future codes: the detail goes, the
	// session stays failed; details on a success are dropped; t is
	// checked.
	odd := `{"dpv": "1","d": "x.example","policies":[` +
		`{"policy-type":9,"failure-details":[{"c":901},{"c":205,"a": "x"},{"c":777}],"t":3,"f":1},` +
		`{"policy-type":9,"failure-details":[{"c":201}],"t":1,"f":0},` +
		`{"policy-type":9,"t":4,"f":1}]}`
	rs, n = mustParse(t, odd).Results(now)
	if n != (Notes{UnknownCodes: 2, DetailsOnSuccess: 1, CountMismatch: 1}) {
		t.Errorf("notes = %+v", n)
	}
	if len(rs) != 3 || !rs[0].Failed || len(rs[0].Failures) != 1 || rs[0].Failures[0].ResultType != result.ValidationFailure ||
		rs[1].Failed || len(rs[1].Failures) != 0 || !rs[2].Failed {
		t.Errorf("results = %+v", rs)
	}
}

// FuzzParse: no datagram makes the parser or Results panic, and what
// parses gives one result per policy about the datagram's domain.
func FuzzParse(f *testing.F) {
	for _, s := range []string{stsExample, tlsaSuccess, noPolicy, twoPolicies} {
		f.Add([]byte(s))
	}
	for _, s := range malformedCases() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		rs, n := d.Results(time.Unix(0, 0))
		if len(rs) != len(d.Policies) || len(rs) == 0 || len(rs) > MaxPolicies {
			t.Fatalf("%d results of %d policies", len(rs), len(d.Policies))
		}
		for _, r := range rs {
			if r.PolicyDomain != d.Domain {
				t.Fatal("result about another domain")
			}
			for _, f := range r.Failures {
				if !f.ResultType.Known() {
					t.Fatalf("unknown result type %q passed", f.ResultType)
				}
			}
		}
		_ = fmt.Sprint(n)
	})
}

// realDatagrams are datagrams in the byte form libtlsrpt writes (its
// fprintf calls), from the tests above and bench/sender.
func realDatagrams() []string {
	out := []string{stsExample, tlsaSuccess, noPolicy, twoPolicies}
	for _, b := range libtlsrpttest.Mix(10, 3) {
		out = append(out, string(b))
	}
	return out
}

// The fast decoder takes libtlsrpt's own datagrams (were it to give up
// on them, every datagram would pay for encoding/json) and decodes them
// as encoding/json does.
func TestDecodeFastTakesLibtlsrptDatagrams(t *testing.T) {
	t.Parallel()
	for _, s := range append(realDatagrams(),
		// White space anywhere JSON allows it, non-ASCII UTF-8, -0,
		// empty arrays and objects.
		" {\n\t\"dpv\" : \"1\" ,\"d\":\"x.example\",\"policies\" : [ {\"policy-type\" : 9 , \"f\" : -0 , \"mx-host\":[],\"failure-details\":[{}]} ] } \r\n",
		`{"d":"x.example","pr":"café ✓","policies":[{"policy-type":2,"policy-string":[],"failure-details":[],"f":0}]}`,
	) {
		var raw rawDatagram
		if !decodeFast([]byte(s), &raw) {
			t.Errorf("decodeFast gave up on %s", s)
			continue
		}
		fast, ferr := raw.datagram()
		ref, rerr := parseReference([]byte(s))
		if !reflect.DeepEqual(fast, ref) || fmt.Sprint(ferr) != fmt.Sprint(rerr) {
			t.Errorf("%s:\nfast %#v %v\nref  %#v %v", s, fast, ferr, ref, rerr)
		}
	}
}

// What the fast decoder does not fully understand it leaves to
// encoding/json: these parse (or fail) exactly as the reference says.
func TestDecodeFastGivesUp(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]string{
		"escape":              `{"dpv": "1","d": "x\u002eexample","policies":[{"policy-type":9,"f":0}]}`,
		"escaped quote":       `{"dpv": "1","d": "x.example","pr":"a\"b","policies":[{"policy-type":9,"f":0}]}`,
		"key in another case": `{"dpv": "1","D": "x.example","policies":[{"policy-type":9,"f":0}]}`,
		"unknown key":         `{"dpv": "1","d": "x.example","extra":true,"policies":[{"policy-type":9,"f":0}]}`,
		"unknown failure key": `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"failure-details":[{"c":201,"z":"y"}],"f":1}]}`,
		"duplicate d":         `{"dpv": "1","d": "a.example","d": "b.example","policies":[{"policy-type":9,"f":0}]}`,
		"duplicate f":         `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"f":1,"f":0}]}`,
		"duplicate c":         `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"failure-details":[{"c":201,"c":202}],"f":1}]}`,
		"null":                `{"dpv": "1","d": "x.example","pr":null,"policies":[{"policy-type":9,"f":0}]}`,
		"float":               `{"dpv": "1","d": "x.example","policies":[{"policy-type":9.0,"f":0}]}`,
		"exponent":            `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"f":0e0}]}`,
		"big number":          `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"t":12345678901,"f":0}]}`,
		"leading zero":        `{"dpv": "1","d": "x.example","policies":[{"policy-type":09,"f":0}]}`,
		"invalid UTF-8":       "{\"dpv\": \"1\",\"d\": \"x.example\",\"pr\":\"\xff\",\"policies\":[{\"policy-type\":9,\"f\":0}]}",
		"control character":   "{\"dpv\": \"1\",\"d\": \"x.example\",\"pr\":\"a\tb\",\"policies\":[{\"policy-type\":9,\"f\":0}]}",
		"trailing data":       `{"dpv": "1","d": "x.example","policies":[{"policy-type":9,"f":0}]} {}`,
		"other version":       `{"dpv": 2,"d": "x.example","policies":[{"policy-type":9,"f":0}]}`,
		"too many policies":   malformedCases()["too many policies"],
		"not an object":       `[1,2]`,
	} {
		var raw rawDatagram
		if decodeFast([]byte(s), &raw) {
			t.Errorf("%s: decodeFast took %s", name, s)
		}
		got, gerr := Parse([]byte(s))
		ref, rerr := parseReference([]byte(s))
		if !reflect.DeepEqual(got, ref) || fmt.Sprint(gerr) != fmt.Sprint(rerr) {
			t.Errorf("%s: Parse %#v %v, reference %#v %v", name, got, gerr, ref, rerr)
		}
	}
}

// FuzzParseEquivalence: on every input, Parse (the fast decoder, or
// encoding/json when it gives up) and the encoding/json reference agree:
// the same datagram, or errors of the same class with the same text.
// Seeds: the table cases and libtlsrpt's datagrams.
func FuzzParseEquivalence(f *testing.F) {
	for _, s := range realDatagrams() {
		f.Add([]byte(s))
	}
	for _, s := range malformedCases() {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"dpv": "2","entirely":"new","format":[1]}`))
	f.Add([]byte(`{"dpv": "1","d": "x\u002eexample","D":"y","policies":[{"policy-type":9,"f":0,"f":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gerr := Parse(b)
		ref, rerr := parseReference(b)
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("Parse %#v\nreference %#v", got, ref)
		}
		if (gerr == nil) != (rerr == nil) || errors.Is(gerr, ErrMalformed) != errors.Is(rerr, ErrMalformed) ||
			errors.Is(gerr, ErrVersion) != errors.Is(rerr, ErrVersion) || fmt.Sprint(gerr) != fmt.Sprint(rerr) {
			t.Fatalf("Parse error %v, reference %v", gerr, rerr)
		}
	})
}

// plainASCII's eight-bytes-at-a-time test agrees with a byte loop, at
// every position of every byte value.
func TestPlainASCII(t *testing.T) {
	t.Parallel()
	for n := range 20 {
		for pos := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				want := c >= 0x20 && c < 0x80 && c != '\\'
				if got := plainASCII(b); got != want {
					t.Fatalf("plainASCII(%q) = %v", b, got)
				}
			}
		}
	}
}
