package mtasts

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mailsts/mailsts/tlsrpt/result"
)

// recordCase is one row of the TXT record table. A row with an empty wantID
// expects an error wrapping ErrRecordSyntax.
type recordCase struct {
	id      string // checklist ID and short name
	in      string
	wantID  string
	wantExt []Extension
}

func recordCases() []recordCase {
	ok := func(id, in, wantID string, ext ...Extension) recordCase {
		return recordCase{id: id, in: in, wantID: wantID, wantExt: ext}
	}
	bad := func(id, in string) recordCase { return recordCase{id: id, in: in} }
	a32 := strings.Repeat("a", 32)
	name32 := "e" + strings.Repeat("x", 31)
	return []recordCase{
		ok("F-1", "v=STSv1; id=20160831085700Z;", "20160831085700Z"),

		bad("STS-TXT-2/byte-0x80", "v=STSv1; id=abc\x80"),
		bad("STS-TXT-2/byte-0x80-in-ext", "v=STSv1; id=abc; e=\x80"),
		bad("STS-TXT-2/control", "v=STSv1; id=abc; e=a\x01"),
		bad("STS-TXT-2/NUL", "v=STSv1;\x00id=1"),
		bad("STS-TXT-2/CR", "v=STSv1; id=1\r"),
		bad("STS-TXT-2/DEL", "v=STSv1; id=1; e=\x7f"),
		bad("STS-TXT-2/UTF-8", "v=STSv1; id=1; e=ü"),

		ok("STS-TXT-3/basic", "v=STSv1; id=1", "1"),
		bad("STS-TXT-3/upper-V", "V=STSv1; id=1"),
		bad("STS-TXT-3/lower-version", "v=stsv1; id=1"),
		bad("STS-TXT-3/leading-space", " v=STSv1; id=1"),
		bad("STS-TXT-3/version-last", "id=1; v=STSv1"),
		bad("STS-TXT-3/version-glued", "v=STSv1id=1"),
		bad("STS-TXT-3/STSv2", "v=STSv2; id=1"),
		ok("STS-TXT-3/order-free-after-version", "v=STSv1; e=x; id=1", "1", Extension{"e", "x"}),

		ok("STS-TXT-4/timestamp", "v=STSv1; id=20160831085700Z", "20160831085700Z"),
		ok("STS-TXT-4/32-chars", "v=STSv1; id="+a32, a32),
		bad("STS-TXT-4/33-chars", "v=STSv1; id="+a32+"a"),
		bad("STS-TXT-4/empty", "v=STSv1; id="),
		bad("STS-TXT-4/hyphen", "v=STSv1; id=2016-08-31"),
		bad("STS-TXT-4/underscore", "v=STSv1; id=abc_1"),
		bad("STS-TXT-4/ID-is-extension", "v=STSv1; ID=abc"),
		bad("STS-TXT-4/missing", "v=STSv1; e=1"),
		bad("STS-TXT-4/no-fields", "v=STSv1"),
		bad("STS-TXT-4/only-delimiter", "v=STSv1;"),
		ok("STS-TXT-4/case-kept", "v=STSv1; id=AbC9", "AbC9"),

		ok("STS-TXT-5/no-space", "v=STSv1;id=1", "1"),
		ok("STS-TXT-5/trailing-delim", "v=STSv1; id=1;", "1"),
		ok("STS-TXT-5/tab", "v=STSv1;\tid=1", "1"),
		ok("STS-TXT-5/trailing-delim-space", "v=STSv1; id=1; ", "1"),
		ok("STS-TXT-5/wsp-around", "v=STSv1 \t; \t id=1 \t; \t", "1"),
		bad("STS-TXT-5/empty-field", "v=STSv1;; id=1"),
		bad("STS-TXT-5/double-trailing", "v=STSv1; id=1;;"),
		bad("STS-TXT-5/trailing-wsp-no-delim", "v=STSv1; id=1 "),
		bad("STS-TXT-5/space-not-delim", "v=STSv1; id=1 e=2"),
		bad("STS-TXT-5/comma", "v=STSv1, id=1"),
		bad("STS-TXT-5/space-in-field", "v=STSv1; id = 1"),

		ok("STS-TXT-6/extension-kept", "v=STSv1; id=1; ext=a.b-c", "1", Extension{"ext", "a.b-c"}),
		ok("STS-TXT-6/extension-chars", "v=STSv1; id=1; a_b-c.d=!\"#:<>~", "1", Extension{"a_b-c.d", "!\"#:<>~"}),
		ok("STS-TXT-6/32-char-name", "v=STSv1; id=1; "+name32+"=x", "1", Extension{name32, "x"}),
		bad("STS-TXT-6/empty-value", "v=STSv1; id=1; ext="),
		bad("STS-TXT-6/equals-in-value", "v=STSv1; id=1; ext=a=b"),
		bad("STS-TXT-6/underscore-first", "v=STSv1; id=1; _x=1"),
		bad("STS-TXT-6/space-in-value", "v=STSv1; id=1; ext=a b"),
		bad("STS-TXT-6/33-char-name", "v=STSv1; id=1; "+name32+"x=1"),
		bad("STS-TXT-6/no-equals", "v=STSv1; id=1; ext"),
		bad("STS-TXT-6/empty-name", "v=STSv1; id=1; =x"),

		ok("STS-TXT-12/first-id-wins", "v=STSv1; id=abc; id=def", "abc"),
		ok("STS-TXT-12/later-id-only-as-extension", "v=STSv1; id=abc; id=d-f", "abc"),
		ok("STS-TXT-12/repeated-version-ignored", "v=STSv1; id=abc; v=STSv2", "abc"),
		bad("STS-TXT-12/later-field-still-checked", "v=STSv1; id=abc; id=a b"),
		bad("STS-TXT-12/later-id-value-checked-as-extension", "v=STSv1; id=abc; id=a=b"),
		bad("STS-TXT-12/later-id-control-byte", "v=STSv1; id=abc; id=a\x01"),

		ok("STS-ERRATA-2/space-before-semicolon", "v=STSv1 ; id=1", "1"),
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range recordCases() {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			r, err := ParseRecord(tc.in)
			if tc.wantID == "" {
				if err == nil {
					t.Fatalf("ParseRecord(%q) = %+v, want error", tc.in, r)
				}
				if !errors.Is(err, ErrRecordSyntax) {
					t.Fatalf("ParseRecord(%q) error %v does not wrap ErrRecordSyntax", tc.in, err)
				}
				if r != nil {
					t.Fatalf("ParseRecord(%q) returned a record with an error", tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRecord(%q): %v", tc.in, err)
			}
			if r.ID != tc.wantID || !reflect.DeepEqual(r.Extensions, tc.wantExt) {
				t.Fatalf("ParseRecord(%q) = {%q %v}, want {%q %v}", tc.in, r.ID, r.Extensions, tc.wantID, tc.wantExt)
			}
			// Round trip through the canonical form.
			r2, err := ParseRecord(r.String())
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("round trip of %q via %q = %+v, %v", tc.in, r.String(), r2, err)
			}
		})
	}
}

func TestRecordErrorMessages(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"v=STSv1; id=2016-08-31": `id "2016-08-31" has "-"`,
		"v=STSv1; e=1":           "missing id",
		"V=STSv1; id=1":          `does not begin with "v=STSv1"`,
		"v=STSv1;; id=1":         `field "" has no "="`,
		"v=STSv1; id=1 x":        `expected ";"`,
		"v=STSv1; id=1; e=\x80":  "byte 0x80",
	} {
		_, err := ParseRecord(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRecord(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestRecordString(t *testing.T) {
	t.Parallel()
	// F-1: the canonical form is the RFC's own example.
	r := &Record{ID: "20160831085700Z"}
	if got, want := r.String(), "v=STSv1; id=20160831085700Z;"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	r.Extensions = []Extension{{"a", "1"}, {"b", "2"}}
	if got, want := r.String(), "v=STSv1; id=20160831085700Z; a=1; b=2;"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got := (*Record)(nil).String(); got != "" {
		t.Fatalf("nil String() = %q", got)
	}
}

func TestRecordLogValue(t *testing.T) {
	t.Parallel()
	r := &Record{ID: "abc", Extensions: []Extension{{"e", "1"}}}
	if got := r.LogValue().String(); !strings.Contains(got, "id=abc") || !strings.Contains(got, "extensions=1") {
		t.Fatalf("LogValue = %s", got)
	}
	if got := (*Record)(nil).LogValue().String(); got != "<nil>" {
		t.Fatalf("nil LogValue = %s", got)
	}
}

func TestRecordTooLong(t *testing.T) {
	t.Parallel()
	in := "v=STSv1; id=1; e=" + strings.Repeat("x", recordMaxLen)
	if _, err := ParseRecord(in); !errors.Is(err, ErrRecordSyntax) {
		t.Fatalf("oversized record: err = %v, want ErrRecordSyntax", err)
	}
}

func TestRecordFixtureF1(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/f1-record.txt")
	if err != nil {
		t.Fatal(err)
	}
	r, err := SelectRecord([]string{strings.TrimSuffix(string(b), "\n")})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "20160831085700Z" || r.Extensions != nil {
		t.Fatalf("F-1 = %+v", r)
	}
}

func TestSelectRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id      string
		txts    []string
		wantID  string
		wantErr error
	}{
		{"STS-TXT-7/other-records-dropped", []string{"v=spf1 -all", "v=STSv1; id=1"}, "1", nil},
		{"STS-TXT-7/two-records", []string{"v=STSv1; id=1", "v=STSv1; id=2"}, "", ErrMultipleRecords},
		{"STS-TXT-7/two-candidates-one-garbage", []string{"v=STSv1; id=1", "v=STSv1;garbage"}, "", ErrMultipleRecords},
		{"STS-TXT-7/identical-twice", []string{"v=STSv1; id=1", "v=STSv1; id=1"}, "", ErrMultipleRecords},
		{"STS-TXT-7/empty-set", nil, "", ErrNoRecord},
		{"STS-TXT-7/only-other", []string{"v=spf1 -all", "google-site-verification=x"}, "", ErrNoRecord},
		{"STS-TXT-7/not-a-prefix", []string{"v=STSv10; id=1"}, "", ErrNoRecord},
		{"STS-TXT-7/trailing-wsp-only", []string{"v=STSv1 "}, "", ErrNoRecord},
		{"STS-TXT-3/case-not-candidate", []string{"V=STSv1; id=1", "v=stsv1; id=2"}, "", ErrNoRecord},
		{"STS-TXT-3/leading-space-not-candidate", []string{" v=STSv1; id=1"}, "", ErrNoRecord},
		{"STS-TXT-8/single-invalid", []string{"v=STSv1; id="}, "", ErrRecordSyntax},
		{"STS-TXT-8/bare-version", []string{"v=STSv1"}, "", ErrRecordSyntax},
		{"STS-TXT-8/single-invalid-among-others", []string{"v=spf1 -all", "v=STSv1;garbage"}, "", ErrRecordSyntax},
		{"STS-TXT-9/joined-without-separator", []string{"v=STSv1; id=2016" + "0831085700Z;"}, "20160831085700Z", nil},
		{"STS-TXT-9/joined-with-space-is-invalid", []string{"v=STSv1; id=2016" + " " + "0831085700Z;"}, "", ErrRecordSyntax},
		{"STS-ERRATA-2/single", []string{"v=STSv1 ; id=1"}, "1", nil},
		{"STS-ERRATA-2/single-tab", []string{"v=STSv1\t;id=1"}, "1", nil},
		{"STS-ERRATA-2/multi", []string{"v=STSv1 ; id=1", "v=STSv1; id=2"}, "", ErrMultipleRecords},
		{"STS-ERRATA-2/multi-with-other", []string{"v=spf1 -all", "v=STSv1 ; id=7"}, "7", nil},
	} {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			r, err := SelectRecord(tc.txts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || r != nil {
					t.Fatalf("SelectRecord(%q) = %+v, %v; want error %v", tc.txts, r, err, tc.wantErr)
				}
				if got, want := ResultType(err), result.NoPolicy; got != want || want != "no-policy" {
					t.Fatalf("ResultType(%v) = %q, want %q", err, got, want)
				}
				return
			}
			if err != nil || r.ID != tc.wantID {
				t.Fatalf("SelectRecord(%q) = %+v, %v; want id %q", tc.txts, r, err, tc.wantID)
			}
		})
	}
}

func TestPolicyURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"example.com":           "https://mta-sts.example.com/.well-known/mta-sts.txt", // STS-POL-1
		"example.com.":          "https://mta-sts.example.com/.well-known/mta-sts.txt", // STS-POL-1, trailing dot
		"xn--bcher-kva.example": "https://mta-sts.xn--bcher-kva.example/.well-known/mta-sts.txt",
	} {
		if got := PolicyURL(in); got != want {
			t.Errorf("PolicyURL(%q) = %q, want %q", in, got, want)
		}
	}
}
