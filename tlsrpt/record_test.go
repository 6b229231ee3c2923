package tlsrpt

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/mailsts/mailsts/dnsresolve"
)

var goodRecords = []struct {
	txt  string
	rua  []string
	exts []Extension
}{
	// F-5: RFC 8460 §3.1.1 and §3.1.2.
	{"v=TLSRPTv1;rua=mailto:reports@example.com", []string{"mailto:reports@example.com"}, nil},
	{"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", []string{"https://reporting.example.com/v1/tlsrpt"}, nil},
	// RPT-TXT-3: several URIs, WSP around commas, several rua fields.
	{"v=TLSRPTv1; rua=mailto:a@x.example, https://r.example/p", []string{"mailto:a@x.example", "https://r.example/p"}, nil},
	{"v=TLSRPTv1; rua=mailto:a@x.example ,\thttps://r.example/p", []string{"mailto:a@x.example", "https://r.example/p"}, nil},
	{"v=TLSRPTv1; rua=mailto:a@x.example; rua=mailto:b@y.example", []string{"mailto:a@x.example", "mailto:b@y.example"}, nil},
	// RPT-TXT-8: unknown fields accepted and kept.
	{"v=TLSRPTv1; rua=mailto:r@example.com; foo=bar", []string{"mailto:r@example.com"}, []Extension{{"foo", "bar"}}},
	// Trailing delimiter, WSP before ';' (STS-ERRATA-2 shape).
	{"v=TLSRPTv1; rua=mailto:r@example.com;", []string{"mailto:r@example.com"}, nil},
	{"v=TLSRPTv1 ; rua=mailto:r@example.com ; ", []string{"mailto:r@example.com"}, nil},
	// RPT-TXT-5: percent-encoded comma stays one URI.
	{"v=TLSRPTv1; rua=mailto:tls%2Creports@example.com", []string{"mailto:tls%2Creports@example.com"}, nil},
	// RPT-TXT-4: other schemes parse (and are ignored by UsableRUA).
	{"v=TLSRPTv1; rua=http://r.example/", []string{"http://r.example/"}, nil},
	// "!" parses; UsableRUA rejects it (RPT-TXT-5).
	{"v=TLSRPTv1; rua=mailto:r@example.com!10m", []string{"mailto:r@example.com!10m"}, nil},
	{"v=TLSRPTv1; rua=https://r.example/?a=b", []string{"https://r.example/?a=b"}, nil},
}

var badRecords = []string{
	"",
	"v=TLSRPTv1",                           // RPT-TXT-3: no rua
	"v=TLSRPTv1;",                          // RPT-TXT-3
	"v=TLSRPTv1; rua=",                     // RPT-TXT-3
	"v=TLSRPTv1; rua=mailto:a@x.example,",  // empty URI
	"v=tlsrptv1; rua=mailto:r@example.com", // RPT-TXT-2: case-sensitive
	"V=TLSRPTv1; rua=mailto:r@example.com",
	" v=TLSRPTv1; rua=mailto:r@example.com",
	"rua=mailto:r@example.com; v=TLSRPTv1",
	"v=TLSRPTv10; rua=mailto:r@example.com",
	"v=TLSRPTv1 rua=mailto:r@example.com",
	"v=TLSRPTv1;; rua=mailto:r@example.com",
	"v=TLSRPTv1; rua=mailto:r@example.com; ext=",
	"v=TLSRPTv1; rua=mailto:r@example.com; _x=1",
	"v=TLSRPTv1; rua=mailto:r@example.com; ext=a b",
	"v=TLSRPTv1; rua=mailto:r@example.com; noequals",
	"v=TLSRPTv1; rua=reports", // no scheme
	"v=TLSRPTv1; rua=mailto:r@example.com\x80",
	"v=TLSRPTv1; rua=mailto:r@exa\x00mple.com",
}

func TestParseRecordGood(t *testing.T) { // RPT-TXT-2, -3, -5, -8, F-5
	t.Parallel()
	for _, tc := range goodRecords {
		r, err := ParseRecord(tc.txt)
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tc.txt, err)
			continue
		}
		if !reflect.DeepEqual(r.RUA, tc.rua) || !reflect.DeepEqual(r.Extensions, tc.exts) {
			t.Errorf("ParseRecord(%q) = %q %v, want %q %v", tc.txt, r.RUA, r.Extensions, tc.rua, tc.exts)
		}
		r2, err := ParseRecord(r.String())
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Errorf("round trip of %q via %q: %v %+v", tc.txt, r.String(), err, r2)
		}
	}
}

func TestParseRecordBad(t *testing.T) { // RPT-TXT-2, -3
	t.Parallel()
	for _, txt := range badRecords {
		if r, err := ParseRecord(txt); !errors.Is(err, ErrRecordSyntax) {
			t.Errorf("ParseRecord(%q) = %+v, %v; want ErrRecordSyntax", txt, r, err)
		}
	}
}

func TestUsableRUA(t *testing.T) { // RPT-TXT-4, RPT-TXT-5, RPT-MAIL-9
	t.Parallel()
	r, err := ParseRecord("v=TLSRPTv1; rua=mailto:tls%2Creports@example.com,https://r.example/v1,http://r.example/,mailto:r@example.com!10m,mailto:x@example.com?subject=hi")
	if err != nil {
		t.Fatal(err)
	}
	usable, ignored := r.UsableRUA()
	if len(usable) != 3 {
		t.Fatalf("usable = %+v", usable)
	}
	if usable[0].Scheme != "mailto" || usable[0].Address != "tls,reports@example.com" {
		t.Errorf("RPT-TXT-5: got %+v", usable[0])
	}
	if usable[1].Scheme != "https" || usable[1].URL.Host != "r.example" {
		t.Errorf("https: got %+v", usable[1])
	}
	if usable[2].Address != "x@example.com" {
		t.Errorf("RPT-MAIL-9: header fields must be ignored, got %+v", usable[2])
	}
	if len(ignored) != 2 || ignored[0].Raw != "http://r.example/" || ignored[1].Raw != "mailto:r@example.com!10m" {
		t.Errorf("ignored = %+v", ignored)
	}
	// RPT-TXT-4: only http → nothing usable, so nothing is sent.
	r, _ = ParseRecord("v=TLSRPTv1; rua=http://r.example/")
	if u, ig := r.UsableRUA(); len(u) != 0 || len(ig) != 1 {
		t.Errorf("http only: usable %v ignored %v", u, ig)
	}
}

func TestSelectRecord(t *testing.T) { // RPT-TXT-6, STS-ERRATA-2
	t.Parallel()
	good := "v=TLSRPTv1; rua=mailto:r@example.com"
	cases := []struct {
		txts []string
		err  error
	}{
		{[]string{"v=spf1 -all", good}, nil},
		{[]string{good, "v=TLSRPTv1; rua=mailto:s@example.com"}, ErrMultipleRecords},
		{[]string{good, "v=TLSRPTv1 ; rua=mailto:s@example.com"}, ErrMultipleRecords}, // ERRATA-2: both candidates
		{[]string{"v=TLSRPTv1 ; rua=mailto:s@example.com"}, nil},
		{[]string{good, "v=TLSRPTv1;garbage"}, ErrMultipleRecords},
		{[]string{"v=TLSRPTv1;garbage"}, ErrRecordSyntax},
		{[]string{"v=TLSRPTv1rua=mailto:r@example.com"}, ErrNoRecord},
		{nil, ErrNoRecord},
		{[]string{"v=STSv1; id=1"}, ErrNoRecord},
	}
	for _, tc := range cases {
		_, err := SelectRecord(tc.txts)
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("SelectRecord(%q) = %v, want %v", tc.txts, err, tc.err)
		}
	}
}

func TestLookupRecord(t *testing.T) { // RPT-TXT-1, RPT-TXT-6
	t.Parallel()
	r := &fakeResolver{
		txt: map[string][]string{
			"_smtp._tls.example.com":           {"v=spf1 -all", "v=TLSRPTv1;rua=mailto:reports@example.com"},
			"_smtp._tls.xn--bcher-kva.example": {"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt"},
			"_smtp._tls.two.example":           {"v=TLSRPTv1;rua=mailto:a@two.example", "v=TLSRPTv1;rua=mailto:b@two.example"},
		},
		fail: map[string]bool{"_smtp._tls.servfail.example": true},
	}
	ctx := context.Background()
	rec, err := LookupRecord(ctx, r, "example.com.")
	if err != nil || len(rec.RUA) != 1 || rec.RUA[0] != "mailto:reports@example.com" {
		t.Errorf("example.com: %+v %v", rec, err)
	}
	if rec, err := LookupRecord(ctx, r, "bücher.example"); err != nil || rec.RUA[0] != "https://reporting.example.com/v1/tlsrpt" {
		t.Errorf("IDN: %+v %v", rec, err)
	}
	if _, err := LookupRecord(ctx, r, "none.example"); !errors.Is(err, ErrNoRecord) || !errors.Is(err, dnsresolve.ErrNotFound) {
		t.Errorf("none: %v", err)
	}
	if _, err := LookupRecord(ctx, r, "servfail.example"); !errors.Is(err, ErrDNS) || !errors.Is(err, dnsresolve.ErrLookupFailed) {
		t.Errorf("servfail: %v", err)
	}
	if _, err := LookupRecord(ctx, r, "two.example"); !errors.Is(err, ErrMultipleRecords) {
		t.Errorf("two: %v", err)
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, tc := range goodRecords {
		f.Add(tc.txt)
	}
	for _, s := range badRecords {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		r2, err := ParseRecord(r.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", r.String(), s, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip of %q: %+v != %+v", s, r, r2)
		}
		r.UsableRUA()
	})
}
